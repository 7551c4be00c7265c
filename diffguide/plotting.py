"""Figures people would rather look at than read: image comparisons with their scores."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402


def _show(ax, image: torch.Tensor, data_range: tuple[float, float]) -> None:
    low, high = data_range
    array = ((image.detach().float().cpu() - low) / (high - low)).clamp(0, 1).permute(1, 2, 0).numpy()
    ax.imshow(array[:, :, 0] if array.shape[2] == 1 else array, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def comparison_figure(rows: dict[str, torch.Tensor], data_range: tuple[float, float], title: str = "",
                      size: float = 1.3):
    """One column per sample, one row per named batch (e.g. measurement / result / truth)."""
    names = list(rows)
    columns = len(next(iter(rows.values())))
    fig, axes = plt.subplots(len(names), columns, figsize=(max(size * columns + 0.8, 5.0), size * len(names) + 0.5),
                             squeeze=False)
    for r, name in enumerate(names):
        for c in range(columns):
            _show(axes[r, c], rows[name][c], data_range)
        axes[r, 0].set_ylabel(name, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def image_grid_figure(images: torch.Tensor, data_range: tuple[float, float], columns: int, title: str = "",
                      labels: list[str] | None = None, size: float = 0.9):
    """A grid of images, optionally labelled."""
    rows = -(-len(images) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(size * columns + 0.4, size * rows + 0.6), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i < len(images):
            _show(ax, images[i], data_range)
            if labels:
                ax.set_title(labels[i], fontsize=7)
        else:
            ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def labelled_grid_figure(rows: dict[str, list[tuple[str, torch.Tensor]]], data_range: tuple[float, float],
                         title: str = "", size: float = 1.3):
    """Named rows of titled images, ``rows[name] = [(title, image), ...]``, left-aligned; short rows end blank."""
    columns = max(len(cells) for cells in rows.values())
    fig, axes = plt.subplots(len(rows), columns, squeeze=False,
                             figsize=(max(size * columns + 1.2, 4.0), size * len(rows) + 0.6))
    for r, (name, cells) in enumerate(rows.items()):
        for c in range(columns):
            if c < len(cells):
                _show(axes[r, c], cells[c][1], data_range)
                axes[r, c].set_title(cells[c][0], fontsize=7)
            else:
                axes[r, c].axis("off")
        axes[r, 0].set_ylabel(name, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def field_figure(fields: dict[str, torch.Tensor], title: str = "", size: float = 2.2, limit: float | None = None,
                 columns: int | None = None):
    """Named scalar fields (N, M) on one diverging colour scale, symmetric about 0 (``limit``: its
    end; default the largest magnitude shown), ``columns`` to a row (default: all in one), with a
    colour bar."""
    limit = limit or max(float(field.abs().max()) for field in fields.values())
    columns = columns or len(fields)
    rows = -(-len(fields) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(size * columns + 0.9, size * rows + 0.5), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (name, field) in zip(axes.flat, fields.items()):
        shown = ax.imshow(field.detach().float().cpu().numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit,
                          interpolation="nearest", origin="lower")
        ax.set_title(name, fontsize=8)
    fig.colorbar(shown, ax=list(axes.flat), shrink=0.8)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def piano_roll_figure(rolls: list[tuple[str, torch.Tensor]], columns: int = 4, title: str = "",
                      size: tuple[float, float] = (2.6, 1.9)):
    """Titled piano rolls (2, pitches, frames) (``music.piano_roll``): sounding notes in grey, each
    note's first frame dark, low pitches at the bottom, bar lines every 16 frames, C's labelled."""
    from .music.piano_roll import LOWEST_PITCH

    rows = -(-len(rolls) // columns)
    columns = min(columns, len(rolls))
    fig, axes = plt.subplots(rows, columns, figsize=(size[0] * columns + 0.4, size[1] * rows + 0.5), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (name, roll) in zip(axes.flat, rolls):
        roll = roll.detach().float().cpu()
        sounding, onset = (roll[0] > 0).float(), ((roll[1] > 0) & (roll[0] > 0)).float()
        ax.axis("on")
        ax.imshow(1 - 0.45 * sounding - 0.5 * onset, cmap="gray", vmin=0, vmax=1, origin="lower",
                  interpolation="nearest", aspect="auto")
        for bar in range(16, roll.shape[-1], 16):
            ax.axvline(bar - 0.5, color="tab:blue", linewidth=0.5, alpha=0.5)
        rows_of_c = [row for row in range(roll.shape[1]) if (row + LOWEST_PITCH) % 12 == 0]
        ax.set_yticks(rows_of_c, [f"C{(row + LOWEST_PITCH) // 12 - 1}" for row in rows_of_c], fontsize=6)
        ax.set_xticks(range(0, roll.shape[-1] + 1, 16), [str(b + 1) for b in range(roll.shape[-1] // 16 + 1)], fontsize=6)
        ax.set_title(name, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
