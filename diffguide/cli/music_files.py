"""What ``diffguide sample`` writes for a piano-roll prior: each sample as MIDI and MusicXML, and a picture."""
from __future__ import annotations

import torch

#: rolls drawn in rolls.png (the first ones)
PICTURED = 16


def music_files(samples: torch.Tensor, losses: torch.Tensor | None = None) -> dict[str, object]:
    """``sample_NNN.mid`` and ``sample_NNN.musicxml`` per roll, and ``rolls.png`` of the first ones
    titled with their rule loss when ``losses`` (N,) is given; writers for ``common.write_outputs``."""
    from ..music.scores import write_roll
    from ..plotting import piano_roll_figure

    files = {}
    for i, roll in enumerate(samples):
        for suffix in (".mid", ".musicxml"):
            files[f"sample_{i:03d}{suffix}"] = lambda path, roll=roll: write_roll(roll, path)
    titles = [f"sample {i}" + ("" if losses is None else f", rule loss {float(losses[i]):.3g}")
              for i in range(min(len(samples), PICTURED))]

    def picture(path):
        figure = piano_roll_figure(list(zip(titles, samples)), columns=4)
        figure.savefig(path, dpi=110)
        import matplotlib.pyplot as plt

        plt.close(figure)

    files["rolls.png"] = picture
    return files
