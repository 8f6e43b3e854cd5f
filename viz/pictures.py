"""Matplotlib pictures of a running ecosystem, redrawn fast enough to animate.

Each picture is built once per model and then updated in place: the static parts (axes,
ticks, labels, the graph's edges) are drawn once into a background, and each round only the
changing artists are drawn on top of it (blitting) and the result encoded as PNG. Axes limits
grow in steps when the data leave them, which redraws the background; otherwise a round costs
a few milliseconds even for a 100-model ecosystem. No solara here: this module is plain
matplotlib and can be tested and timed on its own.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import numpy as np
from matplotlib.artist import Artist
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image

from ecosystem.formats import figures
from viz.model import VizModel

DPI = 80


def encode(canvas: FigureCanvasAgg) -> bytes:
    """The drawn canvas as PNG bytes (opaque, fast zlib level)."""
    buf = io.BytesIO()
    rgb = np.asarray(canvas.buffer_rgba())[..., :3]
    Image.fromarray(rgb).save(buf, format="png", compress_level=1)
    return buf.getvalue()


def png_of(figure: Figure) -> bytes:
    """A static figure as PNG bytes."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return encode(canvas)


class Blitted:
    """A figure whose ``dynamic`` artists are redrawn over a cached background."""

    def __init__(self, figure: Figure, dynamic: list[Artist]) -> None:
        self.figure, self.dynamic = figure, dynamic
        self.canvas = FigureCanvasAgg(figure)
        for artist in dynamic:
            artist.set_animated(True)
        self.background = None

    def invalidate(self) -> None:
        """Redraw the background on the next :meth:`png` (after limits or labels changed)."""
        self.background = None

    def png(self) -> bytes:
        """The figure as PNG bytes."""
        if self.background is None:
            self.canvas.draw()
            self.background = self.canvas.copy_from_bbox(self.figure.bbox)
        else:
            self.canvas.restore_region(self.background)
        for artist in self.dynamic:
            self.figure.draw_artist(artist)
        return encode(self.canvas)


class NetworkPicture:
    """The data-flow graph of one model: edges and curators drawn once, models recoloured each round."""

    def __init__(self, model: VizModel) -> None:
        self.nodes_drawn = tuple(model.graph.nodes)
        fig = Figure(figsize=(6.4, 5.2), dpi=DPI)
        ax = fig.add_subplot()
        bound = model.colour_bound
        self.models = [v for v in model.graph.nodes if model.graph.nodes[v]["kind"] == "model"]
        self.nodes = figures.draw_network(ax, model.graph, model.alignment_by_name, model.layout, -bound, bound)
        fig.colorbar(self.nodes, ax=ax, extend="both", shrink=0.8,
                     label="alignment with own users' reward (fixed scale, 0: neutral)")
        self.title = ax.set_title(" ", fontsize=10)
        labels = [t for t in ax.texts]          # node labels stay on top of the recoloured nodes
        self.blit = Blitted(fig, [self.nodes, *labels, self.title])

    def png(self, model: VizModel) -> bytes:
        """The picture at the model's current round."""
        values = model.alignment_by_name
        self.nodes.set_array(np.ma.masked_invalid([values.get(v, np.nan) for v in self.models]))
        self.title.set_text(f"{model.title}: round {model.steps}")
        return self.blit.png()


class _Panel:
    """One time-series axes: faint or labelled per-model lines plus summary lines, growing limits."""

    def __init__(self, ax, names: list, summaries: dict[str, dict], per_model: bool = True,
                 min_span: float = 0.0) -> None:
        self.ax, self.names, self.min_span = ax, names, min_span
        self.lines = []
        self.labelled = per_model and len(names) <= figures.MAX_LINES
        self.collection = None
        if self.labelled:
            self.lines = [ax.plot([], [], lw=1.2, color=figures.COLOURS[k % 7], ls=figures.LINESTYLES[k // 7 % 4],
                                  label=str(n))[0] for k, n in enumerate(names)]
        elif per_model:
            self.collection = LineCollection([], colors=figures.COLOURS[0], alpha=0.15, lw=0.8)
            ax.add_collection(self.collection)
            ax.plot([], [], color=figures.COLOURS[0], alpha=0.4, label=f"{len(names)} models")
        self.summaries = {key: ax.plot([], [], **style)[0] for key, style in summaries.items()}
        # scripted events: dotted vertical lines at the rounds they took effect
        self.events = LineCollection([], colors="0.45", linestyles=":", lw=1.2, transform=ax.get_xaxis_transform())
        ax.add_collection(self.events)
        self.xmax, self.ylim = 0.0, None
        ax.grid(alpha=0.3)
        ax.set_xlabel("round")
        ax.xaxis.set_major_locator(MaxNLocator("auto", integer=True, steps=[1, 2, 5, 10]))    # whole rounds

    @property
    def dynamic(self) -> list[Artist]:
        return [*self.lines, *([self.collection] if self.collection is not None else []), *self.summaries.values(),
                self.events]

    def update(self, per_model: np.ndarray | None, summaries: dict[str, np.ndarray],
               events: list[int] = ()) -> bool:
        """Set the data and event rounds; returns True if the limits had to grow (the background
        must be redrawn)."""
        steps = np.arange(len(next(iter(summaries.values()))))
        self.events.set_segments([[(r, 0.0), (r, 1.0)] for r in events])
        if per_model is not None and self.labelled:
            for j, line in enumerate(self.lines):
                line.set_data(steps, per_model[:, j])
        elif per_model is not None and self.collection is not None:
            self.collection.set_segments(np.stack([np.broadcast_to(steps, per_model.T.shape), per_model.T], axis=-1))
        for key, line in self.summaries.items():
            line.set_data(steps, summaries[key])
        return self._grow(steps[-1], [per_model, *summaries.values()])

    def _grow(self, last: int, data: list) -> bool:
        grown = False
        if last > self.xmax or self.xmax == 0:
            self.xmax = float(max(20, 2 ** int(np.ceil(np.log2(max(last, 1) * 1.25)))))
            self.ax.set_xlim(0, self.xmax)
            grown = True
        values = np.concatenate([np.ravel(d) for d in data if d is not None])
        values = values[np.isfinite(values)]
        if values.size:
            lo, hi = float(values.min()), float(values.max())
            if self.ylim is None or lo < self.ylim[0] or hi > self.ylim[1]:
                # never zoom into round-off: at least min_span, or 5% of the values' magnitude
                span = max(hi - lo, self.min_span, 0.05 * max(abs(hi), abs(lo)), 1e-9)
                if hi - lo < span:
                    lo, hi = (lo + hi - span) / 2, (lo + hi + span) / 2
                bottom, top = lo - 0.15 * span, hi + 0.15 * span
                if values.min() >= 0 > bottom:        # a nonnegative series (divergence) starts at 0
                    bottom, top = 0.0, top - bottom
                old = self.ylim or (bottom, top)
                self.ylim = (min(old[0], bottom), max(old[1], top))
                self.ax.set_ylim(*self.ylim)
                grown = True
        return grown


def _rounds(model: VizModel) -> int:
    """Rounds recorded for every key (stepping may run alongside drawing)."""
    return len(model.history["pairwise_divergence"])


def _history(model: VizModel, key: str) -> np.ndarray:
    """An ecosystem series over the recorded rounds."""
    return np.array(model.history[key][: _rounds(model)])


def event_rounds(model: VizModel) -> list[int]:
    """Distinct rounds at which scripted events took effect so far."""
    return sorted({e["round"] for e in model.event_log})


class SeriesPicture:
    """Alignment (per model, ecosystem mean and min), diversity and homogenisation over rounds,
    with the rounds of scripted events marked."""

    def __init__(self, model: VizModel) -> None:
        fig = Figure(figsize=(6.4, 5.6), dpi=DPI)
        grid = fig.add_gridspec(2, 2, height_ratios=[1.25, 1])
        names, _ = model.per_model("alignment", _rounds(model))
        self.names = names
        self.alignment = _Panel(fig.add_subplot(grid[0, :]), names, {
            "mean_alignment": {"color": "k", "ls": "--", "lw": 2, "label": "ecosystem mean"},
            "min_alignment": {"color": "k", "ls": ":", "lw": 1.5, "label": "ecosystem min"}},
            min_span=model.colour_bound)
        self.diversity = _Panel(fig.add_subplot(grid[1, 0]), names, {
            "mean_diversity": {"color": "k", "ls": "--", "lw": 2, "label": "mean"}}, min_span=1e-2)
        self.homogenisation = _Panel(fig.add_subplot(grid[1, 1]), names, {
            "pairwise_divergence": {"color": figures.COLOURS[5], "lw": 2}}, per_model=False, min_span=1e-3)
        self.alignment.ax.plot([], [], color="0.45", ls=":", lw=1.2, label="scripted event")
        self.alignment.ax.set_ylabel("alignment E[r]")
        self.alignment.ax.axhline(0, color="0.6", lw=0.8)
        self.alignment.ax.set_title("alignment with own users", fontsize=10)
        self.alignment.ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        # the bottom panels are half as wide: their titles on two lines, so that they never overlap
        self.diversity.ax.set_title("diversity:\n" + figures.diversity_label(model.family.kind), fontsize=10)
        self.homogenisation.ax.set_title("homogenisation:\npairwise divergence", fontsize=10)
        self.panels = (self.alignment, self.diversity, self.homogenisation)
        self.update_data(model)
        self.blit = Blitted(fig, [a for p in self.panels for a in p.dynamic])

    def update_data(self, model: VizModel) -> bool:
        """Put the model's history into the lines; True if any axes limits grew."""
        h, n = (lambda key: _history(model, key)), _rounds(model)
        align, div = model.per_model("alignment", n)[1], model.per_model("diversity", n)[1]
        marks = event_rounds(model)
        grown = self.alignment.update(align, {k: h(k) for k in ("mean_alignment", "min_alignment")}, marks)
        grown |= self.diversity.update(div, {"mean_diversity": h("mean_diversity")}, marks)
        grown |= self.homogenisation.update(None, {"pairwise_divergence": h("pairwise_divergence")}, marks)
        return grown

    def png(self, model: VizModel) -> bytes:
        """The picture at the model's current round."""
        if self.update_data(model):
            self.blit.invalidate()
        return self.blit.png()
