"""``ecosystem run``: run a scenario; write CSVs, ``summary.json`` and figures (:mod:`ecosystem.formats.results`)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from ecosystem.cli.options import add_allow_outside_paths, add_figure_options, add_scenario, load_scenario, tidy
from ecosystem.core.model import MODES
from ecosystem.errors import UsageError
from ecosystem.formats.scenario import Scenario


def register(sub) -> None:
    """Add the ``run`` subcommand to the ``ecosystem`` subparsers ``sub``."""
    run = sub.add_parser("run", help="run a scenario; write CSVs, summary.json and figures")
    add_scenario(run)
    run.add_argument("--out", type=Path, help="results folder (default: results/<scenario name>/)")
    run.add_argument("--steps", type=int, help="rounds to run (overrides the file)")
    run.add_argument("--seed", type=int, help="random seed (overrides the file)")
    run.add_argument("--mode", choices=MODES, help="population (exact) or sample (finite samples)")
    run.add_argument("--quiet", action="store_true", help="print nothing but errors")
    add_allow_outside_paths(run)
    add_figure_options(run)
    run.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from ecosystem.formats import results

    scenario: Scenario = load_scenario(args)
    if args.steps is not None and args.steps < 0:
        raise UsageError(f"--steps must be >= 0, got {args.steps}")
    if args.seed is not None and args.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {args.seed}")
    steps = scenario.steps if args.steps is None else args.steps
    seed = scenario.seed if args.seed is None else args.seed
    out = args.out or Path("results") / scenario.name
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {str(out)!r} exists and is not a folder")
    model = scenario.build(seed=seed, mode=args.mode)
    start = time.perf_counter()
    model.run(steps, progress=not args.quiet and steps * len(model.model_agents) >= 20_000)
    elapsed = time.perf_counter() - start
    written = results.write(model, scenario, seed, out)
    if not args.quiet:
        _print_summary(model, scenario, steps, seed, elapsed)
        print(f"wrote {len(written)} files to {out}/")
    return 0


def _print_summary(model, scenario: Scenario, steps: int, seed: int, elapsed: float) -> None:
    agents = model.agents_frame()
    rows = agents.groupby("model", sort=False)
    print(f"{scenario.name}: {rows.ngroups} models, {steps} rounds, "
          f"{model.mode} mode, seed {seed} ({elapsed:.2f} s)")
    print(f"{'model':<14}{'lambda':>8}{'align start':>13}{'align end':>12}{'diversity':>11}")
    current = {a.name: a for a in model.model_agents}
    for k, (name, df) in enumerate(rows):
        if k == 20:
            print(f"... and {rows.ngroups - 20} more (see agents.csv)")
            break
        agent = current.get(name)
        lam = f"{agent.curation_ratio:>8.2f}" if agent else f"{'gone':>8}"
        print(f"{name!s:<14}{lam}{tidy(df['alignment'].iloc[0]):>13.4f}{tidy(df['alignment'].iloc[-1]):>12.4f}"
              f"{tidy(df['diversity'].iloc[-1]):>11.4f}")
    if model.event_log:
        print(f"{len(model.event_log)} events applied (see events.csv)")
    eco = model.ecosystem
    print("ecosystem: " + ", ".join(f"{k} {v:.4g}" for k, v in eco.items() if np.isfinite(v)))
