#!/usr/bin/env bash
# Rule-guided music (task music-rules): 16 piano rolls per run from the chorales prior, each guided towards
# the rule statistic of a held-out excerpt, 25 DDPM-type steps. Unguided DDPM; SCG with 4, 8 and 16
# candidates (the paper's sampler; 25 + 19 n network passes); best-of-N at about the same passes
# (N = 4, 7, 13 full DDPM runs); and the gradient baseline on the rule's smooth surrogate (DPS with
# a constant step on the soft histogram / density, zeta 3 to 3000 as the rules' losses differ in scale:
# a forward and a backward pass a step, 75 passes; it cannot run the chord rule). Every sample is scored
# by the exact rule.
set -e
cd "$(dirname "$0")/../../.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
OUT=${OUT:-docs/bench/music_rules}
STEPS=${STEPS:-25}
WORKERS=${WORKERS:-2}
solvers=(
  ddpm
  "scg:candidates=4" "scg:candidates=8" "scg:candidates=16"
  "best-of-n:n=4,eta=1" "best-of-n:n=7,eta=1" "best-of-n:n=13,eta=1"
  "dps:step_size=constant,zeta=3" "dps:step_size=constant,zeta=30" "dps:step_size=constant,zeta=300"
  "dps:step_size=constant,zeta=3000"
)
args=()
for s in "${solvers[@]}"; do args+=(--solver "$s"); done
.venv/bin/diffguide bench music-rules --device cpu --workers "$WORKERS" --steps "$STEPS" --out "$OUT" "${args[@]}" || true
.venv/bin/diffguide bench report "$OUT"
