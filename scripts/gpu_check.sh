#!/usr/bin/env bash
# The one check to run when a GPU machine is lent (about 5-8 minutes; each part has a timeout):
#   1. make diffguide importable (an existing environment, else `pip install -e '.[test]'` as the Makefile does);
#   2. the device tests: tests/test_devices.py and the tests named cuda/device/gpu (CUDA cases run here);
#   3. the benchmark: python -m diffguide.benchmarks.gpu --out docs/bench/gpu.md
#   4. when SD_PIPELINE names a local Stable Diffusion 1.x/2.x folder: guidance on it
#      (python -m diffguide.benchmarks.stable_diffusion --out docs/bench/stable_diffusion.md)
# Logs and the report go to "$OUT" when it is set (the device machine returns what is under it),
# else to /tmp/diffguide-gpu-check. Run from anywhere: bash scripts/gpu_check.sh
set -u
cd "$(dirname "$0")/.."
DEST="${OUT:-/tmp/diffguide-gpu-check}"
mkdir -p "$DEST" docs/bench
STATUS=0

if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY="${PYTHON:-python3}"; fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the checkout's diffguide, installed or not
export PYTHONUNBUFFERED=1

{ date -u; nvidia-smi || true; "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda,
'available', torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else '')"; } \
  > "$DEST/machine.txt" 2>&1
cat "$DEST/machine.txt"

echo "== 1/3 environment"
if ! "$PY" -c "import diffguide, torch, diffusers, deepinv, pytest" > "$DEST/install.log" 2>&1; then
  echo "installing: pip install -e '.[test]' (log: $DEST/install.log)"
  timeout 300 "$PY" -m pip install --quiet -e '.[test]' >> "$DEST/install.log" 2>&1 \
    || { echo "pip install failed or timed out (see install.log)"; STATUS=1; }
fi

echo "== 2/3 device tests"
timeout 180 "$PY" -m pytest -q -p no:cacheprovider -m gpu -rs tests 2>&1 | tee "$DEST/tests.log"
TESTS=${PIPESTATUS[0]}
[ "$TESTS" -eq 0 ] || { echo "device tests: exit $TESTS (124: timed out)"; STATUS=1; }

echo "== 3/3 benchmark"
timeout 420 "$PY" -m diffguide.benchmarks.gpu --out docs/bench/gpu.md 2>&1 | tee "$DEST/bench.log"
BENCH=${PIPESTATUS[0]}
[ "$BENCH" -eq 0 ] || { echo "benchmark: exit $BENCH (124: timed out)"; STATUS=1; }
[ -f docs/bench/gpu.md ] && cp docs/bench/gpu.md "$DEST/gpu.md"

if [ -n "${SD_PIPELINE:-}" ]; then
  echo "== 4 Stable Diffusion pipeline $SD_PIPELINE"
  timeout 420 "$PY" -m diffguide.benchmarks.stable_diffusion --pipeline "$SD_PIPELINE" \
    --out docs/bench/stable_diffusion.md --images "$DEST/stable_diffusion.png" 2>&1 | tee "$DEST/sd.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "stable diffusion: failed (see sd.log)"; STATUS=1; }
  [ -f docs/bench/stable_diffusion.md ] && cp docs/bench/stable_diffusion.md "$DEST/"
fi

echo "== done: status $STATUS; files in $DEST"
exit $STATUS
