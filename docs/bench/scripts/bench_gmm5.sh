#!/usr/bin/env bash
# Issue 5/6 solvers on gmm-posterior (d <= 8), settings from a probe on four instances at NFE 50.
set -e
cd /work/main
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
.venv/bin/diffguide bench gmm-posterior $(cat runs/gmm_small_instances.txt) --nfe 50 --nfe 100 --nfe 200 --workers 2 --out runs/bench-gmm \
  --solver universal:scale=0.3 --solver freedom:rho=0.01 --solver mpgd:mu=0.01 --solver tfg:rho=0.01,mu=0.003,gamma=0.001 \
  --solver lgd:rho=0.01 --solver ugd:rho=0.01,mu=0.003 --solver sag:rho=0.3 \
  --solver enkg:guidance_scale=0.1 --solver scg --solver dps-gsg
