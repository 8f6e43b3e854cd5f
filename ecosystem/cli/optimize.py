"""``ecosystem optimize``: where to spend curation under a budget (:mod:`ecosystem.analysis.policy`).

Prints one table per policy (``optimal``, ``siloed``, ``uniform``, ``greedy``, ``none``: levers per
model, cost, predicted and simulated welfare, alignment per model; with ``--sample-seeds N`` also
the sample-mode welfare over N seeds with a 95% interval) and the price of siloing, then the
``ecosystem run`` command (``KEY=VALUE`` overrides, :mod:`ecosystem.formats.policy_overrides`)
whose run reproduces the optimal policy; levers no scenario key can set are printed as
``[[events]]`` tables (round 1) to add to the scenario file. ``--search derivative-free`` (the
default for learned models) estimates every policy by sample-mode simulation instead
(:mod:`ecosystem.analysis.policy_search`; no ``greedy``). ``--out`` writes ``policy.json`` and
``policy.png`` all or nothing (:func:`ecosystem.formats.files.staged`).
"""

from __future__ import annotations

import argparse
import math
import shlex
import time
from pathlib import Path

from ecosystem.cli.options import add_figure_options, add_scenario, scenario_overrides
from ecosystem.core import flows
from ecosystem.errors import UsageError

OBJECTIVES = ("mean", "min", "weighted")
SEARCHES = ("auto", "gradient", "derivative-free")


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
    opt.add_argument("--search", choices=SEARCHES, default="auto",
                     help="gradient: at the population-mode stable point (exact families); derivative-free: "
                          "COBYQA on sample-mode estimates with common random numbers; auto (default): "
                          "derivative-free for learned models, else gradient")
    opt.add_argument("--sample-seeds", type=int, default=None, metavar="N",
                     help="gradient: also run every policy in sample mode over N seeds (default 0: not); "
                          "derivative-free: the common seeds of every estimate (default 3)")
    opt.add_argument("--sample-rounds", type=int, default=None, metavar="R",
                     help="sample-mode rounds per run (default 200; derivative-free 60)")
    opt.add_argument("--burn-in", type=int, default=None, metavar="R",
                     help="first rounds left out of each sample-mode average (default half of --sample-rounds)")
    opt.add_argument("--max-evals", type=int, default=40, metavar="N",
                     help="derivative-free: at most N estimates for the optimal policy (default 40)")
    opt.add_argument("--grid", type=int, default=5, metavar="N",
                     help="derivative-free: points of each owner's range in the siloed best responses (default 5)")
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
    from ecosystem.analysis import AnalysisError, policy, policy_search
    from ecosystem.core.learned import Learned
    from ecosystem.formats.names import resolve
    from ecosystem.formats.scenario import default_name, parse, read_toml, with_overrides

    if not math.isfinite(args.budget) or args.budget < 0:
        raise UsageError(f"--budget must be a finite number >= 0, got {args.budget}")
    if not 0 < args.max_ratio <= 1:
        raise UsageError(f"--max-ratio must lie in (0, 1], got {args.max_ratio}")
    for option, value, low in (("--sample-seeds", args.sample_seeds, 0), ("--sample-rounds", args.sample_rounds, 1),
                               ("--burn-in", args.burn_in, 0), ("--max-evals", args.max_evals, 1),
                               ("--grid", args.grid, 2)):
        if value is not None and value < low:
            raise UsageError(f"{option} must be >= {low}, got {value}")
    if args.weights and args.objective != "weighted":
        raise UsageError("--weights needs --objective weighted")
    if args.out and args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {str(args.out)!r} exists and is not a folder")
    given = [args.scenario] if args.scenario is not None and "=" in args.scenario else []
    given += list(args.overrides)
    overrides = scenario_overrides(args)
    path = resolve(args.scenario)
    data = with_overrides(read_toml(path), overrides)
    scenario = parse(data, origin=str(path), default_name=default_name(path))
    learned = isinstance(scenario.family, Learned)
    search = ("derivative-free" if learned else "gradient") if args.search == "auto" else args.search
    if learned and search == "gradient":
        raise UsageError(f"{scenario.source}: learned models have no population-mode stable point, so no "
                         "gradients: use --search derivative-free (or leave --search auto)")
    rounds = args.sample_rounds or (200 if search == "gradient" else 60)
    burn_in = rounds // 2 if args.burn_in is None else args.burn_in
    seeds = args.sample_seeds if args.sample_seeds is not None else (0 if search == "gradient" else 3)
    if burn_in >= rounds:
        raise UsageError(f"--burn-in must be below --sample-rounds ({rounds}), got {burn_in}")
    if search == "derivative-free" and seeds < 1:
        raise UsageError("--search derivative-free needs --sample-seeds >= 1")
    model = scenario.build(mode="population" if search == "gradient" else "sample")
    names = [str(m) for m in model.kernel.models]
    weights = _pairs(args.weights, "--weights", names)
    if args.objective == "weighted" and not weights:
        raise UsageError("--objective weighted needs --weights MODEL=W,...")
    costs = _pairs(args.costs, "--costs", names)
    if any(c <= 0 for c in costs.values()):
        raise UsageError("--costs: every cost must be > 0")
    start = time.perf_counter()
    try:
        problem = policy.make_problem(
            model, args.budget, args.objective, max_ratio=args.max_ratio, absorb=args.absorb,
            costs={m: costs[str(m)] for m in model.kernel.models if str(m) in costs},
            weights=[weights.get(n, 0.0) for n in names] if args.objective == "weighted" else None)
        if search == "gradient":
            report = policy.optimize(problem, sample_seeds=seeds, sample_rounds=rounds, sample_burn_in=burn_in)
        else:
            report = policy_search.search(problem, seeds=seeds, rounds=rounds, burn_in=burn_in,
                                          max_evals=args.max_evals, grid=args.grid)
    except AnalysisError as err:
        raise UsageError(f"{scenario.source}: {err}") from None
    result = report.to_dict() | {"scenario": scenario.name}
    command = _run_command(args.scenario, given, data, str(path), scenario, report, rounds)
    result["reproduce"] = {"command": command[0], "events": command[1]}
    if args.out:
        _write(args.out, result, report)
    _print(result, report, time.perf_counter() - start)
    if args.out:
        print(f"wrote policy.json and policy.{args.figure_format} to {args.out}/")
    return 0


def _run_command(name: str | None, given: list[str], data: dict, origin: str, scenario, report,
                 rounds: int) -> tuple[str, list[str]]:
    """The ``ecosystem run`` command that reproduces the optimal policy (the user's overrides, then
    the levers', :func:`ecosystem.formats.policy_overrides.lever_overrides`; the mode, enough rounds
    and no scripted events), and the ``[[events]]`` lines of the levers no override can set."""
    from ecosystem.analysis import policy
    from ecosystem.formats.policy_overrides import lever_overrides

    optimal = report.policies["optimal"]
    keys, left = lever_overrides(data, origin, report.problem, optimal.levers)
    items = [*given, *(f"{k}={v!r}" for k, v in keys.items())]
    mode = "population" if report.method == "gradient" else "sample"
    if scenario.mode != mode:
        items.append(f"mode={mode}")
    steps = max(optimal.rounds, scenario.steps) if report.method == "gradient" else rounds
    if steps != scenario.steps:
        items.append(f"steps={steps}")
    if scenario.events:
        items.append("events=[]")
    command = " ".join(["ecosystem", "run", *([name] if name is not None else []),
                        *map(shlex.quote, items)])
    events = policy.event_lines(report, levers=left) if left else []
    return command, events


def _write(out: Path, result: dict, report) -> None:
    from ecosystem.formats import figures
    from ecosystem.formats.files import staged, to_json

    with staged(out) as stage:
        (stage / "policy.json").write_text(to_json(result, indent=2) + "\n")
        figures.policy_figure(result, stage / "policy.png")


def _print(r: dict, report, elapsed: float) -> None:
    exact = r["method"] == "gradient"
    where = "at the stable point" if exact else "in sample mode (estimated by simulation)"
    print(f"{r['scenario']}: {r['objective_kind']} alignment {where}, budget {r['budget']:g} "
          f"(sum of cost * curation ratio; absorb = {r['absorb']}) ({elapsed:.1f} s)")
    sample = r["policies"]["optimal"]["objective"].get("sample")
    if not exact:
        print(f"derivative-free search (COBYQA), every policy estimated on the same {sample['seeds']} seeds "
              f"(0 .. {sample['seeds'] - 1}): the mean welfare of rounds {sample['burn_in'] + 1} .. "
              f"{sample['rounds']}, a 95% interval over the seeds")
    for name, pol in r["policies"].items():
        obj = pol["objective"]
        est = obj.get("sample")
        band = "" if est is None else f"{est['mean']:+.4f} [{est['low']:+.4f}, {est['high']:+.4f}]"
        if exact:
            extra = "" if est is None else f"; sample mode {band} over {est['seeds']} seeds"
            print(f"\n{name}: objective predicted {obj['predicted']:+.10f}, simulated {obj['simulated']:+.10f} "
                  f"(cost {pol['cost']:.4g}){extra}")
        else:
            print(f"\n{name}: objective sample estimate {band} (cost {pol['cost']:.4g})")
        print(f"  {'model':<14}{'alignment':>12}  levers")
        for model in pol["alignment"] | {m: None for m in pol["levers"]}:
            align = pol["alignment"].get(model)
            a = f"{align:>12.6f}" if align is not None else f"{'-':>12}"
            levers = ", ".join(f"{k} {v:.6f}" for k, v in pol["levers"].get(model, {}).items()) or "-"
            print(f"  {model:<14}{a}  {levers}")
    check = r["siloed_check"]
    how = "best-response sweeps" if exact else "best-response sweeps on a grid"
    price = f"{r['price_of_siloing']:+.10f}" if exact else (
        f"{r['price_of_siloing']:+.4f} [{r['price_of_siloing_interval'][0]:+.4f}, "
        f"{r['price_of_siloing_interval'][1]:+.4f}] (sample estimate, paired over the seeds)")
    print(f"\nprice of siloing: {price} (optimal minus siloed); siloed equilibrium in "
          f"{check['sweeps']} {how}{'' if check['converged'] else ' (NOT converged)'}, "
          f"largest unilateral gain {check['max_unilateral_gain']:.2g}")
    if exact:
        print(f"KKT residual at the optimum: {r['kkt_residual']:.2g} (welfare per unit of a lever; "
              f"{'epigraph form' if r['objective_kind'] == 'min' else 'with the budget multiplier'})")
    less = r["curate_less"]
    print("the optimum asks these models to curate less than they would alone: " + (", ".join(less) or "none"))
    rep = r["reproduce"]
    if exact:
        print("\nto reproduce the optimal policy, run (population mode, to its stable point):\n")
    else:
        print(f"\nto reproduce the optimal policy's estimate, run with --seed 0 .. {sample['seeds'] - 1} and "
              f"average rounds {sample['burn_in'] + 1} .. {sample['rounds']}:\n")
    print(f"  {rep['command']}")
    if rep["events"]:
        print("\nwith these events added to the scenario file (no scenario key sets these levers):\n")
        print("\n".join(rep["events"]).rstrip())
