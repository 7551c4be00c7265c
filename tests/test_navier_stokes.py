"""The Navier-Stokes forward model against exact solutions, its order, its operator and its data."""
import math

import pytest
import torch

from diffguide.counting import counting
from diffguide.data.ns_vorticity import (VORTICITY_SCALE, energy_spectrum, ns_vorticity_fields,
                                         vorticity_histogram)
from diffguide.operators.navier_stokes import NavierStokesObservation
from diffguide.physics.navier_stokes import NavierStokes2D
from diffguide.physics.random_fields import GaussianRandomField

F64 = torch.float64


def seeded(seed):
    return torch.Generator().manual_seed(seed)


def random_field(n, batch=1, seed=0, amplitude=1.0):
    return amplitude * GaussianRandomField(resolution=n, tau=3.0, alpha=2.0).sample(batch, seeded(seed))


def spectral_derivatives(f):
    """(d/dx, d/dy) of fields (..., N, N) on [0, 2π)², by FFT with integer wavenumbers."""
    kx, ky = wavenumbers(f.shape[-1])
    f_hat = torch.fft.fft2(f)
    return torch.fft.ifft2(1j * kx * f_hat).real, torch.fft.ifft2(1j * ky * f_hat).real


def wavenumbers(n):
    k = torch.fft.fftfreq(n, 1 / n, dtype=F64)
    return k[None, :], k[:, None]  # k_x along the last axis, k_y along the one before


def band_limited(f, k_max):
    """``f`` with every mode with |k_x| or |k_y| above ``k_max`` removed."""
    kx, ky = wavenumbers(f.shape[-1])
    return torch.fft.ifft2(torch.fft.fft2(f) * ((kx.abs() <= k_max) & (ky.abs() <= k_max))).real


def without_nyquist(f):
    n = f.shape[-1]
    f_hat = torch.fft.fft2(f)
    f_hat[..., n // 2, :] = 0
    f_hat[..., :, n // 2] = 0
    return torch.fft.ifft2(f_hat).real


# ---------------------------------------------------------------- exact solutions


@pytest.mark.parametrize("drag", [0.0, 0.1])
def test_single_shell_fields_decay_exactly(drag):
    """Fields made of modes with one |k|² have zero advection: w(t) = exp(-(nu |k|² + drag) t) w0.

    Taylor-Green ``2 sin x sin y`` (|k|² = 2) and ``sin(x + 2y) + 3 cos(2x - y)`` (|k|² = 5), with
    two amplitudes each so the nonlinear term would show if it did not vanish."""
    nu, T = 0.05, 1.0
    solver = NavierStokes2D(16, viscosity=nu, forcing=None, dt=1e-3, drag=drag)
    x, y = solver.grid()
    shells = {2: 2 * torch.sin(x) * torch.sin(y), 5: torch.sin(x + 2 * y) + 3 * torch.cos(2 * x - y)}
    for k2, field in shells.items():
        w0 = torch.stack([field, 4 * field])
        wT = solver.evolve(w0, T)
        exact = math.exp(-(nu * k2 + drag) * T) * w0
        assert ((wT - exact).norm() / exact.norm()).item() <= 1e-8


def test_kolmogorov_spin_up_matches_the_exact_solution():
    """From rest the forced flow stays a function of y: w(t) = -4 cos(4y) (1 - e^{-c t}) / c, c = 16 nu + drag."""
    nu, drag, T = 0.02, 0.3, 1.0
    solver = NavierStokes2D(16, viscosity=nu, drag=drag, dt=1e-3)
    x, y = solver.grid()
    c = 16 * nu + drag
    exact = -4 * torch.cos(4 * y) * (1 - math.exp(-c * T)) / c
    wT = solver.evolve(torch.zeros(1, 16, 16, dtype=F64), T)[0]
    assert ((wT - exact).norm() / exact.norm()).item() <= 1e-6
    laminar = -4 * torch.cos(4 * y) / c  # and the laminar flow is steady
    assert ((solver.evolve(laminar, T) - laminar).norm() / laminar.norm()).item() <= 1e-10


def test_rate_of_change_is_the_navier_stokes_right_hand_side():
    """(w(h) - w0) / h, Richardson-extrapolated to h -> 0, is -u.grad(w) + nu Δw - drag w - 4 cos(4y),
    computed here in advective form from an independent Poisson solve (fields band-limited
    below N/6, so the de-aliased product is exact)."""
    n, nu, drag = 32, 0.02, 0.1
    w0 = band_limited(random_field(n, batch=2, seed=12, amplitude=3.0), 5)
    kx, ky = wavenumbers(n)
    k2 = kx**2 + ky**2
    psi = torch.fft.ifft2(torch.where(k2 > 0, torch.fft.fft2(w0) / k2.clamp(min=1), 0)).real
    psi_x, psi_y = spectral_derivatives(psi)
    w_x, w_y = spectral_derivatives(w0)
    laplacian = torch.fft.ifft2(-k2 * torch.fft.fft2(w0)).real
    solver = lambda dt: NavierStokes2D(n, viscosity=nu, drag=drag, dt=dt)  # noqa: E731
    _, y = solver(1.0).grid()
    rhs = -(psi_y * w_x - psi_x * w_y) + nu * laplacian - drag * w0 - 4 * torch.cos(4 * y)
    rate = lambda h: (solver(h).evolve(w0, h) - w0) / h  # noqa: E731
    extrapolated = 2 * rate(5e-4) - rate(1e-3)
    assert ((extrapolated - rhs).norm() / rhs.norm()).item() < 1e-5


def test_advection_feeds_no_mode_beyond_the_two_thirds_cut():
    """With a field inside |k_x|, |k_y| < N/3 the 2/3 rule keeps every mode beyond exactly zero
    (unforced), though the product w u has modes up to twice as high that would alias back."""
    n = 32
    w0 = band_limited(random_field(n, batch=2, seed=13, amplitude=3.0), 10)
    wT = NavierStokes2D(n, viscosity=1e-3, forcing=None, dt=0.01).evolve(w0, 0.5)
    assert (wT - w0).norm() > 0.3 * w0.norm()
    kx, ky = wavenumbers(n)
    w_hat = torch.fft.fft2(wT)
    assert w_hat[..., (kx.abs() > 10) | (ky.abs() > 10)].abs().max() <= 1e-12 * w_hat.abs().max()


def test_second_order_convergence_in_time():
    """Error against a fine-step reference falls ~4x per halving of dt on an unforced flow whose
    change over T is mostly advection (viscosity alone would change it by a few per cent)."""
    solver = lambda dt: NavierStokes2D(32, viscosity=0.01, forcing=None, dt=dt)  # noqa: E731
    w0 = random_field(32, batch=2, seed=1, amplitude=2.0)
    T = 0.5
    reference = solver(0.01 / 32).evolve(w0, T)
    assert (reference - w0).norm() > 0.5 * w0.norm()
    errors = [(solver(dt).evolve(w0, T) - reference).norm().item() for dt in (0.01, 0.005, 0.0025)]
    orders = [math.log2(errors[i] / errors[i + 1]) for i in range(2)]
    assert all(1.7 <= p <= 2.3 for p in orders), (errors, orders)


def test_velocity_is_divergence_free_and_its_curl_is_the_vorticity():
    solver = NavierStokes2D(32)
    x, y = solver.grid()
    u, v = solver.velocity(2 * torch.sin(x) * torch.sin(y))  # Taylor-Green, in closed form
    assert torch.allclose(u, torch.sin(x) * torch.cos(y), atol=1e-13)
    assert torch.allclose(v, -torch.cos(x) * torch.sin(y), atol=1e-13)

    w = without_nyquist(random_field(32, batch=3, seed=2, amplitude=3.0)) + 0.7  # velocity() drops Nyquist modes
    u, v = solver.velocity(w)
    u_x, u_y = spectral_derivatives(u)
    v_x, v_y = spectral_derivatives(v)
    assert (u_x + v_y).abs().max() <= 1e-12 * w.abs().max()
    curl = v_x - u_y
    assert torch.allclose(curl, w - w.mean((-2, -1), keepdim=True), atol=1e-12)
    psi = solver.stream_function(w)  # -Δpsi = w - mean(w), psi mean-zero
    psi_x, psi_y = spectral_derivatives(psi)
    assert torch.allclose(u, psi_y, atol=1e-12) and torch.allclose(v, -psi_x, atol=1e-12)


def test_mean_vorticity_is_conserved_under_forcing():
    solver = NavierStokes2D(32, viscosity=0.01, dt=0.01)
    w0 = random_field(32, batch=2, seed=3, amplitude=4.0) + torch.tensor([0.7, -2.0], dtype=F64)[:, None, None]
    wT = solver.evolve(w0, 1.0)
    assert (wT - w0).abs().max() > 1.0
    assert torch.allclose(wT.mean((-2, -1)), torch.tensor([0.7, -2.0], dtype=F64), rtol=0, atol=1e-12)


def test_solver_rejects_mismatched_fields():
    with pytest.raises(ValueError, match="resolution 16"):
        NavierStokes2D(16).evolve(torch.zeros(1, 32, 32, dtype=F64), 0.1)


# ---------------------------------------------------------------- the observation operator


def test_observation_reads_the_evolved_field_at_the_sensors():
    solver = NavierStokes2D(32, dt=0.01)
    x = random_field(32, batch=2, seed=4)[:, None] / 2
    field = solver.evolve(2 * x[:, 0], 0.2)

    grid = NavierStokesObservation.subgrid(solver, T=0.2, stride=4, scale=2.0)
    assert grid.output_shape((1, 32, 32)) == (1, 8, 8)
    assert torch.equal(grid(x), field[:, None, ::4, ::4])

    points = NavierStokesObservation.random_sensors(solver, 50, seeded(5), T=0.2, scale=2.0)
    again = NavierStokesObservation.random_sensors(solver, 50, seeded(5), T=0.2, scale=2.0)
    assert torch.equal(points.rows, again.rows) and torch.equal(points.cols, again.cols)
    flat = points.rows * 32 + points.cols
    assert flat.unique().numel() == 50
    y = points(x)
    assert y.shape == (2, 1, 50)
    assert torch.equal(y[:, 0], field.flatten(1)[:, flat])
    assert points(x.float()).dtype == torch.float32


def test_observation_batch_equals_samples_one_by_one_and_counts_each():
    operator = NavierStokesObservation.subgrid(NavierStokes2D(32, dt=0.01), T=0.3, stride=2)
    x = random_field(32, batch=3, seed=6, amplitude=3.0)[:, None]
    with counting() as counts:
        batch = operator(x)
    assert counts.operator_evals == 3
    single = torch.cat([operator(x[i:i + 1]) for i in range(3)])
    assert torch.allclose(batch, single, rtol=0, atol=1e-12)


def test_observation_gradient_matches_finite_differences():
    solver = NavierStokes2D(16, viscosity=0.02, dt=0.01)
    operator = NavierStokesObservation.random_sensors(solver, 12, seeded(7), T=0.03, scale=3.0)
    x = random_field(16, batch=2, seed=8)[:, None].requires_grad_(True)
    assert torch.autograd.gradcheck(operator, (x,), eps=1e-6, atol=1e-7, rtol=1e-5)


def test_observation_rejects_bad_shapes_and_sensors():
    solver = NavierStokes2D(16)
    with pytest.raises(ValueError, match="shape"):
        NavierStokesObservation.subgrid(solver)(torch.zeros(1, 2, 16, 16, dtype=F64))
    with pytest.raises(ValueError, match="stride"):
        NavierStokesObservation.subgrid(solver, stride=3)
    with pytest.raises(ValueError, match="n_sensors"):
        NavierStokesObservation.random_sensors(solver, 257, seeded(0))


# ---------------------------------------------------------------- random fields and data


def test_random_field_follows_its_covariance():
    """Per shell, the empirical variance of the Fourier coefficients is the prescribed
    sigma² (|k|² + tau²)^(-alpha); the fitted power law is -2 alpha; the point variance is sum_k lambda_k."""
    n, samples = 32, 400
    field = GaussianRandomField(resolution=n, alpha=2.5, tau=1.0)
    w = field.sample(samples, seeded(9))
    assert w.mean((-2, -1)).abs().max() < 1e-12
    empirical = (torch.fft.rfft2(w).abs() ** 2).mean(0) / n**4
    prescribed = field.variance()
    k = (torch.fft.fftfreq(n, 1 / n)[:, None] ** 2 + torch.fft.rfftfreq(n, 1 / n)[None, :] ** 2).sqrt().round()
    shells = torch.arange(1, n // 2)
    ratio = torch.stack([empirical[k == s].sum() / prescribed[k == s].sum() for s in shells])
    assert ((ratio - 1).abs() < 0.1).all(), ratio
    power = torch.stack([empirical[k == s].mean() for s in shells])
    fit = slice(5, None)  # |k| >= 6 >> tau
    slope = torch.linalg.lstsq(torch.stack([shells[fit].log().to(F64), torch.ones(len(shells[fit]), dtype=F64)], 1),
                               power[fit].log()[:, None]).solution[0].item()
    assert abs(slope - (-2 * 2.5)) < 0.2, slope
    assert abs(w.var().item() / field.point_variance() - 1) < 0.05


def test_random_field_is_deterministic_for_a_generator():
    field = GaussianRandomField(resolution=16)
    assert torch.equal(field.sample(3, seeded(1)), field.sample(3, seeded(1)))
    assert not torch.equal(field.sample(3, seeded(1)), field.sample(3, seeded(2)))


def test_data_generator_is_deterministic_for_a_seed():
    solver = NavierStokes2D(16, dt=0.02)
    make = lambda seed, batch_size=256: ns_vorticity_fields(  # noqa: E731
        5, seed=seed, solver=solver, burn_in=0.2, batch_size=batch_size)
    first = make(0)
    assert first.shape == (5, 1, 16, 16) and first.dtype == torch.float32
    assert torch.equal(first, make(0))
    assert torch.allclose(first, make(0, batch_size=2), rtol=0, atol=1e-6)
    assert not torch.allclose(first, make(1))
    w0 = GaussianRandomField(resolution=16).sample(5, seeded(0))  # the recipe, spelled out
    expected = solver.evolve(w0, 0.2) / VORTICITY_SCALE
    assert torch.allclose(first[:, 0], expected.float(), rtol=0, atol=1e-6)


def test_energy_spectrum_of_single_modes_and_parseval():
    n = 32
    t = torch.arange(n, dtype=F64) * 2 * math.pi / n
    y, x = torch.meshgrid(t, t, indexing="ij")
    # cos(3x): psi = cos(3x)/9, v = sin(3x)/3, energy <v²>/2 = 1/36, all in shell 3.
    # sin(x + 2y): |k| = sqrt 5 -> shell 2, psi = w/5, |u|² = cos²(x + 2y)/5, energy 1/20.
    k, E = energy_spectrum(torch.stack([torch.cos(3 * x), torch.sin(x + 2 * y)]))
    assert torch.equal(k[:3], torch.tensor([1.0, 2.0, 3.0], dtype=F64))
    expected = torch.zeros_like(E)
    expected[0, 2], expected[1, 1] = 1 / 36, 1 / 20
    assert torch.allclose(E, expected, atol=1e-15)

    w = without_nyquist(random_field(n, batch=2, seed=10, amplitude=3.0))
    u, v = NavierStokes2D(n).velocity(w)
    assert torch.allclose(energy_spectrum(w)[1].sum(-1), 0.5 * (u**2 + v**2).mean((-2, -1)), rtol=1e-12)


def test_vorticity_histogram_estimates_the_density():
    values = torch.randn(200_000, generator=seeded(11), dtype=F64)
    edges, density = vorticity_histogram(values, bins=40, value_range=(-2.0, 2.0))
    centres = (edges[1:] + edges[:-1]) / 2
    gaussian = torch.exp(-centres**2 / 2) / math.sqrt(2 * math.pi)
    assert torch.allclose(density, gaussian, atol=0.01)
    inside = ((values >= -2) & (values <= 2)).double().mean()
    assert torch.allclose((density * (edges[1] - edges[0])).sum(), inside, atol=1e-12)


@pytest.mark.slow
def test_default_data_have_roughly_unit_std_and_a_resolved_spectrum():
    fields = ns_vorticity_fields(16, seed=0)
    assert 0.7 < fields.std().item() < 1.2
    _, E = energy_spectrum(fields[:, 0].double())
    E = E.mean(0)
    assert E[20] < 1e-3 * E.max()  # k = 21, the 2/3-rule cut-off: 4 decades below the peak
    kx, ky = wavenumbers(64)
    beyond = torch.fft.fft2(fields[:, 0].double())[..., (kx.abs() > 21) | (ky.abs() > 21)]
    assert beyond.abs().max() < 1e-6 * torch.fft.fft2(fields[:, 0].double()).abs().max()
