"""``ecosystem optimize``: where to spend curation under a budget (:mod:`ecosystem.analysis.policy`).

Prints one table per policy (``optimal``, ``siloed``, ``uniform``, ``greedy``, ``none``: levers per
model, cost, predicted and simulated welfare, alignment per model; with ``--sample-seeds N`` also
the sample-mode welfare over N seeds with a 95% interval) and the price of siloing;
``--out`` writes ``policy.json`` and ``policy.png`` all or nothing
(:func:`ecosystem.formats.files.staged`). ``ecosystem run`` has no command-line override of a
curation ratio, so the optimal policy is also printed as ``[[events]]`` tables (round 1) that,
added to the scenario file, make ``ecosystem run`` reproduce it.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from ecosystem.cli.options import add_figure_options, add_scenario, load_scenario
from ecosystem.core import flows
from ecosystem.errors import UsageError
from ecosystem.formats.scenario import Scenario

OBJECTIVES = ("mean", "min", "weighted")


def register(sub) -> None:
    """Add the ``optimize`` subcommand to the ``ecosystem`` subparsers ``sub``."""
    opt = sub.add_parser("optimize", help="where to spend curation: optimal vs siloed policy under a budget")
    add_scenario(opt)
    opt.add_argument("--budget", type=float, required=True, help="budget B: sum of cost * curation ratio <= B")
    opt.add_argument("--objective", choices=OBJECTIVES, default="mean",
                     help="welfare of the stable alignments (default: mean)")
    opt.add_argument("--weights", metavar="MODEL=W,...", help="per-model weights of --objective weighted")
    opt.add_argument("--costs", metavar="MODEL=C,...", help="cost per unit of curation ratio (default 1 each)")
    opt.add_argument("--max-ratio", type=float, default=0.9, help="upper bound of every curation ratio (0.9)")
    opt.add_argument("--absorb", choices=tuple(flows.ABSORB), default="proportional",
                     help="what absorbs a change of a curation ratio: the other inputs in proportion (default), "
                          "the real data only or the raw synthetic inputs only")
    opt.add_argument("--sample-seeds", type=int, default=0, metavar="N",
                     help="also run every policy in sample mode over N seeds (200 rounds, mean of the last 100)")
    opt.add_argument("--out", type=Path, help="also write policy.json and policy.png here")
    add_figure_options(opt)
    opt.set_defaults(handler=_optimize)


def _pairs(text: str | None, option: str, names: list[str]) -> dict[str, float]:
    """``NAME=VALUE,...`` as a dict, checked against ``names``."""
    out: dict[str, float] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, eq, value = item.partition("=")
        name = name.strip()
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not eq or not math.isfinite(number):
            raise UsageError(f"{option} {item!r}: expected MODEL=NUMBER")
        if name not in names:
            raise UsageError(f"{option} {item!r}: no model {name!r} (models: {', '.join(names)})")
        out[name] = number
    return out


def _optimize(args: argparse.Namespace) -> int:
    from ecosystem.analysis import AnalysisError, policy

    if not math.isfinite(args.budget) or args.budget < 0:
        raise UsageError(f"--budget must be a finite number >= 0, got {args.budget}")
    if not 0 < args.max_ratio <= 1:
        raise UsageError(f"--max-ratio must lie in (0, 1], got {args.max_ratio}")
    if args.sample_seeds < 0:
        raise UsageError(f"--sample-seeds must be >= 0, got {args.sample_seeds}")
    if args.weights and args.objective != "weighted":
        raise UsageError("--weights needs --objective weighted")
    if args.out and args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {str(args.out)!r} exists and is not a folder")
    scenario: Scenario = load_scenario(args)
    model = scenario.build(mode="population")
    names = [str(m) for m in model.kernel.models]
    weights = _pairs(args.weights, "--weights", names)
    if args.objective == "weighted" and not weights:
        raise UsageError("--objective weighted needs --weights MODEL=W,...")
    costs = _pairs(args.costs, "--costs", names)
    if any(c <= 0 for c in costs.values()):
        raise UsageError("--costs: every cost must be > 0")
    start = time.perf_counter()
    try:
        levers = policy.curation_levers(model, hi=args.max_ratio,
                                        costs={m: costs[str(m)] for m in model.kernel.models if str(m) in costs},
                                        absorb=args.absorb)
        w = [weights.get(n, 0.0) for n in names] if args.objective == "weighted" else None
        problem = policy.Problem(model, levers, args.budget, args.objective, w)
        report = policy.optimize(problem, sample_seeds=args.sample_seeds)
    except AnalysisError as err:
        raise UsageError(f"{scenario.source}: {err}") from None
    result = report.to_dict() | {"scenario": scenario.name}
    if args.out:
        _write(args.out, result, report)
    _print(result, report, time.perf_counter() - start)
    if args.out:
        print(f"wrote policy.json and policy.{args.figure_format} to {args.out}/")
    return 0


def _write(out: Path, result: dict, report) -> None:
    from ecosystem.formats import figures
    from ecosystem.formats.files import staged, to_json

    with staged(out) as stage:
        (stage / "policy.json").write_text(to_json(result, indent=2) + "\n")
        figures.policy_figure(result, stage / "policy.png")


def _print(r: dict, report, elapsed: float) -> None:
    from ecosystem.analysis import policy

    print(f"{r['scenario']}: {r['objective_kind']} alignment at the stable point, budget {r['budget']:g} "
          f"(sum of cost * curation ratio; absorb = {r['absorb']}) ({elapsed:.1f} s)")
    for name, pol in r["policies"].items():
        obj = pol["objective"]
        sample = obj.get("sample")
        extra = "" if sample is None else (f"; sample mode {sample['mean']:+.4f} [{sample['low']:+.4f}, "
                                           f"{sample['high']:+.4f}] over {sample['seeds']} seeds")
        print(f"\n{name}: objective predicted {obj['predicted']:+.10f}, simulated {obj['simulated']:+.10f} "
              f"(cost {pol['cost']:.4g}){extra}")
        print(f"  {'model':<14}{'alignment':>12}  levers")
        for model in pol["alignment"] | {m: None for m in pol["levers"]}:
            align = pol["alignment"].get(model)
            a = f"{align:>12.6f}" if align is not None else f"{'-':>12}"
            levers = ", ".join(f"{k} {v:.6f}" for k, v in pol["levers"].get(model, {}).items()) or "-"
            print(f"  {model:<14}{a}  {levers}")
    check = r["siloed_check"]
    print(f"\nprice of siloing: {r['price_of_siloing']:+.10f} (optimal minus siloed); siloed equilibrium in "
          f"{check['sweeps']} best-response sweeps{'' if check['converged'] else ' (NOT converged)'}, "
          f"largest unilateral gain {check['max_unilateral_gain']:.2g}")
    less = r["curate_less"]
    print("the optimum asks these models to curate less than they would alone: " + (", ".join(less) or "none"))
    print("\necosystem run has no command-line override of a curation ratio; to reproduce the optimal policy")
    print("with `ecosystem run`, add these events to the scenario file:\n")
    print("\n".join(policy.event_lines(report)).rstrip())
