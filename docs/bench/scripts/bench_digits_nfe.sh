#!/usr/bin/env bash
# The NFE-100 sweep's best is not the best at 50 or 200 NFE (guidance per step vs number of steps): a small per-NFE check.
set -e
cd /work/main
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
B=".venv/bin/diffguide bench restore --out runs/bench-restore"
DIG="--instance digits-blur --instance digits-box --instance digits-random --instance digits-sr2 --instance digits-sr4"
$B $DIG --nfe 50 --solver dps:zeta=2 --solver dps:zeta=3 --solver deepinv-dps:weight=1000
$B $DIG --nfe 200 --solver dps:zeta=0.5 --solver deepinv-dps:weight=100
