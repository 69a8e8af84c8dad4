#!/bin/sh
# Post-deploy script of envs/hyperinr.yaml and envs/sim.yaml (sim.post-deploy.sh links here).
# Snakemake runs it once, after creating the environment, with the environment activated,
# from its copy .snakemake/conda/<hash>.post-deploy.sh and in Snakemake's own working
# directory and environment variables (snakemake/deployment/conda.py): the script's path says
# nothing about the workflow, so rules/common.smk exports the workflow's absolute directory
# as HYPERINR_WORKFLOW_DIR, and the package is installed from there.
#   --no-deps: the env file's conda packages are the dependencies (pip would fetch PyPI's torch);
#   --no-build-isolation: setuptools comes from the env (no package index needed);
#   --editable: jobs run the workflow's current code, as a `pip install -e .` checkout does.
set -eu
dir="${HYPERINR_WORKFLOW_DIR:?is unset: create the environments through snakemake --sdm conda}"
if [ ! -f "$dir/pyproject.toml" ]; then
    echo "hyperinr post-deploy: no pyproject.toml in HYPERINR_WORKFLOW_DIR=$dir" >&2
    exit 1
fi
pip install --no-deps --no-build-isolation --editable "$dir"
