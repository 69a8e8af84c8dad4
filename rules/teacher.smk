rule teacher:
    input:
        dataset=rules.ingest.output.store,
    output:
        model=model_file("teacher"),
        info=model_info("teacher"),
    params:
        cfg=stage_config("teacher"),
        out_dir=parent_of("model"),
        launcher=trainer("teacher")["launcher"],
    log:
        f"{LOGS}/teacher.log",
    benchmark:
        benchmark_file("teacher")
    threads: trainer("teacher")["threads"]
    resources:
        **resources_of("teacher"),
    conda:
        "../envs/hyperinr.yaml"
    shell:
        "{params.launcher} teacher --config-json {params.cfg:q} --threads {threads}"
        " --dataset {input.dataset:q}"
        " --out-dir {params.out_dir:q} > {log:q} 2>&1"


rule teacher_validation:
    input:
        dataset=rules.ingest.output.store,
    output:
        model=model_file("teacher_validation"),
        info=model_info("teacher_validation"),
    params:
        cfg=stage_config("teacher_validation"),
        out_dir=parent_of("model"),
        launcher=trainer("teacher_validation")["launcher"],
    log:
        f"{LOGS}/teacher_validation.log",
    benchmark:
        benchmark_file("teacher_validation")
    threads: trainer("teacher_validation")["threads"]
    resources:
        **resources_of("teacher_validation"),
    conda:
        "../envs/hyperinr.yaml"
    shell:
        "{params.launcher} teacher --validation --config-json {params.cfg:q} --threads {threads}"
        " --dataset {input.dataset:q}"
        " --out-dir {params.out_dir:q} > {log:q} 2>&1"


rule baseline:
    input:
        dataset=rules.ingest.output.store,
    output:
        model=model_file("{baseline}"),
        info=model_info("{baseline}"),
    params:
        cfg=lambda wildcards: stage_config(f"baseline_{wildcards.baseline}"),
        out_dir=parent_of("model"),
        launcher=trainer("baseline")["launcher"],
    log:
        f"{LOGS}/baseline_{{baseline}}.log",
    benchmark:
        benchmark_file("baseline", "{baseline}")
    threads: trainer("baseline")["threads"]
    resources:
        **resources_of("baseline"),
    conda:
        "../envs/hyperinr.yaml"
    shell:
        "{params.launcher} baseline --model {wildcards.baseline}"
        " --config-json {params.cfg:q} --threads {threads}"
        " --dataset {input.dataset:q}"
        " --out-dir {params.out_dir:q} > {log:q} 2>&1"
