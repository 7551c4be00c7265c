"""GPU benchmark: diffguide's loops on one device, in one run, as a markdown report.

On the device found (``cuda`` when available, else ``cpu``; ``--device`` overrides) it measures:

(a) diffguide's DDIM (eta = 0, through ``DiffusersDenoiser``) against a plain diffusers
    ``DDIMScheduler`` loop on the same UNet: wall-time ratio (goal <= 1.02) and max sample difference;
(b) diffguide's DPS against ``deepinv.sampling.DPS`` at equal network passes: wall-time ratio;
(c) the physical limit: one diffguide DPS step over one forward plus one backward (vector-Jacobian
    product with respect to the input) of the same UNet alone (goal <= 1.1);
(d) per solver (DDIM, DPS, UniversalGuidance, TFG, DPS-GSG, SymplecticAdjointGuidance, TDS, EnKG
    on a GaussianLikelihood of random-pixel inpainting): wall time and peak memory per step.

The UNet has random weights (``UNet2DModel``, 3 channels, ``sample_size`` 256 on a GPU) and predicts
the clean sample (``prediction_type="sample"``), which keeps untrained runs inside diffguide's
divergence checks; the cost of a step does not depend on the prediction type. Its parameters are
frozen (``requires_grad_(False)``): guidance differentiates with respect to the state only.
On the CPU the small setting (32x32, fewer steps, batch 1 and 2) is forced. Timings: CUDA
synchronised, after a warm-up run, best of ``--repeats``. Peak memory: the CUDA allocator's peak
above what was allocated before the run (on the CPU: the process's resident set,
``peak_memory.device_peak_memory``). ``python -m diffguide.benchmarks.gpu [--device D] [--out FILE]``.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import platform
import sys
import time
import warnings
from pathlib import Path

import torch
from diffusers import DDIMScheduler, UNet2DModel

from ..counting import counting
from ..noise import rand, randn
from ..operators.inpaint import Inpaint
from ..priors.diffusers_unet import DiffusersDenoiser
from ..rewards.likelihood import GaussianLikelihood
from ..schedules import scheduler_sigmas
from ..solvers import (DDIM, DPS, DPSGSG, TDS, TFG, EnKG, SymplecticAdjointGuidance, UniversalGuidance,
                       set_progress)
from .overhead import ddim_overhead, dps_timing, seconds
from .peak_memory import device_peak_memory


@dataclasses.dataclass(frozen=True)
class Setting:
    """One benchmark size: the random-weight UNet, the schedule lengths and the batch sizes measured."""

    name: str
    size: int  # the UNet's sample_size (square RGB images)
    channels: tuple[int, int, int, int]  # block_out_channels of its four levels
    steps: int  # sections (a) and (b)
    overhead_batch: int  # sections (a) and (b)
    solver_steps: int  # sections (c) and (d)
    batches: tuple[int, ...]  # sections (c) and (d)
    repeats: int  # timings are the best of this many runs (after a warm-up)
    gsg_queries: int  # DPS-GSG's queries per sample and step (its default is 2048)


SETTINGS = {
    "gpu": Setting("gpu", 256, (64, 128, 128, 256), 50, 8, 10, (1, 8), 3, 512),
    "small": Setting("small", 32, (32, 64, 64, 64), 20, 2, 5, (1, 2), 2, 64),
    "tiny": Setting("tiny", 16, (32, 32, 32, 32), 3, 1, 2, (1, 2), 1, 8),  # the test's: seconds on a CPU
}


def bench_unet(setting: Setting, device: torch.device) -> tuple[UNet2DModel, DDIMScheduler]:
    """A randomly initialised 4-level UNet2DModel (attention at 1/4 resolution) on ``device``."""
    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=setting.size, in_channels=3, out_channels=3,
                       block_out_channels=setting.channels, layers_per_block=1,
                       down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D"))
    unet = unet.to(device).eval().requires_grad_(False)
    return unet, DDIMScheduler(clip_sample=False, prediction_type="sample")


def solvers(setting: Setting) -> dict:
    """The solvers of section (d), each taking a GaussianLikelihood on a linear operator."""
    return {
        "DDIM": DDIM(),
        "DPS": DPS(zeta=1.0),
        "UniversalGuidance": UniversalGuidance(),
        "TFG": TFG(),
        "DPS-GSG": DPSGSG(queries=setting.gsg_queries, query_batch=setting.gsg_queries),
        "SAG": SymplecticAdjointGuidance(),
        "TDS": TDS(),
        "EnKG": EnKG(guidance_scale=0.1),  # a linear operator: well below 1 (its docstring)
    }


def inpainting(shape, device, sigma_y: float = 0.05) -> GaussianLikelihood:
    """Random-pixel inpainting (half the pixels) of a random image in [-1, 1], one measurement."""
    g = torch.Generator().manual_seed(3)  # CPU draws, moved: the same problem on any device
    mask = (rand((1, *shape[1:]), g, dtype=torch.float32, device=device) > 0.5).float()
    truth = 2 * rand((1, *shape), g, dtype=torch.float32, device=device) - 1
    operator = Inpaint(mask)
    return GaussianLikelihood(operator, operator(truth), sigma_y)


def sampler(solver, denoiser, reward, sigmas, batch: int, device: torch.device):
    """A function running one whole sampling run (the same inputs each time)."""
    def once():
        generator = torch.Generator(device).manual_seed(0)  # on the device: per-step noise is drawn there
        x = sigmas[0] * randn((batch, *denoiser.shape), generator, dtype=torch.float32, device=device)
        return solver(denoiser, reward, x, sigmas, generator=generator)
    return once


def solver_row(solver, denoiser, likelihood, sigmas, batch: int, repeats: int, device: torch.device) -> dict:
    """Per step of one solver at one batch size: wall time (best of ``repeats`` after a warm-up),
    peak memory, NFE, backward passes and guidance gradients."""
    steps = len(sigmas) - 1
    once = sampler(solver, denoiser, None if solver.needs == "none" else likelihood, sigmas, batch, device)
    once()  # warm-up
    with device_peak_memory(device) as memory, counting() as counts:
        once()
    best = min(seconds(once) for _ in range(repeats))
    return {"ms_per_step": 1e3 * best / steps, "peak_mb": memory["mb"], "nfe_per_step": counts.nfe / steps,
            "backward_per_step": counts.backward_passes / steps, "gradients_per_step": counts.grad_evals / steps}


def forward_backward(unet, batch: int, device: torch.device):
    """A function running one forward pass of the UNet alone plus the backward pass to its input."""
    x = randn((batch, 3, unet.config.sample_size, unet.config.sample_size), torch.Generator().manual_seed(4),
              dtype=torch.float32, device=device)
    v = torch.ones_like(x)
    t = torch.full((batch,), 500.0, device=device)

    def once():
        z = x.detach().requires_grad_(True)
        with torch.enable_grad():
            torch.autograd.grad(unet(z, t).sample, z, grad_outputs=v)
    return once


def physical_limit(unet, denoiser, likelihood, sigmas, batch: int, repeats: int, device: torch.device) -> dict:
    """One DPS step against one forward + backward of the UNet alone: a whole DPS run and as many
    forward + backward passes as it has steps, alternated, each the best of ``repeats + 1`` after a warm-up."""
    steps = len(sigmas) - 1
    dps, fb = sampler(DPS(zeta=1.0), denoiser, likelihood, sigmas, batch, device), forward_backward(unet, batch, device)

    def passes():
        for _ in range(steps):
            fb()
    dps(), passes()  # warm-up
    dps_s, fb_s = float("inf"), float("inf")
    for _ in range(repeats + 1):
        dps_s, fb_s = min(dps_s, seconds(dps)), min(fb_s, seconds(passes))
    return {"forward_backward_ms": 1e3 * fb_s / steps, "dps_step_ms": 1e3 * dps_s / steps, "ratio": dps_s / fb_s}


def attempt(fn, *args) -> dict:
    """``fn(*args)``, or ``{"error": ...}``: a report that names a failure beats no report."""
    try:
        return fn(*args)
    except Exception as error:
        return {"error": f"{type(error).__name__}: {' '.join(str(error).split())[:160]}"}


def measure(setting: Setting, device: torch.device) -> dict:
    unet, scheduler = bench_unet(setting, device)
    out = {"parameters_m": sum(p.numel() for p in unet.parameters()) / 1e6}
    forward_backward(unet, 1, device)()  # one-time start-up (kernels, allocator) outside every timing
    out["ddim"] = attempt(ddim_overhead, unet, scheduler, setting.steps, setting.overhead_batch, setting.repeats + 1)
    out["dps"] = attempt(dps_timing, unet, scheduler, setting.steps, setting.overhead_batch, setting.repeats + 1)
    denoiser = DiffusersDenoiser(unet, scheduler.alphas_cumprod, "sample").to(device)
    likelihood = inpainting(denoiser.shape, device)
    sigmas = scheduler_sigmas(scheduler, setting.solver_steps).float()
    out["solvers"] = {}
    for name, solver in solvers(setting).items():
        for batch in setting.batches:
            if isinstance(solver, EnKG) and batch < 2:  # an ensemble method: at least 2 particles
                out["solvers"][name, batch] = {"skipped": "needs >= 2 particles"}
                continue
            row = attempt(solver_row, solver, denoiser, likelihood, sigmas, batch, setting.repeats, device)
            out["solvers"][name, batch] = {"skipped": row["error"]} if "error" in row else row
    out["limit"] = {batch: attempt(physical_limit, unet, denoiser, likelihood, sigmas, batch, setting.repeats, device)
                    for batch in setting.batches}
    return out


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def fmt(value: float, digits: int = 2) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def report(setting: Setting, device: torch.device, results: dict, wall_seconds: float) -> str:
    s = setting
    lines = [
        "# diffguide GPU benchmark", "",
        f"Device: **{device_name(device)}** (`{device}`); torch {torch.__version__}"
        + (f", CUDA {torch.version.cuda}" if device.type == "cuda" else "") + f"; setting `{s.name}`; "
        f"whole run {wall_seconds:.0f} s. Command: `python -m diffguide.benchmarks.gpu"
        + ("" if device.type == "cuda" else f" --device {device}") + (f" --{s.name}" if s.name == "tiny" else "") + "`.",
        "",
        f"UNet2DModel with random weights: {s.size}x{s.size} RGB, block_out_channels {list(s.channels)}, "
        f"attention at 1/4 resolution, {results['parameters_m']:.1f} M parameters, frozen, float32, "
        "prediction_type `sample`. Timings: synchronised, after a warm-up, best of "
        f"{s.repeats + 1} alternating runs in (a), (b), (c), best of {s.repeats} in (d).",
        "",
        f"## (a) DDIM overhead against diffusers ({s.steps} steps, batch {s.overhead_batch}, eta 0)", "",
        "| diffusers DDIMScheduler loop (s) | diffguide DDIM (s) | ratio (goal <= 1.02) | max abs sample difference |",
        "|---|---|---|---|",
    ]
    d = results["ddim"]
    lines += [f"| failed: {d['error']} | n/a | n/a | n/a |" if "error" in d else
              f"| {d['diffusers_s']:.3f} | {d['diffguide_s']:.3f} | {d['ratio']:.3f} | {d['max_abs_diff']:.1e} |", ""]
    p = results["dps"]
    lines += [f"## (b) DPS against deepinv's DPS at equal network passes ({s.steps} steps, batch {s.overhead_batch})",
              "", "| deepinv DPS (s) | NFE | diffguide DPS (s) | NFE | ratio |", "|---|---|---|---|---|",
              f"| failed: {p['error']} | n/a | n/a | n/a | n/a |" if "error" in p else
              f"| {p['deepinv']:.3f} | {p['deepinv_nfe']} | {p['diffguide']:.3f} | {p['diffguide_nfe']} | "
              f"{p['ratio']:.3f} |", ""]
    lines += [f"## (c) Against the physical limit: one DPS step over one UNet forward + backward "
              f"({s.solver_steps} steps)", "",
              "A whole DPS run (zeta 1, the inpainting of (d)) and as many forward + backward passes (to the input, "
              "parameters frozen) of the UNet alone, alternated; per step.", "",
              "| batch | UNet forward + backward to the input (ms) | diffguide DPS step (ms) | ratio (goal <= 1.1) |",
              "|---|---|---|---|"]
    for batch, row in results["limit"].items():
        if "error" in row:
            lines.append(f"| {batch} | n/a | n/a | n/a (failed: {row['error']}) |")
            continue
        lines.append(f"| {batch} | {fmt(row['forward_backward_ms'])} | {fmt(row['dps_step_ms'])} | "
                     f"{fmt(row['ratio'], 3)} |")
    memory = "CUDA allocator peak above the run's start" if device.type == "cuda" else \
        "peak resident set above the run's start (RSS, coarse)"
    lines += ["", f"## (d) Per solver: wall time and peak memory per step ({s.solver_steps} steps, "
              "random-pixel inpainting, GaussianLikelihood sigma_y 0.05)", "",
              f"Peak memory: {memory}. NFE and backward passes per step from diffguide's counters; "
              f"DPS-GSG with {s.gsg_queries} queries per sample and step, EnKG with guidance_scale 0.1, "
              "others at their defaults (SAG and EnKG guide only part of the steps: figures are means over all).",
              "", "| solver | batch | ms / step | peak MiB | NFE / step | backward / step | gradients / step |",
              "|---|---|---|---|---|---|---|"]
    for (name, batch), row in results["solvers"].items():
        if "skipped" in row:
            lines.append(f"| {name} | {batch} | n/a | n/a | n/a | n/a | n/a ({row['skipped']}) |")
        else:
            lines.append(f"| {name} | {batch} | {fmt(row['ms_per_step'])} | {fmt(row['peak_mb'], 1)} | "
                         f"{fmt(row['nfe_per_step'], 1)} | {fmt(row['backward_per_step'], 1)} | "
                         f"{fmt(row['gradients_per_step'], 1)} |")
    return "\n".join(lines) + "\n"


def parse_device(text: str | None) -> torch.device:
    """The device to run on, or a one-line refusal (exit code 2)."""
    if text is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        sys.exit(_refuse(f"--device {text!r} is not a device; expected cpu, cuda or cuda:N"))
    if device.type not in ("cpu", "cuda"):
        sys.exit(_refuse(f"--device {text!r}: only cpu and cuda are supported"))
    if device.type == "cuda":
        if not torch.cuda.is_available():
            sys.exit(_refuse(f"--device {text!r}: CUDA is not available on this machine"))
        if device.index is not None and device.index >= torch.cuda.device_count():
            sys.exit(_refuse(f"--device {text!r}: there are {torch.cuda.device_count()} CUDA devices"))
        if device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
    return device


def _refuse(message: str) -> int:
    print(f"diffguide.benchmarks.gpu: error: {message}", file=sys.stderr)
    return 2


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument("--small", action="store_true", help="the small setting (forced on the CPU)")
    parser.add_argument("--tiny", action="store_true", help="the smallest setting (a smoke test, seconds)")
    parser.add_argument("--out", type=Path, default=None, help="also write the markdown report to this file")
    args = parser.parse_args(argv)
    device = parse_device(args.device)
    setting = SETTINGS["tiny" if args.tiny else "small" if args.small or device.type == "cpu" else "gpu"]
    if device.type == "cuda":
        torch.cuda.set_device(device)  # synchronize() and the default CUDA generator follow it
    set_progress(False)
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=RuntimeWarning)
    start = time.perf_counter()
    results = measure(setting, device)
    text = report(setting, device, results, time.perf_counter() - start)
    print(text, end="")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
