"""DOODL, direct optimisation of diffusion latents (Wallace, Gokul, Ermon & Naik, "End-to-End
Diffusion Latent Optimization Improves Classifier Guidance", ICCV 2023).

DOODL does not guide the sampling steps: it optimises the initial noise ``x_T`` by gradient
ascent on the reward of the final sample, ``r(x_0(x_T))``, the gradient taken through the
whole deterministic sampling chain. The chain is EDICT (``edict.py``) started from the
tied pair ``(x_T, x_T)``; since each EDICT step is inverted exactly, the backward pass
rebuilds every earlier state from the later one instead of storing it, so memory does not
grow with the number of sampling steps (``InvertibleEDICT``; the paper uses MemCNN for this).

One iteration, in the unit-variance latent ``z = x_T / sqrt(1 + sigma_T^2)`` of the paper
(VP form, so the step sizes mean what they mean there):

    g = clip(lr / 4 * grad_z [r(x_0) + r(y_0)], -c, c)         element-wise clipping, c = grad_clip
    b = momentum * b + g                                        SGD momentum 0.9, no dampening
    z = z + b + xi,   xi ~ N(0, s^2 I)                          small perturbation (s: below)
    z = z * ||z_init|| / ||z||                                  norm preserved, per sample

``lr / 4``: the authors' code steps along ``-0.5`` times the loss gradient averaged over the
tied pair, i.e. a quarter of ``grad_z`` of the summed loss; their ``grad_scale`` (1) is ``lr``.
Both EDICT images are scored (``r(x_0) + r(y_0)``) and the pair stays tied. The norm is the
initial one (for a Gaussian ``||z|| ~ sqrt(dim)``), as the code's ``renormalize_latents``.
Defaults are those of the authors' code (``gen``): ``iterations = 50``, ``lr = 1``,
``momentum = 0.9``, ``grad_clip = 1e-3``, perturbation ``1e-4``, ``mix = 0.93``.

``callback`` gets one record per iteration: the updated latent ``x_T`` (at ``sigma_T``) and the
sample ``x_0`` whose reward gave the step.

Noise injection: the paper adds ``1e-4 N(0, I)`` whatever the gradient; here its standard
deviation is ``perturbation * max|g| / grad_clip`` per sample. That is the paper's ``1e-4``
whenever some element of the step is clipped (the usual case) and 0 when the gradient
vanishes, so that with a zero reward DOODL returns exactly the unguided EDICT sample of the
same noise instead of a random walk of the latent.

Requires a differentiable reward. Cost, with ``N`` sampling steps: each iteration runs the
EDICT chain forward (2N NFE, nothing stored), then the backward sweep, which per step
reconstructs the earlier state with the inverse step (2 NFE) and reuses those two denoiser
graphs for the two vector-Jacobian products (2 backward passes), plus one backward through
the reward: 4N NFE and 2N + 1 grad_evals per iteration, and a final forward chain (2N NFE)
from the optimised latent. Total ``NFE = 4 N iterations + 2 N``.
"""
from __future__ import annotations

import dataclasses

import torch

from ..types import per_sample
from ..validation import Number, flag, integer, non_negative, positive
from .edict import EDICT, edict_chain, noise_estimate
from .steps import vp_scale


def edict_backward_step(run, x, y, grad_x, grad_y, sigma, sigma_next, mix: float, swap: bool):
    """From one EDICT step's output ``(x', y')`` and the gradient with respect to it, the step's
    input ``(x, y)`` (exact inverse) and the gradient with respect to that input.

    The inverse step evaluates the denoiser at exactly the two points where the forward step
    did (``x_inter`` and ``y``), so their graphs give the step's vector-Jacobian product:
    2 NFE and 2 backward passes, one denoiser graph held at a time."""
    h = sigma_next - sigma
    # undo the mixing (13), (12) and pull the gradient back through it
    y = (y - (1 - mix) * x) / mix
    x = (x - (1 - mix) * y) / mix
    grad_x = grad_x + (1 - mix) * grad_y  # y' = p y_inter + (1 - p) x'
    grad_y = mix * grad_y + (1 - mix) * grad_x  # x' = p x_inter + (1 - p) y_inter
    grad_x = mix * grad_x
    # undo (11) b_inter = b + h eps(a_inter) and (10) a_inter = a + h eps(b), with their gradients
    a, b, grad_a, grad_b = (y, x, grad_y, grad_x) if swap else (x, y, grad_x, grad_y)

    def eps(z):
        return noise_estimate(run.denoise, z, sigma)

    eps_a, vjp = run.vjp(eps, a, grad_b)  # eps(a) and grad_b^T d eps / da: 1 NFE, 1 backward
    b = b - h * eps_a
    grad_a = grad_a + h * vjp
    eps_b, vjp = run.vjp(eps, b, grad_a)
    a = a - h * eps_b
    grad_b = grad_b + h * vjp
    return (b, a, grad_b, grad_a) if swap else (a, b, grad_a, grad_b)


class InvertibleEDICT(torch.autograd.Function):
    """``(x_T, y_T) -> (x_0, y_0)`` through the EDICT chain of ``run``'s schedule, differentiable
    with memory independent of the number of steps: the forward pass keeps only the output,
    the backward pass walks the chain in reverse with ``edict_backward_step``."""

    @staticmethod
    def forward(ctx, x, y, run, mix: float, leapfrog: bool):
        x, y = edict_chain(run.denoise, x, y, run.sigmas, mix, leapfrog)
        ctx.save_for_backward(x, y)
        ctx.run, ctx.mix, ctx.leapfrog = run, mix, leapfrog
        return x, y

    @staticmethod
    def backward(ctx, grad_x, grad_y):
        x, y = ctx.saved_tensors
        sigmas = ctx.run.sigmas
        with torch.no_grad():
            for i in reversed(range(len(sigmas) - 1)):
                x, y, grad_x, grad_y = edict_backward_step(ctx.run, x, y, grad_x, grad_y, sigmas[i], sigmas[i + 1],
                                                           ctx.mix, swap=ctx.leapfrog and i % 2 == 1)
        return grad_x, grad_y, None, None, None


@dataclasses.dataclass(frozen=True, kw_only=True)
class DOODL(EDICT):
    """DOODL (Wallace et al., ICCV 2023): EDICT sampling (``mix``, ``leapfrog``) from an initial noise
    optimised for the reward of the final sample, through the exactly invertible chain.

    Parameters (the authors' defaults): ``iterations`` (50), ``lr`` (1.0), ``momentum`` (0.9),
    ``grad_clip`` (1e-3, element-wise; it makes the step nearly independent of the reward's
    scale), ``perturbation`` (1e-4), ``renormalize`` (True). Requires a differentiable reward.
    """

    needs = "gradient"
    limits = {"iterations": integer(0), "lr": positive, "momentum": Number(0.0, 1.0, high_open=True),
              "grad_clip": positive, "perturbation": non_negative, "renormalize": flag}

    iterations: int = 50
    lr: float = 1.0
    momentum: float = 0.9
    grad_clip: float = 1e-3
    perturbation: float = 1e-4
    renormalize: bool = True

    def sample(self, run, reward, x):
        sigma_T = run.sigmas[0]
        scale = vp_scale(sigma_T)  # x_T = scale * z, z the paper's unit-variance latent
        norm = x.flatten(1).norm(dim=1)
        velocity = torch.zeros_like(x)
        def reward_of_sample(x_T):  # both images of the tied pair scored; the chain counts its own backward
            x0, y0 = InvertibleEDICT.apply(x_T, x_T, run, self.mix, self.leapfrog)
            return reward(x0) + reward(y0), x0

        for k in run.progress(self.iterations, "iterations"):
            _, x0, grad = run.gradient(reward_of_sample, x, has_aux=True)
            g = (self.lr / 4 * scale * grad).clamp(-self.grad_clip, self.grad_clip)  # grad_z, clipped
            velocity = self.momentum * velocity + g
            noise_std = self.perturbation / self.grad_clip * g.flatten(1).abs().amax(dim=1)
            x = x + scale * (velocity + per_sample(noise_std, x) * run.noise_like(x))
            if self.renormalize:
                x = x * per_sample(norm / x.flatten(1).norm(dim=1), x)
            run.record(k, sigma_T, x, x0.detach())
        x0, _ = edict_chain(run.denoise, x, x, run.sigmas, self.mix, self.leapfrog)
        return x0
