"""``ecosystem analyze``: stable point, convergence, influence matrix and backfire report (:mod:`ecosystem.analysis`).

``--out`` writes ``analysis.json`` and ``influence.png`` all or nothing
(:func:`ecosystem.formats.files.staged`); ``analysis.json`` and ``--json`` print the same
text, under the rule for non-finite numbers of :mod:`ecosystem.formats.files`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ecosystem.cli.options import add_allow_outside_paths, add_figure_options
from ecosystem.core import flows
from ecosystem.errors import UsageError
from ecosystem.formats.names import resolve
from ecosystem.formats.scenario import Scenario, load

PARAMETER_KINDS = ("curation_ratio", "real_share", "tau", "K", "weight")


def register(sub) -> None:
    """Add the ``analyze`` subcommand to the ``ecosystem`` subparsers ``sub``."""
    ana = sub.add_parser("analyze", help="stable point, convergence, influence matrix and backfire report")
    ana.add_argument("scenario", nargs="?", help="scenario file or name (default: the default scenario)")
    ana.add_argument("--json", action="store_true", help="print the analysis as JSON")
    ana.add_argument("--out", type=Path, help="also write analysis.json and the influence figure here")
    ana.add_argument("--param", action="append", default=[], metavar="KIND:TARGET",
                     help="extra parameter, e.g. tau:users_A, K:users_A, real_share:A, weight:B->A")
    add_allow_outside_paths(ana)
    add_figure_options(ana)
    ana.set_defaults(handler=_analyze)


def _parameter(text: str, model) -> object:
    from ecosystem.analysis import Parameter

    kind, _, target = text.partition(":")
    if kind not in PARAMETER_KINDS or not target:
        raise UsageError(f"--param {text!r}: expected KIND:TARGET with KIND one of {', '.join(PARAMETER_KINDS)}")
    if kind == "weight":
        u, arrow, v = target.partition("->")
        if not arrow or not model.graph.has_edge(u, v):
            raise UsageError(f"--param {text!r}: no flow {u!r} -> {v!r}")
        return Parameter(kind, (u, v))
    wanted = "curator" if kind in ("tau", "K") else "model"
    if target not in model.graph or flows.kind(model.graph, target) != wanted:
        raise UsageError(f"--param {text!r}: {target!r} is not a {wanted}")
    return Parameter(kind, target)


def _analyze(args: argparse.Namespace) -> int:
    from ecosystem import analysis
    from ecosystem.formats import figures
    from ecosystem.formats.files import staged, to_json

    scenario: Scenario = load(resolve(args.scenario))
    model = scenario.build(mode="population")
    params = list(dict.fromkeys(analysis.curation_parameters(model) + [_parameter(p, model) for p in args.param]))
    try:
        result = analysis.analyze(model, params)
    except analysis.AnalysisError as err:
        raise UsageError(f"{scenario.source}: {err}") from None
    report = result.to_dict() | {"scenario": scenario.name}
    text = to_json(report, indent=2)
    if args.out:
        with staged(args.out) as stage:
            (stage / "analysis.json").write_text(text + "\n")
            figures.analysis_figure(report, stage / "influence.png")
    if args.json:
        print(text)
        return 0
    _print_analysis(report)
    if args.out:
        print(f"wrote analysis.json and influence.{args.figure_format} to {args.out}/")
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
