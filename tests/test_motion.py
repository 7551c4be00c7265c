"""Motion guidance: the FlowWarp operator, Horn-Schunck flow, the motion reward and the ``motion`` task."""
import math

import pytest
import torch
import torch.nn.functional as F

from diffguide.benchmarks.tasks.motion import DIGITS, Motion, metrics, target_flow
from diffguide.counting import counting
from diffguide.data.digits import load_digits_split
from diffguide.models.optical_flow import estimate_flow
from diffguide.operators.base import LinearOperator
from diffguide.operators.flow_warp import FlowWarp, warp
from diffguide.rewards.motion import MotionReward
from diffguide.solvers.ddim import DDIM
from diffguide.solvers.dps import DPS

F64 = torch.float64
PADDINGS = ["zeros", "border"]


def seeded(seed):
    return torch.Generator().manual_seed(seed)


def rand(*shape, seed=0, dtype=F64):
    return torch.randn(*shape, generator=seeded(seed), dtype=dtype)


def inner(a, b):
    return (a * b).sum()


def random_flow(batch=1, h=7, w=9, seed=3):
    """Sub-pixel flows of up to ~3 pixels: some samples fall outside the image."""
    return 1.5 * rand(batch, 2, h, w, seed=seed)


def grid_sample_warp(image, flow, padding):
    """An independent reference: ``grid_sample`` with pixel centres at the corners (``align_corners``)."""
    h, w = image.shape[2:]
    rows, cols = torch.meshgrid(torch.arange(h, dtype=image.dtype), torch.arange(w, dtype=image.dtype), indexing="ij")
    grid = torch.stack([2 * (cols + flow[:, 0]) / (w - 1) - 1, 2 * (rows + flow[:, 1]) / (h - 1) - 1], -1)
    return F.grid_sample(image, grid.expand(len(image), -1, -1, -1), align_corners=True, padding_mode=padding)


# ----- FlowWarp: the operator properties of tests/test_operators.py -----

@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("flow_batch", [1, 3])
def test_adjointness(padding, flow_batch):
    op = FlowWarp(random_flow(flow_batch), padding)
    x, y = rand(3, 2, 7, 9), rand(3, 2, 7, 9, seed=1)
    ax = op(x)
    assert abs(inner(ax, y) - inner(x, op.adjoint(y))) <= 1e-10 * ax.norm() * y.norm()
    torch.testing.assert_close(op.adjoint(y), LinearOperator.adjoint(op, y), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("padding", PADDINGS)
def test_matrix_matches_forward_and_adjoint(padding):
    op, shape = FlowWarp(random_flow(), padding), (2, 7, 9)
    x, y = rand(2, *shape), rand(2, *shape, seed=1)
    matrix = op.matrix(shape)
    assert matrix.shape == (math.prod(shape),) * 2
    torch.testing.assert_close(x.flatten(1) @ matrix.T, op(x).flatten(1), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(y.flatten(1) @ matrix, op.adjoint(y).flatten(1), rtol=1e-10, atol=1e-12)
    # bilinear: at most four taps per row, with weights in [0, 1] summing to 1 (border) or at most 1 (zeros)
    assert ((matrix != 0).sum(1) <= 4).all() and (matrix >= 0).all()
    sums = matrix.sum(1)
    assert torch.allclose(sums, torch.ones_like(sums)) if padding == "border" else (sums <= 1 + 1e-12).all()


@pytest.mark.parametrize("padding", PADDINGS)
def test_batch_consistency_and_per_sample_flows(padding):
    x = rand(4, 2, 7, 9)
    op = FlowWarp(random_flow(), padding)
    torch.testing.assert_close(op(x), torch.cat([op(x[i:i + 1]) for i in range(4)]), rtol=1e-10, atol=1e-12)
    flows = random_flow(4)
    per_sample = torch.cat([FlowWarp(flows[i:i + 1], padding)(x[i:i + 1]) for i in range(4)])
    torch.testing.assert_close(FlowWarp(flows, padding)(x), per_sample, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("padding", PADDINGS)
def test_gradcheck_in_image_and_flow(padding):
    op = FlowWarp(random_flow(), padding)
    assert op.differentiable
    x = rand(1, 2, 7, 9).requires_grad_()
    assert torch.autograd.gradcheck(op, (x,), fast_mode=True)
    flow = random_flow().requires_grad_()  # generic positions: no sample sits on a pixel boundary
    assert torch.autograd.gradcheck(lambda f: warp(x.detach(), f, padding), (flow,), fast_mode=True)


@pytest.mark.parametrize("padding", PADDINGS)
def test_matches_grid_sample(padding):
    x, flow = rand(3, 2, 7, 9), random_flow(3)
    torch.testing.assert_close(warp(x, flow, padding), grid_sample_warp(x, flow, padding), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_keeps_dtype_and_counts_per_sample(dtype):
    op = FlowWarp(random_flow().to(dtype))
    x = rand(5, 1, 7, 9, dtype=dtype)
    with counting() as counts:
        y = op(x)
        op.adjoint(y)
    assert y.dtype == dtype and op.adjoint(y).dtype == dtype
    assert counts.operator_evals == 5


@pytest.mark.parametrize("padding", PADDINGS)
def test_zero_flow_is_the_identity(padding):
    x = rand(2, 3, 6, 5)
    op = FlowWarp(torch.zeros(1, 2, 6, 5, dtype=F64), padding)
    assert op(x).equal(x) and op.adjoint(x).equal(x)


@pytest.mark.parametrize("padding", PADDINGS)
def test_integer_translation_is_a_roll_away_from_borders(padding):
    x, (dx, dy) = rand(2, 1, 8, 10), (2, -1)
    flow = torch.tensor([dx, dy], dtype=F64)[None, :, None, None].expand(1, 2, 8, 10)
    out, rolled = FlowWarp(flow, padding)(x), torch.roll(x, shifts=(-dy, -dx), dims=(2, 3))
    # out(p) = x(p + d): rows 1.. and columns ..-3 read inside the image
    assert out[..., 1:, :-2].equal(rolled[..., 1:, :-2])
    if padding == "zeros":
        assert (out[..., 0, :] == 0).all() and (out[..., -2:] == 0).all()
    else:  # the nearest edge value
        assert out[..., 1:, -2:].equal(x[..., :-1, -1:].expand(-1, -1, -1, 2))


def test_bilinear_warp_of_a_ramp_is_exact():
    rows, cols = torch.meshgrid(torch.arange(8, dtype=F64), torch.arange(9, dtype=F64), indexing="ij")
    ramp = (0.3 * cols - 0.7 * rows + 1.0)[None, None]
    u, v = 0.37, -0.81
    flow = torch.tensor([u, v], dtype=F64)[None, :, None, None].expand(1, 2, 8, 9)
    torch.testing.assert_close(warp(ramp, flow)[..., 1:, :-1], (ramp + 0.3 * u - 0.7 * v)[..., 1:, :-1])


def test_a_nan_flow_gives_nan_where_it_is_nan_and_no_index_error():
    """A diverged sampler hands the warp a NaN flow; the NaN must reach the solver's finiteness check."""
    image = torch.rand(1, 1, 6, 6, dtype=F64)
    flow = torch.zeros(1, 2, 6, 6, dtype=F64)
    flow[0, 0, 2, 3] = float("nan")
    out = warp(image, flow)
    assert out[0, 0, 2, 3].isnan() and int(out.isnan().sum()) == 1
    torch.testing.assert_close(out[0, 0, 0], image[0, 0, 0])


def test_flow_warp_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="flow field"):
        FlowWarp(torch.zeros(1, 3, 4, 4))
    with pytest.raises(ValueError, match="padding"):
        FlowWarp(torch.zeros(1, 2, 4, 4), padding="reflect")
    op = FlowWarp(torch.zeros(2, 2, 4, 4))
    with pytest.raises(ValueError, match=r"\(1, 4, 5\)"):
        op.output_shape((1, 4, 5))
    with pytest.raises(ValueError, match="batch of 3"):
        op(torch.zeros(3, 1, 4, 4))


# ----- Horn-Schunck -----

def gaussian_blobs(shift, size=32, seed=0, dtype=F64):
    """A smooth image, a sum of 12 random Gaussians, with its content moved by ``shift`` = (x, y) pixels."""
    g = seeded(seed)
    centres = torch.rand(12, 2, generator=g, dtype=F64) * size
    widths = 2 + 3 * torch.rand(12, generator=g, dtype=F64)
    amplitudes = torch.randn(12, generator=g, dtype=F64)
    rows, cols = torch.meshgrid(torch.arange(size, dtype=F64), torch.arange(size, dtype=F64), indexing="ij")
    image = sum(a * torch.exp(-((cols - cx - shift[0])**2 + (rows - cy - shift[1])**2) / (2 * s**2))
                for (cy, cx), s, a in zip(centres, widths, amplitudes))
    return image[None, None].to(dtype)


def interior_epe(flow, shift, margin):
    truth = torch.tensor(shift, dtype=flow.dtype)[None, :, None, None]
    return (flow - truth).norm(dim=1)[:, margin:-margin, margin:-margin]


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_horn_schunck_recovers_a_subpixel_translation(seed, dtype):
    shift = (0.7, -0.4)
    flow = estimate_flow(gaussian_blobs((0, 0), seed=seed, dtype=dtype), gaussian_blobs(shift, seed=seed, dtype=dtype))
    assert flow.shape == (1, 2, 32, 32) and flow.dtype == dtype
    epe = interior_epe(flow, shift, 4)
    assert epe.mean() < 0.1 and epe.max() < 0.2  # measured: means 0.01-0.05


def test_coarse_to_fine_recovers_a_larger_motion():
    shift = (-2.5, 1.5)
    source, target = gaussian_blobs((0, 0), seed=1), gaussian_blobs(shift, seed=1)
    assert interior_epe(estimate_flow(source, target), shift, 6).mean() < 0.15
    # one level and one linearisation cannot: this is what the pyramid and the warps are for
    assert interior_epe(estimate_flow(source, target, levels=1, warps=1), shift, 6).mean() > 0.3


def test_horn_schunck_of_identical_images_is_zero_and_source_broadcasts():
    images = gaussian_blobs((0, 0)).expand(2, 3, -1, -1)
    assert estimate_flow(images, images).eq(0).all()
    source, targets = gaussian_blobs((0, 0)), torch.cat([gaussian_blobs((0.5, 0)), gaussian_blobs((0, -0.5))])
    shared = estimate_flow(source, targets)
    torch.testing.assert_close(shared, estimate_flow(source.expand(2, -1, -1, -1), targets), rtol=0, atol=0)
    torch.testing.assert_close(shared[1:], estimate_flow(source, targets[1:]), rtol=1e-12, atol=1e-12)


def test_horn_schunck_is_differentiable_in_both_images():
    source, target = rand(1, 2, 6, 6), rand(1, 2, 6, 6, seed=1)

    def flow(s, t):
        return estimate_flow(s, t, iterations=5, levels=1, warps=2)

    assert torch.autograd.gradcheck(flow, (source.requires_grad_(), target.requires_grad_()), fast_mode=True)


def test_estimate_flow_rejects_bad_inputs():
    with pytest.raises(ValueError, match="one size"):
        estimate_flow(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 9))
    with pytest.raises(ValueError, match="alpha"):
        estimate_flow(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8), alpha=0.0)


# ----- MotionReward -----

def held_out_digits():
    return load_digits_split()[2][DIGITS]


def moved_right(images, shift=2):
    """Each digit's box moved ``shift`` pixels right (``target_flow``), pasted over the source."""
    flows = torch.cat([target_flow(image, "digits", (shift, 0)) for image in images])
    region = flows.abs().sum(1, keepdim=True) > 0
    destination = torch.roll(region, shift, 3)
    return flows, torch.where(destination, torch.roll(images, shift, 3), images)


def test_reward_prefers_the_correctly_moved_image():
    digits = held_out_digits()
    flows, moved = moved_right(digits)
    for reward in (MotionReward(digits, flows), MotionReward(digits, flows, flow_weight=96.0)):
        with torch.no_grad():
            moved_score, source_score = reward(moved), reward(digits)
        assert moved_score.shape == (len(digits),)
        assert (moved_score > source_score).all()
        # a correct edit has no colour error on the unoccluded pixels; the source leaves its flow error at |f|
        torch.testing.assert_close(reward.color_loss(moved, flows), torch.zeros(len(digits)))
        error = flows.norm(dim=1).mean((1, 2))  # L1 per channel = |f| / 2 for a horizontal f
        torch.testing.assert_close(reward.flow_loss(torch.zeros_like(flows)), error / 2)


def test_occlusion_mask():
    flow = torch.zeros(1, 2, 1, 8)
    flow[0, 0, 0, 1:4] = 2.0  # pixels 1..3 move to 3..5
    mask = MotionReward.unoccluded(flow)[0, 0, 0]
    # static pixels 4 and 5 are covered; pixel 3 moves and is never masked
    assert mask.tolist() == [True, True, True, True, False, False, True, True]
    half = torch.zeros(1, 2, 1, 8)
    half[0, 0, 0, 2] = 1.5  # lands between pixels 3 and 4
    assert MotionReward.unoccluded(half)[0, 0, 0].tolist() == [True, True, True, False, False, True, True, True]


@pytest.mark.parametrize("warp_by", ["target", "estimated"])
def test_reward_is_honestly_differentiable(warp_by):
    source, target = gaussian_blobs((0, 0), size=8), torch.zeros(1, 2, 8, 8, dtype=F64)
    target[:, 0, 2:6, 2:5] = 1.0
    edit_mask = torch.zeros(1, 1, 8, 8, dtype=torch.bool)
    edit_mask[..., 1:7, 1:7] = True

    def flow(s, t):
        return estimate_flow(s, t, iterations=5, levels=1, warps=1)

    reward = MotionReward(source, target, edit_mask, warp_by=warp_by, flow_estimator=flow)
    assert reward.differentiable
    x0 = gaussian_blobs((0.6, 0.2), size=8).expand(2, -1, -1, -1).contiguous() + 0.01 * rand(2, 1, 8, 8)
    assert reward(x0).shape == (2,)
    assert torch.autograd.gradcheck(reward, (x0.requires_grad_(),), fast_mode=True)


def test_reward_checks_shapes():
    source, flow = torch.zeros(1, 1, 8, 8), torch.zeros(1, 2, 8, 8)
    with pytest.raises(ValueError, match="target_flow"):
        MotionReward(source, torch.zeros(1, 2, 8, 9))
    with pytest.raises(ValueError, match="edit_mask"):
        MotionReward(source, flow, torch.ones(1, 8, 8))
    with pytest.raises(ValueError, match="warp_by"):
        MotionReward(source, flow, warp_by="forward")
    with pytest.raises(ValueError, match=r"\(1, 8, 8\).*\(1, 16, 16\)"):
        MotionReward(source, flow).check((1, 16, 16))
    pair = MotionReward(torch.zeros(2, 1, 8, 8), torch.zeros(2, 2, 8, 8))
    with pytest.raises(ValueError, match="2 source images"):
        pair(torch.zeros(3, 1, 8, 8))


# ----- the ``motion`` task -----

def test_task_metrics_are_exact_on_the_source_and_the_paste():
    task = Motion()
    sources, flows, _, estimator = task.problem("digits-shift-right", reduced=True)
    on_source = metrics(sources, flows, sources, estimator)
    assert on_source["flow_epe"] == pytest.approx(2.0)  # no motion at all: the error is the shift
    assert on_source["outside_change"] == 0.0
    _, paste = moved_right(sources)
    on_paste = metrics(sources, flows, paste, estimator)
    assert on_paste["moved_color_error"] == 0.0 and on_paste["outside_change"] == 0.0
    assert on_paste["flow_epe"] == pytest.approx(on_paste["flow_epe_paste"])
    assert on_paste["flow_epe"] < 0.5  # measured 0.21: Horn-Schunck on a clean 2-pixel edit


def test_reduced_task_runs_with_dps():
    task = Motion()
    assert task.instances(reduced=True) == ["digits-shift-right", "photos-shift", "photos-shift-sdedit"]
    assert set(task.instances(reduced=False)) == {"digits-shift-right", "digits-shift-down", "photos-shift",
                                                  "photos-shift-sdedit"}
    for instance in task.instances(reduced=True):
        result = task.run(instance, DPS(step_size="constant", zeta=0.3), seed=0, steps=4, reduced=True)
        images = result.pop("images")
        assert set(result) == {"flow_epe", "flow_epe_paste", "moved_color_error", "outside_change"}
        assert all(math.isfinite(value) for value in result.values())
        assert set(images) == {"source", "paste", "result"}


def test_dps_with_the_motion_reward_moves_the_digit():
    """Measured (seeds 0-3, 10 steps): flow EPE 0.73-0.88 guided vs 2.36-3.29 unguided,
    moved-colour error 0.26-0.34 vs 0.67-0.81."""
    task = Motion()
    guided = task.run("digits-shift-right", DPS(step_size="constant", zeta=0.3), seed=0, steps=10, reduced=True)
    unguided = task.run("digits-shift-right", DDIM(), seed=0, steps=10, reduced=True)
    assert guided["flow_epe"] < 0.5 * unguided["flow_epe"]
    assert guided["moved_color_error"] < 0.6 * unguided["moved_color_error"]


def test_sdedit_start_keeps_the_photo_and_guidance_moves_it():
    """From the source noised to sigma 1 the unguided sampler changes far less outside the edit than
    from pure noise, and guidance lowers the flow error from there. Measured (seed 0, 10 steps):
    outside change 0.13 vs 0.58, flow EPE 0.62 guided vs 1.44 unguided."""
    task = Motion()
    from_noise = task.run("photos-shift", DDIM(), seed=0, steps=10, reduced=True)
    unguided = task.run("photos-shift-sdedit", DDIM(), seed=0, steps=10, reduced=True)
    guided = task.run("photos-shift-sdedit", DPS(step_size="constant", zeta=0.3, eta=0.0), seed=0, steps=10, reduced=True)
    assert unguided["outside_change"] < 0.5 * from_noise["outside_change"]
    assert guided["flow_epe"] < 0.7 * unguided["flow_epe"]

