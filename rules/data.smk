rule simulate:
    output:
        h5=str(simulation_file(CFG.simulate)),  # tgv.h5 or turbulence.h5, by simulate.flow
        params=f"{config['simulate']['output_dir']}/params.json",
    params:
        cfg=stage_config("simulate"),
        out_dir=parent_of("h5"),
    log:
        f"logs/simulate/{Path(config['simulate']['output_dir']).name}.log",
    threads: 1
    resources:
        gpu=resource("simulate", "gpu"),
        runtime=resource("simulate", "runtime"),
        mem_mb=resource("simulate", "mem_mb"),
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
    threads: config["runtime"]["threads"]
    resources:
        gpu=resource("scene", "gpu"),
        runtime=resource("scene", "runtime"),
        mem_mb=resource("scene", "mem_mb"),
    conda:
        "../envs/hyperinr.yaml"
    shell:
        "hyperinr scene --config-json {params.cfg:q} --threads {threads}"
        " --out-dir {params.out_dir:q} > {log:q} 2>&1"


rule ingest:
    input:
        dataset_files(),
    output:
        directory(f"{RESULTS}/dataset.zarr"),
    params:
        cfg=stage_config("ingest"),
    log:
        f"{LOGS}/ingest.log",
    threads: 1
    resources:
        gpu=resource("ingest", "gpu"),
        runtime=resource("ingest", "runtime"),
        mem_mb=resource("ingest", "mem_mb"),
    conda:
        "../envs/hyperinr.yaml"
    shell:
        "hyperinr ingest --config-json {params.cfg:q} --threads {threads} --out {output:q}"
        " > {log:q} 2>&1"
