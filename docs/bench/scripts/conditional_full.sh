#!/usr/bin/env bash
# Class-conditional generation on all ten digits (task digits-conditional, 64 samples): the setting of
# each guidance method that scored best on the reduced sweep (scripts/conditional.sh, digits 3 and 7),
# next to the conditional model alone (ddim). DDIM, 25 steps; a guided step costs two network passes,
# the predictor-corrector row four. The autoguidance row needs the shipped digits-autoguide prior.
set -e
cd "$(dirname "$0")/../../.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
OUT=${OUT:-docs/bench/conditional_full}
WORKERS=${WORKERS:-1}
STEPS=${STEPS:-25}
solvers=(
  ddim
  "ddim+cfg:scale=1.5" "ddim+cfg:scale=3" "ddim+cfg:scale=3,sigma_lo=0.3,sigma_hi=5"
  "ddim+cfg++:scale=0.4" "ddim+apg:scale=3" "ddim+cfg-zero-star:scale=2"
  "ddim+tangential-cfg:scale=2" "ddim+magnitude-cfg:scale=3" "ddim+adaptive-cfg:scale=3,threshold=0.995"
  "ddim+icg:scale=2" "pc+cfg:scale=2"
  "ddim+pag:scale=1" "ddim+seg:scale=1" "ddim+autoguidance:scale=2" "ddim+sag:scale=1"
  "ddim+skip-layer:scale=1" "ddim+tsg:scale=2" "ddim+gfcg:scale=4"
)
args=()
for s in "${solvers[@]}"; do args+=(--solver "$s"); done
.venv/bin/diffguide bench digits-conditional --device cpu --workers "$WORKERS" --steps "$STEPS" \
  --out "$OUT" "${args[@]}" || true
.venv/bin/diffguide bench report "$OUT"
