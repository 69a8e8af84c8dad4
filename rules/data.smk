rule simulate:
    output:
        h5=str(simulation_file(CFG.simulate)),  # tgv.h5 or turbulence.h5, by simulate.flow
        params=f"{config['simulate']['output_dir']}/params.json",
    params:
        cfg=stage_config("simulate"),
        out_dir=parent_of("h5"),
    log:
        f"logs/simulate/{Path(config['simulate']['output_dir']).name}.log",
    benchmark:
        f"logs/simulate/{Path(config['simulate']['output_dir']).name}.benchmark.tsv"
    threads: 1
    resources:
        **resources_of("simulate"),
    conda:
        "../envs/sim.yaml"
    shell:
        "hyperinr simulate --config-json {params.cfg:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"


rule scene:
    input:
        volume=config["scene"]["volume_file"],
    output:
        frames=scene_files(config["scene"]["output_dir"])[0],
        params=scene_files(config["scene"]["output_dir"])[1],
    params:
        cfg=stage_config("scene"),
        out_dir=parent_of("frames"),
    log:
        f"logs/scene/{Path(config['scene']['output_dir']).name}.log",
    benchmark:
        f"logs/scene/{Path(config['scene']['output_dir']).name}.benchmark.tsv"
    threads: config["runtime"]["threads"]
    resources:
        **resources_of("scene"),
    conda:
        "../envs/hyperinr.yaml"
    shell:
        "hyperinr scene --config-json {params.cfg:q} --threads {threads}"
        " --out-dir {params.out_dir:q} > {log:q} 2>&1"


rule ingest:
    input:
        dataset_files(),
    output:
        store=directory(DATASET),
    params:
        cfg=stage_config("ingest"),
    log:
        f"{LOGS}/ingest.log",
    benchmark:
        benchmark_file("ingest")
    threads: 1
    resources:
        **resources_of("ingest"),
    conda:
        "../envs/hyperinr.yaml"
    shell:
        "hyperinr ingest --config-json {params.cfg:q} --threads {threads} --out {output.store:q}"
        " > {log:q} 2>&1"
