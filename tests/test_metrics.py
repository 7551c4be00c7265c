"""Metrics against values known in closed form."""
import math

import pytest
import torch

from diffguide.metrics import psnr, relative_l2, sliced_wasserstein, ssim


def test_psnr_of_a_known_error():
    reference = torch.zeros(2, 1, 4, 4)
    x = reference + torch.tensor([0.1, 0.2]).reshape(2, 1, 1, 1)  # MSE 0.01 and 0.04, range 2
    assert torch.allclose(psnr(x, reference, 2.0), torch.tensor([10 * math.log10(400), 10 * math.log10(100)]))


def test_ssim_is_one_for_identical_images_and_lower_for_noise():
    g = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 16, 16, generator=g) * 2 - 1
    assert torch.allclose(ssim(image, image), torch.ones(2), atol=1e-5)
    noisy = image + 0.3 * torch.randn(image.shape, generator=g)
    assert (ssim(noisy, image) < 0.9).all()


def test_relative_l2():
    reference = torch.tensor([[3.0, 4.0]])
    assert torch.allclose(relative_l2(torch.tensor([[3.0, 5.0]]), reference), torch.tensor([0.2]))


def test_sliced_wasserstein_of_a_shift_and_its_sample_size_floor():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(20000, 3, generator=g, dtype=torch.float64)
    shift = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    # W2 of a projected shift is |theta . shift|; averaged over directions in 3-D: E[theta_1^2] = 1/3
    expected = (1 / 3) ** 0.5
    assert sliced_wasserstein(a, a + shift, 2000, g) == pytest.approx(expected, rel=0.05)
    floors = [float(sliced_wasserstein(torch.randn(n, 3, generator=g), torch.randn(n, 3, generator=g), 256, g))
              for n in (100, 1600)]
    assert floors[1] < 0.5 * floors[0]  # the distance between exact sample sets shrinks with their size
    with pytest.raises(ValueError, match="same size"):
        sliced_wasserstein(a[:10], a[:11])
