"""RED-diff (Mardani, Song, Kautz & Vahdat, ICLR 2024: "A variational perspective on solving inverse
problems with diffusion models").

Variational inference with a point mass ``q(x0) = delta(x0 - mu)``: ``mu`` minimises the data misfit plus
the score-matching regulariser, a denoising diffusion loss summed over the noise levels, by stochastic
optimisation with Adam, one noise level per step along the schedule (descending, as in the paper).
At step ``i``, with fresh noise ``eps``:

    x_i  = mu + sigma_i eps                              (the VP ``alpha_t mu + sigma_t eps`` in VE form)
    eps_pred = (x_i - D(x_i, sigma_i)) / sigma_i         (the denoiser's noise prediction)
    loss(mu) = ||y - A(mu)||^2 / (2 m) + lambda_i <stopgrad(eps_pred - eps), mu> / n
    mu <- Adam step on loss(mu)

with ``lambda_i = lam * sigma_i``: the paper's weighting by the inverse signal-to-noise ratio
``sigma_t / alpha_t`` of the VP process, which is ``sigma`` in VE form, and the two terms averaged over
the ``m`` measurements and the ``n`` values of a sample, as in the paper's code (its ``obs_weight = 1``):
the paper's ``||y - f(mu)||^2 / (2 sigma_v^2)`` with ``sigma_v^2 = m / n``, not the noise variance.
Measured on the digits restore problems, weighting by the true ``1 / sigma_y^2`` (with the
``lam`` best at noise 0.05) leaves 4x super-resolution at noise 0.2 2 dB below the baseline; this
weighting puts it 3 dB above. The regulariser's gradient is
``lambda_i (eps_pred - eps)``: nothing backpropagates through the denoiser, and only the data term is
differentiated (through the operator, which may be nonlinear). The result is ``mu``.

Where to start. ``mu`` starts from the measurement where there is a classical estimate ``b`` of the
image from ``y`` alone (``baselines.measurement_baseline``: interpolation, bicubic upsampling, the
measurement): for a linear operator at the regularised least-squares solution nearest to it,
``(A^T A + sigma_y^2 I)^{-1} (A^T y + sigma_y^2 b)`` (the paper's code takes ``A^+ y``, which blows up
the noise of an ill-conditioned blur), for a nonlinear one at ``b``, and on a latent prior at the
encoding of that image. From such a start only the schedule's noise levels at or below ``start_sigma``
are run (as diffusers' image-to-image ``strength`` skips the first steps; the skipped ones cost
nothing). Without one, ``mu`` starts at the denoiser's estimate ``D(x, sigma_0)`` of the initial
state (one more forward pass) and the whole schedule runs. Why: Adam moves every coordinate by about
``lr`` a step whatever the gradient's scale, so where the data term is silent (a missing pixel) the
regulariser's pull ``lam (mu - D(x_i, sigma_i))`` towards the high-noise estimates (about the data
mean) erases any start. Measured at 50 steps with the whole schedule and ``lr = 0.1``, the photos
random-inpainting crops fall from the interpolation's 25.6 dB to 10 dB by ``sigma = 10`` and end at
21.2 dB; from ``sigma = 1`` with ``lr = 0.02`` they end at 24.9 dB (with ``lr = 0.01`` at 25.5), and
the 4 digits of every restore operator at noise 0.01-0.2, 50 and 100 steps, 0.7 to 15 dB over the
baseline (with the whole schedule, ``lr = 0.1`` and a start at ``(A^T A + sigma_y^2 I)^{-1} A^T y``, a
single digit's random inpainting ended at 16.2 dB against the interpolation's 20.7).

Hyper-parameters (defaults): ``lam`` (0.0625; with the paper's 0.25, digits 2x super-resolution at
noise 0.2 is 0.13 dB over the baseline, with 0.0625 0.56 dB), ``lr`` (Adam's learning rate, 0.02; the
paper's 0.5 is for 1000 steps; on the exact Gaussian posterior of ``tests/test_red_diff.py`` at 200
steps a run's ``mu`` is 0.27 from the posterior mode at 0.02, 0.29 at 0.01 and 0.03, 0.46 at 0.1),
``start_sigma`` (1.0, for data of about unit scale), ``beta1``, ``beta2`` (Adam's, 0.9 and 0.99 as in
the paper's code).

Requires a ``GaussianLikelihood`` with a differentiable operator. Cost: one denoiser forward pass per
step run (plus one at the start when there is no classical estimate), no backward pass through the
network, one operator evaluation and gradient per step run and sample.
"""
from __future__ import annotations

import dataclasses

import torch

from ..baselines import measurement_baseline
from ..operators.base import LinearOperator
from ..rewards.decoded import split_decoding
from ..validation import Number, non_negative, positive
from .base import Solver
from .likelihood_checks import require_gaussian
from .daps import likelihood_gradient

beta = Number(0.0, 1.0, high_open=True)


@dataclasses.dataclass(frozen=True, kw_only=True)
class REDDiff(Solver):
    """RED-diff (Mardani et al., ICLR 2024): Adam on the mean ``mu`` of a point-mass variational
    posterior; rule, start and defaults in the module docstring.

    Parameters: ``lam`` (weight of the score-matching regulariser, scaled by ``sigma_i``; 0.0625), ``lr``
    (Adam's learning rate, 0.02), ``start_sigma`` (the highest noise level run when ``mu`` starts from
    the measurement; 1.0), ``beta1`` and ``beta2`` (Adam's moment decays, 0.9 and 0.99).
    Requires a ``GaussianLikelihood`` with a differentiable operator.
    """

    needs = "gradient"
    limits = {"lam": non_negative.about("the regulariser's weight"), "lr": positive.about("Adam's learning rate"),
              "start_sigma": positive.about("the highest noise level run from a start made from the measurement"),
              "beta1": beta, "beta2": beta}

    lam: float = 0.0625
    lr: float = 0.02
    start_sigma: float = 1.0
    beta1: float = 0.9
    beta2: float = 0.99

    def check(self, denoiser, reward, x, sigmas) -> None:
        super().check(denoiser, reward, x, sigmas)
        require_gaussian("REDDiff", reward, "its data term is ||y - A(mu)||^2 / 2 sigma_y^2")

    def initial_mean(self, run, reward, x: torch.Tensor) -> tuple[torch.Tensor, bool]:
        """``(mu_0, from the measurement)``: the start made from the classical estimate of the image
        (module docstring), or the denoiser's estimate of the initial state where there is none."""
        operator, decoding = split_decoding(reward.operator)
        image_shape = decoding.output_shape(tuple(x.shape[1:])) if decoding is not None else tuple(x.shape[1:])
        y = reward.y.to(x.dtype).expand(x.shape[0], *reward.y.shape[1:])
        estimate = measurement_baseline(operator, y, image_shape)
        if estimate is None:
            return run.denoise(x, run.sigmas[0]), False
        image = estimate[1].to(x.dtype)
        if isinstance(operator, LinearOperator):
            image = operator.regularised_solve(y, image, reward.sigma_y**2)
        return (decoding.prior.encode(image) if decoding is not None else image), True

    def sample(self, run, reward, x):
        mu, from_measurement = self.initial_mean(run, reward, x)
        mu = mu.detach().requires_grad_(True)
        values, measurements = x[0].numel(), reward.y[0].numel()
        optimizer = torch.optim.Adam([mu], lr=self.lr, betas=(self.beta1, self.beta2))
        for i, sigma, sigma_next in run.steps():
            if from_measurement and float(sigma) > self.start_sigma:
                run.record(i, sigma_next, mu.detach(), mu.detach())
                continue
            noise = run.noise_like(x)
            x_t = mu.detach() + sigma * noise
            x0 = run.denoise(x_t, sigma)
            noise_pred = (x_t - x0) / sigma
            data = likelihood_gradient(reward, mu.detach()) * (reward.sigma_y**2 * values / measurements)
            mu.grad = self.lam * sigma * (noise_pred - noise) - data
            optimizer.step()
            run.record(i, sigma_next, mu.detach(), x0)
        return mu.detach()
