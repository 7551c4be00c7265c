#!/usr/bin/env bash
# Rule-guided music (task music-rules): 16 piano rolls per run from the chorales prior, each guided towards
# the rule statistic of a held-out excerpt, 50 DDPM-type steps. Unguided DDPM; SCG with 4, 8 and 16
# candidates (the paper's sampler; 50 + 37 n network passes); best-of-N at about the same passes
# (N = 4, 7, 13 full DDPM runs); and the gradient baseline on the rule's smooth surrogate (DPS with
# a constant step on the soft histogram / density: a forward and a backward pass a step, 150 passes;
# it cannot run the chord rule). Every sample is scored by the exact rule.
set -e
cd "$(dirname "$0")/../../.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
OUT=${OUT:-docs/bench/music_rules}
STEPS=${STEPS:-50}
WORKERS=${WORKERS:-2}
solvers=(
  ddpm
  "scg:candidates=4" "scg:candidates=8" "scg:candidates=16"
  "best-of-n:n=4,eta=1" "best-of-n:n=7,eta=1" "best-of-n:n=13,eta=1"
  "dps:step_size=constant,zeta=1" "dps:step_size=constant,zeta=10"
)
args=()
for s in "${solvers[@]}"; do args+=(--solver "$s"); done
.venv/bin/diffguide bench music-rules --device cpu --workers "$WORKERS" --steps "$STEPS" --out "$OUT" "${args[@]}" || true
.venv/bin/diffguide bench report "$OUT"
