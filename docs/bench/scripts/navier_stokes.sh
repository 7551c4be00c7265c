#!/usr/bin/env bash
# navier-stokes at 20 sampling steps, equal forward-evaluation budgets per run (~4600):
#   EnKG: 128 particles x 2 updates x 18 guided steps = 4608 evaluations;
#   the others draw 32 independent samples, 144 evaluations each:
#   SCG: 8 candidates on the 18 guided steps (window from 5%; the last step has no noise) = 144;
#   DPS-GSG: 6 forward-difference queries + the point itself on 20 steps = 140;
#   best-of-N: 36 unguided samples ranked by the likelihood = 36 (a quarter of the evaluations, and
#     already 36 x 20 = 720 NFE per sample);
#   DPS (autograd through the simulator, the privileged reference): 20 evaluations + 20 gradients.
set -e
cd "$(dirname "$0")/../../.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
.venv/bin/diffguide bench navier-stokes --nfe 20 --workers 2 --out runs/bench-ns \
  --solver enkg --solver enkg:guidance_scale=1 \
  --solver scg:candidates=8,guidance_start=0.05 \
  --solver dps-gsg:queries=6,difference=forward --solver dps-gsg:queries=6,difference=forward,zeta=0.3 \
  --solver best-of-n:n=36 \
  --solver dps:zeta=0.3 --solver dps:zeta=1 \
  --solver ddim
# A fourth instance, four times the noise (added later; the main comparisons only, for time):
.venv/bin/diffguide bench navier-stokes --nfe 20 --workers 2 --out runs/bench-ns --instance subgrid2-T0.25-noise2 \
  --solver enkg --solver scg:candidates=8,guidance_start=0.05 --solver dps:zeta=0.3 --solver dps:zeta=1 --solver ddim
