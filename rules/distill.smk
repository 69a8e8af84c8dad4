rule distill_set_shard:
    input:
        dataset=rules.ingest.output.store,
        teacher=rules.teacher.output.model,
    output:
        store=directory(f"{RESULTS}/distill_set/shards/shard_{{shard}}.zarr"),
    params:
        cfg=stage_config("distill_set"),
    log:
        f"{LOGS}/distill_set/shard_{{shard}}.log",
    benchmark:
        benchmark_file("distill_set_shard", "{shard}")
    threads: config["runtime"]["threads"]
    resources:
        **resources_of("distill_set_shard"),
    conda:
        "../envs/hyperinr.yaml"
    shell:
        "hyperinr distill-set-shard --config-json {params.cfg:q} --threads {threads}"
        " --dataset {input.dataset:q} --teacher {input.teacher:q} --shard {wildcards.shard}"
        " --out {output.store:q} > {log:q} 2>&1"


rule distill_set:
    input:
        dataset=rules.ingest.output.store,
        teacher=rules.teacher.output.model,
        shards=expand(rules.distill_set_shard.output.store, shard=range(n_shards())),
    output:
        store=directory(f"{RESULTS}/distill_set.zarr"),
        info=f"{RESULTS}/distill_set_info.json",
    params:
        cfg=stage_config("distill_set"),
        shards_dir=lambda wildcards, input: str(Path(input.shards[0]).parent),
    log:
        f"{LOGS}/distill_set.log",
    benchmark:
        benchmark_file("distill_set")
    threads: config["runtime"]["threads"]
    resources:
        **resources_of("distill_set"),
    conda:
        "../envs/hyperinr.yaml"
    shell:
        "hyperinr distill-set --config-json {params.cfg:q} --threads {threads}"
        " --dataset {input.dataset:q}"
        " --teacher {input.teacher:q} --shards-dir {params.shards_dir:q}"
        " --out {output.store:q} > {log:q} 2>&1"


# The pipeline's HyperINR, each targets_mode's hyperinr_<mode> (rule target_modes) and the
# sweeps' variants ablation/<key>-<value> (rules/ablation.smk): one distill run each.
rule distill:
    input:
        unpack(distill_inputs),
    output:
        model=model_file("{model}"),
        info=model_info("{model}"),
    params:
        cfg=distill_config,
        source=distill_sources,
        out_dir=parent_of("model"),
        launcher=trainer("distill")["launcher"],
    log:
        f"{LOGS}/distill_{{model}}.log",
    benchmark:
        benchmark_file("distill", "{model}")
    threads: trainer("distill")["threads"]
    resources:
        **resources_of("distill"),
    conda:
        "../envs/hyperinr.yaml"
    shell:
        "{params.launcher} distill --config-json {params.cfg:q} --threads {threads}"
        " --dataset {input.dataset:q}"
        " {params.source} --out-dir {params.out_dir:q} > {log:q} 2>&1"
