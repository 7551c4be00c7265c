#!/usr/bin/env bash
# TDS with the paper's Tweedie twist on digits-reward (the batch of 32 is one particle system per requested digit).
set -e
cd "$(dirname "$0")/../../.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
.venv/bin/diffguide bench digits-reward --nfe 50 --workers 2 --out runs/bench-reward --solver tds
