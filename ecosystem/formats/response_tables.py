"""The picture of conditional models: each model's answers ``p(y | x)`` as a heatmap (inputs as
rows, responses as columns) at the start and at the end of a run, its domain ``m(x)`` beside
each row (``responses.png``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ecosystem.core.conditional import ConditionalCategorical
from ecosystem.formats import figures


def _labels(points: np.ndarray) -> list[str]:
    return [", ".join(f"{v:g}" for v in p) for p in points]


def figure(family: ConditionalCategorical, start: np.ndarray, end: np.ndarray, names: list,
           now: str = "end") -> Figure:
    """Per model (a row of panels) its answers at ``start`` and at ``end`` (rows ``(N, k)`` each);
    ``now`` titles the right column."""
    n = len(names)
    fig = Figure(figsize=(7.2, 0.5 + (0.35 * family.n_in + 0.9) * n))     # no pyplot: threads draw it
    axes = fig.subplots(n, 2, squeeze=False)
    image = None
    for i, name in enumerate(names):
        for j, (rows, title) in enumerate(((start, "start"), (end, now))):
            domain, cond = family.split(rows[i:i + 1])
            ax = axes[i, j]
            image = ax.imshow(cond[0], vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto", interpolation="nearest")
            ax.grid(False)
            ax.set_yticks(range(family.n_in),
                          [f"{lab} ({w:.2f})" for lab, w in zip(_labels(family.inputs), domain[0], strict=True)])
            ax.set_xticks(range(family.n_out), _labels(family.outputs))
            if i == 0:
                ax.set_title(title)
            if i == n - 1:
                ax.set_xlabel("response y")
            if j == 0:
                ax.set_ylabel(f"{name}\ninput x (domain share)")
    fig.colorbar(image, ax=axes, label=r"$p(y \mid x)$", shrink=0.8)
    return fig


def write(family: ConditionalCategorical, start: np.ndarray, end: np.ndarray, names: list, folder: Path) -> Path:
    """``responses.png`` of the models ``names`` (rows ``(N, k)`` at the start and the end) into ``folder``."""
    return figures.save(figure(family, start, end, names), Path(folder) / "responses.png")
