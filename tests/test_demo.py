"""``diffguide demo --quick`` writes every file it promises."""
import json

from diffguide.cli import main
from diffguide.cli.demo_problems import PROBLEMS


def test_quick_demo_writes_report_figures_and_metrics(tmp_path):
    assert main(["demo", "--quick", "--out", str(tmp_path / "demo")]) == 0
    out = tmp_path / "demo"
    metrics = json.loads((out / "metrics.json").read_text())
    report = (out / "report.md").read_text()
    assert set(metrics) == set(PROBLEMS)
    for name in PROBLEMS:
        assert (out / f"{name}.png").stat().st_size > 1000
        assert f"![{name}]({name}.png)" in report
    for name in ("digits-deblur", "digits-inpaint", "photos-inpaint", "photos-sr"):
        assert metrics[name]["psnr"] > 10 and 0 < metrics[name]["ssim"] <= 1
    assert metrics["navier-stokes"]["forward_evaluations"] > 0 and metrics["navier-stokes"]["rel_l2"] < 2
    guided = {name: m["judge_accuracy"] for name, m in metrics["reward-guidance"].items() if name != "unguided DDPM"}
    assert max(guided.values()) > metrics["reward-guidance"]["unguided DDPM"]["judge_accuracy"]
    conditional = metrics["conditional-guidance"]
    alone = conditional["conditional model"]
    assert conditional["CFG 3"]["network_passes"] == 2 * alone["network_passes"]  # two passes a guided step
    for bold in ("SCG+CFG, bold", "FreeDoM+CFG, bold"):  # the composed reward makes the strokes bolder
        assert conditional[bold]["ink_fraction"] > alone["ink_fraction"]
    music = metrics["music-rules"]  # SCG lowers each rule's exact loss below the unguided rolls'
    for row in ("SCG: two voices, one onset a beat", "SCG: I-IV-V-I in C", "SCG: both rules"):
        assert music[row]["rule_losses"][row] < music["unguided DDPM"]["rule_losses"][row]
        assert (out / music[row]["midi"]).stat().st_size > 0
