#!/usr/bin/env bash
set -e
cd /work/main
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
while pgrep -f bench_gmm5.sh > /dev/null; do sleep 20; done
.venv/bin/diffguide bench gmm-posterior --nfe 50 --nfe 100 --nfe 200 --out runs/bench-gmm \
  --solver dps:zeta=0.3 --solver dps:zeta=1 --solver deepinv-dps:weight=30 --solver deepinv-dps:weight=300
