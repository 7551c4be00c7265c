"""Forward models ``A(x) -> y``: blur, inpainting, downsampling, a saturating response, deepinv physics,
and their compositions."""
from .base import LinearOperator, Operator
from .black_box import BlackBox
from .blur import Blur
from .composition import Composition, LinearComposition, compose
from .deepinv_physics import DeepinvAffinePhysics, DeepinvLinearPhysics, DeepinvPhysics, from_deepinv
from .deepinv_svd import to_deepinv_decomposable
from .downsample import Downsample
from .flow_warp import FlowWarp, warp
from .function import FunctionOperator, as_operator
from .identity import Identity
from .inpaint import Inpaint
from .matrix import Matrix
from .saturation import Saturation
from .navier_stokes import NavierStokesObservation

__all__ = ["Operator", "LinearOperator", "FunctionOperator", "as_operator", "Identity", "Blur", "Inpaint",
           "Downsample", "Matrix", "Saturation", "FlowWarp", "warp", "NavierStokesObservation", "BlackBox", "DeepinvPhysics",
           "DeepinvLinearPhysics", "DeepinvAffinePhysics", "from_deepinv", "to_deepinv_decomposable", "compose",
           "Composition", "LinearComposition"]
