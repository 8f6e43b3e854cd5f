"""Standard figures of a run (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import networkx as nx
import numpy as np
import pandas as pd

from ecosystem.core.flows import kind

MAX_LINES = 12
"""Per-model lines drawn in a time series; beyond that only the ecosystem summary."""


def save(fig, path: Path) -> None:
    """Lay out, write as PNG (110 dpi) and close ``fig``."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def time_series(agents: pd.DataFrame, ecosystem: pd.DataFrame, column: str, path: Path,
                ylabel: str, events: list[int] = ()) -> None:
    """``column`` per model over rounds (up to :data:`MAX_LINES` models) with the ecosystem mean;
    vertical lines mark the rounds at which scripted events took effect."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for k, at in enumerate(events):
        ax.axvline(at, color="0.6", ls=":", lw=1, label="event" if k == 0 else None)
    names = agents["model"].unique()
    if len(names) <= MAX_LINES:
        for name, df in agents.groupby("model", sort=False):
            ax.plot(df["step"], df[column], lw=1.2, label=str(name))
    mean = agents.groupby("step")[column].mean()
    ax.plot(mean.index, mean.values, "k--", lw=2, label="ecosystem mean")
    if column == "alignment" and "min_alignment" in ecosystem:
        ax.plot(ecosystem["step"], ecosystem["min_alignment"], "k:", lw=1.5, label="ecosystem min")
    ax.set_xlabel("round")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    save(fig, path)


NODE_STYLE = {"curator": ("s", "#f2c14e"), "source": ("D", "#7fb77e"), "pool": ("h", "#b8b8d1")}
"""Marker and colour of the non-model nodes; models are circles coloured by alignment."""
ALIGNMENT_CMAP = "coolwarm_r"
MAX_ARROWS = 150
"""Edges drawn as arrows up to this many; beyond, as plain lines (much faster to render)."""


def draw_network(ax, graph: nx.DiGraph, alignment: dict, pos: dict, vmin: float, vmax: float,
                 labels: bool | None = None):
    """Draw the data-flow graph on ``ax``: models coloured by ``alignment`` on ``[vmin, vmax]``,
    curators, sources and pools by marker, edge width by share. Returns the model-node
    collection (a ScalarMappable: pass it to a colorbar, or ``set_array`` new values)."""
    models = [v for v in graph.nodes if kind(graph, v) == "model"]
    values = np.ma.masked_invalid(np.array([alignment.get(v, np.nan) for v in models], dtype=float))
    widths = [2.5 * d.get("weight", 0.3) + 0.3 for *_, d in graph.edges(data=True)]
    nx.draw_networkx_edges(graph, pos, ax=ax, width=widths, alpha=0.45, arrowsize=10,
                           arrows=graph.number_of_edges() <= MAX_ARROWS, edge_color="0.35")
    small = len(models) <= 60
    cmap = plt.get_cmap(ALIGNMENT_CMAP).with_extremes(bad="0.8")
    sc = ax.scatter([pos[v][0] for v in models], [pos[v][1] for v in models], c=values, cmap=cmap,
                    vmin=vmin, vmax=vmax, s=420 if small else 90, edgecolors="0.2", linewidths=0.6,
                    zorder=3, label="model")
    for k, (marker, colour) in NODE_STYLE.items():
        nodes = [v for v in graph.nodes if kind(graph, v) == k]
        if nodes:
            ax.scatter([pos[v][0] for v in nodes], [pos[v][1] for v in nodes], marker=marker, c=colour,
                       s=260 if small else 50, edgecolors="0.3", linewidths=0.5, zorder=3, label=k)
    if labels if labels is not None else graph.number_of_nodes() <= 60:
        nx.draw_networkx_labels(graph, pos, font_size=7, ax=ax)
    ax.legend(fontsize=8, loc="lower left", markerscale=0.6)
    ax.set_axis_off()
    return sc


def network(graph: nx.DiGraph, final_alignment: dict, path: Path, seed: int = 0) -> None:
    """The data-flow graph, models coloured by final alignment on a labelled scale."""
    fig, ax = plt.subplots(figsize=(7, 6))
    values = np.array(list(final_alignment.values()), dtype=float)
    finite = values[np.isfinite(values)]
    lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    sc = draw_network(ax, graph, final_alignment, nx.spring_layout(graph, seed=seed), lo, hi)
    fig.colorbar(sc, ax=ax, label="final alignment")
    save(fig, path)


def influence_heatmap(matrix: np.ndarray, rows: list[str], cols: list[str], path: Path,
                      title: str = "long-run influence dJ_i*/dp") -> None:
    """A diverging heatmap of ``matrix`` ``(len(rows), len(cols))``, zero at the centre colour."""
    fig, ax = plt.subplots(figsize=(1.2 + 0.6 * len(cols), 1.2 + 0.45 * len(rows)))
    draw_influence(ax, matrix, rows, cols, title)
    save(fig, path)


def draw_influence(ax, matrix: np.ndarray, rows: list[str], cols: list[str],
                   title: str = "long-run influence dJ_i*/dp") -> None:
    """The influence heatmap on ``ax`` (diverging, zero at the centre colour), with its colorbar."""
    finite = np.abs(matrix[np.isfinite(matrix)])
    bound = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    im = ax.imshow(matrix, cmap="RdBu", vmin=-bound, vmax=bound, aspect="auto")
    ax.set_xticks(range(len(cols)), cols, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    if matrix.size <= 400:
        for (i, j), v in np.ndenumerate(matrix):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.2g}", ha="center", va="center", fontsize=6)
    ax.figure.colorbar(im, ax=ax, label="dJ/dp")
    ax.set_title(title, fontsize=9)


def policy_comparison(policies: list[str], objective: np.ndarray, alignment: np.ndarray, models: list[str],
                      path: Path, objective_kind: str = "mean") -> None:
    """Curation policies side by side: welfare ``objective`` ``(P,)`` per policy (left) and the
    stable alignment ``alignment`` ``(P, N)`` of each model under each policy (right, up to
    :data:`MAX_LINES` models)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [1, 2]})
    x = np.arange(len(policies))
    left.bar(x, objective, color="0.45")
    left.set_xticks(x, policies, rotation=30, fontsize=8)
    left.set_ylabel(f"{objective_kind} alignment at the stable point")
    left.axhline(0, color="grey", lw=0.8)
    shown = models[:MAX_LINES]
    width = 0.8 / max(len(shown), 1)
    for k, name in enumerate(shown):
        right.bar(x - 0.4 + width * (k + 0.5), alignment[:, k], width, label=str(name))
    right.set_xticks(x, policies, rotation=30, fontsize=8)
    right.set_ylabel("stable alignment per model")
    right.axhline(0, color="grey", lw=0.8)
    right.legend(fontsize=7, ncol=2)
    save(fig, path)
