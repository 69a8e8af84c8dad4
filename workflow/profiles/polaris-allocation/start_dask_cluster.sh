#!/bin/bash
# A dask.distributed cluster across this PBS allocation's nodes, for `hyperinr evaluate`
# (config runtime.dask_scheduler; docs/cluster.md, "Evaluation on a dask cluster").
#
#   start_dask_cluster.sh [SCHEDULER_FILE]    start; stdout: the --config-json to pass
#   start_dask_cluster.sh --stop SCHEDULER_FILE
#
# Run it inside the allocation (job script or `qsub -I`), on its first node: the scheduler
# runs here, one worker per node through `mpiexec -n <nodes> --ppn 1`, all meeting through
# SCHEDULER_FILE (default $PBS_O_WORKDIR/dask-scheduler.json), which must be on a
# file system every node sees, as must the stores evaluate reads. Logs and process ids go
# beside it (<file minus .json>.scheduler.log, .workers.log, .pids).
#
# Environment (defaults for a Polaris node: 32 cores, 512 GB):
#   DASK_THREADS        threads per worker (32); each worker gets --depth of that many CPUs
#   DASK_MEMORY_LIMIT   per worker (256GB: half a node, the rest stays for the workflow's jobs)
#   DASK_LOCAL_DIR      worker scratch, node-local (/local/scratch, the node's SSD, else /tmp)
#   DASK_INTERFACE      network interface for scheduler and workers (dask's choice; e.g. hsn0)
#   DASK_DASHBOARD      scheduler dashboard address (:8787)
#   DASK_START_TIMEOUT  seconds to wait for the scheduler and every worker (300)
#   MPIEXEC             the launcher (mpiexec)
set -euo pipefail

prog=start_dask_cluster.sh
die() { echo "$prog: error: $*" >&2; exit 1; }

recorded=()  # the process ids on a pids file's second line (the first names the host)
read_pids() {
    recorded=()
    if [ -f "$1" ]; then { read -r _; read -r -a recorded; } < "$1" || true; fi
}

alive_here() {  # pids file -> 0 if a process it records runs on this host
    local host pid
    [ -f "$1" ] || return 1
    read -r host < "$1" || return 1
    [ "$host" = "$(hostname)" ] || return 1
    read_pids "$1"
    for pid in "${recorded[@]}"; do
        kill -0 "$pid" 2>/dev/null && return 0
    done
    return 1
}

signal_groups() {  # signal, pids file: the process groups started here (setsid below)
    local pid
    read_pids "$2"
    for pid in "${recorded[@]}"; do kill "-$1" -- "-$pid" 2>/dev/null || true; done
}

wait_gone() {  # pids file, tenths of a second
    local n=0
    while alive_here "$1" && [ $n -lt "$2" ]; do sleep 0.1; n=$((n + 1)); done
}

stop_cluster() {
    local file=$1 pids=${1%.json}.pids
    if [ -f "$file" ]; then  # graceful: the scheduler closes every node's worker
        python - "$file" >/dev/null 2>&1 <<'EOF' || true
import sys
from distributed import Client
Client(scheduler_file=sys.argv[1], timeout="10s").shutdown()
EOF
    fi
    if alive_here "$pids"; then  # whatever did not close
        wait_gone "$pids" 100
        signal_groups TERM "$pids"
        wait_gone "$pids" 50
        signal_groups KILL "$pids"
    fi
    rm -f "$file" "$pids"
    echo "$prog: stopped the cluster of $file" >&2
}

if [ "${1:-}" = "--stop" ]; then
    [ $# -eq 2 ] || die "usage: $prog --stop SCHEDULER_FILE"
    stop_cluster "$2"
    exit 0
fi
[ $# -le 1 ] || die "usage: $prog [SCHEDULER_FILE] | --stop SCHEDULER_FILE"

[ -n "${PBS_NODEFILE:-}" ] || die "\$PBS_NODEFILE is unset: run inside a PBS job (qsub or qsub -I)"
[ -r "$PBS_NODEFILE" ] || die "$PBS_NODEFILE: node file not readable"
mpiexec=${MPIEXEC:-mpiexec}
command -v dask >/dev/null || die "no dask command: activate the venv (pip install 'hyperinr[distributed]')"
command -v "$mpiexec" >/dev/null || die "no $mpiexec command on PATH"

# The default name is stable: evaluate records runtime.dask_scheduler, so a new name each job
# would make Snakemake rerun evaluate after every allocation.
file=${1:-${PBS_O_WORKDIR:-$PWD}/dask-scheduler.json}
case $file in *.json) ;; *) die "$file: the scheduler file must end in .json (runtime.dask_scheduler)" ;; esac
mkdir -p "$(dirname "$file")"
file=$(cd "$(dirname "$file")" && pwd)/$(basename "$file")
base=${file%.json}
pids=$base.pids

nodes=$(sort -u "$PBS_NODEFILE" | grep -c .) || die "$PBS_NODEFILE: no nodes listed"
threads=${DASK_THREADS:-32}
memory=${DASK_MEMORY_LIMIT:-256GB}
timeout=${DASK_START_TIMEOUT:-300}
if [ -n "${DASK_LOCAL_DIR:-}" ]; then local_dir=$DASK_LOCAL_DIR
elif [ -d /local/scratch ] && [ -w /local/scratch ]; then local_dir=/local/scratch
else local_dir=/tmp
fi
iface=()
if [ -n "${DASK_INTERFACE:-}" ]; then iface=(--interface "$DASK_INTERFACE"); fi

if alive_here "$pids"; then
    die "$file: a cluster started here is still running; stop it first: $prog --stop $file"
fi
# A killed or preempted run's file names a dead scheduler: workers and evaluate would wait on it.
rm -f "$file" "$pids"

# setsid: each launch leads its own process group, so --stop can end it with its children.
setsid dask scheduler --scheduler-file "$file" --dashboard-address "${DASK_DASHBOARD:-:8787}" \
    ${iface[@]+"${iface[@]}"} >"$base.scheduler.log" 2>&1 </dev/null &
scheduler_pid=$!
setsid "$mpiexec" -n "$nodes" --ppn 1 --depth "$threads" --cpu-bind depth \
    dask worker --scheduler-file "$file" --nthreads "$threads" --memory-limit "$memory" \
    --local-directory "$local_dir" --death-timeout 60 ${iface[@]+"${iface[@]}"} \
    >"$base.workers.log" 2>&1 </dev/null &
workers_pid=$!
printf '%s\n%s %s\n' "$(hostname)" "$scheduler_pid" "$workers_pid" >"$pids"

deadline=$((SECONDS + timeout))
until [ -s "$file" ]; do
    if ! kill -0 "$scheduler_pid" 2>/dev/null; then
        stop_cluster "$file" 2>/dev/null
        die "the dask scheduler exited before writing $file (log: $base.scheduler.log)"
    fi
    if [ $SECONDS -ge $deadline ]; then
        stop_cluster "$file" 2>/dev/null
        die "no $file after ${timeout} s (log: $base.scheduler.log)"
    fi
    sleep 0.5
done
left=$((deadline - SECONDS))
if ! python - "$file" "$nodes" "$((left > 1 ? left : 1))" 2>>"$base.workers.log" <<'EOF'
import sys
from distributed import Client
path, n, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
with Client(scheduler_file=path, timeout=f"{seconds}s") as client:
    client.wait_for_workers(n, timeout=seconds)
EOF
then
    stop_cluster "$file" 2>/dev/null
    die "fewer than $nodes dask worker(s) joined $file within ${timeout} s (log: $base.workers.log)"
fi
echo "$prog: $nodes worker(s) x $threads threads, $memory each; scheduler file $file" \
     "(stop: $prog --stop $file)" >&2
printf -- "--config-json '{\"runtime\": {\"dask_scheduler\": \"%s\"}}'\n" "$file"
