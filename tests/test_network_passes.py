"""Network passes counted at the denoiser's boundary: forward passes and backward passes (VJPs
through the network) separately, in every StepRecord and in the sweep's results rows."""
import pytest
import torch
from diffusers import DDIMScheduler, UNet2DModel

from diffguide.counting import counting, network_passes
from diffguide.network_passes import denoise_counted
from diffguide.operators.matrix import Matrix
from diffguide.priors import DiffusersDenoiser
from diffguide.rewards.likelihood import GaussianLikelihood
from diffguide.schedules import prior_sigmas
from diffguide.solvers import DDIM, DPS, MPGD, TDS, Heun, SymplecticAdjointGuidance

STEPS = 5


def tiny_unet_denoiser() -> DiffusersDenoiser:
    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=1,
                       norm_num_groups=4, down_block_types=("DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D"))
    with torch.no_grad():  # small clean estimates ("sample" prediction): no run trips the divergence check
        unet.conv_out.weight.mul_(0.01)
    return DiffusersDenoiser(unet.eval(), DDIMScheduler().alphas_cumprod, prediction_type="sample").requires_grad_(False)


def likelihood(rows: int = 4) -> GaussianLikelihood:
    a = torch.randn(rows, 64, generator=torch.Generator().manual_seed(1)) / 8
    operator = Matrix(a, (1, 8, 8))
    return GaussianLikelihood(operator, operator(torch.zeros(1, 1, 8, 8)) + 0.1, sigma_y=0.5)


def run(solver, batch: int = 2, reward=None):
    prior = tiny_unet_denoiser()
    sigmas = prior_sigmas(prior, STEPS)
    x = sigmas[0] * torch.randn(batch, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    records = []
    with counting() as counts:
        solver(prior, reward if reward is not None else likelihood(), x, sigmas,
               generator=torch.Generator().manual_seed(0), callback=records.append)
    return counts, records


def test_dps_spends_one_forward_and_one_backward_per_step():
    counts, records = run(DPS())
    assert (counts.nfe, counts.backward_passes) == (STEPS, STEPS)
    assert [(r.nfe, r.backward_passes) for r in records] == [(i, i) for i in range(1, STEPS + 1)]
    assert network_passes(counts) == 3 * STEPS


def test_heun_spends_two_forward_passes_per_step_but_the_last_and_no_backward():
    counts, records = run(Heun())
    assert (counts.nfe, counts.backward_passes) == (2 * STEPS - 1, 0)
    assert records[-1].nfe == 2 * STEPS - 1


def test_a_gradient_of_the_reward_alone_is_no_backward_pass_through_the_network():
    counts, _ = run(MPGD())  # MPGD differentiates the likelihood at the clean estimate only
    assert counts.nfe == STEPS and counts.backward_passes == 0 and counts.grad_evals > 0


def test_symplectic_adjoint_counts_one_backward_per_inner_step():
    solver = SymplecticAdjointGuidance(inner_steps=2, repeats=1, guidance_start=0.0, guidance_stop=1.0)
    counts, _ = run(solver)
    inner = [min(2, STEPS - i) for i in range(STEPS)]  # fewer levels remain near the end
    assert counts.backward_passes == sum(inner)
    assert counts.nfe == sum(2 * n - 1 for n in inner)
    assert counts.backward_passes == counts.grad_evals  # its guidance gradients all go through the network


def test_tds_covariance_twist_spends_a_backward_pass_per_dimension():
    counts, _ = run(TDS(twist="covariance"), batch=3)
    assert counts.nfe == STEPS and counts.backward_passes == 64 * STEPS


def test_unguided_sampling_has_no_backward_passes():
    counts, _ = run(DDIM())
    assert (counts.nfe, counts.backward_passes) == (STEPS, 0)


def test_a_backward_pass_run_elsewhere_is_still_counted():
    prior = tiny_unet_denoiser()
    with counting() as counts:
        with torch.enable_grad():
            x = torch.randn(2, 1, 8, 8, requires_grad=True)
            x0 = denoise_counted(prior, x, torch.full((2,), 1.0))
        x0.sum().backward()  # outside the context: counted where the forward pass ran
    assert (counts.nfe, counts.backward_passes) == (1, 1)


def test_the_sweep_rows_carry_the_passes_the_solver_spent(tmp_path):
    import json

    from diffguide.cli import main

    argv = ["bench", "gmm-posterior", "--reduced", "--instance", "d4-k1-ill-s0.1", "--solver", "dps", "--solver", "heun",
            "--steps", "4", "--out", str(tmp_path)]
    assert main(argv) == 0
    rows = {row["solver"]: row for row in map(json.loads, (tmp_path / "results.jsonl").read_text().splitlines())}
    assert [rows["dps"][k] for k in ("nfe", "backward_passes", "network_passes")] == [4, 4, 12]
    assert [rows["heun"][k] for k in ("nfe", "backward_passes", "network_passes")] == [7, 0, 7]


def test_sweep_rows_name_their_device_and_older_rows_read_as_cpu_fp32_runs(tmp_path):
    import json

    from diffguide.benchmarks.results import SCHEMA, read_results
    from diffguide.cli import main

    argv = ["bench", "gmm-posterior", "--reduced", "--instance", "d4-k1-ill-s0.1", "--solver", "ddim", "--steps", "3",
            "--device", "cpu", "--out", str(tmp_path)]
    assert main(argv) == 0
    (row,) = read_results(tmp_path)
    assert row["device"] == "cpu" and row["precision"] == "fp32" and row["schema"] == SCHEMA
    schema_3 = {k: v for k, v in row.items() if k not in ("precision", "steps")} | {"nfe_budget": 3, "schema": 3}
    schema_2 = {k: v for k, v in schema_3.items() if k != "device"} | {"schema": 2, "seed": 7}
    with open(tmp_path / "results.jsonl", "a") as f:
        f.write(json.dumps(schema_3 | {"seed": 8}) + "\n" + json.dumps(schema_2) + "\n")
    assert sorted((r["seed"], r["device"], r["precision"], r["steps"]) for r in read_results(tmp_path)) == [
        (0, "cpu", "fp32", 3), (7, "cpu", "fp32", 3), (8, "cpu", "fp32", 3)]
    assert main(argv) == 0 and len(read_results(tmp_path)) == 3  # the CPU run is done: nothing re-run


def test_bench_records_the_precision_and_refuses_it_for_closed_form_priors(tmp_path, capsys):
    from diffguide.benchmarks.results import read_results
    from diffguide.cli import main

    argv = ["bench", "restore", "--reduced", "--instance", "digits-blur", "--solver", "ddim", "--steps", "3"]
    assert main([*argv, "--precision", "bf16", "--out", str(tmp_path / "bf16")]) == 0
    assert main([*argv, "--out", str(tmp_path / "fp32")]) == 0
    (low,), (full,) = read_results(tmp_path / "bf16"), read_results(tmp_path / "fp32")
    assert (low["precision"], full["precision"]) == ("bf16", "fp32")
    assert low["metrics"]["psnr"] != full["metrics"]["psnr"]  # the UNet ran under bf16 autocast
    assert abs(low["metrics"]["psnr"] - full["metrics"]["psnr"]) < 1.0
    capsys.readouterr()
    assert main(["bench", "gmm-posterior", "--reduced", "--precision", "fp16", "--out", str(tmp_path / "gmm")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "closed-form" in err[0] and not (tmp_path / "gmm").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_sweep_runs_on_cuda_and_counts_device_memory(tmp_path):
    import json

    from diffguide.cli import main

    argv = ["bench", "gmm-posterior", "--reduced", "--instance", "d4-k1-ill-s0.1", "--solver", "dps", "--steps", "4"]
    assert main([*argv, "--device", "cuda", "--out", str(tmp_path / "cuda")]) == 0
    assert main([*argv, "--device", "cpu", "--out", str(tmp_path / "cpu")]) == 0
    cuda, cpu = (json.loads((tmp_path / d / "results.jsonl").read_text()) for d in ("cuda", "cpu"))
    assert cuda["device"] == "cuda" and cuda["peak_memory_mb"] > 0 and cuda["network_passes"] == cpu["network_passes"]
    assert abs(cuda["metrics"]["mean_error"] - cpu["metrics"]["mean_error"]) < 1e-6  # float64 problem
