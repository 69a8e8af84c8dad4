# The paper's Sec. 6 sweeps (hyperinr/sweeps.py), one target each: `snakemake ablation_encoders`,
# `snakemake ablation_hash` (variants of HyperINR, each an ordinary distill run from the
# pipeline's teacher and set: rule distill, model ablation/<key>-<value>),
# `snakemake ablation_architectures`, `snakemake ablation_shared_mlp` (models trained on the
# training frames alone: rule ablation_model, hyperinr/stages/ablation_models.py). Every model
# is predicted by rule predict (results/<name>/ablation/predictions/) and scored like a method.


rule ablation_model:
    input:
        dataset=rules.ingest.output.store,
    output:
        model=model_file("ablation/{amodel}"),
        info=model_info("ablation/{amodel}"),
    params:
        cfg=lambda wildcards: stage_config(f"ablation_{wildcards.amodel}"),
        out_dir=parent_of("model"),
        launcher=trainer("ablation_model")["launcher"],
    log:
        f"{LOGS}/ablation_model_{{amodel}}.log",
    benchmark:
        benchmark_file("ablation_model", "{amodel}")
    threads: trainer("ablation_model")["threads"]
    resources:
        **resources_of("ablation_model"),
    conda:
        "../envs/hyperinr.yaml"
    shell:
        "{params.launcher} ablation-train --model {wildcards.amodel}"
        " --config-json {params.cfg:q} --threads {threads}"
        " --dataset {input.dataset:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"


rule ablation_shared_mlp_render:
    """Fig. 8B: renders of both designs at unseen frames (TSR volumes)."""
    input:
        dataset=rules.ingest.output.store,
        predictions=list(sweep_predictions("shared_mlp").values()),
    output:
        png=report(
            f"{REPORT}/ablation_shared_mlp_render.png",
            caption="../workflow/report/ablation_shared_mlp_render.rst",
            category="Ablations",
        ),
        csv=f"{REPORT}/ablation_shared_mlp_render.csv",
        md=f"{REPORT}/ablation_shared_mlp_render.md",
    params:
        cfg=stage_config("renders"),
        preds=pred_args(sweep_predictions("shared_mlp")),
    log:
        f"{LOGS}/ablation_shared_mlp_render.log",
    benchmark:
        benchmark_file("ablation_shared_mlp_render")
    threads: config["runtime"]["threads"]
    resources:
        **resources_of("ablation_shared_mlp_render"),
    conda:
        "../envs/hyperinr.yaml"
    shell:
        "hyperinr renders --config-json {params.cfg:q} --threads {threads}"
        " --dataset {input.dataset:q} {params.preds} --out-png {output.png:q}"
        " --out-csv {output.csv:q} --out-md {output.md:q} > {log:q} 2>&1"


for _sweep in SWEEP_NAMES:

    rule:
        name:
            f"ablation_{_sweep}"
        input:
            dataset=rules.ingest.output.store,
            predictions=list(sweep_predictions(_sweep).values()),
            infos=[model_info(f"ablation/{m}") for m in sweep_models(_sweep)],
            reference=rules.evaluate.output.metrics,
            render=(
                [rules.ablation_shared_mlp_render.output.png]
                if _sweep == "shared_mlp" and TASK == "tsr"
                else []
            ),
        output:
            per_frame=f"{REPORT}/ablation_{_sweep}_frames.csv",
            table=report(
                f"{REPORT}/ablation_{_sweep}.csv",
                caption=f"../workflow/report/ablation_{_sweep}.rst",
                category="Ablations",
            ),
            plot=report(
                f"{REPORT}/ablation_{_sweep}.png",
                caption=f"../workflow/report/ablation_{_sweep}.rst",
                category="Ablations",
            ),
        params:
            sweep=_sweep,
            preds=pred_args(sweep_predictions(_sweep)),
            infos=infos_arg,
            cfg=stage_config("evaluate"),
        log:
            f"{LOGS}/ablation_{_sweep}.log",
        benchmark:
            benchmark_file(f"ablation_{_sweep}")
        threads: config["runtime"]["threads"]
        resources:
            **resources_of(f"ablation_{_sweep}"),
        conda:
            "../envs/hyperinr.yaml"
        shell:
            "(hyperinr evaluate --config-json {params.cfg:q} --threads {threads}"
            " --dataset {input.dataset:q} {params.preds}"
            " --out {output.per_frame:q} && hyperinr ablation-table --sweep {params.sweep}"
            " --metrics {output.per_frame:q} {params.infos} --reference {input.reference:q}"
            " --out-csv {output.table:q} --out-png {output.plot:q}) > {log:q} 2>&1"
