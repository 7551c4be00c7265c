"""Differentiable physics simulators used as forward models (PDE solvers in torch)."""
