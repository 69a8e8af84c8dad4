# The paper's Sec. 6 sweeps (hyperinr/sweeps.py): `snakemake ablation_encoders`,
# `snakemake ablation_hash` (every variant distils from the pipeline's teacher and set),
# `snakemake ablation_architectures`, `snakemake ablation_shared_mlp` (models trained on the
# training frames alone, hyperinr/stages/ablation_models.py).


rule distill_variant:
    input:
        unpack(variant_inputs),
    output:
        model=f"{RESULTS}/ablation/{{variant}}/model.pt",
        info=f"{RESULTS}/ablation/{{variant}}/info.json",
    params:
        cfg=variant_stage_config,
        source=distill_sources,
        out_dir=parent_of("model"),
        launcher=trainer("distill")["launcher"],
    log:
        f"{LOGS}/ablation_{{variant}}.log",
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


rule predict_variant:
    input:
        dataset=f"{RESULTS}/dataset.zarr",
        model=f"{RESULTS}/ablation/{{variant}}/model.pt",
    output:
        store=directory(f"{RESULTS}/ablation/predictions/{{variant}}.zarr"),
        info=f"{RESULTS}/ablation/predictions/{{variant}}.json",
    params:
        cfg=stage_config("predict_hyperinr"),
    log:
        f"{LOGS}/predict_ablation_{{variant}}.log",
    threads: config["runtime"]["threads"]
    resources:
        gpu=resource("predict", "gpu"),
        runtime=resource("predict", "runtime"),
        mem_mb=resource("predict", "mem_mb"),
    conda:
        "../envs/hyperinr.yaml"
    shell:
        "hyperinr predict --config-json {params.cfg:q} --threads {threads} --method hyperinr"
        " --dataset {input.dataset:q} --model {input.model:q} --out {output.store:q}"
        " > {log:q} 2>&1"


for _sweep in ("encoders", "hash"):

    rule:
        name:
            f"ablation_{_sweep}"
        input:
            dataset=f"{RESULTS}/dataset.zarr",
            predictions=list(ablation_predictions(_sweep).values()),
            infos=[f"{RESULTS}/ablation/{v}/info.json" for v in ablation_variants(_sweep)],
            reference=f"{RESULTS}/report/metrics.csv",
        output:
            per_frame=f"{RESULTS}/report/ablation_{_sweep}_frames.csv",
            table=report(
                f"{RESULTS}/report/ablation_{_sweep}.csv",
                caption=f"../workflow/report/ablation_{_sweep}.rst",
                category="Ablations",
            ),
            plot=report(
                f"{RESULTS}/report/ablation_{_sweep}.png",
                caption=f"../workflow/report/ablation_{_sweep}.rst",
                category="Ablations",
            ),
        params:
            sweep=_sweep,
            preds=" ".join(f"--pred {v}={p}" for v, p in ablation_predictions(_sweep).items()),
            infos=lambda wildcards, input: " ".join(f"--info {p}" for p in input.infos),
        log:
            f"{LOGS}/ablation_{_sweep}.log",
        threads: 1
        resources:
            gpu=resource("evaluate", "gpu"),
            runtime=resource("evaluate", "runtime"),
            mem_mb=resource("evaluate", "mem_mb"),
        conda:
            "../envs/hyperinr.yaml"
        shell:
            "(hyperinr evaluate --dataset {input.dataset:q} {params.preds}"
            " --out {output.per_frame:q} && hyperinr ablation-table --sweep {params.sweep}"
            " --metrics {output.per_frame:q} {params.infos} --reference {input.reference:q}"
            " --out-csv {output.table:q} --out-png {output.plot:q}) > {log:q} 2>&1"


rule ablation_model:
    input:
        dataset=f"{RESULTS}/dataset.zarr",
    output:
        model=f"{RESULTS}/ablation/{{amodel}}/model.pt",
        info=f"{RESULTS}/ablation/{{amodel}}/info.json",
    params:
        cfg=lambda wildcards: stage_config(f"ablation_{wildcards.amodel}"),
        out_dir=parent_of("model"),
        launcher=trainer("distill")["launcher"],
    log:
        f"{LOGS}/ablation_model_{{amodel}}.log",
    threads: trainer("distill")["threads"]
    resources:
        gpu=trainer("distill")["gpu"],
        runtime=resource("distill", "runtime"),
        mem_mb=resource("distill", "mem_mb"),
    conda:
        "../envs/hyperinr.yaml"
    shell:
        "{params.launcher} ablation-train --model {wildcards.amodel}"
        " --config-json {params.cfg:q} --threads {threads}"
        " --dataset {input.dataset:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"


rule predict_ablation_model:
    input:
        dataset=f"{RESULTS}/dataset.zarr",
        model=f"{RESULTS}/ablation/{{amodel}}/model.pt",
    output:
        store=directory(f"{RESULTS}/ablation/predictions/{{amodel}}.zarr"),
        info=f"{RESULTS}/ablation/predictions/{{amodel}}.json",
    params:
        cfg=ablation_predict_config,
        kind=ablation_model_kind,
    log:
        f"{LOGS}/predict_ablation_{{amodel}}.log",
    threads: config["runtime"]["threads"]
    resources:
        gpu=resource("predict", "gpu"),
        runtime=resource("predict", "runtime"),
        mem_mb=resource("predict", "mem_mb"),
    conda:
        "../envs/hyperinr.yaml"
    shell:
        "hyperinr predict --config-json {params.cfg:q} --threads {threads}"
        " --method {params.kind} --dataset {input.dataset:q} --model {input.model:q}"
        " --out {output.store:q} > {log:q} 2>&1"


for _sweep in MODEL_SWEEPS:

    rule:
        name:
            f"ablation_{_sweep}"
        input:
            dataset=f"{RESULTS}/dataset.zarr",
            predictions=list(model_sweep_predictions(_sweep).values()),
            infos=[f"{RESULTS}/ablation/{m}/info.json" for m in MODEL_SWEEPS[_sweep]],
            reference=f"{RESULTS}/report/metrics.csv",
            # Fig. 8B: renders of both designs at unseen frames (TSR volumes)
            render=(
                [f"{RESULTS}/report/ablation_shared_mlp_render.png"]
                if _sweep == "shared_mlp" and TASK == "tsr"
                else []
            ),
        output:
            per_frame=f"{RESULTS}/report/ablation_{_sweep}_frames.csv",
            table=report(
                f"{RESULTS}/report/ablation_{_sweep}.csv",
                caption=f"../workflow/report/ablation_{_sweep}.rst",
                category="Ablations",
            ),
            plot=report(
                f"{RESULTS}/report/ablation_{_sweep}.png",
                caption=f"../workflow/report/ablation_{_sweep}.rst",
                category="Ablations",
            ),
        params:
            sweep=_sweep,
            preds=" ".join(f"--pred {m}={p}" for m, p in model_sweep_predictions(_sweep).items()),
            infos=lambda wildcards, input: " ".join(f"--info {p}" for p in input.infos),
        log:
            f"{LOGS}/ablation_{_sweep}.log",
        threads: 1
        resources:
            gpu=resource("evaluate", "gpu"),
            runtime=resource("evaluate", "runtime"),
            mem_mb=resource("evaluate", "mem_mb"),
        conda:
            "../envs/hyperinr.yaml"
        shell:
            "(hyperinr evaluate --dataset {input.dataset:q} {params.preds}"
            " --out {output.per_frame:q} && hyperinr ablation-table --sweep {params.sweep}"
            " --metrics {output.per_frame:q} {params.infos} --reference {input.reference:q}"
            " --out-csv {output.table:q} --out-png {output.plot:q}) > {log:q} 2>&1"


rule ablation_shared_mlp_render:
    input:
        dataset=f"{RESULTS}/dataset.zarr",
        predictions=list(model_sweep_predictions("shared_mlp").values()),
    output:
        png=report(
            f"{RESULTS}/report/ablation_shared_mlp_render.png",
            caption="../workflow/report/ablation_shared_mlp_render.rst",
            category="Ablations",
        ),
        csv=f"{RESULTS}/report/ablation_shared_mlp_render.csv",
        md=f"{RESULTS}/report/ablation_shared_mlp_render.md",
    params:
        cfg=stage_config("renders"),
        preds=" ".join(f"--pred {m}={p}" for m, p in model_sweep_predictions("shared_mlp").items()),
    log:
        f"{LOGS}/ablation_shared_mlp_render.log",
    threads: config["runtime"]["threads"]
    resources:
        gpu=resource("predict", "gpu"),
        runtime=resource("predict", "runtime"),
        mem_mb=resource("predict", "mem_mb"),
    conda:
        "../envs/hyperinr.yaml"
    shell:
        "hyperinr renders --config-json {params.cfg:q} --threads {threads}"
        " --dataset {input.dataset:q} {params.preds} --out-png {output.png:q}"
        " --out-csv {output.csv:q} --out-md {output.md:q} > {log:q} 2>&1"
