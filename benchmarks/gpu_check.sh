#!/usr/bin/env bash
# GPU correctness in one command (issue 8): run on a machine with one CUDA GPU, from anywhere.
#
#   benchmarks/gpu_check.sh            # PYTHON=/path/to/python to pick the interpreter
#
# Runs the checks of tests/gpu one by one (pytest on their test ids), then
# benchmarks/bench_inference.py --device cuda, and prints ONE line per check:
#   PASS name (N s) | FAIL name (...) | SKIP name: reason
# Exit status 1 if any check failed, else 0. Without CUDA every check is a SKIP (exit 0).
# The whole run stays under 12 minutes: each check gets at most its own cap and what is left of
# BUDGET seconds; a check that runs out of time fails. Full logs: $GPU_CHECK_LOGS (default: a
# new temporary directory, named in FAIL lines).
set -u

cd "$(dirname "$0")/.." || exit 2
PY=${PYTHON:-$(command -v python || command -v python3)}
BUDGET=${GPU_CHECK_BUDGET:-720}

T=tests/gpu
# name | cap in seconds | command (pytest test ids, or a script)
CHECKS=(
  "hashgrid_torch_cuda_vs_cpu|90|pytest $T/test_hashgrid_cuda.py::test_torch_cuda_matches_cpu_single_table $T/test_hashgrid_cuda.py::test_torch_cuda_matches_cpu_ensemble"
  "hashgrid_tcnn_vs_torch|60|pytest $T/test_hashgrid_cuda.py::test_tcnn_matches_torch_cuda"
  "teacher_amp_training|60|pytest $T/test_training_cuda.py::test_sine_layers_stay_float32_under_cuda_autocast $T/test_training_cuda.py::test_teacher_trains_with_amp"
  "hyperinr_amp_training|60|pytest $T/test_training_cuda.py::test_hyperinr_trains_with_amp"
  "target_modes_cuda_vs_cpu|60|pytest $T/test_target_modes_cuda.py::test_target_modes_match_cpu $T/test_target_modes_cuda.py::test_shrinkage_curve_matches_cpu"
  "independent_inrs_cuda_vs_cpu|60|pytest $T/test_ablation_models_cuda.py::test_independent_inrs_match_cpu"
  "render_cuda_vs_cpu|60|pytest $T/test_render_cuda.py::test_renders_match_cpu $T/test_render_cuda.py::test_render_through_a_generated_inr_on_cuda"
  "render_accel_cuda_vs_cpu|60|pytest $T/test_render_accel_cuda.py::test_accelerated_renders_match_cpu $T/test_render_accel_cuda.py::test_accelerated_render_through_a_generated_inr_on_cuda"
  "tiny_workflow_cuda|300|pytest $T/test_workflow_cuda.py::test_tiny_workflow_on_cuda"
  "tiny_dgs_workflow_cuda|200|pytest $T/test_workflow_cuda.py::test_tiny_dgs_workflow_on_cuda"
  "bench_inference_cuda|120|script benchmarks/bench_inference.py --device cuda"
  "explore_cuda_vs_cpu|60|pytest $T/test_explore_cuda.py::test_explorer_frames_match_cpu"
  "bench_explore_cuda_512|120|script benchmarks/bench_explore.py --device cuda --sizes 512 512 --strict"
  "predict_slabs_cuda|60|pytest $T/test_predict_slabs_cuda.py::test_flat_ranges_equal_the_whole_grid_on_cuda $T/test_predict_slabs_cuda.py::test_predict_stage_chunked_equals_unchunked_on_cuda"
)

names() { for c in "${CHECKS[@]}"; do echo "${c%%|*}"; done; }

if [ -z "$PY" ] || ! "$PY" -c "import torch" >/dev/null 2>&1; then
  for n in $(names); do echo "FAIL $n (python with torch not found: set PYTHON)"; done
  exit 1
fi
if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null
then
  for n in $(names); do echo "SKIP $n: no CUDA device (torch.cuda.is_available() is False)"; done
  exit 0
fi

LOGS=${GPU_CHECK_LOGS:-$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")}
mkdir -p "$LOGS" || exit 2
start=$(date +%s)
failed=0
for check in "${CHECKS[@]}"; do
  IFS='|' read -r name cap cmd <<<"$check"
  log="$LOGS/$name.log"
  left=$((BUDGET - ($(date +%s) - start)))
  if [ "$left" -lt 10 ]; then
    echo "FAIL $name (not run: the ${BUDGET} s budget is used up)"
    failed=1
    continue
  fi
  limit=$((cap < left ? cap : left))
  kind=${cmd%% *}
  args=${cmd#* }
  t0=$(date +%s)
  if [ "$kind" = pytest ]; then
    # shellcheck disable=SC2086  # args are test ids without spaces
    timeout "$limit" "$PY" -m pytest -q -rs -p no:cacheprovider $args >"$log" 2>&1
  else
    # shellcheck disable=SC2086
    timeout "$limit" "$PY" $args >"$log" 2>&1
  fi
  rc=$?
  secs=$(($(date +%s) - t0))
  if [ "$rc" -eq 124 ]; then
    echo "FAIL $name (timed out after ${limit} s; log $log)"
    failed=1
  elif [ "$rc" -ne 0 ]; then
    echo "FAIL $name (exit $rc after ${secs} s; log $log)"
    failed=1
  elif [ "$kind" = pytest ] && ! grep -Eq '[0-9]+ passed' "$log"; then
    reason=$(grep -m1 '^SKIPPED' "$log" | sed -E 's/^SKIPPED \[[0-9]+\] [^ ]+: //')
    echo "SKIP $name: ${reason:-no test passed (log $log)}"
  else
    echo "PASS $name (${secs} s)"
  fi
done
exit "$failed"
