#!/usr/bin/env bash
# Everything that needs a CUDA GPU, in one run (the lent GPU machine's time is short):
#   the `gpu` tests, benchmarks/gpu_speed.py, and the default report (the full protocol there).
# Run from the repository root with the data under .devdata/fashion-mnist (or $FMCLASSIFY_DATA);
# logs and results go to ${OUT:-gpu-results}.
set -uo pipefail
out="${OUT:-gpu-results}"; mkdir -p "$out"
export PYTHONPATH="$PWD/src" PYTHONUNBUFFERED=1
export FMCLASSIFY_DATA="${FMCLASSIFY_DATA:-$PWD/.devdata/fashion-mnist}"
export FMCLASSIFY_REAL_DATA="$FMCLASSIFY_DATA"
py="${PYTHON:-python3}"
{ nvidia-smi -L; $py -c 'import sys, torch; print(sys.version.split()[0], torch.__version__, torch.cuda.get_device_name())'; } 2>&1 | tee "$out/machine.txt"
echo "== gpu tests"
timeout "${TESTS_S:-150}" $py -m pytest -m gpu -p no:cacheprovider -q -rs \
  tests/test_gpu.py tests/test_steps.py tests/test_fused.py tests/test_data.py 2>&1 | tee "$out/tests.log"
echo "== gpu_speed"
timeout "${SPEED_S:-150}" $py benchmarks/gpu_speed.py --json "$out/gpu_speed.json" 2>&1 | tee "$out/speed.log"
echo "== assignment (the GPU's default budget)"
rm -rf /tmp/gpu-report
start=$(date +%s)
timeout "${REPORT_S:-200}" $py -m fmclassify assignment --out /tmp/gpu-report --no-progress 2>&1 | tee "$out/report.log"
echo "assignment wall seconds: $(( $(date +%s) - start ))" | tee -a "$out/report.log"
cp /tmp/gpu-report/results.json /tmp/gpu-report/report.md "$out/" 2>/dev/null
tar czf "$out/runs.tgz" --exclude='*.pt' -C /tmp/gpu-report runs 2>/dev/null
exit 0
