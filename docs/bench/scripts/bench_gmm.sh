#!/usr/bin/env bash
set -e
cd /work/main
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
.venv/bin/diffguide bench gmm-posterior --nfe 50 --nfe 100 --nfe 200 --out runs/bench-gmm \
  --solver dps:zeta=0.5 --solver dps:step_size=constant,zeta=0.003 --solver ddim \
  --solver deepinv-dps --solver deepinv-dps:weight=10 --solver deepinv-ddrm --solver deepinv-diffpir
