#!/usr/bin/env bash
# A class condition and a reward at once (task digits-bold, reduced: digits 3 and 7, 32 samples):
# CFG on the prediction picks the digit, a reward solver makes the strokes bold (ink fraction 0.40;
# real digits have 0.31): derivative-free SCG and best-of-N on the pixel count, FreeDoM on its sigmoid
# surrogate's gradient. Each alone, composed, and the best-of-N baseline at equal network passes
# (SCG's 16 candidates cost about best-of-12's passes; with CFG every pass is two). 25 steps.
set -e
cd "$(dirname "$0")/../../.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
OUT=${OUT:-docs/bench/bold}
STEPS=${STEPS:-25}
solvers=(
  ddim "ddim+cfg:scale=2"
  scg "scg+cfg:scale=2" "scg:candidates=8+cfg:scale=2"
  "best-of-n:n=12" "best-of-n:n=6+cfg:scale=2" "best-of-n:n=12+cfg:scale=2"
  freedom "freedom+cfg:scale=2" "freedom:rho=10" "freedom:rho=10+cfg:scale=2"
)
args=()
for s in "${solvers[@]}"; do args+=(--solver "$s"); done
.venv/bin/diffguide bench digits-bold --reduced --device cpu --steps "$STEPS" --out "$OUT" "${args[@]}" || true
.venv/bin/diffguide bench report "$OUT"
