"""Calibrated off-the-shelf classifier guidance (EluCD): the calibrated log-probability, the Softplus
swap, and two steps written out against the VP update of the paper's code in VE variables."""
import math

import pytest
import torch
from torch import nn

from diffguide.counting import counting
from diffguide.priors import GaussianPrior
from diffguide.rewards.classifier import ClassifierReward
from diffguide.rewards.base import Reward
from diffguide.solvers.calibrated_classifier_guidance import (CalibratedClassifierGuidance, calibrated_log_prob,
                                                              smoothed)
from diffguide.solvers.ddim import DDPM
from diffguide.solvers.steps import ddim_step


class _LinearClassifier(nn.Module):
    """Logits ``W x`` (plus a ReLU branch, so the Softplus swap has something to replace when asked)."""

    n_classes, input_shape = 3, (4,)

    def __init__(self, relu: bool = False):
        super().__init__()
        self.weight = torch.tensor([[1.0, -0.5, 0.2, 0.0], [0.0, 1.0, -1.0, 0.5], [-0.3, 0.2, 0.4, -1.0]])
        self.act = nn.ReLU() if relu else nn.Identity()

    def forward(self, x):
        return self.act(x) @ self.weight.T


def test_the_calibrated_log_prob_is_the_joint_logit_minus_the_tempered_normaliser():
    logits = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    label = torch.tensor([0, 1, 2, 3, 0])
    torch.testing.assert_close(calibrated_log_prob(logits, label, 1.0, 1.0),
                               torch.log_softmax(logits, 1)[torch.arange(5), label])
    expected = 2.0 * logits[torch.arange(5), label] - torch.log(torch.exp(0.5 * logits).sum(1))
    torch.testing.assert_close(calibrated_log_prob(logits, label, 2.0, 0.5), expected)


def test_softplus_replaces_relu_in_a_copy_and_leaves_relu_free_classifiers_alone():
    net = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Sequential(nn.Linear(3, 2), nn.ReLU()))
    smooth = smoothed(net, 3.0)
    assert sum(isinstance(m, nn.Softplus) and m.beta == 3.0 for m in smooth.modules()) == 2
    assert not any(isinstance(m, nn.ReLU) for m in smooth.modules())
    assert sum(isinstance(m, nn.ReLU) for m in net.modules()) == 2  # the original is untouched
    assert smoothed(net, math.inf) is net
    plain = nn.Sequential(nn.Linear(3, 3), nn.SiLU())
    assert smoothed(plain, 3.0) is plain


@pytest.mark.parametrize("relu", [False, True])
def test_two_steps_are_the_ddpm_step_plus_the_scheduled_vp_mean_shift(relu):
    prior = GaussianPrior(torch.tensor([0.5, -0.2, 0.1, 0.3]), torch.diag(torch.tensor([1.0, 0.5, 0.8, 0.3])))
    classifier = _LinearClassifier(relu)
    reward = ClassifierReward(classifier, 1)
    sigmas = torch.tensor([3.0, 1.0, 0.4, 0.0])
    x = 3.0 * torch.randn(6, 4, generator=torch.Generator().manual_seed(1))
    solver = CalibratedClassifierGuidance(scale=2.0, gamma=0.3)
    with counting() as counts:
        out = solver(prior, reward, x, sigmas, generator=torch.Generator().manual_seed(2))
    assert counts.nfe == 3 and counts.grad_evals == 3
    g, state, peak = torch.Generator().manual_seed(2), x, 0.0
    smooth = smoothed(classifier, 3.0)
    for i in range(3):
        sigma, nxt = sigmas[i], sigmas[i + 1]
        x0 = prior(state, sigma).detach().requires_grad_(True)
        log_p = 1.0 * smooth(x0)[:, 1] - torch.logsumexp(0.5 * smooth(x0), 1)
        (grad,) = torch.autograd.grad(log_p.sum(), x0)
        variance = nxt**2 * (sigma**2 - nxt**2) / (sigma**2 * (1 + nxt**2))  # the VP posterior variance
        peak = max(peak, float(variance))
        boost = 0.3 * math.sin(math.pi * (3 - 1 - i) / 3) * peak
        state = ddim_step(state, x0.detach(), sigma, nxt, 1.0, torch.randn(6, 4, generator=g))
        state = state + 2.0 * (variance + boost) * torch.sqrt(1 + nxt**2) * grad
    torch.testing.assert_close(out, state)


class _SumReward(Reward):
    differentiable = True

    def forward(self, x0):
        return x0.sum(1)


def test_scale_zero_is_ddpm_and_other_rewards_are_refused():
    prior = GaussianPrior(torch.zeros(4), torch.eye(4))
    x, sigmas = torch.randn(3, 4, generator=torch.Generator().manual_seed(3)), torch.tensor([2.0, 0.5, 0.0])
    guided = CalibratedClassifierGuidance(scale=0.0)(prior, ClassifierReward(_LinearClassifier(), 0), x, sigmas,
                                                     generator=torch.Generator().manual_seed(4))
    plain = DDPM()(prior, None, x, sigmas, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(guided, plain)
    with pytest.raises(ValueError, match="ClassifierReward"):
        CalibratedClassifierGuidance().check(prior, _SumReward(), x, sigmas)
    with pytest.raises(ValueError, match="margin_discount"):
        CalibratedClassifierGuidance(margin_discount=0.0)
