#!/usr/bin/env bash
# The restore table at equal cost (network passes: forward + 2 x backward through the denoiser).
# DPS and deepinv's DPS spend 3 passes a step (one forward, one backward), DDRM and DiffPIR one, so
# the gradient methods run a third of the steps: 50 steps = 150 passes, 100 steps = 300 passes.
# Photos (two 128x128 crops, minutes a run on 2 cores) at the smaller budget only.
set -e
cd "$(dirname "$0")/../../.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
OUT=${OUT:-docs/bench/restore_cost}
DIGITS="--instance digits-blur --instance digits-box --instance digits-random --instance digits-sr2 --instance digits-sr4"
PHOTOS="--instance photos-blur --instance photos-box --instance photos-random --instance photos-sr2 --instance photos-sr4"
.venv/bin/diffguide bench restore --device cpu --out "$OUT" $DIGITS --steps 50 --steps 100 \
  --solver dps --solver deepinv-dps:weight=300 || true
.venv/bin/diffguide bench restore --device cpu --out "$OUT" $DIGITS --steps 150 --steps 300 \
  --solver deepinv-ddrm --solver deepinv-diffpir || true
.venv/bin/diffguide bench restore --device cpu --out "$OUT" $PHOTOS --steps 50 --workers 2 \
  --solver dps --solver deepinv-dps:weight=300 || true
.venv/bin/diffguide bench restore --device cpu --out "$OUT" $PHOTOS --steps 150 --workers 2 \
  --solver deepinv-ddrm --solver deepinv-diffpir || true
.venv/bin/diffguide bench report "$OUT"
