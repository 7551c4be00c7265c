#!/usr/bin/env bash
# gmm-posterior (exact posteriors, 48 instances): the native restoration solvers against the exact-vs-exact
# floor at 100 steps, next to DPS (zeta=1, the best DPS setting there) and DDIM. DDRM, DDNM and PiGDM are
# known to under-disperse. DAPS runs the paper's layout on the schedule (one annealing level a step, 5 ODE
# steps, 200 Langevin steps), not its defaults (5 levels a step of a one-step estimate, 100 Langevin
# steps: the same passes). Results: docs/bench/gmm_native/.
set -e
cd "$(dirname "$0")/../../.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
OUT=${OUT:-docs/bench/gmm_native}
.venv/bin/diffguide bench gmm-posterior --device cpu --steps 100 --workers "${WORKERS:-1}" --out "$OUT" \
  --solver ddrm --solver ddnm --solver pigdm --solver diffpir --solver daps:levels_per_step=1,ode_steps=5,langevin_steps=200 --solver red-diff --solver pnp-dm \
  --solver dps:zeta=1 --solver ddim || true
.venv/bin/diffguide bench report "$OUT"
