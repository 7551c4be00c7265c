"""Task ``motion``: move a region of a held-out image by a target flow (motion guidance,
Geng & Owens, ICLR 2024), with the reward :class:`diffguide.rewards.motion.MotionReward`.

Instances: ``digits-shift-right`` and ``digits-shift-down`` move the bounding box of each
of 8 held-out digits (16x16; ``reduced``: 2), grown by a pixel, by 2 pixels;
``photos-shift`` moves the centred 48x48 square of each held-out 128x128 photo crop 6
pixels right (``reduced``: in the centre 32x32 of the first crop, the centred 12x12
square by 2 pixels). ``photos-shift-sdedit`` is the same edit started SDEdit-style (Meng et al.
2022): the schedule runs from sigma 1 instead of 80, from the source plus noise of that level, so
the sampler only has to move content, not redraw the photo (from noise the photos prior does not
come back to the source: its results change the rest of the image by 0.5-0.6). The moved region
is the part of the box whose destination stays inside the image; the target flow is the shift
there and zero elsewhere. Otherwise the solver starts from noise. It gets the reward only:
``MotionReward`` with ``lambda_color = 100`` and ``lambda_flow = 3 * 512 / W`` (the paper's 3 for
512-pixel images, at the same relative motion), with Horn-Schunck flow (settings below).

Metrics (means over the images):

- ``flow_epe``: end-point error ``|F(source, result) - f|`` of the estimated flow (the
  reward's Horn-Schunck estimator) over the moved region;
- ``flow_epe_paste``: the same for the copy-paste edit (the region pasted at its
  destination, the rest the source): what the estimator reaches on a clean edit (the
  source itself scores ``|f|``, the shift);
- ``moved_color_error``: ``|source(p) - result(p + f(p))|`` over the moved region, in
  [-1, 1] units (did the content arrive where it was sent);
- ``outside_change``: ``|result - source|`` outside the moved region and its destination
  (what the edit should leave alone), in [-1, 1] units.
"""
from __future__ import annotations

import dataclasses
import functools

import torch

from ...data.digits import load_digits_split
from ...data.photos import photos_eval
from ...models.optical_flow import estimate_flow
from ...operators.flow_warp import FlowWarp, warp
from ...priors.embedded import load
from ...rewards.motion import MotionReward
from ...schedules import karras_sigmas
from ...device_runs import solve_on_device

DIGITS = [0, 37, 75, 110, 145, 181, 217, 253]  # held-out positions: a mix of classes
SDEDIT_SIGMA = 1.0


#: Horn-Schunck settings (``estimate_flow`` keywords): digits are high-contrast and small,
#: photos lower-contrast (smaller alpha) and, at 128x128, moved further (more levels).
DIGIT_FLOW = {"iterations": 20, "warps": 2}
PHOTO_FLOW = {"alpha": 0.3, "iterations": 30, "warps": 2}


@dataclasses.dataclass(frozen=True)
class Edit:
    """One motion instance: the ``dataset`` (``"digits"`` or ``"photos"``), the ``shift`` (x, y)
    in pixels, the Horn-Schunck settings ``flow`` (``estimate_flow`` keywords) and
    ``start_sigma`` (None: sample from noise at sigma 80; a level: SDEdit from the source
    noised to it).
    """

    dataset: str
    shift: tuple[int, int]  # (x, y) pixels
    flow: dict  # the flow estimator's settings
    start_sigma: float | None = None  # None: from noise at sigma 80; else SDEdit from the source noised to it


EDITS = {"digits-shift-right": Edit("digits", (2, 0), DIGIT_FLOW),
         "digits-shift-down": Edit("digits", (0, 2), DIGIT_FLOW),
         "photos-shift": Edit("photos", (6, 0), {**PHOTO_FLOW, "levels": 4}),
         "photos-shift-sdedit": Edit("photos", (6, 0), {**PHOTO_FLOW, "levels": 4}, start_sigma=SDEDIT_SIGMA)}
REDUCED_EDITS = {"digits-shift-right": EDITS["digits-shift-right"], "photos-shift": Edit("photos", (2, 0), PHOTO_FLOW),
                 "photos-shift-sdedit": Edit("photos", (2, 0), PHOTO_FLOW, start_sigma=SDEDIT_SIGMA)}


def images(dataset: str, reduced: bool) -> torch.Tensor:
    if dataset == "digits":
        return load_digits_split()[2][DIGITS[:2] if reduced else DIGITS]
    crops = photos_eval()
    return crops[:1, :, 48:80, 48:80] if reduced else crops


def box(image: torch.Tensor, dataset: str) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the region to move: a digit's bounding box grown by
    a pixel, or a centred square of 3/8 of a photo's side."""
    _, h, w = image.shape
    if dataset == "digits":
        ink = image[0] > -0.5
        rows, cols = ink.any(1).nonzero().flatten(), ink.any(0).nonzero().flatten()
        top, left = max(int(rows[0]) - 1, 0), max(int(cols[0]) - 1, 0)
        return top, left, min(int(rows[-1]) + 2, h) - top, min(int(cols[-1]) + 2, w) - left
    side = 3 * h // 8
    return (h - side) // 2, (w - side) // 2, side, side


def target_flow(image: torch.Tensor, dataset: str, shift: tuple[int, int]) -> torch.Tensor:
    """(1, 2, H, W): ``shift`` on the pixels of the box whose destination lies inside the image."""
    _, h, w = image.shape
    top, left, height, width = box(image, dataset)
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    dx, dy = shift
    inside = ((rows >= top) & (rows < top + height) & (cols >= left) & (cols < left + width)
              & (rows + dy >= 0) & (rows + dy < h) & (cols + dx >= 0) & (cols + dx < w))
    flow = torch.zeros(1, 2, h, w, dtype=image.dtype)
    flow[0, 0][inside], flow[0, 1][inside] = float(dx), float(dy)
    return flow


class Motion:
    """The ``motion`` task (module docstring): one edit per instance, the solver guided by
    ``MotionReward`` alone, scored by flow error and change outside the moved region.
    """

    name = "motion"

    def instances(self, reduced: bool) -> list[str]:
        return list(REDUCED_EDITS if reduced else EDITS)

    def problem(self, instance: str, reduced: bool):
        """Source images (N, C, H, W), target flows (N, 2, H, W), the reward and the flow estimator."""
        edit = (REDUCED_EDITS if reduced else EDITS)[instance]
        sources = images(edit.dataset, reduced)
        flows = torch.cat([target_flow(image, edit.dataset, edit.shift) for image in sources])
        estimator = functools.partial(estimate_flow, **edit.flow)
        # the paper's lambda_flow = 3 weighs flows in pixels of 512x512 images; the same
        # relative motion is 512 / W times fewer pixels here
        reward = MotionReward(sources, flows, flow_weight=3.0 * 512 / sources.shape[-1], flow_estimator=estimator)
        return sources, flows, reward, estimator

    def run(self, instance: str, solver, seed: int, steps: int, reduced: bool) -> dict:
        sources, flows, reward, estimator = self.problem(instance, reduced)
        edit = (REDUCED_EDITS if reduced else EDITS)[instance]
        prior = load(edit.dataset).with_shape(tuple(sources.shape[1:]))
        g = torch.Generator().manual_seed(seed)
        sigmas = karras_sigmas(steps, 2e-3, edit.start_sigma or 80.0)
        x = sigmas[0] * torch.randn(sources.shape, generator=g)
        if edit.start_sigma is not None:
            x = sources + x
        result = solve_on_device(solver, prior, reward, x, sigmas, generator=g)
        return metrics(sources, flows, result, estimator)


def metrics(sources: torch.Tensor, flows: torch.Tensor, result: torch.Tensor, estimator) -> dict:
    """``flow_epe``, ``flow_epe_paste``, ``moved_color_error`` and ``outside_change`` (module docstring)."""
    with torch.no_grad():
        splat = FlowWarp(flows).adjoint  # forward-warps (splats) images along the flow
        moved = (flows.abs().sum(1, keepdim=True) > 0).to(sources.dtype)
        landed = splat(moved)  # how much moved content lands on each pixel
        paste = torch.where(landed > 0, splat(sources * moved) / landed.clamp(min=1e-12), sources)
        outside = (moved == 0) & (landed == 0)

        def mean_over(values, where):
            where = where.to(values.dtype)
            return float(((values * where).flatten(1).sum(1) / where.flatten(1).sum(1).clamp(min=1)).mean())

        def epe(image):
            return (estimator(sources, image) - flows).norm(dim=1, keepdim=True)

        return {"flow_epe": mean_over(epe(result), moved), "flow_epe_paste": mean_over(epe(paste), moved),
                "moved_color_error": mean_over((sources - warp(result, flows)).abs().mean(1, keepdim=True), moved),
                "outside_change": mean_over((result - sources).abs().mean(1, keepdim=True), outside),
                "images": {"source": sources[:2], "paste": paste[:2], "result": result[:2]}}
