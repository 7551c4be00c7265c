"""A black-box forward model: any Python callable on NumPy arrays as an ``Operator``.

``BlackBox(fn)`` takes a torch batch (B, *input_shape), hands it to ``fn`` as NumPy through an
executor (``diffguide.executors``: in process by default, or a process pool or a Dask cluster
for an expensive simulator), and returns a torch batch (B, *output_shape) in the input's dtype
and on its device. ``fn`` maps one sample to its measurement, or with ``batched=True`` a
(J, *input_shape) array to (J, *output_shape).

No gradient flows through it (``differentiable = False``): a backward pass that reaches it
raises. Only derivative-free solvers, which need operator values alone, can use it.

Faults: a sample whose evaluation raised, returned NaN/Inf or ran past ``timeout`` seconds is
tried ``retries`` more times and then comes back as a row of NaN. The NaN row is the failure
channel: it carries through any likelihood (``log_prob`` of a NaN prediction is NaN), so a
derivative-free solver keeps the particles with a finite reward or measurement
(``torch.isfinite(r)``) and leaves the failed ones out of its update, with no side channel to
thread through rewards or compositions. Legitimate outputs are never NaN (NaN/Inf outputs are
failures themselves), so a NaN row means "failed" and nothing else. For reporting,
``last_failures`` holds the (B,) mask of the latest call, and ``total_failures`` /
``total_retries`` add up failed samples and retried calls over the operator's life.
``operator_evals`` counts one per sample, as for every operator; retries are not in it.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

from ..counting import count, note_failures
from ..executors import Executor, InProcess
from ..validation import flag, integer, positive
from .base import Operator


class _NoGradient(torch.autograd.Function):
    """Identity on the black box's output whose backward pass raises."""

    @staticmethod
    def forward(ctx, x, y, name):
        ctx.name = name
        return y.clone()

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError(f"cannot backpropagate through the black-box operator {ctx.name} (differentiable=False): "
                           "use a derivative-free solver, or a differentiable operator for gradient guidance")


class BlackBox(Operator):
    """A Python callable on NumPy arrays as a forward model that is never differentiated.

    ``fn`` maps one sample (*input_shape) to its measurement, or with ``batched=True`` a
    (J, *input_shape) array to (J, *output_shape). It runs on ``executor`` (default
    ``InProcess()``; a ``ProcessPool`` or ``DaskExecutor`` for an expensive simulator).
    ``input_shape`` is checked when given; ``output_shape`` is learnt from the first success
    when not. A sample that raises, returns NaN/Inf or runs past ``timeout`` seconds (default
    None: no limit) is tried ``retries`` more times (default 0) and then returned as a NaN row.
    For derivative-free solvers only (EnKG, SCG, DPS-GSG, best-of-N): a backward pass raises.
    """

    differentiable = False

    def __init__(self, fn: Callable, *, batched: bool = False, executor: Executor | None = None,
                 input_shape: Sequence[int] | None = None, output_shape: Sequence[int] | None = None,
                 retries: int = 0, timeout: float | None = None):
        super().__init__()
        if not callable(fn):
            raise ValueError(f"BlackBox needs a callable fn on NumPy arrays, got {type(fn).__name__}")
        flag("BlackBox batched", batched)
        integer(0)("BlackBox retries", retries)
        if timeout is not None:
            positive("BlackBox timeout (seconds, or None for no limit)", timeout)
        for name, shape in (("input_shape", input_shape), ("output_shape", output_shape)):
            for size in shape or ():
                integer(1)(f"BlackBox {name} entries", size)
        self.fn, self.batched, self.retries, self.timeout = fn, batched, retries, timeout
        self.executor = executor if executor is not None else InProcess()
        self.in_shape = None if input_shape is None else tuple(input_shape)
        self.out_shape = None if output_shape is None else tuple(output_shape)  # else learnt from the first success
        self.last_failures: torch.Tensor | None = None
        self.total_failures = 0
        self.total_retries = 0

    @property
    def name(self) -> str:
        return getattr(self.fn, "__name__", None) or getattr(getattr(self.fn, "func", None), "__name__", repr(self.fn))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(tuple(x.shape[1:]))
        evaluation = self.executor.evaluate(self.fn, x.detach().cpu().numpy(), batched=self.batched,
                                            retries=self.retries, timeout=self.timeout, output_shape=self.out_shape)
        if self.out_shape is None and evaluation.failures < len(x):
            self.out_shape = tuple(evaluation.values.shape[1:])
        self.last_failures = torch.from_numpy(evaluation.failed).to(x.device)
        self.total_failures += evaluation.failures
        self.total_retries += evaluation.retries
        count("operator_failures", evaluation.failures)
        count("operator_retries", evaluation.retries)
        note_failures(reason for reason, failed in zip(evaluation.errors, evaluation.failed) if failed)
        y = torch.from_numpy(evaluation.values).to(device=x.device, dtype=x.dtype)
        if torch.is_grad_enabled() and x.requires_grad:
            y = _NoGradient.apply(x, y, self.name)
        return y

    def output_shape(self, input_shape):
        """The given ``output_shape``, or the one found by a single (uncounted) evaluation on zeros."""
        self._check_input(tuple(input_shape))
        return self.out_shape if self.out_shape is not None else super().output_shape(input_shape)

    def _check_input(self, shape: tuple[int, ...]) -> None:
        if self.in_shape is not None and shape != self.in_shape:
            raise ValueError(f"black box {self.name} takes samples of shape {self.in_shape}, got {shape}")
