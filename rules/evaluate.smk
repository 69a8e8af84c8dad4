# Every model's frames, the pipeline's (results/<name>/predictions/<method>.zarr) and the
# sweeps' (results/<name>/ablation/predictions/<model>.zarr, prefix "ablation/").
rule predict:
    input:
        dataset=rules.ingest.output.store,
        model=model_for,
    output:
        store=directory(prediction("{method}", "{prefix}")),
        info=prediction_info("{method}", "{prefix}"),
    params:
        cfg=predict_config,
        method=predict_method,
        model=lambda wildcards, input: f"--model {input.model}" if input.model else "",
    log:
        f"{LOGS}/{{prefix}}predict_{{method}}.log",
    benchmark:
        benchmark_file("predict", "{prefix}{method}")
    threads: config["runtime"]["threads"]
    resources:
        **resources_of("predict", gpu=predict_gpu),
    conda:
        "../envs/hyperinr.yaml"
    shell:
        "hyperinr predict --config-json {params.cfg:q} --threads {threads}"
        " {params.method} --dataset {input.dataset:q} {params.model} --out {output.store:q} > {log:q} 2>&1"


rule evaluate:
    input:
        dataset=rules.ingest.output.store,
        predictions=list(predictions().values()),
    output:
        metrics=report(
            f"{REPORT}/metrics.csv",
            caption="../workflow/report/metrics.rst",
            category="Metrics",
        ),
        provenance=f"{REPORT}/metrics.provenance.json",
    params:
        preds=pred_args(predictions()),
        cfg=stage_config("evaluate"),
    log:
        f"{LOGS}/evaluate.log",
    benchmark:
        benchmark_file("evaluate")
    threads: config["runtime"]["threads"]
    resources:
        **resources_of("evaluate"),
    conda:
        "../envs/hyperinr.yaml"
    shell:
        "hyperinr evaluate --config-json {params.cfg:q} --threads {threads}"
        " --dataset {input.dataset:q} {params.preds}"
        " --out {output.metrics:q} > {log:q} 2>&1"


rule target_modes:
    input:
        dataset=rules.ingest.output.store,
        predictions=list(predictions([*MODE_MODELS, "teacher", "lerp"]).values()),
        infos=[model_info(m) for m in MODE_MODELS],
    output:
        metrics=report(
            f"{REPORT}/target_modes.csv",
            caption="../workflow/report/target_modes.rst",
            category="Target modes",
        ),
        provenance=f"{REPORT}/target_modes.provenance.json",
        summary=report(
            f"{REPORT}/target_modes.md",
            caption="../workflow/report/target_modes.rst",
            category="Target modes",
        ),
    params:
        preds=pred_args(predictions([*MODE_MODELS, "teacher", "lerp"])),
        infos=infos_arg,
        cfg=stage_config("evaluate"),
    log:
        f"{LOGS}/target_modes.log",
    benchmark:
        benchmark_file("target_modes")
    threads: config["runtime"]["threads"]
    resources:
        **resources_of("target_modes"),
    conda:
        "../envs/hyperinr.yaml"
    shell:
        "(hyperinr evaluate --config-json {params.cfg:q} --threads {threads}"
        " --dataset {input.dataset:q} {params.preds} --out {output.metrics:q}"
        " && hyperinr compare-modes --metrics {output.metrics:q} {params.infos}"
        " --out {output.summary:q}) > {log:q} 2>&1"


rule view_gain:
    input:
        dataset=rules.ingest.output.store,
        metrics=rules.evaluate.output.metrics,
    output:
        png=report(
            f"{REPORT}/view_gain.png",
            caption="../workflow/report/view_gain.rst",
            category="Metrics",
        ),
        md=f"{REPORT}/view_gain.md",
        json=f"{REPORT}/view_gain.json",
    log:
        f"{LOGS}/view_gain.log",
    benchmark:
        benchmark_file("view_gain")
    threads: 1
    resources:
        **resources_of("view_gain"),
    conda:
        "../envs/hyperinr.yaml"
    shell:
        "hyperinr view-gain --dataset {input.dataset:q} --metrics {input.metrics:q}"
        " --out-png {output.png:q} --out-md {output.md:q} > {log:q} 2>&1"


rule shadows:
    input:
        dataset=rules.ingest.output.store,
        scene=rules.scene.output.frames,
        model=model_file("hyperinr"),
        predictions=list(predictions().values()),  # every evaluated method's shadow volumes
    output:
        png=report(
            f"{REPORT}/shadow_sweep.png",
            caption="../workflow/report/shadow_sweep.rst",
            category="Images",
        ),
        csv=f"{REPORT}/shadow_renders.csv",
        md=f"{REPORT}/shadows.md",
    params:
        cfg=stage_config("shadows"),
        preds=pred_args(predictions()),
    log:
        f"{LOGS}/shadows.log",
    benchmark:
        benchmark_file("shadows")
    threads: config["runtime"]["threads"]
    resources:
        **resources_of("shadows"),
    conda:
        "../envs/hyperinr.yaml"
    shell:
        "hyperinr render-shadows --config-json {params.cfg:q} --threads {threads}"
        " --dataset {input.dataset:q} --scene {input.scene:q} --model {input.model:q}"
        " {params.preds} --out-png {output.png:q} --out-csv {output.csv:q}"
        " --out-md {output.md:q} > {log:q} 2>&1"


rule speed:
    input:
        dataset=rules.ingest.output.store,
        teacher=rules.teacher.output.model,
        model=model_file("hyperinr"),
        infos=[i for i in stage_infos() if i.endswith("info.json")],
    output:
        csv=report(
            f"{REPORT}/speed.csv",
            caption="../workflow/report/speed.rst",
            category="Speed",
        ),
        md=f"{REPORT}/speed.md",
    params:
        cfg=stage_config("speed"),
        infos=infos_arg,
    log:
        f"{LOGS}/speed.log",
    benchmark:
        benchmark_file("speed")
    threads: config["runtime"]["threads"]
    resources:
        **resources_of("speed"),
    conda:
        "../envs/hyperinr.yaml"
    shell:
        "hyperinr speed --config-json {params.cfg:q} --threads {threads}"
        " --dataset {input.dataset:q} --teacher {input.teacher:q} --model {input.model:q}"
        " {params.infos} --out-csv {output.csv:q} --out-md {output.md:q} > {log:q} 2>&1"


rule renders:
    input:
        **render_inputs(),
    output:
        png=report(
            f"{REPORT}/renders.png",
            caption="../workflow/report/renders.rst",
            category="Images",
        ),
        csv=f"{REPORT}/renders.csv",
        md=f"{REPORT}/renders.md",
    params:
        cfg=stage_config("renders"),
        args=render_args,
    log:
        f"{LOGS}/renders.log",
    benchmark:
        benchmark_file("renders")
    threads: config["runtime"]["threads"]
    resources:
        **resources_of("renders"),
    conda:
        "../envs/hyperinr.yaml"
    shell:
        "hyperinr renders --config-json {params.cfg:q} --threads {threads}"
        " --dataset {input.dataset:q} {params.args} --out-png {output.png:q}"
        " --out-csv {output.csv:q} --out-md {output.md:q} > {log:q} 2>&1"


rule explore_snapshots:
    """Optional target: what `hyperinr explore` shows across the parameter range, frozen."""
    input:
        **explore_inputs(),
    output:
        png=report(
            f"{REPORT}/explore_snapshots.png",
            caption="../workflow/report/explore_snapshots.rst",
            category="Images",
        ),
        csv=f"{REPORT}/explore_snapshots.csv",
    params:
        cfg=stage_config("explore_snapshots"),
        scene=lambda wildcards, input: f"--scene {input.scene}" if "scene" in input.keys() else "",
        methods=",".join(config["evaluate"]["methods"]),
    log:
        f"{LOGS}/explore_snapshots.log",
    benchmark:
        benchmark_file("explore_snapshots")
    threads: config["runtime"]["threads"]
    resources:
        **resources_of("explore_snapshots"),
    conda:
        "../envs/hyperinr.yaml"
    shell:
        "hyperinr explore-snapshots --config-json {params.cfg:q} --threads {threads}"
        " --model {input.model:q} --dataset {input.dataset:q} {params.scene}"
        " --methods {params.methods:q}"
        " --out-png {output.png:q} --out-csv {output.csv:q} > {log:q} 2>&1"


rule report:
    input:
        dataset=rules.ingest.output.store,
        metrics=rules.evaluate.output.metrics,
        predictions=list(predictions().values()),
        infos=stage_infos(),
        sections=task_sections(),
    output:
        summary=report(
            f"{REPORT}/summary.md",
            caption="../workflow/report/summary.rst",
            category="Summary",
        ),
        plot=report(
            f"{REPORT}/psnr_ssim.png",
            caption="../workflow/report/psnr_ssim.rst",
            category="Metrics",
        ),
        slices=report(
            f"{REPORT}/slices.png",
            caption="../workflow/report/slices.rst",
            category="Images",
        ),
    params:
        cfg=stage_config("report"),
        preds=pred_args(predictions()),
        infos=infos_arg,
        sections=lambda wildcards, input: " ".join(f"--section {p}" for p in input.sections),
        out_dir=parent_of("summary"),
    log:
        f"{LOGS}/report.log",
    benchmark:
        benchmark_file("report")
    threads: 1
    resources:
        **resources_of("report"),
    conda:
        "../envs/hyperinr.yaml"
    shell:
        "hyperinr report --config-json {params.cfg:q} --dataset {input.dataset:q}"
        " --metrics {input.metrics:q} {params.preds} {params.infos} {params.sections}"
        " --out-dir {params.out_dir:q} > {log:q} 2>&1"
