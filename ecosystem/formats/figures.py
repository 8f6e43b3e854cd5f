"""The figures the project writes (matplotlib, Agg backend: no display needed).

Every figure shares the package's style (``ecosystem.mplstyle``: fonts, sizes, a colour-blind
safe palette), applied when this module is imported. :func:`save` is the one way a figure
reaches a file: its format and resolution come from :func:`output` (the commands' ``--format``
and ``--dpi``), PNG at :data:`DPI` otherwise. PDF and SVG carry no date, so a figure
regenerated from the same data is the same file.

A reproduction's figures are drawn from arrays it saves beside them (:data:`DATA_FILE`, written
by :func:`save_data`, read back by :func:`load_data`): numbers and strings in numpy's ``.npz``
format, no pickles, so ``ecosystem plot`` redraws them without rerunning anything.
"""

from __future__ import annotations

import contextvars
import string
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import networkx as nx
import numpy as np
import pandas as pd

from ecosystem.core.flows import kind
from ecosystem.errors import UsageError

STYLE = Path(__file__).with_name("ecosystem.mplstyle")
plt.style.use(STYLE)

FORMATS = ("png", "pdf", "svg")
DPI = 150
MAX_LINES = 12
"""Per-model lines drawn in a time series; beyond that only the ecosystem summary."""
COLOURS = plt.rcParams["axes.prop_cycle"].by_key()["color"]
"""The style's qualitative palette (Paul Tol's bright)."""
LINESTYLES = ("-", "--", "-.", ":")


@dataclass(frozen=True)
class Output:
    """Where :func:`save` puts figures: file format (one of :data:`FORMATS`) and raster resolution."""

    format: str = "png"
    dpi: int = DPI


_OUTPUT: contextvars.ContextVar[Output | None] = contextvars.ContextVar("figure_output", default=None)
_METADATA = {"png": {"Software": None}, "pdf": {"CreationDate": None, "Producer": None}, "svg": {"Date": None}}


@contextmanager
def output(format: str = "png", dpi: int = DPI) -> Iterator[Output]:
    """Within the block, :func:`save` writes ``format`` at ``dpi``."""
    if format not in FORMATS:
        raise ValueError(f"figure format must be one of {', '.join(FORMATS)}, got {format!r}")
    token = _OUTPUT.set(Output(format, int(dpi)))
    try:
        yield Output(format, int(dpi))
    finally:
        _OUTPUT.reset(token)


def save(fig, path: Path) -> Path:
    """Write ``fig`` to ``path`` with the suffix of the current :func:`output` format, close it;
    returns the path written."""
    out = _OUTPUT.get() or Output()
    path = Path(path).with_suffix(f".{out.format}")
    fig.savefig(path, format=out.format, dpi=out.dpi, metadata=_METADATA[out.format])
    plt.close(fig)
    return path


DATA_FILE = "figures.npz"
"""The file of a reproduction's figure data (:func:`save_data`, :func:`load_data`)."""


def save_data(folder: Path, data: Mapping[str, object]) -> Path:
    """Write ``data`` (name: array-like of numbers, booleans or strings) to ``folder/``:data:`DATA_FILE`;
    returns the path. Anything else (objects, which only a pickle could hold) is refused."""
    arrays = {name: np.asarray(value) for name, value in data.items()}
    odd = [name for name, a in arrays.items() if a.dtype.kind not in "biufU"]
    if odd:
        raise TypeError(f"figure data {odd} are not arrays of numbers or strings")
    path = Path(folder) / DATA_FILE
    np.savez(path, **arrays)
    return path


class FigureData(Mapping[str, np.ndarray]):
    """The arrays of a :data:`DATA_FILE` by name; a name it lacks is a :class:`UsageError` naming the file."""

    def __init__(self, path: Path, arrays: dict[str, np.ndarray]) -> None:
        self.path, self._arrays = Path(path), arrays

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self._arrays[name]
        except KeyError:
            raise UsageError(f"{self.path}: holds no array {name!r}; the file is not the one its "
                             "reproduction wrote") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._arrays)

    def __len__(self) -> int:
        return len(self._arrays)


def load_data(folder: Path) -> FigureData:
    """The arrays :func:`save_data` wrote into ``folder`` (read with ``allow_pickle=False``); a
    missing or unreadable file is a :class:`UsageError` naming it."""
    path = Path(folder) / DATA_FILE
    if not path.is_file():
        raise UsageError(f"{path}: no such file (the figure data a reproduction saves)")
    if not zipfile.is_zipfile(path):
        raise UsageError(f"{path}: cannot read: not a numpy .npz archive (damaged or truncated?)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return FigureData(path, {name: npz[name] for name in npz.files})
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise UsageError(f"{path}: cannot read: {err}") from None


def readable(name: object) -> str:
    """A column or policy name for a legend: ``mean_alignment`` -> ``mean alignment``."""
    return str(name).replace("_", " ")


def panel_letters(axes: Sequence) -> None:
    """Bold letters (a), (b), ... at the top left of each panel."""
    for letter, ax in zip(string.ascii_lowercase, axes, strict=False):
        ax.text(-0.02, 1.02, f"({letter})", transform=ax.transAxes, fontweight="bold", ha="right", va="bottom")


def legend_outside(ax, **kw) -> None:
    """The legend of ``ax`` to the right of the data, never over it."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, **kw)


# --------------------------------------------------------------------------- runs


def diversity_label(family: str) -> str:
    """What the diversity column measures in family ``family`` (its ``kind``)."""
    return {"categorical": "entropy (nats)", "conditional": r"conditional entropy $H(Y \mid X)$ (nats)"}.get(
        family, "total variance")


def run_figures(folder: Path, agents: pd.DataFrame, ecosystem: pd.DataFrame, graph: nx.DiGraph,
                final_alignment: dict, events: list[int], family: str, contrast: Sequence[str] = (),
                isolated: pd.DataFrame | None = None) -> None:
    """The figures of a run folder: alignment and diversity over rounds, the data-flow graph and,
    when the scenario names models to contrast, the story figure."""
    folder = Path(folder)
    time_series(agents, ecosystem, "alignment", folder / "alignment.png", r"alignment $E[r]$", events)
    time_series(agents, ecosystem, "diversity", folder / "diversity.png", diversity_label(family), events)
    network(graph, final_alignment, folder / "graph.png")
    if contrast:
        story(agents, list(contrast), folder / "story.png", events, isolated)


def _event_lines(ax, events: Sequence[int]) -> None:
    for k, at in enumerate(events):
        ax.axvline(at, color="0.5", ls=":", lw=1, label="scripted event" if k == 0 else None)


def time_series(agents: pd.DataFrame, ecosystem: pd.DataFrame, column: str, path: Path,
                ylabel: str, events: Sequence[int] = ()) -> None:
    """``column`` per model over rounds (up to :data:`MAX_LINES` models, each with its own colour
    and dash so that none hides another) with the ecosystem mean; dotted lines mark the rounds
    at which scripted events took effect."""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    _event_lines(ax, events)
    names = agents["model"].unique()
    if len(names) <= MAX_LINES:
        for k, (name, df) in enumerate(agents.groupby("model", sort=False)):
            ax.plot(df["step"], df[column], color=COLOURS[k % 7], ls=LINESTYLES[k // 7 % 4], label=str(name))
    mean = agents.groupby("step")[column].mean()
    ax.plot(mean.index, mean.values, color="k", ls="--", lw=2, label="ecosystem mean")
    if column == "alignment" and "min_alignment" in ecosystem:
        ax.plot(ecosystem["step"], ecosystem["min_alignment"], color="k", ls=":", lw=1.5, label="ecosystem min")
    ax.set_xlabel("round")
    ax.set_ylabel(ylabel)
    legend_outside(ax)
    save(fig, path)


def story(agents: pd.DataFrame, contrast: list[str], path: Path, events: Sequence[int] = (),
          isolated: pd.DataFrame | None = None) -> None:
    """The scenario's story: (a) the contrasted models' alignment over rounds, the final gap between
    the first two annotated, and each model run alone (``isolated``: ``step, model, alignment``) as
    a thin dotted reference; (b) each contrasted model minus the first (where they differ)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.5, 3.6), gridspec_kw={"width_ratios": [3, 2]})
    rows = {name: agents[agents["model"].astype(str) == name] for name in contrast}
    for k, (name, df) in enumerate(rows.items()):
        left.plot(df["step"], df["alignment"], color=COLOURS[k % 7], ls=LINESTYLES[k % 4], lw=1.8, label=name)
        alone = None if isolated is None else isolated[isolated["model"].astype(str) == name]
        if alone is not None and len(alone):
            left.plot(alone["step"], alone["alignment"], color=COLOURS[k % 7], ls=":", lw=1.0, alpha=0.8,
                      label=f"{name} alone")
    _event_lines(left, events)
    first, second = rows[contrast[0]], rows[contrast[1]]
    end_a, end_b = float(first["alignment"].iloc[-1]), float(second["alignment"].iloc[-1])
    x_end = float(max(first["step"].iloc[-1], second["step"].iloc[-1]))
    left.annotate("", xy=(x_end, end_b), xytext=(x_end, end_a),
                  arrowprops={"arrowstyle": "<->", "color": "0.2", "lw": 1.2})
    left.annotate(rf"$\Delta$ = {end_b - end_a:+.3g}", xy=(x_end, (end_a + end_b) / 2), xytext=(-6, 0),
                  textcoords="offset points", ha="right", va="center", fontsize=9,
                  bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "0.7"})
    left.set_xlabel("round")
    left.set_ylabel(r"alignment $E[r]$ with own users")
    left.set_title(" vs ".join(contrast))
    legend_outside(left)
    base = first.set_index("step")["alignment"]
    for k, name in enumerate(contrast[1:], start=1):
        diff = rows[name].set_index("step")["alignment"] - base
        right.plot(diff.index, diff.to_numpy(), color=COLOURS[k % 7], ls=LINESTYLES[k % 4],
                   label=f"{name} − {contrast[0]}")
    right.axhline(0, color="0.5", lw=0.8)
    right.set_xlabel("round")
    right.set_ylabel(r"alignment difference $\Delta E[r]$")
    right.legend(loc="best")
    panel_letters([left, right])
    save(fig, path)


NODE_STYLE = {"curator": ("s", "#CCBB44"), "source": ("D", "#228833"), "pool": ("h", "#BBBBBB")}
"""Marker and colour of the non-model nodes; models are circles coloured by alignment."""
ALIGNMENT_CMAP = "RdBu"
"""Diverging, colour-blind safe: blue aligned, red misaligned, white 0."""
MAX_ARROWS = 150
"""Edges drawn as arrows up to this many; beyond, as plain lines (much faster to render)."""


def draw_network(ax, graph: nx.DiGraph, alignment: dict, pos: dict, vmin: float, vmax: float,
                 labels: bool | None = None):
    """Draw the data-flow graph on ``ax``: models coloured by ``alignment`` on ``[vmin, vmax]``,
    curators, sources and pools by marker, edge width by share, names beside (not on) the
    nodes, the legend under the axes. Returns the model-node collection (a ScalarMappable:
    pass it to a colorbar, or ``set_array`` new values)."""
    models = [v for v in graph.nodes if kind(graph, v) == "model"]
    values = np.ma.masked_invalid(np.array([alignment.get(v, np.nan) for v in models], dtype=float))
    widths = [2.5 * d.get("weight", 0.3) + 0.3 for *_, d in graph.edges(data=True)]
    small = len(models) <= 60
    size = 420 if small else 90
    nx.draw_networkx_edges(graph, pos, ax=ax, width=widths, alpha=0.45, arrowsize=10, node_size=size,
                           arrows=graph.number_of_edges() <= MAX_ARROWS, edge_color="0.35")
    cmap = plt.get_cmap(ALIGNMENT_CMAP).with_extremes(bad="0.8")
    sc = ax.scatter([pos[v][0] for v in models], [pos[v][1] for v in models], c=values, cmap=cmap,
                    vmin=vmin, vmax=vmax, s=size, edgecolors="0.2", linewidths=0.6, zorder=3, label="model")
    for k, (marker, colour) in NODE_STYLE.items():
        nodes = [v for v in graph.nodes if kind(graph, v) == k]
        if nodes:
            ax.scatter([pos[v][0] for v in nodes], [pos[v][1] for v in nodes], marker=marker, c=colour,
                       s=260 if small else 50, edgecolors="0.3", linewidths=0.5, zorder=3, label=k)
    if labels if labels is not None else graph.number_of_nodes() <= 60:
        for v in graph.nodes:
            ax.annotate(str(v), pos[v], xytext=(0, -13 if small else -7), textcoords="offset points",
                        ha="center", va="top", fontsize=7, zorder=4)
    ax.margins(0.12)
    legend = ax.legend(loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=4, markerscale=0.6, fontsize=8)
    model_marker = legend.legend_handles[0]              # a shape in the legend, not a value
    model_marker.set_array(None)
    model_marker.set_facecolor("white")
    ax.set_axis_off()
    return sc


def symmetric_bound(values: Sequence[float]) -> float:
    """Half-width of a colour scale centred on 0 that holds every finite value (1 if none is nonzero)."""
    finite = np.abs(np.asarray(values, dtype=float))
    finite = finite[np.isfinite(finite)]
    return float(finite.max()) if finite.size and finite.max() > 0 else 1.0


def network(graph: nx.DiGraph, final_alignment: dict, path: Path, seed: int = 0) -> None:
    """The data-flow graph, models coloured by final alignment on a scale centred on 0
    (0 white: neither aligned nor misaligned with the model's own users)."""
    fig, ax = plt.subplots(figsize=(7, 6))
    bound = symmetric_bound(list(final_alignment.values()))
    sc = draw_network(ax, graph, final_alignment, nx.spring_layout(graph, seed=seed), -bound, bound)
    fig.colorbar(sc, ax=ax, extend="both", shrink=0.8, label=r"final alignment $E[r]$ (0: neutral)")
    save(fig, path)


# --------------------------------------------------------------------------- analysis

INFLUENCE_TITLE = r"long-run influence $\partial J_i^*/\partial p$"
RAW_TITLE = r"one-round effect $\partial J_i/\partial p$"


def influence_size(rows: int, cols: int) -> tuple[float, float]:
    """A heatmap's figure size (inches) for a ``rows`` x ``cols`` matrix: cells stay readable."""
    return 2.2 + 0.55 * min(cols, 40), 1.6 + 0.38 * min(rows, 60)


def influence_heatmap(matrix: np.ndarray, rows: list[str], cols: list[str], path: Path,
                      raw: np.ndarray | None = None) -> Path:
    """A diverging heatmap of ``matrix`` ``(len(rows), len(cols))``, zero at the centre colour;
    with ``raw`` (the one-round effects, same shape) a second panel beside it on the same scale."""
    width, height = influence_size(len(rows), len(cols))
    panels = 1 if raw is None else 2
    fig, axes = plt.subplots(1, panels, figsize=(width * panels, height), squeeze=False)
    bound = symmetric_bound(np.concatenate([np.ravel(matrix), [] if raw is None else np.ravel(raw)]))
    draw_influence(axes[0, 0], matrix, rows, cols, INFLUENCE_TITLE, bound)
    if raw is not None:
        draw_influence(axes[0, 1], raw, rows, cols, RAW_TITLE, bound)
        panel_letters(axes[0])
    return save(fig, path)


def draw_influence(ax, matrix: np.ndarray, rows: list[str], cols: list[str],
                   title: str = INFLUENCE_TITLE, bound: float | None = None) -> None:
    """The influence heatmap on ``ax`` (diverging, zero at the centre colour), with its colorbar;
    values written in the cells while they fit, in white on dark cells."""
    matrix = np.asarray(matrix, dtype=float)
    bound = symmetric_bound(np.ravel(matrix)) if bound is None else bound
    im = ax.imshow(matrix, cmap="RdBu", vmin=-bound, vmax=bound, aspect="auto")
    n_rows, n_cols = matrix.shape
    tick = max(4.0, min(8.0, 220 / max(n_rows, n_cols, 1)))
    ax.set_xticks(range(n_cols), cols, rotation=45, ha="right", fontsize=tick)
    ax.set_yticks(range(n_rows), rows, fontsize=tick)
    ax.grid(False)
    if n_rows <= 30 and n_cols <= 20:
        size = max(4.5, min(8.0, 9.0 - 0.15 * max(n_rows, n_cols)))
        for (i, j), v in np.ndenumerate(matrix):
            if np.isfinite(v):
                dark = abs(v) > 0.6 * bound
                ax.text(j, i, f"{v:.2g}", ha="center", va="center", fontsize=size, color="white" if dark else "0.1")
    ax.figure.colorbar(im, ax=ax, label=r"$\partial J/\partial p$")
    ax.set_xlabel("parameter $p$")
    ax.set_ylabel("model $i$")
    ax.set_title(title)


def _matrix(rows: list) -> np.ndarray:
    """A JSON matrix (null: NaN) as floats."""
    return np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=float).reshape(len(rows), -1)


def analysis_figure(report: dict, path: Path) -> Path:
    """The influence figure of an analysis (``analysis.json``'s content): long-run and one-round panels."""
    return influence_heatmap(_matrix(report["influence"]), report["models"], report["parameters"], path,
                             raw=_matrix(report["raw"]))


def policy_figure(result: dict, path: Path) -> Path:
    """The policy figure of an optimisation (``policy.json``'s content): simulated welfare and
    alignments (at the stable point, or the sample estimates of a derivative-free search)."""
    names, pols = list(result["policies"]), result["policies"]
    models = list(pols["optimal"]["alignment"])
    exact = result.get("method", "gradient") == "gradient"
    objective = np.array([pols[p]["objective"]["simulated"] if exact else pols[p]["objective"]["sample"]["mean"]
                          for p in names], dtype=float)
    align = _matrix([[pols[p]["alignment"][m] for m in models] for p in names])
    kind = result["objective_kind"] if exact else f"{result['objective_kind']} (sample estimate)"
    return policy_comparison(names, objective, align, models, path, kind)


def policy_comparison(policies: list[str], objective: np.ndarray, alignment: np.ndarray, models: list[str],
                      path: Path, objective_kind: str = "mean") -> Path:
    """Curation policies side by side: (a) welfare ``objective`` ``(P,)`` per policy and (b) the
    stable alignment ``alignment`` ``(P, N)`` of each model under each policy (up to
    :data:`MAX_LINES` models)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [1, 2]})
    x = np.arange(len(policies))
    names = [readable(p) for p in policies]
    left.bar(x, objective, color="0.45")
    left.set_xticks(x, names, rotation=30, ha="right")
    left.set_ylabel(f"{objective_kind} alignment at the stable point")
    left.axhline(0, color="grey", lw=0.8)
    shown = models[:MAX_LINES]
    width = 0.8 / max(len(shown), 1)
    for k, name in enumerate(shown):
        right.bar(x - 0.4 + width * (k + 0.5), alignment[:, k], width, color=COLOURS[k % 7], label=str(name))
    right.set_xticks(x, names, rotation=30, ha="right")
    right.set_ylabel("stable alignment per model")
    right.axhline(0, color="grey", lw=0.8)
    legend_outside(right)
    panel_letters([left, right])
    return save(fig, path)
