#!/usr/bin/env bash
# Latent against pixel space on the same measurements and rewards: the photos-latent prior (an autoencoder
# from 32x32x3 to 8x8x4 and a UNet over the latents) next to the pixel-space photos prior.
#  - restore: the two held-out 128x128 crops under blur, random inpainting and 4x super-resolution
#    (photos-* and photos-latent-*), DPS at 50 steps (150 network passes) and RED-diff at 170 and 510 steps
#    (it runs the noise levels from sigma_y = 0.02 to its start_sigma = 1: 50 and 150 passes);
#  - photos-colour: 16 samples guided towards held-out tiles' mean colours, 25 steps: unguided DDIM,
#    universal guidance (s = 1 and the default 20), DPS with a constant step, SCG and best-of-N at about
#    the same network passes as the gradient methods.
set -e
cd "$(dirname "$0")/../../.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
OUT=${OUT:-docs/bench/latent}
WORKERS=${WORKERS:-2}
INSTANCES=""
for d in blur random sr4; do INSTANCES="$INSTANCES --instance photos-$d --instance photos-latent-$d"; done
.venv/bin/diffguide bench restore --device cpu --workers "$WORKERS" --out "$OUT" $INSTANCES --steps 50 \
  --solver dps || true
.venv/bin/diffguide bench restore --device cpu --workers "$WORKERS" --out "$OUT" $INSTANCES --steps 170 --steps 510 \
  --solver red-diff || true
.venv/bin/diffguide bench photos-colour --device cpu --workers "$WORKERS" --out "$OUT" --steps 25 \
  --solver ddim --solver "universal:scale=1" --solver universal --solver "dps:step_size=constant,zeta=30" \
  --solver "scg:candidates=4" --solver "best-of-n:n=3" || true
.venv/bin/diffguide bench report "$OUT"
