"""Forward models ``A(x) -> y``: blur, inpainting, downsampling, deepinv physics, and their compositions."""
from .base import LinearOperator, Operator
from .black_box import BlackBox
from .blur import Blur
from .composition import compose
from .deepinv_physics import DeepinvLinearPhysics, DeepinvPhysics, from_deepinv
from .downsample import Downsample
from .flow_warp import FlowWarp
from .identity import Identity
from .inpaint import Inpaint
from .matrix import Matrix
from .navier_stokes import NavierStokesObservation

__all__ = ["Operator", "LinearOperator", "Identity", "Blur", "Inpaint", "Downsample", "Matrix", "DeepinvPhysics",
           "DeepinvLinearPhysics", "from_deepinv", "compose", "BlackBox", "FlowWarp",
           "NavierStokesObservation"]
