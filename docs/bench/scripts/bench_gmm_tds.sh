#!/usr/bin/env bash
# TDS (twisted SMC) on every gmm-posterior instance at NFE 50, 100 and 200, with the paper's Tweedie twist
# and the covariance twist; no tuning (both have no step size).
set -e
cd "$(dirname "$0")/../../.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
.venv/bin/diffguide bench gmm-posterior --nfe 50 --nfe 100 --nfe 200 --out runs/bench-gmm \
  --solver tds --solver tds:twist=covariance
