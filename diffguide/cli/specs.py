"""The CLI's name -> class tables and the ``NAME[:key=value,...]`` spec grammar.

Operators compose with ``@`` as in Python: ``"downsample:factor=2 @ blur:sigma=1"``.
Solvers take their dataclass fields: ``"dps:zeta=0.5,eta=1"``; so do guidance methods
(``"cfg:scale=3,rescale=0.7"``), each a rule and the branch it guides away from. A solver spec
may add guidance after ``+``: ``"ddim+cfg:scale=3,sigma_lo=0.3,sigma_hi=5"`` runs DDIM over the
CFG-guided prior, guided for noise levels in (0.3, 5].
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from ..validation import Number
from .errors import UsageError
from .lazy import resolve

if TYPE_CHECKING:
    import torch

#: solver classes as ``"module:Class"``, imported when a spec names them (``lazy.resolve``)
SOLVERS = {name: f"diffguide.solvers.{target}" for name, target in {
    "dps": "dps:DPS", "ddim": "ddim:DDIM", "ddpm": "ddim:DDPM", "euler": "euler:Euler", "heun": "heun:Heun",
    "universal": "universal_guidance:UniversalGuidance", "tfg": "tfg:TFG", "freedom": "tfg_family:FreeDoM",
    "mpgd": "tfg_family:MPGD", "lgd": "tfg_family:LGD", "ugd": "tfg_family:UGD",
    "sag": "symplectic_adjoint:SymplecticAdjointGuidance", "edict": "edict:EDICT", "doodl": "doodl:DOODL",
    "classifier-guidance": "classifier_guidance:ClassifierGuidance",
    "calibrated-cg": "calibrated_classifier_guidance:CalibratedClassifierGuidance",
    "readout-guidance": "readout_guidance:ReadoutGuidance", "enkg": "enkg:EnKG", "scg": "scg:SCG",
    "dps-gsg": "dps_gsg:DPSGSG", "best-of-n": "best_of_n:BestOfN", "tds": "tds:TDS",
    "ddrm": "ddrm:DDRM", "ddnm": "ddnm:DDNM", "pigdm": "pigdm:PiGDM", "diffpir": "diffpir:DiffPIR", "daps": "daps:DAPS",
    "red-diff": "red_diff:REDDiff", "pnp-dm": "pnp_dm:PnPDM",
    "pc": "predictor_corrector:PredictorCorrector"}.items()}
#: guidance methods: the rule and the negative branch it guides away from (``"module:Class"`` in
#: diffguide.guidance), the negative branch's settings that make the method, and the rule's defaults
GUIDANCE = {name: (f"diffguide.guidance.{rule}", f"diffguide.guidance.{negative}", fixed, defaults)
            for name, (rule, negative, fixed, defaults) in {
    "cfg": ("cfg:CFG", "negatives:NullCondition", {}, {}),
    "cfg++": ("cfg_plus_plus:CFGPlusPlus", "negatives:NullCondition", {}, {}),
    "apg": ("apg:APG", "negatives:NullCondition", {}, {}),
    "cfg-zero-star": ("cfg_variants:CFGZeroStar", "negatives:NullCondition", {}, {}),
    "tangential-cfg": ("cfg_variants:TangentialCFG", "negatives:NullCondition", {}, {}),
    "magnitude-cfg": ("cfg_variants:MagnitudeAwareCFG", "negatives:NullCondition", {}, {}),
    "adaptive-cfg": ("adaptive:AdaptiveCFG", "negatives:NullCondition", {}, {}),
    "icg": ("cfg:CFG", "negatives:IndependentCondition", {}, {}),
    "autoguidance": ("cfg:CFG", "negatives:WeakerModel", {}, {"scale": 2.0}),
    "pag": ("perturbation:PerturbationGuidance", "negatives:PerturbedAttention", {"mode": "identity"}, {}),
    "seg": ("perturbation:PerturbationGuidance", "negatives:PerturbedAttention", {"mode": "blur"}, {}),
    "skip-layer": ("perturbation:PerturbationGuidance", "negatives:PerturbedAttention", {"mode": "skip"}, {"scale": 1.0}),
    "sag": ("perturbation:PerturbationGuidance", "self_attention_blur:SelfAttentionBlur", {}, {"scale": 0.75}),
    "gfcg": ("perturbation:PerturbationGuidance", "reference_class:ReferenceClass", {}, {"scale": 2.0}),
    "tsg": ("perturbation:PerturbationGuidance", "negatives:PerturbedTimeEmbedding", {}, {"scale": 1.0}),
}.items()}
#: ``inpaint:mask=box,size=S``: the missing box's side as a fraction of the image's
BOX_SIZE = Number(0.0, 1.0, low_open=True).about("the box's side as a fraction of the image's")
#: the solvers whose ``needs`` is ``"none"`` (checked against the classes by tests/test_cli_startup.py)
UNGUIDED = ("ddim", "ddpm", "euler", "heun", "edict", "pc")

OPERATOR_HELP = (
    "identity | blur:sigma=S[,size=K] | downsample:factor=F | "
    "inpaint:mask=box[,size=0.5] | inpaint:mask=random[,missing=0.7] | inpaint:mask=strokes[,n=4,width=W] | "
    "saturate[:gain=2] (a nonlinear sensor response, tanh(gain x) / tanh(gain)); "
    "deepinv:CLASS[,key=value,...] (a deepinv.physics class with number, bool or word arguments, e.g. "
    "'deepinv:CompressedSensing,m=96'; images mapped to deepinv's [0, 1], y and --sigma-y in its units); "
    "compose with @, e.g. 'downsample:factor=2 @ blur:sigma=1'"
)


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``"name:a=1,b=x"`` -> ``("name", {"a": "1", "b": "x"})``."""
    name, _, rest = spec.strip().partition(":")
    params = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip() or not value.strip():
            raise UsageError(f"cannot parse {item!r} in {spec!r}; expected key=value")
        params[key.strip()] = value.strip()
    if not name:
        raise UsageError(f"empty name in spec {spec!r}")
    return name.lower(), params


def _kind_name(kind: type) -> str:
    """What a spec value of ``kind`` must look like, for messages."""
    return {float: "a number", int: "an integer", boolean: "true or false"}.get(kind, f"a {kind.__name__}")


def _number(params: dict, key: str, default, kind=float, spec: str = ""):
    if key not in params:
        return default
    try:
        return kind(params.pop(key))
    except ValueError:
        raise UsageError(f"{key} in {spec!r} must be {_kind_name(kind)}") from None


def _simple_value(text: str):
    """A spec value as an int, float or bool when it reads as one, else the string itself."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _deepinv_operator(spec: str, shape: tuple[int, int, int], generator: torch.Generator):
    """``deepinv:CLASS[,key=value,...]``: a ``deepinv.physics`` class, given ``img_size`` and an ``rng``
    (or a global seed) drawn from ``generator`` where it takes them, on images mapped from [-1, 1] to [0, 1]."""
    import inspect

    import deepinv
    import torch

    from ..operators.deepinv_physics import from_deepinv

    class_name, _, args = spec.strip().partition(":")[2].partition(",")
    classes = {name.lower(): cls for name, cls in vars(deepinv.physics).items()
               if isinstance(cls, type) and issubclass(cls, deepinv.physics.Physics)}
    cls = classes.get(class_name.strip().lower())
    if cls is None:
        raise UsageError(f"unknown deepinv physics {class_name.strip()!r} in {spec!r}; "
                         "expected a class of deepinv.physics, e.g. Inpainting, BlurFFT, CompressedSensing")
    _, params = parse_spec(f"{class_name}:{args}")
    constructors = [vars(klass)["__init__"] for klass in cls.__mro__
                    if issubclass(klass, deepinv.physics.Physics) and "__init__" in vars(klass)]
    accepted = {name for constructor in constructors
                for name, parameter in inspect.signature(constructor).parameters.items()
                if name != "self" and parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)}
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise UsageError(f"deepinv.physics.{cls.__name__} has no parameter {', '.join(unknown)}; "
                         f"it takes {', '.join(sorted(accepted))}")
    kwargs = {key: _simple_value(value) for key, value in params.items()}
    kwargs.update({key: value for key, value in (("img_size", shape), ("rng", generator)) if key in accepted})
    try:
        with torch.random.fork_rng(devices=[]):  # constructors without an rng draw from the global generator
            torch.manual_seed(int(torch.randint(2**62, (), generator=generator)))
            operator = from_deepinv(cls(**kwargs))
        operator.output_shape(shape)
    except Exception as err:  # deepinv's constructors and forward models raise many kinds of errors
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UsageError(f"operator {spec!r}: {message}") from None
    return operator


def _operator(spec: str, shape: tuple[int, int, int], generator: torch.Generator):
    from ..operators.blur import Blur
    from ..operators.downsample import Downsample
    from ..operators.identity import Identity
    from ..operators.inpaint import Inpaint
    from ..operators.saturation import Saturation

    if spec.strip().lower().startswith("deepinv:"):
        return _deepinv_operator(spec, shape, generator)
    name, params = parse_spec(spec)
    if name == "identity":
        op = Identity()
    elif name == "blur":
        sigma, size = _number(params, "sigma", 1.0, spec=spec), _number(params, "size", None, int, spec)
        kernel = Blur.gaussian_size(sigma) if size is None else size
        if kernel > min(shape[1:]):  # before building it: a huge sigma's default kernel would not fit in memory
            raise UsageError(f"operator {spec!r}: a blur kernel of size {kernel} does not fit images of "
                             f"{shape[1]} x {shape[2]}; give a smaller sigma or size")
        op = Blur.gaussian(sigma, size=size)
    elif name == "downsample":
        op = Downsample(_number(params, "factor", 2, int, spec))
    elif name == "saturate":
        op = Saturation(_number(params, "gain", 2.0, spec=spec))
    elif name == "inpaint":
        mask = params.pop("mask", "box")
        _, h, w = shape
        if mask == "box":
            size = BOX_SIZE("size", _number(params, "size", 0.5, spec=spec))
            bh, bw = round(h * size), round(w * size)
            op = Inpaint.box(shape, (h - bh) // 2, (w - bw) // 2, bh, bw)
        elif mask == "random":
            op = Inpaint.random_pixels(shape, _number(params, "missing", 0.7, spec=spec), generator=generator)
        elif mask == "strokes":
            op = Inpaint.random_strokes(shape, _number(params, "n", 4, int, spec),
                                        _number(params, "width", None, spec=spec), generator=generator)
        else:
            raise UsageError(f"unknown inpaint mask {mask!r} in {spec!r}; expected box, random or strokes")
    else:
        raise UsageError(f"unknown operator {name!r} in {spec!r}; expected {OPERATOR_HELP}")
    if params:
        raise UsageError(f"unknown parameter(s) {', '.join(params)} for operator {name!r}")
    return op


def _checked_operator(spec: str, shape: tuple[int, int, int], generator: torch.Generator):
    """``_operator``, with the operators' own parameter checks reported as one line about ``spec``."""
    try:
        return _operator(spec, shape, generator)
    except UsageError:
        raise
    except ValueError as err:
        raise UsageError(f"operator {spec.strip()!r}: {err}") from None


def parse_operator(spec: str, shape: tuple[int, int, int], generator: torch.Generator):
    """Build an operator for images of ``shape`` from a spec; ``@`` composes right to left."""
    parts = [part for part in spec.split("@")]
    if any(not part.strip() for part in parts):
        raise UsageError(f"cannot parse operator {spec!r}; expected {OPERATOR_HELP}")
    op = None
    for part in reversed(parts):  # the rightmost operator acts first
        inner_shape = shape if op is None else op.output_shape(shape)
        if len(inner_shape) != 3:
            raise UsageError(f"operator {part.strip()!r} needs image-shaped input")
        nxt = _checked_operator(part, inner_shape, generator)
        op = nxt if op is None else nxt @ op
    try:
        op.output_shape(shape)
    except ValueError as err:
        raise UsageError(f"operator {spec!r} does not fit images of shape {shape}: {err}") from None
    return op


def _field_kind(field: dataclasses.Field) -> type:
    """The type a spec value converts to: the default's, or for a ``None`` default (a value the
    solver derives) the number type its annotation names."""
    if isinstance(field.default, bool):
        return boolean
    if field.default is not None:
        return type(field.default) if isinstance(field.default, (int, float)) else str
    annotation = str(field.type)
    return float if "float" in annotation else int if "int" in annotation else str


def boolean(text: str) -> bool:
    """``true/false``, ``yes/no``, ``1/0`` (any case) as a bool."""
    value = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}.get(text.lower())
    if value is None:
        raise ValueError(text)
    return value


def parse_solver(spec: str):
    """Build a solver from ``name[:field=value,...]``, converting values to the field types; with
    ``+GUIDANCE`` after it, that solver over the guided prior (``GuidedSolver``)."""
    if "+" in spec:
        solver_spec, _, guidance_spec = spec.partition("+")
        return _guided_solver(parse_solver(solver_spec), guidance_spec)
    name, params = parse_spec(spec)
    if name not in SOLVERS:
        raise UsageError(f"unknown solver {name!r}; expected one of {', '.join(SOLVERS)}")
    return _dataclass_from_spec(resolve(SOLVERS[name]), params, f"solver {name!r}", spec)


def parse_guidance(spec: str):
    """``(rule, negative branch)`` of a guidance method ``name[:field=value,...]`` (``GUIDANCE``); each
    value goes to the rule's field or the negative branch's of that name."""
    name, params = parse_spec(spec)
    return _guidance(name, params, spec)


def _guidance(name: str, params: dict[str, str], spec: str):
    if name not in GUIDANCE:
        raise UsageError(f"unknown guidance {name!r}; expected one of {', '.join(GUIDANCE)}")
    rule_path, negative_path, fixed, defaults = GUIDANCE[name]
    rule_class, negative_class = resolve(rule_path), resolve(negative_path)
    settable = {f.name for f in dataclasses.fields(negative_class) if f.init and f.name not in fixed
                and f.name != "null"}
    negative_params = {key: params.pop(key) for key in list(params) if key in settable}
    rule_params = {**{key: str(value) for key, value in defaults.items()}, **params}
    rule = _dataclass_from_spec(rule_class, rule_params, f"guidance {name!r}", spec)
    negative = _dataclass_from_spec(negative_class, negative_params, f"guidance {name!r}", spec)
    return rule, dataclasses.replace(negative, **fixed) if fixed else negative


def _guided_solver(solver, spec: str):
    """``GuidedSolver(solver, rule, negative, sigma_lo, sigma_hi)`` from a guidance spec whose optional
    ``sigma_lo``/``sigma_hi`` give the noise interval."""
    from ..guidance.guided_solver import GuidedSolver

    name, params = parse_spec(spec)
    interval = {key: _number(params, key, None, spec=spec) for key in ("sigma_lo", "sigma_hi") if key in params}
    rule, negative = _guidance(name, params, spec)
    try:
        return GuidedSolver(solver=solver, rule=rule, negative=negative, **interval)
    except ValueError as err:
        raise UsageError(f"guidance {spec!r}: {err}") from None


def _dataclass_from_spec(cls, params: dict[str, str], what: str, spec: str):
    """``cls(**params)`` with each value converted to its field's type; ``UsageError`` naming what is wrong."""
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in params.items():
        if key not in fields:
            raise UsageError(f"{what} has no parameter {key!r}; it has {', '.join(fields) or 'none'}")
        kind = _field_kind(fields[key])
        try:
            kwargs[key] = kind(value)
        except ValueError:
            raise UsageError(f"{key}={value!r} for {what}: expected {_kind_name(kind)}") from None
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise UsageError(f"{what.split()[0]} {spec!r}: {err}") from None
