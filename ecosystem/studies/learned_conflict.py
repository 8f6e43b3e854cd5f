"""``learned-conflict``: the paper's two-model warm/cool study with class-conditional learned models.

THEORY.md sections 4 and 10: two class-conditional models (one Gaussian mixture per class, in a
PCA space) of the bundled photographs' 4x4 RGB patches, labelled by the photograph they come from
(:mod:`ecosystem.learned.conditional`); theta's users reward warm hues (p), phi's cool ones (q),
each with a realism term. The flows are those of the discrete analogue
(:func:`~ecosystem.studies.reproduce.conflict_scenario`): real data 0.5 and curated data 0.5,
inside the curated share a fraction from the other model, curated by the producer's users; then
theta's curated share 0.6 (real 0.4). Luce choice among K = 6 candidates, tau = 1. Sample mode,
several seeds per setting and share.

``J_p`` and ``J_q`` are each model's alignment under its own users' reward (the mean reward of
its evaluation draws), averaged over the last :attr:`Plan.averaged` rounds of a run (the
long-run level, less noisy than the last round), then over seeds with a 95% t interval. The
change ``more - base`` is paired by seed (both runs of a seed start from the same fitted models).
Beside them: the discrete analogue's population-mode stable points.

The discrete analogue (its settings and scenario builder) is an argument: its module,
:mod:`ecosystem.studies.reproduce`, imports this one for its table of reproductions and binds them.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from ecosystem import analysis
from ecosystem.analysis.intervals import t_half_width
from ecosystem.core import metrics
from ecosystem.formats import figures
from ecosystem.formats.scenario import parse

plt = figures.plt

SHARES = {"base": 0.5, "more": 0.6}
"""theta's curated share in the two runs of a setting."""
REALISM = 0.3
"""The realism term's weight (THEORY.md section 10)."""
INNER = {"name": "gaussian_mixture", "components": 4, "latent": 12, "covariance": "full"}
"""Each class's model."""
MODELS = ("theta", "phi")

Analogue = Callable[[float, float, float], dict]
"""The discrete analogue's scenario of (cross fraction theta, cross fraction phi, theta's curated share):
:func:`~ecosystem.studies.reproduce.conflict_scenario`."""


@dataclass(frozen=True)
class Plan:
    """Sizes of the study: ``rounds`` per run, alignment averaged over the last ``averaged``
    rounds, ``seeds`` runs per setting and share, ``sample_size`` training samples per model and
    round, ``size`` draws for a model's first fit and for the metrics."""

    rounds: int
    averaged: int
    seeds: int
    sample_size: int
    size: int


FULL = Plan(rounds=30, averaged=20, seeds=24, sample_size=1000, size=1000)
QUICK = Plan(rounds=4, averaged=2, seeds=2, sample_size=200, size=200)


def learned_conflict_scenario(analogue: Analogue, cross_theta: float, cross_phi: float, curated_theta: float,
                              plan: Plan, seed: int) -> dict:
    """The discrete ``analogue``'s scenario (its flows and curators) on learned class-conditional
    models of labelled photo patches, sample mode."""
    data = analogue(cross_theta, cross_phi, curated_theta)
    data.update({
        "name": "learned-conflict", "mode": "sample", "seed": seed, "steps": plan.rounds,
        "space": {"family": "learned", "data": {"name": "photos", "labels": True},
                  "model": {"name": "class_conditional", "inner": INNER},
                  "init_size": plan.size, "eval_size": plan.size},
        "rewards": {"warm": {"kind": "warmth", "weight": 1.0, "realism": REALISM},
                    "cool": {"kind": "warmth", "weight": -1.0, "realism": REALISM}},
        "sources": {"real": {}},
        "models": {m: {"sample_size": plan.sample_size} for m in data["models"]},
    })
    return data


def _run(job: tuple[Analogue, float, float, float, Plan, int]) -> np.ndarray:
    """One run: the alignments ``(rounds + 1, 2)`` of (theta, phi) at rounds 0..rounds (one BLAS
    thread, so that the numbers do not depend on the machine or on the processes)."""
    with threadpool_limits(limits=1):
        scenario = parse(learned_conflict_scenario(*job))
        model = scenario.build()
        model.run(scenario.steps)
    frame = model.agents_frame()
    return np.stack([frame.loc[frame["model"] == m, "alignment"].to_numpy() for m in MODELS], axis=1)


def _processes(jobs: int) -> int:
    """Processes for ``jobs`` runs: the cores this process may use, at most one per run."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(jobs, cores))


def _interval(values: np.ndarray) -> tuple[float, float]:
    """Mean of ``values`` ``(S,)`` and the half-width of its 95% t interval (NaN for one value)."""
    s = len(values)
    half = t_half_width(values) if s > 1 else float("nan")
    return float(values.mean()), float(half)


def discrete_analogue(settings: dict[str, tuple[float, float]], analogue: Analogue) -> dict[str, dict[str, float]]:
    """The discrete ``analogue``'s population-mode stable alignments per setting (name: cross
    fractions): ``J_p_base``, ``J_p_more``, ``J_q_base``, ``J_q_more``."""
    out = {}
    for name, fractions in settings.items():
        row = {}
        for tag, share in SHARES.items():
            model = parse(analogue(*fractions, share)).build()
            j = metrics.alignment(model.family, analysis.stable_point(model).rows, model.eval_rewards)
            row[f"J_p_{tag}"], row[f"J_q_{tag}"] = (float(v) for v in j)
        out[name] = row
    return out


def learned_conflict(out: Path, quick: bool = False, seed: int = 0, *, settings: dict[str, tuple[float, float]],
                     analogue: Analogue) -> dict:
    """``J_p`` and ``J_q`` base and more per setting (``settings``: name -> cross fractions, A1..A6)
    with 95% intervals over seeds ``seed, seed + 1, ...``, beside the discrete ``analogue``;
    figures ``changes`` and ``trajectories``."""
    plan = QUICK if quick else FULL
    seeds = [seed + k for k in range(plan.seeds)]
    keys = [(name, tag, s) for name in settings for tag in SHARES for s in seeds]
    jobs = [(analogue, *settings[name], SHARES[tag], plan, s) for name, tag, s in keys]
    with ProcessPoolExecutor(_processes(len(jobs)), mp_context=multiprocessing.get_context("spawn")) as pool:
        runs = dict(zip(keys, pool.map(_run, jobs), strict=True))
    discrete = discrete_analogue(settings, analogue)
    rows, curves = {}, {}
    for name, fractions in settings.items():
        row = {"cross": list(fractions)}
        level = {}
        for tag in SHARES:
            paths = np.stack([runs[name, tag, s] for s in seeds])          # (S, rounds + 1, 2)
            curves[name, tag] = paths
            level[tag] = paths[:, -plan.averaged:].mean(axis=1)            # (S, 2)
        for k, j in enumerate(("J_p", "J_q")):
            for tag in SHARES:
                row[f"{j}_{tag}"], row[f"{j}_{tag}_ci"] = _interval(level[tag][:, k])
            row[f"d{j}"], row[f"d{j}_ci"] = _interval(level["more"][:, k] - level["base"][:, k])
        row |= {f"discrete_{k}": v for k, v in discrete[name].items()}
        rows[name] = row
    _save_figure_data(out, rows, curves, plan)
    users = analogue(0.0, 0.0, SHARES["base"])["curators"]["users_theta"]
    return {"seeds": seeds, "settings": rows,
            "plan": asdict(plan) | {"K": users["K"], "tau": users["tau"], "realism": REALISM, "inner": INNER,
                                    "data": "photos, labelled by photograph (china 0, flower 1)"}}


def _save_figure_data(out: Path, rows: dict, curves: dict, plan: Plan) -> None:
    """The figures' data per setting ``(S,)`` (name, cross fractions ``(S, 2)``): the changes of
    ``(J_p, J_q)`` ``(S, 2)`` learned, their 95% half-widths, and the discrete analogue's; the
    alignment paths ``(S, shares, seeds, rounds + 1, 2)``; the rounds averaged."""
    js = ("J_p", "J_q")
    figures.save_data(out, {
        "settings": list(rows), "cross": [v["cross"] for v in rows.values()], "shares": list(SHARES.values()),
        "change": [[v[f"d{j}"] for j in js] for v in rows.values()],
        "change_ci": [[v[f"d{j}_ci"] for j in js] for v in rows.values()],
        "discrete_change": [[v[f"discrete_{j}_more"] - v[f"discrete_{j}_base"] for j in js] for v in rows.values()],
        "paths": [[curves[name, tag] for tag in SHARES] for name in rows], "averaged": plan.averaged,
    })


def draw_figures(out: Path, data: Mapping[str, np.ndarray]) -> None:
    """``changes`` and ``trajectories`` from :func:`_save_figure_data`'s arrays."""
    _changes_figure(out, data)
    _trajectories_figure(out, data)


def _changes_figure(out: Path, data: Mapping[str, np.ndarray]) -> None:
    """(a) the learned models' changes ``more - base`` of J_p and J_q with 95% intervals (paired by
    seed); (b) the discrete analogue's changes of its stable points."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    x = np.arange(len(data["settings"]))
    labels = [f"{k}\n{v[0]:g}, {v[1]:g}" for k, v in zip(data["settings"], data["cross"], strict=True)]
    for ax, learned in zip(axes, (True, False), strict=True):
        for k, (j, who) in enumerate((("J_p", r"$\theta$, curated more"), ("J_q", r"$\phi$"))):
            change, error = ((data["change"][:, k], data["change_ci"][:, k]) if learned
                             else (data["discrete_change"][:, k], None))
            ax.bar(x + (k - 0.5) * 0.4, change, 0.4, yerr=error, capsize=3, color=figures.COLOURS[k],
                   label=rf"$\Delta {j}$ ({who})")
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xticks(x, labels)
        ax.set_xlabel(r"setting (cross fractions $\theta$, $\phi$)")
        ax.set_ylabel("alignment: curated share 0.6 minus 0.5")
        ax.set_title("learned class-conditional models (95% intervals over seeds)" if learned
                     else "discrete analogue (population-mode stable points)", fontsize="medium")
    axes[0].legend(loc="best")
    figures.panel_letters(axes)
    figures.save(fig, out / "changes.png")


def _trajectories_figure(out: Path, data: Mapping[str, np.ndarray]) -> None:
    """Per setting, J_p and J_q over rounds (means over seeds, 95% bands), base (solid) and more
    (dashed); the shaded span is the rounds averaged."""
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5), sharex=True)
    last = data["paths"].shape[3] - 1
    rounds = np.arange(last + 1)
    for ax, name, runs in zip(axes.ravel(), data["settings"], data["paths"], strict=True):
        ax.axvspan(last - int(data["averaged"]) + 0.5, last, color="0.92", lw=0)
        for paths, share, style in zip(runs, data["shares"], ("-", "--"), strict=True):
            mean = paths.mean(axis=0)
            half = t_half_width(paths) if len(paths) > 1 else np.zeros_like(mean)
            for k, symbol in enumerate((r"$J_p$", r"$J_q$")):
                ax.plot(rounds, mean[:, k], ls=style, color=figures.COLOURS[k],
                        label=f"{symbol}, share {share}")
                ax.fill_between(rounds, mean[:, k] - half[:, k], mean[:, k] + half[:, k],
                                color=figures.COLOURS[k], alpha=0.12, lw=0)
        ax.set_title(name)
        ax.set_xlabel("round")
        ax.set_ylabel(r"alignment $E[r]$")
    axes[0, -1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))
    figures.panel_letters(axes.ravel())
    figures.save(fig, out / "trajectories.png")
