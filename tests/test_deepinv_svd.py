"""Operators as deepinv decomposable physics (for DDRM): the SVD reproduces A and A^T, V is orthogonal."""
import pytest
import torch

from diffguide.operators.blur import Blur
from diffguide.operators.deepinv_svd import to_deepinv_decomposable
from diffguide.operators.downsample import Downsample
from diffguide.operators.inpaint import Inpaint
from diffguide.operators.matrix import Matrix

CASES = {
    "blur": (lambda: Blur.gaussian(1.5), (1, 16, 16)),
    "blur-rgb": (lambda: Blur.gaussian(2.0), (3, 32, 32)),
    "random": (lambda: Inpaint.random_pixels((3, 32, 32), 0.7), (3, 32, 32)),
    "box": (lambda: Inpaint.box((1, 16, 16), 4, 4, 8, 8), (1, 16, 16)),
    "sr2": (lambda: Downsample(2), (3, 32, 32)),
    "sr4": (lambda: Downsample(4), (1, 16, 16)),
    "wide-matrix": (lambda: Matrix(torch.randn(3, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)), (8,)),
}


@pytest.mark.parametrize("name", CASES)
def test_decomposition_reproduces_the_operator(name):
    make, shape = CASES[name]
    operator = make()
    dtype = torch.float64 if isinstance(operator, Matrix) else torch.float32
    physics = to_deepinv_decomposable(operator, shape, noise_sigma=0.01)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, *shape, generator=g, dtype=dtype)
    y = operator(x)
    tol = 1e-10 if dtype == torch.float64 else 2e-6
    assert torch.allclose(physics.A(x), y, atol=tol)
    assert torch.allclose(physics.A_adjoint(y), operator.adjoint(y), atol=tol)
    assert torch.allclose(physics.V(physics.V_adjoint(x)), x, atol=tol)  # V orthogonal
    assert float(physics.noise_model.sigma) == pytest.approx(0.01)
    mask = physics.mask if physics.mask.ndim else None
    if mask is not None and not isinstance(operator, Matrix):  # DDRM indexes V^T x with the mask
        assert physics.V_adjoint(x).shape[1:] == mask.shape[1:]


def test_small_operators_without_a_closed_form_get_a_dense_decomposition():
    operator = Blur.gaussian(1.0, padding="reflect")
    physics = to_deepinv_decomposable(operator, (1, 8, 8))
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(physics.A(x), operator(x), atol=1e-5)


def test_large_operator_without_a_decomposition_is_a_clear_error():
    with pytest.raises(ValueError, match="reflect padding"):
        to_deepinv_decomposable(Blur.gaussian(1.0, padding="reflect"), (3, 128, 128))
