rule distill_set_shard:
    input:
        dataset=f"{RESULTS}/dataset.zarr",
        teacher=f"{RESULTS}/teacher/model.pt",
    output:
        directory(f"{RESULTS}/distill_set/shards/shard_{{shard}}.zarr"),
    params:
        cfg=stage_config("distill_set"),
    log:
        f"{LOGS}/distill_set/shard_{{shard}}.log",
    threads: config["runtime"]["threads"]
    resources:
        gpu=resource("distill_set_shard", "gpu"),
        runtime=resource("distill_set_shard", "runtime"),
        mem_mb=resource("distill_set_shard", "mem_mb"),
    conda:
        "../envs/hyperinr.yaml"
    shell:
        "hyperinr distill-set-shard --config-json {params.cfg:q} --threads {threads}"
        " --dataset {input.dataset:q}"
        " --teacher {input.teacher:q} --shard {wildcards.shard} --out {output:q} > {log:q} 2>&1"


rule distill_set:
    input:
        dataset=f"{RESULTS}/dataset.zarr",
        teacher=f"{RESULTS}/teacher/model.pt",
        shards=distill_shards(),
    output:
        store=directory(f"{RESULTS}/distill_set.zarr"),
        info=f"{RESULTS}/distill_set_info.json",
    params:
        cfg=stage_config("distill_set"),
        shards_dir=lambda wildcards, input: str(Path(input.shards[0]).parent),
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
        "hyperinr distill-set --config-json {params.cfg:q} --threads {threads}"
        " --dataset {input.dataset:q}"
        " --teacher {input.teacher:q} --shards-dir {params.shards_dir:q}"
        " --out {output.store:q} > {log:q} 2>&1"


rule distill:
    input:
        unpack(distill_inputs),
    output:
        model=f"{RESULTS}/{{model}}/model.pt",
        info=f"{RESULTS}/{{model}}/info.json",
    params:
        cfg=distill_config,
        source=distill_sources,
        out_dir=parent_of("model"),
        launcher=trainer("distill")["launcher"],
    log:
        f"{LOGS}/distill_{{model}}.log",
    threads: trainer("distill")["threads"]
    resources:
        gpu=trainer("distill")["gpu"],
        runtime=resource("distill", "runtime"),
        mem_mb=resource("distill", "mem_mb"),
    conda:
        "../envs/hyperinr.yaml"
    shell:
        "{params.launcher} distill --config-json {params.cfg:q} --threads {threads}"
        " --dataset {input.dataset:q}"
        " {params.source} --out-dir {params.out_dir:q} > {log:q} 2>&1"
