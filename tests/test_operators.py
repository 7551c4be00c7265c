"""Properties every operator must have, plus the specifics of each one."""
import math
import warnings

import deepinv
import pytest
import torch

from diffguide.counting import counting
from diffguide.operators import (Blur, DeepinvLinearPhysics, DeepinvPhysics, Downsample, Identity, Inpaint,
                                 LinearOperator, Matrix, Operator, compose, from_deepinv)
from diffguide.operators.composition import LinearComposition

F64 = torch.float64
# Non-normalised and asymmetric in both axes; 4 rows makes the even-size anchor matter.
ASYMMETRIC = torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 0.5], [1.0, 0.0, 0.0], [2.0, 1.0, 1.5]], dtype=F64)
ODD_ASYMMETRIC = torch.arange(15, dtype=F64).reshape(3, 5) ** 1.5


def seeded(seed):
    return torch.Generator().manual_seed(seed)


def quiet(make):
    """deepinv warns about defaults it picks; the tests set what they rely on."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return make()


def deepinv_blur():
    return from_deepinv(deepinv.physics.Blur(filter=ASYMMETRIC[None, None], padding="circular"), data_range=None)


def deepinv_downsampling():
    return from_deepinv(quiet(lambda: deepinv.physics.Downsampling(
        img_size=(1, 6, 6), filter=ODD_ASYMMETRIC[None, None], factor=2, padding="circular")), data_range=None)


def deepinv_mri():
    mask = (torch.rand(8, 8, generator=seeded(0)) > 0.5).to(F64)
    return from_deepinv(deepinv.physics.MRI(mask=mask, img_size=(2, 8, 8)).double(), data_range=None)


def deepinv_tomography():
    return from_deepinv(quiet(lambda: deepinv.physics.Tomography(
        angles=6, img_width=8, normalize=False, dtype=F64).double()), data_range=None)


# name -> (factory of a float64 linear operator, per-sample input shape)
LINEAR = {
    "identity": (Identity, (2, 5, 6)),
    "blur-gaussian": (lambda: Blur.gaussian(1.0, dtype=F64), (2, 8, 9)),
    "blur-asym-circular": (lambda: Blur(ASYMMETRIC, "circular"), (2, 8, 9)),
    "blur-odd-circular": (lambda: Blur(ODD_ASYMMETRIC, "circular"), (2, 8, 9)),
    "blur-asym-reflect": (lambda: Blur(ASYMMETRIC, "reflect"), (2, 8, 9)),
    "blur-asym-replicate": (lambda: Blur(ASYMMETRIC, "replicate"), (1, 7, 6)),
    "blur-asym-constant": (lambda: Blur(ASYMMETRIC, "constant"), (1, 7, 6)),
    "inpaint-box": (lambda: Inpaint.box((3, 8, 8), 2, 1, 3, 4), (3, 8, 8)),
    "inpaint-pixels": (lambda: Inpaint.random_pixels((3, 8, 8), 0.5, generator=seeded(0)), (3, 8, 8)),
    "inpaint-strokes": (lambda: Inpaint.random_strokes((1, 12, 12), generator=seeded(0)), (1, 12, 12)),
    "inpaint-per-channel": (lambda: Inpaint(torch.rand(2, 6, 6, generator=seeded(0)).round()), (2, 6, 6)),
    "matrix-wide": (lambda: Matrix(rand(3, 6, seed=4)), (6,)),
    "matrix-image-shaped": (lambda: Matrix(rand(5, 12, seed=5), (1, 3, 4)), (1, 3, 4)),
    "downsample-2": (lambda: Downsample(2), (2, 8, 8)),
    "downsample-4": (lambda: Downsample(4), (1, 8, 12)),
    "downsample@blur": (lambda: Downsample(2) @ Blur.gaussian(1.0, dtype=F64), (2, 8, 8)),
    "inpaint@blur-reflect": (lambda: Inpaint.box((1, 8, 8), 0, 0, 4, 4) @ Blur(ASYMMETRIC, "reflect"), (1, 8, 8)),
    "blur@downsample": (lambda: Blur(ODD_ASYMMETRIC) @ Downsample(2), (1, 12, 12)),
    "deepinv-blur": (deepinv_blur, (1, 6, 6)),
    "deepinv-downsampling": (deepinv_downsampling, (1, 6, 6)),
    "deepinv-mri": (deepinv_mri, (2, 8, 8)),
    "deepinv-tomography": (deepinv_tomography, (1, 8, 8)),
    "downsample@deepinv-blur": (lambda: Downsample(2) @ deepinv_blur(), (1, 8, 8)),
}
OWN = [name for name in LINEAR if "deepinv" not in name]


def rand(*shape, seed=0, dtype=F64):
    return torch.randn(*shape, generator=seeded(seed), dtype=dtype)


def inner(a, b):
    return (a * b).sum()


def setup(name, batch=3):
    make, shape = LINEAR[name]
    op = make()
    x = rand(batch, *shape)
    y = rand(batch, *op.output_shape(shape), seed=1)
    return op, shape, x, y


@pytest.mark.parametrize("name", LINEAR)
def test_adjointness(name):
    op, _, x, y = setup(name)
    ax = op(x)
    lhs, rhs = inner(ax, y), inner(x, op.adjoint(y))
    assert abs(lhs - rhs) <= 1e-10 * ax.norm() * y.norm()


@pytest.mark.parametrize("name", LINEAR)
def test_closed_form_adjoint_equals_autograd_fallback(name):
    op, _, _, y = setup(name)
    torch.testing.assert_close(op.adjoint(y), LinearOperator.adjoint(op, y), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", LINEAR)
def test_batch_consistency(name):
    op, _, x, _ = setup(name, batch=4)
    single = torch.cat([op(x[i:i + 1]) for i in range(len(x))])
    torch.testing.assert_close(op(x), single, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", LINEAR)
def test_shapes(name):
    op, shape, x, y = setup(name)
    assert op(x).shape == (len(x), *op.output_shape(shape))
    assert op.input_shape(op.output_shape(shape)) == tuple(shape)
    assert op.adjoint(y).shape == x.shape


@pytest.mark.parametrize("name", LINEAR)
def test_matrix_matches_forward_and_adjoint(name):
    op, shape, x, y = setup(name, batch=2)
    matrix = op.matrix(shape)
    assert matrix.shape == (math.prod(op.output_shape(shape)), math.prod(shape))
    torch.testing.assert_close(x.flatten(1) @ matrix.T, op(x).flatten(1), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(y.flatten(1) @ matrix, op.adjoint(y).flatten(1), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", LINEAR)
def test_gradcheck_and_flag(name):
    op, _, x, _ = setup(name, batch=1)
    assert op.differentiable
    assert torch.autograd.gradcheck(op, (x.requires_grad_(),), fast_mode=True)


@pytest.mark.parametrize("name", OWN)
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_keeps_dtype(name, dtype):
    op, shape, _, _ = setup(name)
    x = rand(2, *shape, dtype=dtype)
    y = op(x)
    assert y.dtype == dtype
    assert op.adjoint(y).dtype == dtype
    assert LinearOperator.adjoint(op, y).dtype == dtype


# ----- counting -----

@pytest.mark.parametrize("name", ["blur-gaussian", "inpaint-box", "downsample@blur", "deepinv-tomography",
                                  "downsample@deepinv-blur"])
def test_counts_one_evaluation_per_sample(name):
    op, shape, x, y = setup(name, batch=5)
    with counting() as counts:
        op(x)
    assert counts.operator_evals == 5
    with counting() as counts:
        op(x)
        op(x[:2])
    assert counts.operator_evals == 7


@pytest.mark.parametrize("name", ["blur-asym-reflect", "downsample@blur", "inpaint@blur-reflect",
                                  "deepinv-tomography"])
def test_adjoints_shapes_and_matrices_are_not_counted(name):
    op, shape, _, y = setup(name)
    with counting() as counts:
        op.adjoint(y)
        LinearOperator.adjoint(op, y)
        op.output_shape(shape)
        op.input_shape(op.output_shape(shape))
        op.matrix(shape)
    assert counts.operator_evals == 0


# ----- composition -----

@pytest.mark.parametrize("outer, inner_op, shape", [
    ("downsample-2", "blur-asym-reflect", (2, 8, 6)),
    ("blur-odd-circular", "inpaint-per-channel", (2, 6, 6)),
    ("deepinv-blur", "inpaint-per-channel", (2, 6, 6)),
])
def test_composition(outer, inner_op, shape):
    a, b = LINEAR[outer][0](), LINEAR[inner_op][0]()
    x, composed = rand(2, *shape), a @ b
    assert isinstance(composed, LinearComposition) and composed.differentiable
    torch.testing.assert_close(composed(x), a(b(x)), rtol=0, atol=0)
    y = rand(2, *composed.output_shape(shape), seed=1)
    torch.testing.assert_close(composed.adjoint(y), b.adjoint(a.adjoint(y)), rtol=0, atol=0)
    assert composed.input_shape(composed.output_shape(shape)) == tuple(shape)
    assert compose(a, b)(x).equal(composed(x))


class Square(Operator):
    def forward(self, x):
        return x**2


class BlackBox(Operator):
    differentiable = False

    def forward(self, x):
        return x + 1


def test_composition_with_nonlinear_parts():
    blur = Blur(ODD_ASYMMETRIC)
    x = rand(2, 1, 6, 6)
    for composed in (Square() @ blur, blur @ Square()):
        assert not isinstance(composed, LinearOperator) and composed.differentiable
    torch.testing.assert_close((Square() @ blur)(x), blur(x) ** 2)
    assert not (blur @ BlackBox()).differentiable
    with counting() as counts:
        (Square() @ blur @ Downsample(2))(rand(3, 1, 12, 12))
    assert counts.operator_evals == 3


# ----- Blur -----

def test_gaussian_kernel():
    op = Blur.gaussian(1.3)
    kernel = op.kernel
    assert kernel.shape == (2 * math.ceil(3 * 1.3) + 1,) * 2 and kernel.dtype == torch.float32
    assert kernel.sum().item() == pytest.approx(1.0, abs=1e-6)
    torch.testing.assert_close(kernel, kernel.T)
    torch.testing.assert_close(kernel, kernel.flip(0))
    assert kernel[4, 4] == kernel.max()
    assert Blur.gaussian(2.0, size=5).kernel.shape == (5, 5)
    assert "kernel" in dict(op.named_buffers())
    assert op.double().kernel.dtype == F64
    with pytest.raises(ValueError, match="sigma"):
        Blur.gaussian(0.0)


def test_blur_is_a_convolution_with_the_kernel_as_given():
    x = torch.zeros(1, 1, 9, 9, dtype=F64)
    x[..., 4, 4] = 1
    for kernel in (ASYMMETRIC, ODD_ASYMMETRIC):
        y = Blur(kernel)(x)[0, 0]
        kh, kw = kernel.shape
        top, left = 4 - kh // 2, 4 - kw // 2
        torch.testing.assert_close(y[top:top + kh, left:left + kw], kernel)
        assert y.sum() == pytest.approx(kernel.sum().item())


@pytest.mark.parametrize("padding", ["circular", "reflect", "replicate", "constant"])
@pytest.mark.parametrize("kernel", [ASYMMETRIC, ODD_ASYMMETRIC], ids=["even", "odd"])
def test_blur_matches_deepinv(padding, kernel):
    x = rand(2, 3, 8, 9)
    expected = deepinv.physics.Blur(filter=kernel[None, None], padding=padding).A(x)
    torch.testing.assert_close(Blur(kernel, padding)(x), expected, rtol=1e-10, atol=1e-12)


def test_blur_rejects_bad_arguments():
    with pytest.raises(ValueError, match="2-D"):
        Blur(torch.ones(1, 3, 3))
    with pytest.raises(ValueError, match="padding"):
        Blur(torch.ones(3, 3), padding="valid")


# ----- Inpaint -----

def test_box_mask():
    op = Inpaint.box((3, 6, 7), top=1, left=2, height=3, width=4)
    expected = torch.ones(1, 6, 7, dtype=torch.bool)
    expected[:, 1:4, 2:6] = False
    assert op.mask.equal(expected)
    assert op.missing_fraction == pytest.approx(12 / 42)
    x = rand(2, 3, 6, 7)
    y = op(x)
    assert (y[:, :, 1:4, 2:6] == 0).all()
    assert y[:, :, 0].equal(x[:, :, 0])
    with pytest.raises(ValueError, match="inside"):
        Inpaint.box((3, 6, 7), top=4, left=0, height=3, width=1)


def test_random_pixels_fraction():
    op = Inpaint.random_pixels((3, 10, 10), 0.37, generator=seeded(0))
    assert op.mask.shape == (1, 10, 10)
    assert op.missing_fraction == pytest.approx(0.37)
    assert Inpaint.random_pixels((1, 4, 4), 0.0).missing_fraction == 0.0
    assert Inpaint.random_pixels((1, 4, 4), 1.0).missing_fraction == 1.0


def test_random_strokes_are_thick_connected_regions():
    op = Inpaint.random_strokes((3, 32, 32), n_strokes=3, width=4, generator=seeded(2))
    missing = ~op.mask[0]
    assert 0.02 < op.missing_fraction < 0.6
    # thick: every missing pixel has a missing 4-neighbour (no isolated pixels)
    padded = torch.nn.functional.pad(missing[None].float(), (1, 1, 1, 1))[0].bool()
    neighbours = padded[:-2, 1:-1] | padded[2:, 1:-1] | padded[1:-1, :-2] | padded[1:-1, 2:]
    assert (neighbours | ~missing).all()
    more = Inpaint.random_strokes((3, 32, 32), n_strokes=12, width=4, generator=seeded(2))
    assert more.missing_fraction > op.missing_fraction


@pytest.mark.parametrize("make", [
    lambda g: Inpaint.random_pixels((1, 16, 16), 0.5, generator=g),
    lambda g: Inpaint.random_strokes((1, 16, 16), generator=g),
], ids=["pixels", "strokes"])
def test_random_masks_follow_the_generator_only(make):
    state = torch.random.get_rng_state()
    first, again, other = make(seeded(0)), make(seeded(0)), make(seeded(1))
    assert torch.random.get_rng_state().equal(state)
    assert first.mask.equal(again.mask)
    assert not first.mask.equal(other.mask)
    assert make(None).mask.equal(make(None).mask)


def test_inpaint_rejects_bad_masks_and_shapes():
    with pytest.raises(ValueError, match="0 .missing. or 1"):
        Inpaint(torch.full((1, 4, 4), 0.5))
    with pytest.raises(ValueError, match="shape"):
        Inpaint(torch.ones(4, 4))
    with pytest.raises(ValueError, match=r"\(2, 4, 4\).*\(3, 4, 4\)"):
        Inpaint(torch.ones(2, 4, 4)).output_shape((3, 4, 4))
    with pytest.raises(ValueError, match="fraction_missing"):
        Inpaint.random_pixels((1, 4, 4), 1.5)


# ----- Downsample -----

def test_downsample_averages_blocks():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    torch.testing.assert_close(Downsample(2)(x), torch.tensor([[[[2.5, 4.5], [10.5, 12.5]]]]))
    y = torch.tensor([[[[4.0, 8.0]]]])
    torch.testing.assert_close(Downsample(2).adjoint(y), torch.tensor([[[[1.0, 1, 2, 2], [1, 1, 2, 2]]]]))


@pytest.mark.parametrize("factor, shape", [(2, (3, 8, 7)), (3, (1, 8, 9)), (4, (1, 6, 8))])
def test_downsample_indivisible_size(factor, shape):
    h, w = shape[1:]
    op = Downsample(factor)
    with pytest.raises(ValueError, match=f"factor {factor}.*{h} x {w}"):
        op.output_shape(shape)
    with pytest.raises(ValueError, match=f"{h} x {w}"):
        op(torch.zeros(1, *shape))


def test_downsample_rejects_bad_factor():
    for factor in (0, 1.5):
        with pytest.raises(ValueError, match="positive integer"):
            Downsample(factor)


# ----- deepinv -----

def test_from_deepinv_picks_the_class():
    assert type(deepinv_tomography()) is DeepinvLinearPhysics
    nonlinear = from_deepinv(deepinv.physics.Physics(A=lambda x: x.sin()), data_range=None)
    assert type(nonlinear) is DeepinvPhysics and not isinstance(nonlinear, LinearOperator)
    with pytest.raises(TypeError, match="deepinv.physics.Physics"):
        from_deepinv(Blur(ASYMMETRIC), data_range=None)


def test_deepinv_nonlinear_physics():
    op = from_deepinv(deepinv.physics.Physics(A=lambda x: x.sin() * x), data_range=None)
    x = rand(3, 1, 4, 4)
    torch.testing.assert_close(op(x), x.sin() * x)
    assert op.output_shape((1, 4, 4)) == (1, 4, 4)
    assert op.differentiable
    assert torch.autograd.gradcheck(op, (x[:1].requires_grad_(),), fast_mode=True)


def test_deepinv_physics_is_noise_free_and_a_submodule():
    physics = deepinv.physics.Blur(filter=ASYMMETRIC[None, None], padding="circular",
                                   noise_model=deepinv.physics.GaussianNoise(sigma=1.0))
    op = from_deepinv(physics, data_range=None)
    assert op.physics is physics and dict(op.named_modules())["physics"] is physics
    x = rand(2, 1, 8, 8)
    torch.testing.assert_close(op(x), op(x), rtol=0, atol=0)
    torch.testing.assert_close(op(x), physics.A(x), rtol=0, atol=0)
