#!/usr/bin/env bash
# Install the system packages the tests need, from Debian's packages: a single-node Slurm
# (slurmctld, slurmd, client tools) and munge for tests/cluster/test_slurm_local.py, and
# chromium for the explorer's real-browser test (tests/test_explore.py; playwright drives it
# through executable_path, since playwright's own browser download cannot work offline).
# Idempotent and quiet: does nothing when everything is installed already.
# No database: the tests read job states from squeue (MinJobAge=300).
# Daemons are not configured or started here; the test fixture runs its own.
set -euo pipefail

pkgs=(slurmctld slurmd slurm-client munge chromium)
missing=()
for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if [ "${#missing[@]}" -eq 0 ]; then
    echo "install_system_packages.sh: ${pkgs[*]} already installed"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        # not fatal: the Slurm tests then skip, naming this script
        echo "install_system_packages.sh: need root (or sudo) to install ${missing[*]}; Slurm and browser tests will skip" >&2
        exit 0
    fi
fi

echo "install_system_packages.sh: installing ${missing[*]}"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
$SUDO env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install_system_packages.sh: done ($(slurmctld -V 2>/dev/null || /usr/sbin/slurmctld -V); $(chromium --version 2>/dev/null))"
