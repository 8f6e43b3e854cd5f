"""Tables and figures of a study's results database (``ecosystem report DB``).

Tables (CSV): ``runs.csv`` (one row per run: ``run_id``, every swept setting, ``seed``,
``status``, ``wall_time`` in s, the final ecosystem metrics, the observed convergence
rate and, when analysed, the stable-point results), ``rounds.csv`` and ``models.csv``
(tidy, keyed by ``run_id``), ``summary.csv`` (one row per setting, statistics over
seeds), ``by_<axis>.csv`` (one row per value of the grouping axis, usually the
topology), ``analyses.csv`` when there are analyses, ``price_of_siloing.csv`` and
``price_of_siloing.md`` when the study has a ``[policy]`` (:func:`policy_table`: per value of
the grouping axis and the other axes, the optimal and siloed welfare and the price of siloing
with a 95% interval over seeds), and ``errors.txt`` (the traceback of every failed run).
Figures (PNG): final alignment and diversity by topology with the seed spread, backfire
frequency by topology, observed convergence rate against the spectral radius, alignment over
rounds per topology and, with a ``[policy]``, the price of siloing by topology (in the format
of :func:`ecosystem.formats.figures.output`); :func:`figures_from_tables` redraws them from the
CSVs (``ecosystem plot``). The folder is written all or nothing
(:func:`ecosystem.formats.files.staged`). The command is :mod:`ecosystem.cli.report`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ecosystem.formats import store as store_mod
from ecosystem.formats.files import fixed4, staged

FINAL_COLUMNS = ("mean_alignment", "min_alignment", "mean_diversity", "pairwise_divergence", "mean_drift")


def group_axis(runs: pd.DataFrame, axes: list[str], by: str | None = None) -> str | None:
    """The axis results are grouped by: ``by``, else ``topology``, ``topology.kind``, the first axis."""
    if by is not None:
        if by not in runs.columns:
            raise store_mod.StoreError(f"--by {by!r}: not a swept setting (settings: {', '.join(axes) or 'none'})")
        return by
    for candidate in ("topology", "topology.kind", *axes):
        if candidate in axes and candidate in runs.columns:
            return candidate
    return None


def summarise(runs: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Statistics over the runs of each combination of ``keys``: counts, mean/std/min/max of final metrics,
    converged share, observed rate and, when analysed, spectral radius and backfire frequency."""
    frame = runs.copy()
    if not keys:
        frame["_all"] = "all"
        keys = ["_all"]
    frame[keys] = frame[keys].astype(str)
    done = frame[frame["status"] == "done"]
    out = frame.groupby(keys, sort=False).agg(runs=("run_id", "size"),
                                              failed=("status", lambda s: int((s == "failed").sum())))
    stats = {}
    for column in FINAL_COLUMNS:
        if column in done:
            for how in ("mean", "std", "min", "max"):
                stats[f"{column}_{how}"] = (column, how)
    for column in ("observed_rate", "wall_time"):
        if column in done:
            stats[f"{column}_mean"] = (column, "mean")
    if "converged" in done:
        stats["converged_share"] = ("converged", "mean")
    if "analysis_spectral_radius" in done:
        stats["spectral_radius_mean"] = ("analysis_spectral_radius", "mean")
        stats["backfire_frequency"] = ("analysis_n_backfire", lambda s: float((s.dropna() > 0).mean())
                                       if s.notna().any() else np.nan)
        stats["analysed"] = ("analysis_n_backfire", lambda s: int(s.notna().sum()))
    if stats and len(done):
        out = out.join(done.groupby(keys, sort=False).agg(**stats))
    return out.reset_index().drop(columns=["_all"], errors="ignore")


def write(db: str | Path, out: str | Path | None = None, by: str | None = None,
          parquet: bool = False) -> tuple[Path, list[Path], list[str]]:
    """Write the report of ``db`` into ``out`` (default ``<db folder>/report``), all or nothing.

    Returns the folder, the files written and notes (figures skipped and why).
    """
    store = store_mod.open_existing(db)
    try:
        meta = store.meta()
        axes = json.loads(meta.get("axes", "[]"))
        runs = store.runs()
        rounds = store.table("rounds")
        models = store.table("models")
        analyses = store.table("analyses")
        errors = store.errors()
    finally:
        store.close()
    out = Path(out) if out is not None else Path(db).parent / "report"
    if out.exists() and not out.is_dir():
        raise store_mod.StoreError(f"--out {str(out)!r} exists and is not a folder")
    if parquet:
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise store_mod.StoreError("--parquet needs pyarrow: pip install pyarrow") from None
    group = group_axis(runs, axes, by)
    with staged(out) as stage:
        tables = {"runs": runs.drop(columns=["started", "finished"]).assign(
            started=pd.to_datetime(runs["started"], unit="s", utc=True),
            finished=pd.to_datetime(runs["finished"], unit="s", utc=True)),
            "rounds": rounds, "models": models,
            "summary": summarise(runs, [a for a in axes if a in runs.columns])}
        if group is not None:
            tables[f"by_{_slug(group)}"] = summarise(runs, [group])
        if len(analyses):
            tables["analyses"] = analyses.drop(columns=["result"])
        if "policy_price_of_siloing" in runs:
            tables["price_of_siloing"] = policy_table(runs, [k for k in [group, *axes] if k is not None
                                                             and k in runs.columns], unique=True)
            (stage / "price_of_siloing.md").write_text(policy_markdown(tables["price_of_siloing"]) + "\n")
        for name, frame in tables.items():
            frame.to_csv(stage / f"{name}.csv", index=False)
            if parquet:
                frame.to_parquet(stage / f"{name}.parquet", index=False)
        if errors:
            (stage / "errors.txt").write_text("".join(
                f"=== run {run_id} (setting {setting}, seed {seed})\n{text.rstrip()}\n\n"
                for run_id, setting, seed, text in errors))
        notes = figures(runs, rounds, group, axes, stage)
        written = [out / f.name for f in sorted(stage.iterdir())]
    return out, written, notes


def policy_table(runs: pd.DataFrame, keys: list[str], unique: bool = False) -> pd.DataFrame:
    """The price of siloing per combination of ``keys`` (``unique``: each key once, in order) over
    the finished runs with a computed policy: ``policies`` (their count), the mean ``optimal`` and
    ``siloed`` welfare, ``price_mean`` with a 95% Student-t interval over the runs (seeds, random
    graph instances) ``price_low`` .. ``price_high`` (equal for one run or identical runs), its
    ``price_min`` and ``price_max``, and ``curate_less``: the models the optimum asks to curate
    less than alone, with how many of the runs ask it (``m1 3/3``)."""
    from ecosystem.analysis.intervals import t_half_width

    keys = list(dict.fromkeys(keys)) if unique else keys
    done = runs[(runs["status"] == "done") & runs["policy_price_of_siloing"].notna()].copy()
    if not keys:
        done["_all"] = "all"
        keys = ["_all"]
    done[keys] = done[keys].astype(str)
    rows = []
    for values, group in done.groupby(keys, sort=False):
        price = group["policy_price_of_siloing"].to_numpy(dtype=float)
        n = price.size
        half = float(t_half_width(price)) if n > 1 and price.std() > 0 else 0.0
        counts: dict[str, int] = {}
        for text in group["policy_curate_less"].fillna(""):
            for m in filter(None, str(text).split(",")):
                counts[m] = counts.get(m, 0) + 1
        less = ", ".join(f"{m} {c}/{n}" for m, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
        values = values if isinstance(values, tuple) else (values,)
        rows.append({**dict(zip(keys, values, strict=True)), "objective": group["policy_objective"].iloc[0],
                     "budget": float(group["policy_budget"].iloc[0]), "policies": n,
                     "optimal_mean": float(group["policy_optimal"].mean()),
                     "siloed_mean": float(group["policy_siloed"].mean()), "price_mean": float(price.mean()),
                     "price_low": float(price.mean() - half), "price_high": float(price.mean() + half),
                     "price_min": float(price.min()), "price_max": float(price.max()), "curate_less": less})
    columns = [*keys, "objective", "budget", "policies", "optimal_mean", "siloed_mean", "price_mean", "price_low",
               "price_high", "price_min", "price_max", "curate_less"]
    return pd.DataFrame(rows, columns=columns).drop(columns=["_all"], errors="ignore")


def policy_markdown(table: pd.DataFrame) -> str:
    """:func:`policy_table` as a Markdown table (4 decimals)."""
    keys = list(table.columns[:list(table.columns).index("objective")])
    head = [*keys, "runs", "J optimal", "J siloed", "price of siloing [95% interval]", "curate less (runs)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    f = fixed4
    for row in table.itertuples(index=False):
        r = row._asdict()
        lines.append("| " + " | ".join([*(str(r[k]) for k in keys), str(r["policies"]), f(r["optimal_mean"]),
                                        f(r["siloed_mean"]),
                                        f"{f(r['price_mean'])} [{f(r['price_low'])}, {f(r['price_high'])}]",
                                        r["curate_less"] or "-"]) + " |")
    return "\n".join(lines)


def figures_from_tables(folder: Path) -> list[str]:
    """Redraw the figures of a report folder from its CSVs (``runs.csv``, ``rounds.csv``,
    ``summary.csv``: the swept settings are its columns before ``runs``; ``by_<axis>.csv``: the
    grouping axis); returns the notes of :func:`figures`."""
    folder = Path(folder)
    runs, rounds = pd.read_csv(folder / "runs.csv"), pd.read_csv(folder / "rounds.csv")
    columns = list(pd.read_csv(folder / "summary.csv", nrows=0).columns)
    axes = columns[:columns.index("runs")] if "runs" in columns else []
    by = sorted(folder.glob("by_*.csv"))
    group = next(iter(pd.read_csv(by[0], nrows=0).columns)) if by else None
    return figures(runs, rounds, group, axes, folder)


def figures(runs: pd.DataFrame, rounds: pd.DataFrame, group: str | None, axes: list[str], folder: Path) -> list[str]:
    """The standard figures into ``folder``; returns notes on figures that could not be drawn."""
    from ecosystem.formats.figures import COLOURS, panel_letters, plt
    from ecosystem.formats.figures import save as save_figure

    notes = []
    done = runs[runs["status"] == "done"].copy()
    if done.empty:
        return ["no finished runs: no figures"]
    label = group or "study"
    done["_group"] = done[group].astype(str) if group else "all"
    order = list(dict.fromkeys(done["_group"]))
    hue = _hue_axis(done, axes, group)
    hues = list(dict.fromkeys(done[hue].astype(str))) if hue else [None]
    colours = lambda k: COLOURS[k % len(COLOURS)]  # noqa: E731

    # 1. final alignment and diversity by group, every run a point (the seed spread), mean +- sd
    fig, panels = plt.subplots(1, 2, figsize=(max(8, 1.1 * len(order) + 4), 4.2))
    for ax, column, ylabel in ((panels[0], "mean_alignment", r"final mean alignment $E[r]$"),
                               (panels[1], "mean_diversity", "final mean diversity")):
        for h, value in enumerate(hues):
            rows = done if value is None else done[done[hue].astype(str) == value]
            shift = (h - (len(hues) - 1) / 2) * 0.7 / max(len(hues), 1)
            for g, name in enumerate(order):
                y = rows.loc[rows["_group"] == name, column].dropna().to_numpy(dtype=float)
                if not y.size:
                    continue
                x = g + shift + np.linspace(-0.08, 0.08, y.size) / max(len(hues), 1)
                ax.scatter(x, y, s=12, alpha=0.6, color=colours(h % 10),
                           label=f"{hue}={value}" if value is not None and g == 0 else None)
                ax.errorbar(g + shift, y.mean(), yerr=y.std() if y.size > 1 else 0, fmt="_", color="k",
                            ms=14, capsize=3, lw=1.2)
        ax.set_xticks(range(len(order)), order, rotation=30, ha="right")
        ax.set_ylabel(ylabel)
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    if hue:
        panels[0].legend(fontsize=7)
    panel_letters(panels)
    fig.suptitle(r"final alignment and diversity (points: runs; bars: mean $\pm$ sd over seeds)", fontsize=10)
    save_figure(fig, folder / "final_by_topology.png")

    # 2. backfire frequency by group (stable-point analysis)
    if "analysis_n_backfire" in done and done["analysis_n_backfire"].notna().any():
        fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(order) + 3), 4))
        width = 0.8 / len(hues)
        for h, value in enumerate(hues):
            rows = done if value is None else done[done[hue].astype(str) == value]
            freq = [(_positive_share(rows.loc[rows["_group"] == name, "analysis_n_backfire"])) for name in order]
            ax.bar(np.arange(len(order)) + (h - (len(hues) - 1) / 2) * width, freq, width,
                   color=colours(h % 10), label=f"{hue}={value}" if value is not None else None)
        ax.set_xticks(range(len(order)), order, rotation=30, ha="right")
        ax.set_ylabel("share of runs with a backfire")
        ax.set_ylim(0, 1.05)
        ax.set_xlabel(label)
        ax.grid(alpha=0.3, axis="y")
        if hue:
            ax.legend(fontsize=7)
        ax.set_title("backfire frequency (a first-arrival effect > 0 that the long run reverses)", fontsize=10)
        save_figure(fig, folder / "backfire_by_topology.png")
    else:
        notes.append("backfire_by_topology.png: no stable-point analysis stored (set analysis = true in the study)")

    # 3. observed convergence rate against the spectral radius of the retraining map
    if "analysis_spectral_radius" in done and done["analysis_spectral_radius"].notna().any():
        fig, ax = plt.subplots(figsize=(6, 5))
        for g, name in enumerate(order):
            rows = done[done["_group"] == name]
            ax.scatter(rows["analysis_spectral_radius"], rows["observed_rate"], s=18, alpha=0.7,
                       color=colours(g % 10), label=name)
        finite = done[["analysis_spectral_radius", "observed_rate"]].to_numpy(dtype=float)
        finite = finite[np.isfinite(finite)]
        if finite.size:
            lo, hi = max(0.0, finite.min() - 0.05), min(1.5, finite.max() + 0.05)
            ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="rate = spectral radius")
        ax.set_xlabel("spectral radius of the Jacobian at the stable point")
        ax.set_ylabel("observed convergence rate (median max_change ratio)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        save_figure(fig, folder / "convergence_vs_spectral_radius.png")
    else:
        notes.append("convergence_vs_spectral_radius.png: no spectral radius stored "
                     "(set analysis = true in the study); observed rates are in runs.csv")

    # 4. alignment over rounds per group: mean over runs, band = interquartile range over runs
    merged = rounds.merge(done[["run_id", "_group"]], on="run_id")
    if len(merged):
        fig, ax = plt.subplots(figsize=(7.5, 4.5))
        for g, name in enumerate(order):
            steps = merged[merged["_group"] == name].groupby("step")["mean_alignment"]
            mean, q1, q3 = steps.mean(), steps.quantile(0.25), steps.quantile(0.75)
            ax.plot(mean.index, mean.to_numpy(), color=colours(g % 10), lw=1.6, label=name)
            ax.fill_between(mean.index, q1.to_numpy(), q3.to_numpy(), color=colours(g % 10), alpha=0.15, lw=0)
        ax.set_xlabel("round")
        ax.set_ylabel(r"mean alignment $E[r]$")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
        ax.set_title(f"alignment over rounds per {label} (line: mean over runs; band: quartiles)", fontsize=10)
        save_figure(fig, folder / "alignment_over_rounds.png")

    # 5. price of siloing by group: every run a point, the mean with its 95% interval over runs
    if "policy_price_of_siloing" in done and done["policy_price_of_siloing"].notna().any():
        fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(order) + 3), 4))
        for h, value in enumerate(hues):
            rows = done if value is None else done[done[hue].astype(str) == value]
            table = policy_table(rows, ["_group"]).set_index("_group")
            shift = (h - (len(hues) - 1) / 2) * 0.7 / max(len(hues), 1)
            for g, name in enumerate(order):
                y = rows.loc[rows["_group"] == name, "policy_price_of_siloing"].dropna().to_numpy(dtype=float)
                if not y.size:
                    continue
                ax.scatter(g + shift + np.linspace(-0.06, 0.06, y.size) / max(len(hues), 1), y, s=12, alpha=0.6,
                           color=colours(h % 10), label=f"{hue}={value}" if value is not None and g == 0 else None)
                row = table.loc[name]
                ax.errorbar(g + shift, row["price_mean"], yerr=[[row["price_mean"] - row["price_low"]],
                                                                 [row["price_high"] - row["price_mean"]]],
                            fmt="_", color="k", ms=14, capsize=3, lw=1.2)
        ax.set_xticks(range(len(order)), order, rotation=30, ha="right")
        ax.set_ylabel("price of siloing (welfare: optimal - siloed)")
        ax.set_xlabel(label)
        ax.axhline(0, color="grey", lw=0.8)
        ax.grid(alpha=0.3, axis="y")
        if hue:
            ax.legend(fontsize=7)
        objective, budget = done["policy_objective"].dropna().iloc[0], done["policy_budget"].dropna().iloc[0]
        ax.set_title(f"price of siloing, {objective} alignment, budget {budget:g} "
                     "(points: runs; bars: mean, 95% interval)", fontsize=10)
        save_figure(fig, folder / "price_of_siloing.png")
    return notes


def _hue_axis(done: pd.DataFrame, axes: list[str], group: str | None) -> str | None:
    """A second axis to colour by: the only other axis, if it has 2..8 values."""
    others = [a for a in axes if a != group and a in done.columns]
    if len(others) == 1 and 2 <= done[others[0]].astype(str).nunique() <= 8:
        return others[0]
    return None


def _positive_share(values: pd.Series) -> float:
    values = values.dropna()
    return float((values > 0).mean()) if len(values) else 0.0


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)
