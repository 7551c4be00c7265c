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
differentiated (through the operator, which may be nonlinear). ``mu`` starts, for a linear operator, at the
regularised pseudo-inverse ``(A^T A + sigma_y^2 I)^{-1} A^T y`` (the paper's code takes ``A^+ y``, which
blows up the noise of an ill-conditioned blur) and at the denoiser's estimate ``D(x, sigma_0)`` of the
initial state otherwise (one more forward pass). The result is ``mu``.

Hyper-parameters (defaults): ``lam`` (0.0625; with the paper's 0.25, digits 2x super-resolution at
noise 0.2 is 0.13 dB over the baseline, with 0.0625 0.56 dB), ``lr`` (Adam's learning
rate, 0.1; the paper's 0.5, for 1000 steps, is noisier at 50-100 steps), ``beta1``, ``beta2`` (Adam's,
0.9 and 0.99 as in the paper's code).

Requires a ``GaussianLikelihood`` with a differentiable operator. Cost: one denoiser forward pass per
step (plus one at the start for a nonlinear operator), no backward pass through the network, one
operator evaluation and gradient per step and sample.
"""
from __future__ import annotations

import dataclasses

import torch

from ..operators.base import LinearOperator
from ..validation import Number, non_negative, positive
from .base import Solver
from .likelihood_checks import require_gaussian
from .daps import likelihood_gradient

beta = Number(0.0, 1.0, high_open=True)


@dataclasses.dataclass(frozen=True, kw_only=True)
class REDDiff(Solver):
    """RED-diff (Mardani et al., ICLR 2024): Adam on the mean ``mu`` of a point-mass variational
    posterior; rule and defaults in the module docstring.

    Parameters: ``lam`` (weight of the score-matching regulariser, scaled by ``sigma_i``; 0.0625), ``lr``
    (Adam's learning rate, 0.1), ``beta1`` and ``beta2`` (Adam's moment decays, 0.9 and 0.99).
    Requires a ``GaussianLikelihood`` with a differentiable operator.
    """

    needs = "gradient"
    limits = {"lam": non_negative.about("the regulariser's weight"), "lr": positive.about("Adam's learning rate"),
              "beta1": beta, "beta2": beta}

    lam: float = 0.0625
    lr: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99

    def check(self, denoiser, reward, x, sigmas) -> None:
        super().check(denoiser, reward, x, sigmas)
        require_gaussian("REDDiff", reward, "its data term is ||y - A(mu)||^2 / 2 sigma_y^2")

    def initial_mean(self, run, reward, x: torch.Tensor) -> torch.Tensor:
        """``(A^T A + sigma_y^2 I)^{-1} A^T y`` for a linear operator, else the denoiser's estimate of the
        initial state."""
        if isinstance(reward.operator, LinearOperator):
            y = reward.y.to(x.dtype).expand(x.shape[0], *reward.y.shape[1:])
            return reward.operator.regularised_solve(y, torch.zeros_like(x), reward.sigma_y**2)
        return run.denoise(x, run.sigmas[0])

    def sample(self, run, reward, x):
        mu = self.initial_mean(run, reward, x).detach().requires_grad_(True)
        values, measurements = x[0].numel(), reward.y[0].numel()
        optimizer = torch.optim.Adam([mu], lr=self.lr, betas=(self.beta1, self.beta2))
        for i, sigma, sigma_next in run.steps():
            noise = run.noise_like(x)
            x_t = mu.detach() + sigma * noise
            x0 = run.denoise(x_t, sigma)
            noise_pred = (x_t - x0) / sigma
            data = likelihood_gradient(reward, mu.detach()) * (reward.sigma_y**2 * values / measurements)
            mu.grad = self.lam * sigma * (noise_pred - noise) - data
            optimizer.step()
            run.record(i, sigma_next, mu.detach(), x0)
        return mu.detach()
