# hyperinr: sparse frames -> CoordNet teacher -> distillation set -> HyperINR -> PSNR/SSIM report.
# This file is the table of contents; the logic lives in rules/common.smk and the hyperinr package.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/teacher.smk"
include: "rules/distill.smk"
include: "rules/evaluate.smk"
include: "rules/ablation.smk"


# Run inside the Snakemake process, never submitted to a scheduler: each reads metrics tables,
# info.json files, a few slices or the shards' checksums, and writes a table, a plot or links in
# seconds, where a queue wait would take longer than the work. Not evaluate, target_modes or
# the ablation_<sweep> tables: they score every frame of every model (PSNR/SSIM), which takes
# minutes and GBs on the paper's volumes.
localrules:
    distill_set,
    view_gain,
    report,


rule all:
    input:
        all_outputs(),
    default_target: True
