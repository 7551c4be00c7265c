#!/usr/bin/env bash
# gmm-posterior at equal cost: TDS (covariance twist) next to DPS given as many network passes
# (forward + 2 x backward) by a longer schedule. Results: docs/bench/gmm_cost/.
set -e
cd "$(dirname "$0")/../../.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
.venv/bin/diffguide bench gmm-posterior --steps 100 --steps 200 --out runs/bench-gmm-cost \
  --solver dps:zeta=0.5 --solver dps:zeta=1 --solver tds:twist=covariance --solver tds --solver ddim
# DPS at 1000 steps spends about what the covariance twist spends at 100 (3000 against 2900 passes)
.venv/bin/diffguide bench gmm-posterior --steps 1000 --out runs/bench-gmm-cost \
  --solver dps:zeta=0.5 --solver dps:zeta=1 --solver tds --solver ddim
