#!/usr/bin/env bash
# Issue 5's gradient-based solvers on the digits restore instances at NFE 50 and 100, next to the DPS and
# deepinv rows already in runs/bench-restore. One setting per solver, the best mean PSNR over
# digits-blur/box/sr4 at NFE 50 in a probe (/tmp, not kept) over:
#   freedom rho {0.001, 0.003, 0.01, 0.03} -> 0.003; mpgd mu {0.003, 0.01, 0.03} -> 0.003;
#   universal scale {0.03, 0.1, 0.3} -> 0.1; tfg (rho, mu, gamma) {(0.01, 0.003, 0.001), (0.003, 0.001, 0.001),
#   (0.001, 0.001, 0.001)} -> (0.003, 0.001, 0.001); lgd rho {0.003, 0.01} -> 0.003;
#   ugd (rho, mu) {(0.01, 0.003), (0.003, 0.001)} -> (0.003, 0.001); sag rho {0.1, 0.3, 1} -> 0.1.
set -e
cd "$(dirname "$0")/../../.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
.venv/bin/diffguide bench restore --nfe 50 --nfe 100 --out runs/bench-restore \
  --instance digits-blur --instance digits-box --instance digits-random --instance digits-sr2 --instance digits-sr4 \
  --solver freedom:rho=0.003 --solver mpgd:mu=0.003 --solver universal:scale=0.1 \
  --solver tfg:rho=0.003,mu=0.001,gamma=0.001 --solver lgd:rho=0.003 --solver ugd:rho=0.003,mu=0.001 --solver sag:rho=0.1
