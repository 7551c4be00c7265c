#!/usr/bin/env bash
# The native restoration solvers (DDRM, DDNM+, PiGDM, DiffPIR, DAPS, RED-diff, PnP-DM) next to DPS and
# deepinv's DPS (tuned), DDRM and DiffPIR at equal cost on the digits restore instances, at two budgets of
# about 100 and 300 network passes (forward + 2 x backward through the denoiser):
#   one forward a step (DDRM, DDNM, DiffPIR, deepinv's DDRM and DiffPIR): 102 and 300 steps;
#   RED-diff, one forward a noise level between the measurement's noise sigma_y and its start_sigma (1):
#   418 and 1256 steps (100 and 300 passes at sigma_y 0.05), 705 and 2128 on the noisy blur (0.2); on the
#   saturated blur, from sigma_y up, 120 and 359;
#   a forward and a backward a step (DPS, PiGDM, deepinv's DPS): 34 and 100 steps;
#   DAPS, 5 annealing levels a step, one forward each, one for the last step (5 N - 4 passes): 21 and 61 steps;
#   PnP-DM, at most 5 prior steps an iteration: 24 and 64 iterations (its report row shows what it spent).
set -e
cd "$(dirname "$0")/../../.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
OUT=${OUT:-docs/bench/restore_native}
WORKERS=${WORKERS:-2}
INSTANCES=""
for d in blur box random sr2 sr4 noisy-blur saturated-blur; do INSTANCES="$INSTANCES --instance digits-$d"; done
bench() { .venv/bin/diffguide bench restore --device cpu --workers "$WORKERS" --out "$OUT" $INSTANCES "$@" || true; }
bench --steps 102 --steps 300 --solver ddrm --solver ddnm --solver diffpir --solver deepinv-ddrm --solver deepinv-diffpir
LINEAR=""; for d in blur box random sr2 sr4; do LINEAR="$LINEAR --instance digits-$d"; done
INSTANCES="$LINEAR" bench --steps 418 --steps 1256 --solver red-diff
INSTANCES="--instance digits-noisy-blur" bench --steps 705 --steps 2128 --solver red-diff
INSTANCES="--instance digits-saturated-blur" bench --steps 120 --steps 359 --solver red-diff
bench --steps 34 --steps 100 --solver dps --solver pigdm --solver deepinv-dps:weight=300
bench --steps 21 --steps 61 --solver daps
bench --steps 24 --steps 64 --solver pnp-dm
# photos (two 128x128 crops, minutes a run): the strongest native solvers at about 150 passes, next to the
# deepinv peers' photo rows of docs/bench/restore_cost (same instances and budget)
PHOTOS="--instance photos-blur --instance photos-box --instance photos-random --instance photos-sr2 --instance photos-sr4"
.venv/bin/diffguide bench restore --device cpu --workers "$WORKERS" --out "$OUT" $PHOTOS --steps 150 \
  --solver diffpir --solver ddnm || true
.venv/bin/diffguide bench restore --device cpu --workers "$WORKERS" --out "$OUT" $PHOTOS --steps 50 --solver pigdm || true
.venv/bin/diffguide bench report "$OUT"
