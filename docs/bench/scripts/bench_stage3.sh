#!/usr/bin/env bash
# Photos at NFE 200 on one instance, after the NFE 50/100 photos runs (time-boxed session).
set -e
cd /work/main
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
while pgrep -f "bench restore --out runs/bench-restore --workers 2" > /dev/null; do sleep 15; done
.venv/bin/diffguide bench restore --out runs/bench-restore --workers 2 --instance photos-random --nfe 200 \
  --solver deepinv-ddrm --solver deepinv-diffpir --solver dps:zeta=10 --solver deepinv-dps:weight=1000
