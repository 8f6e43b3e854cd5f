"""The ``ecosystem`` command: ``run`` a scenario, ``validate`` scenario files.

Each subcommand sets ``handler`` (a function of the parsed arguments returning the exit
status). User errors (bad files, bad options) print one line ``error: ...`` on stderr and
exit with status 2, writing nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from ecosystem.core import flows
from ecosystem.core.model import MODES
from ecosystem.errors import EcosystemError, UsageError
from ecosystem.formats.names import resolve
from ecosystem.formats.scenario import Scenario, load

REPRODUCTION_NAMES = ("gaussian-mechanism", "two-model-conflict", "ferbach", "collapse", "web-dynamics")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ecosystem", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a scenario; write CSVs, summary.json and figures")
    run.add_argument("scenario", nargs="?", help="scenario file or name (default: the default scenario)")
    run.add_argument("--out", type=Path, help="results folder (default: results/<scenario name>/)")
    run.add_argument("--steps", type=int, help="rounds to run (overrides the file)")
    run.add_argument("--seed", type=int, help="random seed (overrides the file)")
    run.add_argument("--mode", choices=MODES, help="population (exact) or sample (finite samples)")
    run.add_argument("--quiet", action="store_true", help="print nothing but errors")
    run.set_defaults(handler=_run)
    val = sub.add_parser("validate", help="check scenario files without running them")
    val.add_argument("scenarios", nargs="+")
    val.set_defaults(handler=_validate)
    ana = sub.add_parser("analyze", help="stable point, convergence, influence matrix and backfire report")
    ana.add_argument("scenario", nargs="?", help="scenario file or name (default: the default scenario)")
    ana.add_argument("--json", action="store_true", help="print the analysis as JSON")
    ana.add_argument("--out", type=Path, help="also write analysis.json and influence.png here")
    ana.add_argument("--param", action="append", default=[], metavar="KIND:TARGET",
                     help="extra parameter, e.g. tau:users_A, K:users_A, real_share:A, weight:B->A")
    ana.set_defaults(handler=_analyze)
    rep = sub.add_parser("reproduce", help="reproduce a known result: figures and summary.json")
    rep.add_argument("name", choices=REPRODUCTION_NAMES)
    rep.add_argument("--out", type=Path, help="output folder (default: results/reproduce/<name>/)")
    rep.add_argument("--quick", action="store_true", help="smaller grids and fewer replicates (a smoke run)")
    rep.add_argument("--seed", type=int, default=0, help="seed of the finite-sample runs")
    rep.set_defaults(handler=_reproduce)
    from ecosystem.cli import viz
    from ecosystem.studies import report, sweep

    sweep.register(sub)
    report.register(sub)
    viz.register(sub)
    return parser


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (status 2 comes from :func:`main`)."""

    def error(self, message: str):
        raise UsageError(message)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ecosystem`` command; returns the exit status."""
    try:
        args = _parser().parse_args(argv)
        return args.handler(args)
    except EcosystemError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; nothing was written", file=sys.stderr)
        return 130


def _validate(args) -> int:
    for name in args.scenarios:
        scenario = load(resolve(name))
        print(f"ok: {scenario.source}: {len(scenario.build().model_agents)} models, "
              f"{len(flows.nodes_of(scenario.graph, 'curator'))} curators, {scenario.family.kind}")
    return 0


def _run(args) -> int:
    from ecosystem.formats import results

    scenario: Scenario = load(resolve(args.scenario))
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


def _parameter(text: str, model) -> object:
    from ecosystem.analysis import Parameter

    kind, _, target = text.partition(":")
    kinds = ("curation_ratio", "real_share", "tau", "K", "weight")
    if kind not in kinds or not target:
        raise UsageError(f"--param {text!r}: expected KIND:TARGET with KIND one of {', '.join(kinds)}")
    if kind == "weight":
        u, arrow, v = target.partition("->")
        if not arrow or not model.graph.has_edge(u, v):
            raise UsageError(f"--param {text!r}: no flow {u!r} -> {v!r}")
        return Parameter(kind, (u, v))
    wanted = "curator" if kind in ("tau", "K") else "model"
    if target not in model.graph or flows.kind(model.graph, target) != wanted:
        raise UsageError(f"--param {text!r}: {target!r} is not a {wanted}")
    return Parameter(kind, target)


def _analyze(args) -> int:
    import json

    from ecosystem import analysis
    from ecosystem.formats import figures

    scenario: Scenario = load(resolve(args.scenario))
    model = scenario.build(mode="population")
    params = list(dict.fromkeys(analysis.curation_parameters(model) + [_parameter(p, model) for p in args.param]))
    try:
        result = analysis.analyze(model, params)
    except analysis.AnalysisError as err:
        raise UsageError(f"{scenario.source}: {err}") from None
    report = result.to_dict() | {"scenario": scenario.name}
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        tmp = args.out / ".analysis.json.tmp"
        tmp.write_text(json.dumps(report, indent=2) + "\n")
        tmp.replace(args.out / "analysis.json")
        figures.influence_heatmap(result.influence.influence, report["models"], report["parameters"],
                                  args.out / "influence.png")
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    _print_analysis(report)
    if args.out:
        print(f"wrote analysis.json and influence.png to {args.out}/")
    return 0


def _print_analysis(r: dict) -> None:
    status = "converged" if r["converged"] else "NOT converged"
    print(f"{r['scenario']}: stable point {status} in {r['iterations']} iterations "
          f"(residual {r['residual']:.2g})")
    verdict = "locally stable (contraction)" if r["stable"] else "NOT a contraction: retraining will not settle"
    observed = "n/a" if r["observed_rate"] is None else f"{r['observed_rate']:.4f}"
    print(f"spectral radius {r['spectral_radius']:.4f}: {verdict}; "
          f"predicted rate {r['predicted_rate']:.4f}, observed {observed} ({r['jacobian']} Jacobian)")
    print("stable alignment: " + ", ".join(
        f"{m} {a:.4f}" for m, a in zip(r["models"], r["alignment"], strict=True) if a is not None))
    print("influence dJ_i*/dp (rows: models; raw one-round effect in brackets):")
    width = max(len(p) for p in r["parameters"]) if r["parameters"] else 10
    for m, row, raw in zip(r["models"], r["influence"], r["raw"], strict=True):
        cells = "  ".join("      n/a" if v is None else f"{v:+.4f} ({w:+.4f})" for v, w in zip(row, raw, strict=True))
        print(f"  {m:<12} {cells}")
    print("  columns: " + ", ".join(f"{p:<{width}}" for p in r["parameters"]))
    if not r["backfire"]:
        print("backfire: none (raw and long-run effects agree in sign everywhere)")
    for b in r["backfire"]:
        print(f"backfire: {b['parameter']} on {b['affected']}: raw {b['raw']:+.4g} but long-run {b['influence']:+.4g}")


def _reproduce(args) -> int:
    from ecosystem.studies.reproduce import reproduce

    if args.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {args.seed}")
    out = args.out or Path("results") / "reproduce" / args.name
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {str(out)!r} exists and is not a folder")
    start = time.perf_counter()
    summary = reproduce(args.name, out, quick=args.quick, seed=args.seed)
    keys = [k for k in summary if k not in ("reproduction", "quick", "seed")]
    print(f"{args.name}: done in {time.perf_counter() - start:.1f} s; summary keys: {', '.join(keys[:8])}")
    print(f"wrote summary.json and figures to {out}/")
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
        print(f"{name!s:<14}{lam}{df['alignment'].iloc[0]:>13.4f}{df['alignment'].iloc[-1]:>12.4f}"
              f"{df['diversity'].iloc[-1]:>11.4f}")
    if model.event_log:
        print(f"{len(model.event_log)} events applied (see events.csv)")
    eco = model.ecosystem
    print("ecosystem: " + ", ".join(f"{k} {v:.4g}" for k, v in eco.items() if np.isfinite(v)))


if __name__ == "__main__":
    sys.exit(main())
