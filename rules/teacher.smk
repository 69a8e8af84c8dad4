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


rule teacher_validation:
    input:
        dataset=f"{RESULTS}/dataset.zarr",
    output:
        model=f"{RESULTS}/teacher_validation/model.pt",
        info=f"{RESULTS}/teacher_validation/info.json",
    params:
        cfg=stage_config("teacher_validation"),
        out_dir=parent_of("model"),
        launcher=trainer("teacher_validation")["launcher"],
    log:
        f"{LOGS}/teacher_validation.log",
    threads: trainer("teacher_validation")["threads"]
    resources:
        gpu=trainer("teacher_validation")["gpu"],
        runtime=resource("teacher_validation", "runtime"),
        mem_mb=resource("teacher_validation", "mem_mb"),
    conda:
        "../envs/hyperinr.yaml"
    shell:
        "{params.launcher} teacher --validation --config-json {params.cfg:q} --threads {threads}"
        " --dataset {input.dataset:q}"
        " --out-dir {params.out_dir:q} > {log:q} 2>&1"


rule baseline:
    input:
        dataset=f"{RESULTS}/dataset.zarr",
    output:
        model=f"{RESULTS}/{{baseline}}/model.pt",
        info=f"{RESULTS}/{{baseline}}/info.json",
    params:
        cfg=lambda wildcards: stage_config(f"baseline_{wildcards.baseline}"),
        out_dir=parent_of("model"),
        launcher=trainer("baseline")["launcher"],
    log:
        f"{LOGS}/baseline_{{baseline}}.log",
    threads: trainer("baseline")["threads"]
    resources:
        gpu=trainer("baseline")["gpu"],
        runtime=baseline_resource("runtime"),
        mem_mb=baseline_resource("mem_mb"),
    conda:
        "../envs/hyperinr.yaml"
    shell:
        "{params.launcher} baseline --model {wildcards.baseline}"
        " --config-json {params.cfg:q} --threads {threads}"
        " --dataset {input.dataset:q}"
        " --out-dir {params.out_dir:q} > {log:q} 2>&1"
