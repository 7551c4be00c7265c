"""The digits-conditional benchmark task, its judge metrics (precision, recall, diversity,
saturation) and guidance composed with a solver in one spec (``ddim+cfg:scale=3``)."""
import math

import pytest
import torch

from diffguide.benchmarks.harness import run_benchmark
from diffguide.benchmarks.report import method_and_scale, write_report
from diffguide.benchmarks.judge import diversity, judge_features, precision_recall
from diffguide.benchmarks.tasks.digits_bold import DigitsBold
from diffguide.benchmarks.tasks.digits_conditional import DigitsConditional, saturation
from diffguide.benchmarks.tasks.digits_unconditional import DigitsUnconditional, class_balance
from diffguide.cli import main
from diffguide.cli.errors import UsageError
from diffguide.cli.specs import parse_solver
from diffguide.data.digits import load_digits_split
from diffguide.guidance import CFG, GuidedDenoiser, IndependentCondition
from diffguide.guidance.guided_solver import GuidedSolver
from diffguide.solvers import DDIM, DPS

from diffguide.priors import GaussianPrior
from problems import ConditionalGaussians


def _digits(label):
    train, train_labels, held_out, held_out_labels = load_digits_split()
    return train[train_labels == label], held_out[held_out_labels == label]


def test_precision_and_recall_follow_the_k_nearest_neighbour_balls():
    _, held_out = _digits(3)
    assert precision_recall(held_out, held_out) == (1.0, 1.0)
    blank = -torch.ones(8, 1, 16, 16) + 0.01 * torch.randn(8, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    assert precision_recall(blank, held_out) == (0.0, 0.0)
    precision, recall = precision_recall(held_out[:6], held_out)  # a subset: faithful, covers less
    assert precision == 1.0 and recall < 1.0
    fs, fr = judge_features(held_out[:6]), judge_features(held_out)  # recall written out for the subset
    radii = torch.cdist(fs, fs).sort(dim=1).values[:, 3]
    assert recall == float((torch.cdist(fr, fs) <= radii[None]).any(1).double().mean())
    with pytest.raises(ValueError):
        precision_recall(held_out[:3], held_out)


def test_diversity_is_the_mean_distance_between_two_different_images_and_saturation_counts_the_ends():
    _, held_out = _digits(7)
    images = held_out[:3]
    f = judge_features(images)
    pairs = [(f[i] - f[j]).norm() for i in range(3) for j in range(3) if i != j]
    assert math.isclose(diversity(images), float(sum(pairs) / 6), rel_tol=1e-9)
    assert diversity(images[:1].expand(4, -1, -1, -1)) == 0.0
    values = torch.tensor([-1.0, -0.97, -0.95, 0.0, 0.95, 0.97, 1.0, 0.5]).reshape(1, 1, 2, 4)
    assert saturation(values, (-1.0, 1.0)) == 4 / 8  # within 0.04 of -1 or 1


def test_a_guidance_spec_after_plus_runs_the_solver_over_the_guided_prior():
    solver = parse_solver("ddim:eta=0.5+cfg:scale=3,sigma_lo=0.3,sigma_hi=5")
    assert solver == GuidedSolver(solver=DDIM(eta=0.5), rule=CFG(scale=3.0), sigma_lo=0.3, sigma_hi=5.0)
    assert solver.needs == "none" and parse_solver("dps+icg:scale=2").needs == "gradient"
    assert isinstance(parse_solver("dps+icg:scale=2").negative, IndependentCondition)
    pair = ConditionalGaussians(GaussianPrior(torch.ones(3), torch.eye(3)), GaussianPrior(torch.zeros(3), 4 * torch.eye(3)))
    x = torch.randn(2, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sigmas = torch.tensor([2.0, 1.0, 0.2, 0.0], dtype=torch.float64)
    labels = {"class_labels": torch.zeros(2, dtype=torch.long)}
    direct = DDIM()(GuidedDenoiser(pair, CFG(scale=3.0)), None, x, sigmas, **labels)
    torch.testing.assert_close(parse_solver("ddim+cfg:scale=3")(pair, None, x, sigmas, **labels), direct)
    for bad in ("ddim+cfg:sigma_lo=5,sigma_hi=1", "ddim+nope", "ddim+cfg:foo=1", "nope+cfg", "ddim+cfg++:scale=2"):
        with pytest.raises(UsageError):
            parse_solver(bad)
    with pytest.raises(ValueError, match="re-noises"):
        parse_solver("dps+cfg++")(pair, None, x, sigmas, **labels)
    assert isinstance(parse_solver("dps+cfg").solver, DPS)


def test_the_conditional_task_scores_guided_and_plain_sampling_and_counts_both_passes(tmp_path):
    solvers = {"ddim": DDIM(), "ddim+cfg:scale=3": parse_solver("ddim+cfg:scale=3")}
    written = run_benchmark(DigitsConditional(samples=8), solvers, seeds=1, steps=4, out=tmp_path,
                            instances=["digit-7"])
    rows = {record["solver"]: record for record in written}
    assert rows["ddim"]["nfe"] == 4 and rows["ddim+cfg:scale=3"]["nfe"] == 8
    for record in written:
        metrics = record["metrics"]
        for key in ("judge_accuracy", "precision", "recall", "saturation", "saturation_real"):
            assert 0.0 <= metrics[key] <= 1.0, key
        assert metrics["diversity"] > 0 and metrics["diversity_real"] > 0 and math.isfinite(metrics["kernel_distance"])
    assert rows["ddim"]["metrics"] != rows["ddim+cfg:scale=3"]["metrics"]
    report = write_report(tmp_path).read_text()
    assert "judge accuracy / kernel distance" in report and (tmp_path / "digits_conditional_trade_off.png").is_file()
    assert main(["bench", "digits-conditional", "--instance", "digit-10", "--out", str(tmp_path / "bad")]) == 2


def test_the_bold_task_composes_a_condition_with_a_reward_and_scores_both(tmp_path):
    specs = ("ddim+cfg:scale=2", "scg:candidates=4+cfg:scale=2", "freedom:rho=10+cfg:scale=2")
    written = run_benchmark(DigitsBold(samples=16), {spec: parse_solver(spec) for spec in specs}, seeds=1, steps=6,
                            out=tmp_path, instances=["digit-3"])
    rows = {record["solver"]: record for record in written}
    assert all(record["status"] == "ok" for record in written)
    condition = rows["ddim+cfg:scale=2"]["metrics"]
    # SCG keeps, per sample, the candidate nearest the ink target by the hard count; FreeDoM follows
    # the gradient of its sigmoid surrogate: both make the samples bolder, as asked
    for composed in ("scg:candidates=4+cfg:scale=2", "freedom:rho=10+cfg:scale=2"):
        metrics = rows[composed]["metrics"]
        assert metrics["ink_error"] < condition["ink_error"] and metrics["ink_fraction"] > condition["ink_fraction"]
        assert metrics["ink_error_real"] == condition["ink_error_real"] > 0
        assert rows[composed]["network_passes"] > rows["ddim+cfg:scale=2"]["network_passes"]
    assert "ink error" in write_report(tmp_path).read_text()


def test_the_bold_task_hands_gradient_solvers_the_smooth_surrogate_of_its_count():
    task, ddim, freedom, scg = DigitsBold(), DDIM(), parse_solver("freedom"), parse_solver("scg")
    assert task.reward(ddim) is None
    assert not task.reward(scg).differentiable and task.reward(freedom).differentiable
    images = load_digits_split()[2][:8]
    hard, soft = task.reward(scg).fractions(images), task.reward(freedom).fractions(images)
    assert torch.allclose(hard.float(), soft, atol=0.05)  # the surrogate counts nearly the same pixels


def test_the_unconditional_task_samples_without_a_label_and_scores_the_class_balance(tmp_path):
    _, _, held_out, labels = load_digits_split()
    assert class_balance(held_out[labels == 4]) == pytest.approx(0.1)  # one digit only: TV 0.9 from uniform
    assert class_balance(held_out) > 0.95
    solvers = {"ddim": DDIM(), "ddim+pag:scale=2": parse_solver("ddim+pag:scale=2")}
    written = run_benchmark(DigitsUnconditional(samples=8), solvers, seeds=1, steps=4, out=tmp_path)
    rows = {record["solver"]: record for record in written}
    assert [record["instance"] for record in written] == ["all-digits"] * 2
    assert rows["ddim"]["nfe"] == 4 and rows["ddim+pag:scale=2"]["network_passes"] == 8
    for record in written:
        assert 0.1 <= record["metrics"]["class_balance"] <= 1.0 and "judge_accuracy" not in record["metrics"]
    assert "class balance" in write_report(tmp_path).read_text()
    assert main(["bench", "digits-unconditional", "--instance", "digit-3", "--out", str(tmp_path / "bad")]) == 2


def test_trade_off_curves_join_the_specs_that_differ_only_in_their_scale():
    assert method_and_scale("ddim+cfg:scale=3") == ("ddim+cfg", "3")
    assert method_and_scale("ddim+cfg:scale=3,sigma_lo=0.3") == ("ddim+cfg:sigma_lo=0.3", "3")
    assert method_and_scale("dps:zeta=2+cfg:rescale=0.5,scale=2") == ("dps:zeta=2+cfg:rescale=0.5", "2")
    assert method_and_scale("ddim") == ("ddim", None)


def test_autoguidance_guides_away_from_the_shipped_weaker_digits_model():
    from diffguide.guidance import WeakerModel
    from diffguide.priors import load

    solver = parse_solver("ddim+autoguidance")
    assert solver.rule == CFG(scale=2.0) and solver.negative == WeakerModel("digits-autoguide")
    main_prior, weak = load("digits"), load("digits-autoguide")
    x = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    labels = {"class_labels": torch.tensor([1, 8])}
    with torch.no_grad():
        guided = solver.guided(main_prior)(x, 0.5, **labels)
        p, n = main_prior(x, 0.5, **labels), weak(x, 0.5, **labels)
    torch.testing.assert_close(guided, n + 2.0 * (p - n))
    assert sum(t.numel() for t in weak.unet.parameters()) < sum(t.numel() for t in main_prior.unet.parameters()) / 3
