"""The guidance window of step fractions as a noise interval: ``NoiseInterval.of_steps``."""
import pytest
import torch

from diffguide.guidance.interval import NoiseInterval
from diffguide.schedules import karras_sigmas


@pytest.mark.parametrize("steps", [1, 2, 7, 10, 13, 100])
@pytest.mark.parametrize("start,stop", [(0.0, 1.0), (0.3, 0.7), (0.25, 0.75), (0.05, 0.95), (0.25, 1.0),
                                        (0.0, 0.5), (0.5, 0.5), (0.0, 0.0), (1.0, 1.0), (0.33, 0.67), (0.99, 1.0)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_interval_holds_exactly_the_steps_of_the_window(steps, start, stop, dtype):
    sigmas = karras_sigmas(steps, 2e-3, 80.0).to(dtype)
    interval = NoiseInterval.of_steps(sigmas, start, stop)
    inside = [bool(interval.contains(sigmas[i])) for i in range(steps)]
    assert inside == [start <= i / steps < stop for i in range(steps)]


def test_ends_are_schedule_levels_and_an_empty_window_lies_above_the_schedule():
    sigmas = torch.tensor([8.0, 4.0, 2.0, 1.0, 0.0])
    assert NoiseInterval.of_steps(sigmas, 0.0, 1.0) == NoiseInterval(0.0, 8.0)  # every step: (sigma_N, sigma_0]
    assert NoiseInterval.of_steps(sigmas, 0.25, 0.75) == NoiseInterval(1.0, 4.0)  # steps 1 and 2
    assert NoiseInterval.of_steps(sigmas, 0.3, 0.7) == NoiseInterval(1.0, 2.0)  # step 2 only
    empty = NoiseInterval.of_steps(sigmas, 0.5, 0.5)
    assert empty == NoiseInterval(8.0, float("inf")) and not bool(empty.contains(sigmas).any())


def test_a_window_of_whole_steps_is_given_exactly_by_its_fractions():
    """``of_steps(sigmas, k / N, m / N)`` holds the steps ``k <= i < m``: how a window counted in steps
    (Readout Guidance's, rounded down) is written as fractions."""
    for steps in (1, 3, 7, 10, 99, 1000):
        sigmas = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
        for first in range(steps + 1):
            interval = NoiseInterval.of_steps(sigmas, first / steps, 1.0)
            assert int(interval.contains(sigmas[:-1]).sum()) == steps - first
