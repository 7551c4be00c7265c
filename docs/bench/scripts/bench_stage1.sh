#!/usr/bin/env bash
# Stage 1: NFE 100 sweep for DPS zeta and deepinv DPS weight, DDRM and DiffPIR defaults, on restore.
set -e
cd /work/main
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
OUT=runs/bench-restore
B=".venv/bin/diffguide bench restore --nfe 100 --out $OUT"
$B --solver dps --solver dps:zeta=0.3 --solver dps:zeta=3 --solver dps:zeta=10 \
   --solver deepinv-dps --solver deepinv-dps:weight=10 --solver deepinv-dps:weight=30 --solver deepinv-dps:weight=100 \
   --solver deepinv-ddrm --solver deepinv-diffpir
