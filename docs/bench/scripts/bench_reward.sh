#!/usr/bin/env bash
set -e
cd /work/main
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
while pgrep -f bench_gmm_dps.sh > /dev/null; do sleep 20; done
.venv/bin/diffguide bench digits-reward --nfe 50 --out runs/bench-reward \
  --solver ddpm --solver dps:step_size=constant,zeta=0.3 --solver universal:scale=5 --solver freedom:rho=1 \
  --solver mpgd:mu=1 --solver tfg --solver classifier-guidance:scale=3 --solver readout-guidance:weight=0.1 \
  --solver scg
