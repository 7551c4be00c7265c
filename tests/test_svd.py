"""Operators' linear algebra: the SVD reproduces A and A^T with an orthonormal V, in closed form
for identity, inpainting, downsampling, dense matrices, circular blur (any kernel, odd and even
sizes) and the exact compositions; pseudo-inverse and the regularised solve against their
defining equations, in closed form and by conjugate gradients; deepinv's own decompositions."""
import pytest
import torch

from diffguide.operators.blur import Blur
from diffguide.operators.downsample import Downsample
from diffguide.operators.identity import Identity
from diffguide.operators.inpaint import Inpaint
from diffguide.operators.matrix import Matrix
from diffguide.operators.normal_equations import conjugate_gradient_normal

G = torch.Generator().manual_seed(0)
ASYMMETRIC_KERNEL = torch.rand(4, 5, generator=G, dtype=torch.float64)
CLOSED_FORM = {
    "gaussian-blur": (lambda: Blur.gaussian(1.5), (1, 16, 16)),
    "even-kernel-blur": (lambda: Blur(ASYMMETRIC_KERNEL), (2, 9, 10)),
    "even-kernel-blur-odd-width": (lambda: Blur(ASYMMETRIC_KERNEL), (1, 10, 7)),
    "sr2": (lambda: Downsample(2), (3, 8, 8)),
    "sr4": (lambda: Downsample(4), (1, 16, 16)),
    "random-inpaint": (lambda: Inpaint.random_pixels((3, 8, 8), 0.5), (3, 8, 8)),
    "wide-matrix": (lambda: Matrix(torch.randn(3, 8, generator=G, dtype=torch.float64)), (8,)),
    "tall-matrix": (lambda: Matrix(torch.randn(9, 4, generator=G, dtype=torch.float64)), (4,)),
    "identity": (lambda: Identity(), (2, 4, 4)),
    "blur-of-blur": (lambda: Blur.gaussian(1.0) @ Blur(ASYMMETRIC_KERNEL), (1, 12, 12)),
    "identity-then-sr2": (lambda: Identity() @ Downsample(2), (1, 8, 8)),
    "inpaint-of-inpaint": (lambda: Inpaint.random_pixels((1, 8, 8), 0.5) @ Inpaint.box((1, 8, 8), 1, 1, 3, 3), (1, 8, 8)),
}


def _x(shape, n=2):
    return torch.randn(n, *shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


@pytest.mark.parametrize("name", CLOSED_FORM)
def test_closed_form_svd_reproduces_the_operator_and_its_adjoint(name):
    make, shape = CLOSED_FORM[name]
    operator = make()
    svd = operator.svd(shape)
    assert svd is not None
    x = _x(shape)
    z = svd.v_transpose(x)
    y = operator(x)
    assert torch.allclose(svd.v(z), x, atol=1e-12)  # V^T is an isometry and V inverts it
    assert torch.allclose(z.norm(), x.norm(), atol=1e-12)
    assert torch.allclose(svd.u(svd.s_like(z) * z), y, atol=1e-12)  # A = U diag(s) V^T
    assert torch.allclose(svd.v(svd.s_like(z) * svd.u_transpose(y)), operator.adjoint(y), atol=1e-12)
    assert bool((svd.singular_values >= 0).all())


@pytest.mark.parametrize("name", ["gaussian-blur", "sr2", "random-inpaint"])
def test_white_noise_stays_white_in_the_coefficients(name):
    """The rule solvers draw coefficient noise by: V^T of white noise has unit variance on live slots."""
    make, shape = CLOSED_FORM[name]
    svd = make().svd(shape)
    z = svd.v_transpose(torch.randn(4000, *shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64))
    variance = z.var(0)
    live = variance > 0.5
    assert torch.allclose(variance[live], torch.ones_like(variance[live]), atol=0.1)
    assert int(live.sum()) == torch.Size(shape).numel()


@pytest.mark.parametrize("name", CLOSED_FORM)
def test_pseudo_inverse_and_regularised_solve_meet_their_equations(name):
    make, shape = CLOSED_FORM[name]
    operator = make()
    x = _x(shape)
    y = operator(x)
    pinv = operator.pseudo_inverse(y)
    assert torch.allclose(operator.adjoint(operator(pinv)), operator.adjoint(y), atol=1e-10)  # least squares
    assert torch.allclose(operator.pseudo_inverse(operator(pinv)), pinv, atol=1e-10)  # in the range of A^T
    rho = torch.tensor([0.1, 2.0], dtype=torch.float64)
    anchor = 0.3 * x
    solved = operator.regularised_solve(y, anchor, rho)
    rho_ = rho.reshape(-1, *[1] * len(shape))
    assert torch.allclose(operator.adjoint(operator(solved)) + rho_ * solved,
                          operator.adjoint(y) + rho_ * anchor, atol=1e-10)


def test_operators_without_a_closed_form_use_conjugate_gradients():
    operator = Downsample(2) @ Blur.gaussian(1.0)
    assert operator.svd((1, 16, 16)) is None
    x = _x((1, 16, 16))
    y = operator(x)
    solved = operator.regularised_solve(y, 0.3 * x, 0.05)
    residual = operator.adjoint(operator(solved)) + 0.05 * solved - (operator.adjoint(y) + 0.05 * 0.3 * x)
    assert float(residual.abs().max()) < 1e-6
    pinv = operator.pseudo_inverse(y)
    assert float((operator(pinv) - y).abs().max()) < 1e-5
    dense = operator.decomposition((1, 16, 16))  # small enough for a dense SVD
    assert torch.allclose(dense.pseudo_inverse(y), pinv, atol=1e-4)


def test_conjugate_gradients_match_a_direct_solve():
    a = torch.randn(5, 7, generator=G, dtype=torch.float64)
    operator = Matrix(a)
    b = torch.randn(3, 7, generator=G, dtype=torch.float64)
    solved = conjugate_gradient_normal(operator, b, 0.5)
    direct = torch.linalg.solve(a.T @ a + 0.5 * torch.eye(7, dtype=torch.float64), b.T).T
    assert torch.allclose(solved, direct, atol=1e-8)


def test_no_decomposition_for_a_large_operator_without_a_closed_form_names_it():
    with pytest.raises(ValueError, match="Blur with reflect padding"):
        Blur.gaussian(1.0, padding="reflect").decomposition((3, 128, 128))


def test_deepinv_decomposable_physics_keeps_its_own_decomposition():
    deepinv = pytest.importorskip("deepinv")
    from diffguide.operators.deepinv_physics import from_deepinv

    mask = (torch.rand(1, 1, 8, 8, generator=G) > 0.5).float()
    cases = [deepinv.physics.Inpainting(img_size=(1, 8, 8), mask=mask),
             deepinv.physics.BlurFFT((1, 8, 8), filter=Blur(ASYMMETRIC_KERNEL.float()).kernel[None, None])]
    for physics in cases:
        operator = from_deepinv(physics, data_range=(-2.0, 2.0))  # scale 2, no offset
        svd = operator.svd((1, 8, 8))
        x = torch.randn(2, 1, 8, 8, generator=G)
        z = svd.v_transpose(x)
        assert torch.allclose(svd.u(svd.s_like(z) * z), operator(x), atol=1e-5)
