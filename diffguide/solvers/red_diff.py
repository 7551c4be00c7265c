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

Where to start. Where the measurement alone gives an image, for an operator linear on images (``A``,
or ``A`` behind a latent prior's decoder) with a classical estimate ``b`` (``baselines.measurement_baseline``:
interpolation for inpainting, bicubic upsampling for super-resolution, the measurement itself for a
blur), ``mu`` starts from the measurement: at the regularised least-squares solution nearest it,
``(A^T A + sigma_y^2 I)^{-1} (A^T y + sigma_y^2 b)``, encoded on a latent prior, and only the
schedule's noise levels at or below ``start_sigma`` run (as diffusers' image-to-image ``strength``
skips the first steps; the skipped ones cost nothing). Why: Adam moves every coordinate by about
``lr`` a step whatever the gradient's scale, so where the data term is silent (a missing pixel) the
regulariser's pull ``lam (mu - D(x_i, sigma_i))`` towards the high-noise estimates (about the data
mean) erases any start: at 50 steps over the whole schedule (``lr = 0.1``) the photos
random-inpainting crops fall from the interpolation's 25.6 dB to 10 dB by ``sigma = 10`` and end at
21.2. Otherwise (a nonlinear operator, or a linear one whose only estimate is the pseudo-inverse)
``mu`` starts at the denoiser's estimate ``D(x, sigma_0)`` of the initial state (one more forward
pass) and the schedule runs from its top. A nonlinear operator's classical estimate, such as the
inverse of a saturation, is too noisy a start (on the digits' saturated blur 13.7 dB at 250 steps,
against 29.8 from the denoiser's at 120), and a start at zero where nothing is measured (the
gmm-posterior masks and wide matrices) leaves too far to go at ``lr = 0.02`` from ``sigma = 1``.

Noise levels run. None below the measurement's noise level ``sigma_y``: there the regulariser's pull
vanishes (``D(x, sigma) - x`` is of order ``sigma^2``) and Adam fits the data term's noise (on a latent
prior the levels are the latents' and ``sigma_y`` the image's, both of about unit scale). Running
them made more steps worse: the digits' blur at noise 0.05 ended at 25.4 dB after 101 passes and 20.0
after 301, the noisy blur (0.2) at 12.4 and 6.1, below the baseline's 15.0; without them, at 29.8 and
29.3, and 20.6 and 20.5 (``docs/bench/restore_native``).

Hyper-parameters (defaults): ``lam`` (0.0625; with the paper's 0.25, digits 2x super-resolution at
noise 0.2 is 0.13 dB over the baseline, with 0.0625 0.56 dB), ``lr`` (Adam's learning rate: 0.02 from
the classical estimate, 0.1 from the denoiser's; the paper's 0.5 is for 1000 steps. From the classical
estimate, at 50 steps (about 20 passes), the photos random inpainting ends at 25.5 dB at 0.01, 24.9 at
0.02 and 24.6 at 0.03, while the digits gain up to 4 dB from 0.01 to 0.03; from the denoiser's, the
digits' saturated blur ends at 21.7 dB at 0.02 and 28.3 at 0.1, at 102 steps), ``start_sigma`` (1.0, for data of about unit scale),
``beta1``, ``beta2`` (Adam's, 0.9 and 0.99 as in the paper's code).

Requires a ``GaussianLikelihood`` with a differentiable operator. Cost: one denoiser forward pass per
step run (plus one at the start from the denoiser's estimate), no backward pass through the
network, one operator evaluation and gradient per step run and sample.
"""
from __future__ import annotations

import dataclasses
import math

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
    posterior; rule, start, noise levels run and defaults in the module docstring.

    Parameters: ``lam`` (weight of the score-matching regulariser, scaled by ``sigma_i``; 0.0625), ``lr``
    (Adam's learning rate; None: 0.02 from the classical estimate, 0.1 from the denoiser's),
    ``start_sigma`` (the highest noise level run from the classical estimate; 1.0), ``beta1`` and
    ``beta2`` (Adam's moment decays, 0.9 and 0.99). Requires a ``GaussianLikelihood`` with a
    differentiable operator.
    """

    needs = "gradient"
    limits = {"lam": non_negative.about("the regulariser's weight"),
              "lr": positive.about("Adam's learning rate").or_none(),
              "start_sigma": positive.about("the highest noise level run from the classical estimate"),
              "beta1": beta, "beta2": beta}

    lam: float = 0.0625
    lr: float | None = None
    start_sigma: float = 1.0
    beta1: float = 0.9
    beta2: float = 0.99

    def check(self, denoiser, reward, x, sigmas) -> None:
        super().check(denoiser, reward, x, sigmas)
        require_gaussian("REDDiff", reward, "its data term is ||y - A(mu)||^2 / 2 sigma_y^2")
        top = self.start_sigma if self.classical_estimate(reward, x) is not None else math.inf
        levels = sigmas[:-1]
        if not bool(((levels >= reward.sigma_y) & (levels <= top)).any()):
            raise ValueError(f"REDDiff runs the schedule's noise levels from the measurement noise sigma_y = "
                             f"{reward.sigma_y:g} up to {top:g} and this schedule has none (it spans "
                             f"{float(levels.min()):g} to {float(levels.max()):g}); give a schedule that does"
                             + (" or raise start_sigma" if math.isfinite(top) else ""))

    @staticmethod
    def classical_estimate(reward, x: torch.Tensor) -> torch.Tensor | None:
        """The image the measurement alone gives, for an operator linear on images: interpolation, bicubic
        upsampling or the measurement itself (``baselines.measurement_baseline``); None otherwise."""
        operator, decoding = split_decoding(reward.operator)
        if not isinstance(operator, LinearOperator):
            return None
        image_shape = decoding.output_shape(tuple(x.shape[1:])) if decoding is not None else tuple(x.shape[1:])
        y = reward.y.to(x.dtype).expand(x.shape[0], *reward.y.shape[1:])
        estimate = measurement_baseline(operator, y, image_shape)
        return None if estimate is None or estimate[0] == "pseudo-inverse" else estimate[1].to(x.dtype)

    def initial_mean(self, run, reward, x: torch.Tensor, estimate: torch.Tensor | None) -> torch.Tensor:
        """The regularised solution nearest the classical ``estimate`` (encoded on a latent prior), or without
        one the denoiser's estimate of the initial state (module docstring)."""
        if estimate is None:
            return run.denoise(x, run.sigmas[0])
        operator, decoding = split_decoding(reward.operator)
        y = reward.y.to(x.dtype).expand(x.shape[0], *reward.y.shape[1:])
        image = operator.regularised_solve(y, estimate, reward.sigma_y**2)
        return decoding.prior.encode(image) if decoding is not None else image

    def sample(self, run, reward, x):
        estimate = self.classical_estimate(reward, x)
        top = self.start_sigma if estimate is not None else math.inf
        lr = self.lr if self.lr is not None else (0.02 if estimate is not None else 0.1)
        mu = self.initial_mean(run, reward, x, estimate).detach().requires_grad_(True)
        values, measurements = x[0].numel(), reward.y[0].numel()
        optimizer = torch.optim.Adam([mu], lr=lr, betas=(self.beta1, self.beta2))
        for i, sigma, sigma_next in run.steps():
            if not reward.sigma_y <= float(sigma) <= top:
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
