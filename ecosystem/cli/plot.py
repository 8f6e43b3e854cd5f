"""``ecosystem plot DIR``: redraw the figures of a results folder from its saved data, without rerunning.

``DIR`` is what ``ecosystem run`` (CSVs and ``summary.json``), ``ecosystem analyze --out``
(``analysis.json``), ``ecosystem optimize --out`` (``policy.json``), ``ecosystem report``
(``runs.csv``, ``rounds.csv``, ``summary.csv``) or ``ecosystem reproduce`` (``summary.json``
naming the reproduction, ``figures.npz``) wrote. The figures are replaced in place, in
``--format`` at ``--dpi``. A run's graph is the scenario file's (``summary.json`` names it),
coloured by the final alignments in ``agents.csv``; learned models' sample grid comes from
``samples.npz``. A reproduction's figures are drawn by the same functions as in
``ecosystem reproduce``, from the arrays it saved, and moved in only when all are drawn.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ecosystem.cli.options import add_figure_options
from ecosystem.errors import UsageError, show


def register(sub) -> None:
    """Add the ``plot`` subcommand to the ``ecosystem`` subparsers ``sub``."""
    p = sub.add_parser("plot", help="redraw a results folder's figures from its saved data (no rerun)")
    p.add_argument("folder", type=Path,
                   help="folder written by run, analyze --out, optimize --out, report or reproduce")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    add_figure_options(p)
    p.set_defaults(handler=_plot)


def _plot(args: argparse.Namespace) -> int:
    folder: Path = args.folder
    if not folder.is_dir():
        raise UsageError(f"{str(folder)!r} is not a folder")
    for marker, draw in (("agents.csv", _run), ("analysis.json", _analysis), ("policy.json", _policy),
                         ("runs.csv", _report), ("summary.json", _reproduction), ("figures.npz", _reproduction)):
        if (folder / marker).is_file():
            before = {f.name for f in folder.iterdir()}
            draw(folder)
            if not args.quiet:
                new = sorted(f.name for f in folder.iterdir() if f.suffix == f".{args.figure_format}")
                added = len(set(new) - before)
                print(f"redrew {len(new)} figures in {folder}/ ({added} new): {', '.join(new)}")
            return 0
    raise UsageError(f"{str(folder)!r} holds no saved results to plot (agents.csv, analysis.json, policy.json, "
                     "runs.csv, or a reproduction's summary.json and figures.npz)")


def _json(path: Path) -> dict:
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UsageError(f"{path}: cannot read: {err}") from None


def _csv(path: Path):
    import pandas as pd

    try:
        return pd.read_csv(path)
    except (OSError, ValueError) as err:
        raise UsageError(f"{path}: cannot read: {err}") from None


def _graph_at_end(scenario, steps: int):
    """The data-flow graph as the scenario's scripted events leave it after ``steps`` rounds (the
    graph a run drew at its end)."""
    from ecosystem.core import events

    fam = scenario.family
    return events.dry_run(scenario.graph, scenario.builder, scenario.events, steps, fam.kind,
                          getattr(fam, "dim", None))


def _run(folder: Path) -> None:
    from ecosystem.formats import figures
    from ecosystem.formats.scenario import load

    summary = _json(folder / "summary.json")
    source = Path(summary.get("source", ""))
    if not source.is_file():
        raise UsageError(f"{folder / 'summary.json'}: the scenario file {str(source)!r} it names is gone; "
                         "the graph cannot be drawn")
    scenario = load(source)
    agents, ecosystem = _csv(folder / "agents.csv"), _csv(folder / "model.csv")
    events = _csv(folder / "events.csv") if (folder / "events.csv").stat().st_size > 1 else None
    marks = sorted(set(events["round"].astype(int))) if events is not None and "round" in events else []
    agents["model"] = agents["model"].astype(str)
    present = {m for m, row in summary.get("models", {}).items() if row.get("present_at_end", True)}
    end = _graph_at_end(scenario, int(summary.get("steps", 0)))
    final = {node: float(rows["alignment"].iloc[-1]) for node in end.nodes
             if str(node) in present for rows in [agents[agents["model"] == str(node)]] if len(rows)}
    alone = _csv(folder / "isolated.csv") if (folder / "isolated.csv").is_file() else None
    figures.run_figures(folder, agents, ecosystem, end, final, marks, summary.get("family", ""),
                        scenario.contrast, alone)
    if (folder / "samples.npz").is_file() and getattr(scenario.family, "shape", None):   # learned models' pictures
        import numpy as np

        from ecosystem.formats import sample_grid

        with np.load(folder / "samples.npz", allow_pickle=False) as shown:
            fig = sample_grid.figure(scenario.family, shown["start"], shown["end"], list(shown["models"]))
        figures.save(fig, folder / "samples.png")


def _analysis(folder: Path) -> None:
    from ecosystem.formats import figures

    figures.analysis_figure(_json(folder / "analysis.json"), folder / "influence.png")


def _policy(folder: Path) -> None:
    from ecosystem.formats import figures

    figures.policy_figure(_json(folder / "policy.json"), folder / "policy.png")


def _reproduction(folder: Path) -> None:
    """Redraw a reproduction's figures from ``figures.npz``, the reproduction named by ``summary.json``;
    nothing is written unless every figure is drawn."""
    from ecosystem.formats import figures
    from ecosystem.formats.files import staged
    from ecosystem.studies.reproduce import FIGURES

    path = folder / "summary.json"
    summary = _json(path)
    name = summary.get("reproduction") if isinstance(summary, dict) else None
    if not isinstance(name, str) or name not in FIGURES:
        raise UsageError(f"{path}: names no known reproduction (its 'reproduction' is {show(name)}; "
                         f"known: {', '.join(FIGURES)})")
    data = figures.load_data(folder)
    with staged(folder) as stage:
        try:
            FIGURES[name](stage, data)
        except (ValueError, IndexError) as err:
            raise UsageError(f"{data.path}: its arrays do not fit the figures of {name}: {err}") from None


def _report(folder: Path) -> None:
    from ecosystem.studies.report import figures_from_tables

    figures_from_tables(folder)
