#!/usr/bin/env bash
# DOODL on the digits restore and motion instances. EDICT needs about 50 steps from sigma 80 (edict.py), so
# DOODL cannot run at the other solvers' budgets: 50 steps and 10 iterations cost 4 * 50 * 10 + 2 * 50 = 2100
# NFE (the results file records it; the --nfe 50 here is the schedule length). Settings: the paper's
# gradient clip 1e-3, and 0.1, the best of {1e-3, 1e-2, 0.1, 1} in a probe on digits-blur/box (/tmp, not
# kept: 10.4, 12.3, 15.5, 12.5 dB on blur; 20 iterations at 0.1 reached 16.9 dB).
set -e
cd "$(dirname "$0")/../../.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
S="--solver doodl:iterations=10 --solver doodl:iterations=10,grad_clip=0.1"
.venv/bin/diffguide bench restore --nfe 50 --out runs/bench-restore $S \
  --instance digits-blur --instance digits-box --instance digits-random --instance digits-sr2 --instance digits-sr4
.venv/bin/diffguide bench motion --nfe 50 --out runs/bench-motion $S --instance digits-shift-right --instance digits-shift-down
# gmm-posterior (d <= 8): with a schedule of N steps DOODL spends 42 N NFE (10 iterations)
.venv/bin/diffguide bench gmm-posterior $(cat docs/bench/scripts/gmm_small_instances.txt) --nfe 50 --nfe 100 --nfe 200 \
  --workers 2 --out runs/bench-gmm --solver doodl:iterations=10,grad_clip=0.1
.venv/bin/diffguide bench gmm-posterior $(cat docs/bench/scripts/gmm_small_instances.txt) --nfe 50 --workers 2 \
  --out runs/bench-gmm --solver doodl:iterations=10
