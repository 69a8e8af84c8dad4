rule teacher:
    input:
        dataset=f"{RESULTS}/dataset.zarr",
    output:
        model=f"{RESULTS}/teacher/model.pt",
        info=f"{RESULTS}/teacher/info.json",
    params:
        cfg=stage_config("teacher"),
        out_dir=parent_of("model"),
        launcher=trainer("teacher")["launcher"],
    log:
        f"{LOGS}/teacher.log",
    threads: trainer("teacher")["threads"]
    resources:
        gpu=trainer("teacher")["gpu"],
        runtime=resource("teacher", "runtime"),
        mem_mb=resource("teacher", "mem_mb"),
    conda:
        "../envs/hyperinr.yaml"
    shell:
        "{params.launcher} teacher --config-json {params.cfg:q} --threads {threads}"
        " --dataset {input.dataset:q}"
        " --out-dir {params.out_dir:q} > {log:q} 2>&1"
