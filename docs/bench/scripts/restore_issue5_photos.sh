#!/usr/bin/env bash
# Issue 5's gradient-based solvers on the photos restore instances (two 128x128 crops) at NFE 50, next to
# the DPS and deepinv rows already in runs/bench-restore. The constant-step methods scale with 1 / sigma_y^2
# (photos: sigma_y 0.02, digits 0.05), so they were probed again: mean PSNR over photos-{blur,random,sr4,box}
# on the reduced 32x32 corners at NFE 50 (script in the session's /tmp, not kept), over
#   freedom rho {1e-4, 3e-4, 1e-3, 3e-3, 1e-2} -> 3e-4 (30.3 dB); mpgd mu {1e-4, 3e-4, 1e-3, 3e-3} -> 3e-4 (26.9);
#   universal scale {0.1, 0.2, 0.3, 0.5, 1} -> 0.1 (29.7); lgd rho {3e-4, 1e-3, 1e-2} -> 3e-4 (28.5);
#   ugd (rho, mu) {(3e-4, 1e-4), (1e-3, 3e-4), (1e-2, 3e-3)} -> (3e-4, 1e-4) (30.2);
#   tfg (rho, mu, gamma) {(3e-4, 1e-4, 1e-3), (1e-3, 3e-4, 1e-3), (1e-2, 3e-3, 1e-3)} -> (3e-4, 1e-4, 1e-3) (29.5);
#   sag rho {0.01, 0.03, 0.1, 0.3, 1} -> 0.03 (30.0); DPS zeta 10 (the restore table's setting) scores 25.4 there.
set -e
cd "$(dirname "$0")/../../.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
.venv/bin/diffguide bench restore --nfe 50 --workers 2 --out runs/bench-restore \
  --instance photos-blur --instance photos-box --instance photos-random --instance photos-sr2 --instance photos-sr4 \
  --solver freedom:rho=0.0003 --solver ugd:rho=0.0003,mu=0.0001 --solver tfg:rho=0.0003,mu=0.0001,gamma=0.001 \
  --solver universal:scale=0.1 --solver lgd:rho=0.0003 --solver mpgd:mu=0.0003 --solver sag:rho=0.03
