"""Differentiable physics simulators used as forward models (PDE solvers in torch)."""
from .navier_stokes import NavierStokes2D, kolmogorov_forcing
from .random_fields import GaussianRandomField

__all__ = ["NavierStokes2D", "GaussianRandomField", "kolmogorov_forcing"]
