#!/usr/bin/env bash
# Stage 2: the closing table. Best settings from the NFE-100 sweeps: diffguide DPS zeta 1 (digits) / 10 (photos),
# deepinv DPS weight 300 (digits) / 1000 (photos); DDRM and DiffPIR at deepinv's defaults.
set -e
cd /work/main
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
B=".venv/bin/diffguide bench restore --out runs/bench-restore --workers 2"
DIG="--instance digits-blur --instance digits-box --instance digits-random --instance digits-sr2 --instance digits-sr4"
PHO="--instance photos-blur --instance photos-box --instance photos-random --instance photos-sr2 --instance photos-sr4"
$B $DIG --nfe 50 --nfe 200 --solver dps --solver deepinv-dps:weight=300 --solver deepinv-ddrm --solver deepinv-diffpir
.venv/bin/diffguide bench gmm-posterior --nfe 50 --nfe 100 --nfe 200 --out runs/bench-gmm --workers 2 \
  --solver deepinv-dps:weight=100 --solver deepinv-dps:weight=1000
$B $PHO --nfe 50 --nfe 100 --solver deepinv-ddrm --solver deepinv-diffpir --solver dps:zeta=10 --solver deepinv-dps:weight=1000
$B --instance photos-random --instance photos-sr4 --nfe 200 --solver deepinv-ddrm --solver deepinv-diffpir \
  --solver dps:zeta=10 --solver deepinv-dps:weight=1000
