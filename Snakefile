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


rule all:
    input:
        all_outputs(),
    default_target: True
