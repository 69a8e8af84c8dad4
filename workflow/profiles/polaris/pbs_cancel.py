#!/usr/bin/env python3
"""Cancel Snakemake's jobs (cluster-generic cancel-cmd): ``pbs_cancel.py <jobid>...``.

PBS ids go to ``qdel`` in one call; ``local.<pid>`` ids (jobs pbs_submit.py ran
on the login node) get SIGTERM on their process group.  The plugin gives the
whole call 2 s, so this never waits: qdel itself returns immediately.
Environment: HYPERINR_PBS_QDEL (qdel command, default ``qdel``).
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys


def main(argv: list[str]) -> int:
    local = [a for a in argv[1:] if a.startswith("local.")]
    remote = [a for a in argv[1:] if not a.startswith("local.")]
    rc = 0
    for jobid in local:
        try:
            os.killpg(int(jobid.split(".", 1)[1]), signal.SIGTERM)
        except (ValueError, ProcessLookupError, PermissionError):
            pass
    if remote:
        qdel = shlex.split(os.environ.get("HYPERINR_PBS_QDEL", "qdel"))
        try:
            rc = subprocess.run(qdel + remote, timeout=1.8).returncode
        except (OSError, subprocess.TimeoutExpired) as e:
            print(f"hyperinr-pbs-cancel: {e}", file=sys.stderr)
            rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv))
