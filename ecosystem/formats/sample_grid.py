"""The picture of learned models whose samples are images: each model's samples at the start
and at the end of a run, side by side (``samples.png``), and the draws it shows (``samples.npz``).

The samples are the first evaluation draws (common random numbers), so the two halves of a
row differ only because the model changed.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ecosystem.core.learned import Learned
from ecosystem.formats import figures

PER_SIDE = 6
"""Samples shown per model at the start and at the end."""


def draws(family: Learned, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last samples ``(N, PER_SIDE, d)`` of the models at ``rows`` ``(N, 1)``."""
    start = np.stack([family.initial_draws(r)[:PER_SIDE] for r in rows])
    return start, family.evaluation(rows)[:, :PER_SIDE]


def picture(sample: np.ndarray, shape: tuple[int, ...], bounds: tuple[float, float] | None) -> np.ndarray:
    """One sample ``(d,)`` as an image of ``shape`` (its first ``prod(shape)`` values: a class label
    after them is not drawn), scaled to [0, 1] by ``bounds``."""
    image = sample[:math.prod(shape)].reshape(shape)
    lo, hi = bounds if bounds is not None else (float(image.min()), float(image.max()) or 1.0)
    return np.clip((image - lo) / max(hi - lo, 1e-300), 0.0, 1.0)


def write(family: Learned, rows: np.ndarray, names: list, folder: Path) -> list[Path]:
    """``samples.png`` and ``samples.npz`` of the models ``names`` at ``rows`` into ``folder``."""
    start, end = draws(family, rows)
    np.savez(folder / "samples.npz", start=start, end=end, models=np.array([str(n) for n in names]))
    return [folder / "samples.npz", figures.save(figure(family, start, end, names), folder / "samples.png")]


def figure(family: Learned, start: np.ndarray, end: np.ndarray, names: list, now: str = "end") -> Figure:
    """The grid: per model (a row) its first samples ``start`` and its latest ``end``
    (``(N, PER_SIDE, d)`` each); ``now`` titles the right half."""
    grey = len(family.shape) == 2
    fig = Figure(figsize=(0.6 * (2 * PER_SIDE + 1) + 1.2, 0.65 * len(names) + 0.8))   # no pyplot: threads draw it
    axes = fig.subplots(len(names), 2 * PER_SIDE + 1, squeeze=False)
    for i, name in enumerate(names):
        for j in range(2 * PER_SIDE + 1):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            ax.spines[:].set_visible(False)
            if j == PER_SIDE:
                continue
            sample = start[i, j] if j < PER_SIDE else end[i, j - PER_SIDE - 1]
            ax.imshow(picture(sample, family.shape, family.bounds), cmap="gray_r" if grey else None,
                      vmin=0, vmax=1, interpolation="nearest")
        axes[i, 0].set_ylabel(str(name), rotation=0, ha="right", va="center")
    axes[0, PER_SIDE // 2].set_title("start", fontsize="medium")
    axes[0, PER_SIDE + 1 + PER_SIDE // 2].set_title(now, fontsize="medium")
    fig.suptitle(f"samples of each model (the same random numbers at start and {now})", fontsize="medium")
    return fig
