#!/usr/bin/env bash
# Stage 1b: extend the digits sweep; photos sweep on two instances, NFE 100.
set -e
cd /work/main
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
OUT=runs/bench-restore
D=".venv/bin/diffguide bench restore --nfe 100 --out $OUT --workers 2"
$D --instance digits-blur --instance digits-box --instance digits-random --instance digits-sr2 --instance digits-sr4 \
   --solver dps:zeta=2 --solver deepinv-dps:weight=300 --solver deepinv-dps:weight=1000
$D --instance photos-random --instance photos-sr4 \
   --solver dps --solver dps:zeta=3 --solver dps:zeta=10 \
   --solver deepinv-dps:weight=100 --solver deepinv-dps:weight=300 --solver deepinv-dps:weight=1000
