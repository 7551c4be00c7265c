"""Solvers: one call, ``solver(denoiser, reward, x, sigmas, *, generator, callback, **cond) -> x``.

Gradient-based (``DPS``, ``UniversalGuidance``, ``TFG`` and its family ``FreeDoM``, ``MPGD``,
``LGD``, ``UGD``, ``SymplecticAdjointGuidance``, ``DOODL``, ``ClassifierGuidance``,
``ReadoutGuidance``, ``TDS``), restoration solvers that use a Gaussian likelihood's operator
(``DDRM``, ``DDNM``, ``PiGDM``, ``DiffPIR`` for linear ones; ``DAPS``, ``REDDiff``, ``PnPDM`` for any
differentiable one), derivative-free (``EnKG``, ``SCG``, ``DPSGSG``, ``BestOfN``) and
unguided (``Euler``, ``Heun``, ``DDIM``, ``DDPM``, ``EDICT``, ``PredictorCorrector``). ``Solver`` is their base class.
"""
from .base import Solver
from .best_of_n import BestOfN
from .classifier_guidance import ClassifierGuidance
from .daps import DAPS
from .ddim import DDIM, DDPM
from .predictor_corrector import PredictorCorrector
from .ddnm import DDNM
from .ddrm import DDRM
from .diffpir import DiffPIR
from .doodl import DOODL
from .dps import DPS
from .dps_gsg import DPSGSG
from .edict import EDICT
from .enkg import EnKG
from .euler import Euler
from .heun import Heun
from .pigdm import PiGDM
from .pnp_dm import PnPDM
from .readout_guidance import ReadoutGuidance
from .record import StepRecord
from .red_diff import REDDiff
from .run import Run, set_progress
from .scg import SCG
from .symplectic_adjoint import SymplecticAdjointGuidance
from .tds import TDS
from .tfg import TFG
from .tfg_family import LGD, MPGD, UGD, FreeDoM
from .universal_guidance import UniversalGuidance

__all__ = ["Solver", "Run", "StepRecord", "set_progress",
           "DPS", "UniversalGuidance", "TFG", "FreeDoM", "MPGD", "LGD", "UGD", "SymplecticAdjointGuidance", "DOODL",
           "ClassifierGuidance", "ReadoutGuidance", "TDS",
           "DDRM", "DDNM", "PiGDM", "DiffPIR", "DAPS", "REDDiff", "PnPDM",
           "EnKG", "SCG", "DPSGSG", "BestOfN",
           "Euler", "Heun", "DDIM", "DDPM", "EDICT", "PredictorCorrector"]
