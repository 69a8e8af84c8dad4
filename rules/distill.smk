rule distill_set:
    input:
        dataset=f"{RESULTS}/dataset.zarr",
        teacher=f"{RESULTS}/teacher/model.pt",
    output:
        store=directory(f"{RESULTS}/distill_set.zarr"),
        info=f"{RESULTS}/distill_set_info.json",
    params:
        cfg=stage_config("distill_set", "runtime"),
    log:
        f"{LOGS}/distill_set.log",
    threads: config["runtime"]["threads"]
    resources:
        gpu=resource("distill_set", "gpu"),
        runtime=resource("distill_set", "runtime"),
        mem_mb=resource("distill_set", "mem_mb"),
    conda:
        "../envs/hyperinr.yaml"
    shell:
        "hyperinr distill-set --config-json {params.cfg:q} --dataset {input.dataset:q}"
        " --teacher {input.teacher:q} --out {output.store:q} > {log:q} 2>&1"


rule distill:
    input:
        dataset=f"{RESULTS}/dataset.zarr",
        distill_set=f"{RESULTS}/distill_set.zarr",
    output:
        model=f"{RESULTS}/hyperinr/model.pt",
        info=f"{RESULTS}/hyperinr/info.json",
    params:
        cfg=stage_config("hyperinr", "runtime"),
        out_dir=parent_of("model"),
    log:
        f"{LOGS}/distill.log",
    threads: config["runtime"]["threads"]
    resources:
        gpu=resource("distill", "gpu"),
        runtime=resource("distill", "runtime"),
        mem_mb=resource("distill", "mem_mb"),
    conda:
        "../envs/hyperinr.yaml"
    shell:
        "hyperinr distill --config-json {params.cfg:q} --dataset {input.dataset:q}"
        " --distill-set {input.distill_set:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"
