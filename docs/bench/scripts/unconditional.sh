#!/usr/bin/env bash
# Unconditional generation on digits (task digits-unconditional, 64 samples, 3 seeds): the guidance
# methods that need no condition -- away from a perturbed prediction (PAG, SEG, skip-layer, SAG, TSG)
# or a weaker model (autoguidance) -- over DDIM at 25 steps, a sweep of each one's scale, next to the
# plain unconditional model (ddim). A guided step costs two network passes.
set -e
cd "$(dirname "$0")/../../.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
OUT=${OUT:-docs/bench/unconditional}
STEPS=${STEPS:-25}
solvers=(ddim)
for s in 1 2 3; do solvers+=("ddim+pag:scale=$s" "ddim+seg:scale=$s" "ddim+autoguidance:scale=$((s + 1))"); done
for s in 0.5 1 2; do solvers+=("ddim+sag:scale=$s" "ddim+skip-layer:scale=$s"); done
for s in 0.1 0.2; do solvers+=("ddim+sag:scale=$s"); done
for s in 1 2 4; do solvers+=("ddim+tsg:scale=$s"); done
args=()
for s in "${solvers[@]}"; do args+=(--solver "$s"); done
.venv/bin/diffguide bench digits-unconditional --device cpu --seeds 3 --steps "$STEPS" --out "$OUT" "${args[@]}" || true
.venv/bin/diffguide bench report "$OUT"
