#!/usr/bin/env bash
# motion, photos-shift-sdedit (the photo edit started from the source noised to sigma 1). Settings from a probe on
# the full instance at NFE 50 (/tmp, not kept; flow EPE, the paste scores 2.45, unguided DDIM 6.0):
#   freedom rho {0.1, 0.3, 1, 3, 10} -> 3 (1.56); dps constant zeta {0.1, 0.3, 1, 3} -> 3 (1.57); mpgd mu {1, 3} -> 3 (1.68);
#   lgd rho 3 (1.60); ugd (3, 1) (1.44); tfg (3, 1, 0.001) (1.47); universal scale {30, 100, 300} -> 300 (1.93);
#   sag rho 3 diverged, so sag runs at 0.3 and 1 unprobed. Guidance this strong diverged from pure noise (photos-shift).
set -e
cd "$(dirname "$0")/../../.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
.venv/bin/diffguide bench motion --instance photos-shift-sdedit --nfe 50 --nfe 100 --workers 2 --out runs/bench-motion \
  --solver ddim --solver dps:step_size=constant,zeta=3 --solver freedom:rho=3 --solver mpgd:mu=3 --solver lgd:rho=3 \
  --solver ugd:rho=3,mu=1 --solver tfg:rho=3,mu=1,gamma=0.001 --solver universal:scale=300 \
  --solver sag:rho=0.3 --solver sag:rho=1
