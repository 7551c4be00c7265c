#!/usr/bin/env bash
# Calibrated off-the-shelf classifier guidance (EluCD, calibrated-cg) on digits-reward, all ten digits,
# 50 steps: the paper's calibration (margin_discount 0.5, gamma 0.3) against its ablation without it
# (margin_discount 1: the plain log-softmax; gamma 0: no sine boost), at two scales, next to the
# noise-aware classifier guidance and the unguided DDPM of the same seed.
set -e
cd "$(dirname "$0")/../../.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
OUT=${OUT:-docs/bench/reward_calibrated}
solvers=(ddpm "classifier-guidance:scale=3")
for s in 1 2; do solvers+=("calibrated-cg:scale=$s" "calibrated-cg:scale=$s,margin_discount=1,gamma=0"); done
args=()
for s in "${solvers[@]}"; do args+=(--solver "$s"); done
.venv/bin/diffguide bench digits-reward --device cpu --steps 50 --out "$OUT" "${args[@]}" || true
.venv/bin/diffguide bench report "$OUT"
