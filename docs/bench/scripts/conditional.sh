#!/usr/bin/env bash
# Class-conditional generation on digits (task digits-conditional): every guidance method over DDIM at
# 25 steps, a sweep of its scale each; the conditional model alone (ddim) is CFG at scale 1. A guided
# step costs two network passes (the predictor-corrector rows four: one corrector a level). The
# autoguidance rows need the shipped digits-autoguide prior.
set -e
cd "$(dirname "$0")/../../.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
OUT=${OUT:-docs/bench/conditional}
WORKERS=${WORKERS:-1}
STEPS=${STEPS:-25}
solvers=(ddim)
for w in 1.5 2 3 5 8; do solvers+=("ddim+cfg:scale=$w"); done
for w in 3 5 8; do solvers+=("ddim+cfg:scale=$w,sigma_lo=0.3,sigma_hi=5"); done
for l in 0.2 0.4 0.6 0.8; do solvers+=("ddim+cfg++:scale=$l"); done
for w in 3 5 8 12; do solvers+=("ddim+apg:scale=$w"); done
for w in 2 3 5; do solvers+=("ddim+cfg-zero-star:scale=$w" "ddim+tangential-cfg:scale=$w"); done
for w in 3 5 8; do solvers+=("ddim+magnitude-cfg:scale=$w"); done
for t in 0.99 0.995 0.999; do solvers+=("ddim+adaptive-cfg:scale=3,threshold=$t"); done
for w in 2 3; do solvers+=("ddim+icg:scale=$w" "pc+cfg:scale=$w"); done
# away from a perturbed or weaker network (scale 0 is the conditional model alone)
for s in 1 2 3; do solvers+=("ddim+pag:scale=$s" "ddim+seg:scale=$s" "ddim+autoguidance:scale=$((s + 1))"); done
for s in 0.5 1 2; do solvers+=("ddim+sag:scale=$s" "ddim+skip-layer:scale=$s"); done
# time-step guidance (noise in the time embedding) and gradient-free classifier guidance (the shipped
# clean digit classifier, inference only, picks the reference class and weights the scale)
for s in 1 2 4; do solvers+=("ddim+tsg:scale=$s" "ddim+gfcg:scale=$((s * 2))"); done
args=()
for s in "${solvers[@]}"; do args+=(--solver "$s"); done
.venv/bin/diffguide bench digits-conditional --reduced --device cpu --workers "$WORKERS" --steps "$STEPS" \
  --out "$OUT" "${args[@]}" || true
.venv/bin/diffguide bench report "$OUT"
