#!/usr/bin/env bash
# motion: settings from a probe on the reduced digits-shift-right (2 digits, NFE 50; /tmp probe, not kept):
#   freedom rho 0.1 of {0.1, 0.3, 1}; mpgd mu 0.1 of {0.1, 0.3, 1}; lgd rho 0.3; dps constant zeta 0.1 of
#   {0.03, 0.1, 0.3, 1}; universal scale 3 with 2 recurrences (5 alone: same EPE, more change outside);
#   tfg rho 0.3, mu 0.1, gamma 0.001 (the defaults moved the whole image); ugd rho 0.3, mu 0.1.
set -e
cd "$(dirname "$0")/../../.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
S="--solver ddim --solver dps:step_size=constant,zeta=0.1 --solver universal:scale=3,recurrence=2 \
   --solver freedom:rho=0.1 --solver mpgd:mu=0.1 --solver lgd:rho=0.3 --solver ugd:rho=0.3,mu=0.1 \
   --solver tfg:rho=0.3,mu=0.1,gamma=0.001"
.venv/bin/diffguide bench motion --instance digits-shift-right --instance digits-shift-down --nfe 50 --nfe 100 \
  --workers 2 --out runs/bench-motion $S
.venv/bin/diffguide bench motion --instance photos-shift --nfe 50 --workers 2 --out runs/bench-motion \
  --solver ddim --solver dps:step_size=constant,zeta=0.1 --solver freedom:rho=0.1 --solver mpgd:mu=0.1
