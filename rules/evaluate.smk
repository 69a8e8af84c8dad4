rule predict:
    input:
        dataset=f"{RESULTS}/dataset.zarr",
        model=model_for,
    output:
        store=directory(f"{RESULTS}/predictions/{{method}}.zarr"),
        info=f"{RESULTS}/predictions/{{method}}.json",
    params:
        cfg=lambda wildcards: stage_config(f"predict_{predict_kind(wildcards)}"),
        kind=predict_kind,
        model=lambda wildcards, input: f"--model {input.model}" if input.model else "",
    log:
        f"{LOGS}/predict_{{method}}.log",
    threads: config["runtime"]["threads"]
    resources:
        gpu=lambda wildcards: 0 if wildcards.method == "lerp" else resource("predict", "gpu"),
        runtime=resource("predict", "runtime"),
        mem_mb=resource("predict", "mem_mb"),
    conda:
        "../envs/hyperinr.yaml"
    shell:
        "hyperinr predict --config-json {params.cfg:q} --threads {threads}"
        " --method {params.kind}"
        " --dataset {input.dataset:q} {params.model} --out {output.store:q} > {log:q} 2>&1"


rule evaluate:
    input:
        dataset=f"{RESULTS}/dataset.zarr",
        predictions=list(predictions().values()),
    output:
        metrics=report(
            f"{RESULTS}/report/metrics.csv",
            caption="../workflow/report/metrics.rst",
            category="Metrics",
        ),
        provenance=f"{RESULTS}/report/metrics.provenance.json",
    params:
        preds=pred_args(),
    log:
        f"{LOGS}/evaluate.log",
    threads: 1
    resources:
        gpu=resource("evaluate", "gpu"),
        runtime=resource("evaluate", "runtime"),
        mem_mb=resource("evaluate", "mem_mb"),
    conda:
        "../envs/hyperinr.yaml"
    shell:
        "hyperinr evaluate --dataset {input.dataset:q} {params.preds}"
        " --out {output.metrics:q} > {log:q} 2>&1"


rule report:
    input:
        dataset=f"{RESULTS}/dataset.zarr",
        metrics=f"{RESULTS}/report/metrics.csv",
        predictions=list(predictions().values()),
        infos=stage_infos(),
        sections=task_sections(),
    output:
        summary=report(
            f"{RESULTS}/report/summary.md",
            caption="../workflow/report/summary.rst",
            category="Summary",
        ),
        plot=report(
            f"{RESULTS}/report/psnr_ssim.png",
            caption="../workflow/report/psnr_ssim.rst",
            category="Metrics",
        ),
        slices=report(
            f"{RESULTS}/report/slices.png",
            caption="../workflow/report/slices.rst",
            category="Images",
        ),
    params:
        cfg=stage_config("report"),
        preds=pred_args(),
        infos=lambda wildcards, input: " ".join(f"--info {p}" for p in input.infos),
        sections=lambda wildcards, input: " ".join(f"--section {p}" for p in input.sections),
        out_dir=parent_of("summary"),
    log:
        f"{LOGS}/report.log",
    threads: 1
    resources:
        gpu=resource("report", "gpu"),
        runtime=resource("report", "runtime"),
        mem_mb=resource("report", "mem_mb"),
    conda:
        "../envs/hyperinr.yaml"
    shell:
        "hyperinr report --config-json {params.cfg:q} --dataset {input.dataset:q}"
        " --metrics {input.metrics:q} {params.preds} {params.infos} {params.sections}"
        " --out-dir {params.out_dir:q} > {log:q} 2>&1"


rule target_modes:
    input:
        dataset=f"{RESULTS}/dataset.zarr",
        predictions=list(target_mode_predictions().values()),
        infos=[f"{RESULTS}/hyperinr_{m}/info.json" for m in TARGET_MODES],
    output:
        metrics=report(
            f"{RESULTS}/report/target_modes.csv",
            caption="../workflow/report/target_modes.rst",
            category="Target modes",
        ),
        provenance=f"{RESULTS}/report/target_modes.provenance.json",
        summary=report(
            f"{RESULTS}/report/target_modes.md",
            caption="../workflow/report/target_modes.rst",
            category="Target modes",
        ),
    params:
        preds=" ".join(f"--pred {m}={p}" for m, p in target_mode_predictions().items()),
        infos=lambda wildcards, input: " ".join(f"--info {p}" for p in input.infos),
    log:
        f"{LOGS}/target_modes.log",
    threads: 1
    resources:
        gpu=resource("evaluate", "gpu"),
        runtime=resource("evaluate", "runtime"),
        mem_mb=resource("evaluate", "mem_mb"),
    conda:
        "../envs/hyperinr.yaml"
    shell:
        "(hyperinr evaluate --dataset {input.dataset:q} {params.preds} --out {output.metrics:q}"
        " && hyperinr compare-modes --metrics {output.metrics:q} {params.infos}"
        " --out {output.summary:q}) > {log:q} 2>&1"


rule view_gain:
    input:
        dataset=f"{RESULTS}/dataset.zarr",
        metrics=f"{RESULTS}/report/metrics.csv",
    output:
        png=report(
            f"{RESULTS}/report/view_gain.png",
            caption="../workflow/report/view_gain.rst",
            category="Metrics",
        ),
        md=f"{RESULTS}/report/view_gain.md",
        json=f"{RESULTS}/report/view_gain.json",
    log:
        f"{LOGS}/view_gain.log",
    threads: 1
    resources:
        gpu=resource("evaluate", "gpu"),
        runtime=resource("evaluate", "runtime"),
        mem_mb=resource("evaluate", "mem_mb"),
    conda:
        "../envs/hyperinr.yaml"
    shell:
        "hyperinr view-gain --dataset {input.dataset:q} --metrics {input.metrics:q}"
        " --out-png {output.png:q} --out-md {output.md:q} > {log:q} 2>&1"


rule shadows:
    input:
        dataset=f"{RESULTS}/dataset.zarr",
        scene=scene_files(config["scene"]["output_dir"])[0],
        model=f"{RESULTS}/hyperinr/model.pt",
        predictions=list(shadow_predictions().values()),
    output:
        png=report(
            f"{RESULTS}/report/shadow_sweep.png",
            caption="../workflow/report/shadow_sweep.rst",
            category="Images",
        ),
        csv=f"{RESULTS}/report/shadow_renders.csv",
        md=f"{RESULTS}/report/shadows.md",
    params:
        cfg=stage_config("shadows"),
        preds=" ".join(f"--pred {m}={p}" for m, p in shadow_predictions().items()),
    log:
        f"{LOGS}/shadows.log",
    threads: config["runtime"]["threads"]
    resources:
        gpu=resource("predict", "gpu"),
        runtime=resource("predict", "runtime"),
        mem_mb=resource("predict", "mem_mb"),
    conda:
        "../envs/hyperinr.yaml"
    shell:
        "hyperinr render-shadows --config-json {params.cfg:q} --threads {threads}"
        " --dataset {input.dataset:q} --scene {input.scene:q} --model {input.model:q}"
        " {params.preds} --out-png {output.png:q} --out-csv {output.csv:q}"
        " --out-md {output.md:q} > {log:q} 2>&1"


rule speed:
    input:
        dataset=f"{RESULTS}/dataset.zarr",
        teacher=f"{RESULTS}/teacher/model.pt",
        model=f"{RESULTS}/hyperinr/model.pt",
        infos=[i for i in stage_infos() if i.endswith("info.json")],
    output:
        csv=report(
            f"{RESULTS}/report/speed.csv",
            caption="../workflow/report/speed.rst",
            category="Speed",
        ),
        md=f"{RESULTS}/report/speed.md",
    params:
        cfg=stage_config("speed"),
        infos=lambda wildcards, input: " ".join(f"--info {p}" for p in input.infos),
    log:
        f"{LOGS}/speed.log",
    threads: config["runtime"]["threads"]
    resources:
        gpu=resource("predict", "gpu"),
        runtime=resource("predict", "runtime"),
        mem_mb=resource("predict", "mem_mb"),
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
            f"{RESULTS}/report/renders.png",
            caption="../workflow/report/renders.rst",
            category="Images",
        ),
        csv=f"{RESULTS}/report/renders.csv",
        md=f"{RESULTS}/report/renders.md",
    params:
        cfg=stage_config("renders"),
        args=render_args,
    log:
        f"{LOGS}/renders.log",
    threads: config["runtime"]["threads"]
    resources:
        gpu=resource("predict", "gpu"),
        runtime=resource("predict", "runtime"),
        mem_mb=resource("predict", "mem_mb"),
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
            f"{RESULTS}/report/explore_snapshots.png",
            caption="../workflow/report/explore_snapshots.rst",
            category="Images",
        ),
        csv=f"{RESULTS}/report/explore_snapshots.csv",
    params:
        cfg=stage_config("explore_snapshots"),
        scene=lambda wildcards, input: f"--scene {input.scene}" if "scene" in input.keys() else "",
        methods=",".join(config["evaluate"]["methods"]),
    log:
        f"{LOGS}/explore_snapshots.log",
    threads: config["runtime"]["threads"]
    resources:
        gpu=resource("explore_snapshots", "gpu"),
        runtime=resource("explore_snapshots", "runtime"),
        mem_mb=resource("explore_snapshots", "mem_mb"),
    conda:
        "../envs/hyperinr.yaml"
    shell:
        "hyperinr explore-snapshots --config-json {params.cfg:q} --threads {threads}"
        " --model {input.model:q} --dataset {input.dataset:q} {params.scene}"
        " --methods {params.methods:q}"
        " --out-png {output.png:q} --out-csv {output.csv:q} > {log:q} 2>&1"
