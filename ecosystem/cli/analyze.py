"""``ecosystem analyze``: stable point, convergence, influence matrix and backfire report (:mod:`ecosystem.analysis`).

Each cell prints the long-run influence ``dJ_i*/dp`` and, in brackets, the first-arrival effect (the
``raw`` key of ``analysis.json``: the change of model i's alignment in the round the change of ``p``
first reaches i); then the negative-influence and backfire lists in the words of docs/THEORY.md
section 4. ``--absorb`` says what absorbs a change of curation ratio (reported as ``absorb``).

``--out`` writes ``analysis.json`` and ``influence.png`` all or nothing
(:func:`ecosystem.formats.files.staged`); ``analysis.json`` and ``--json`` print the same
text, under the rule for non-finite numbers of :mod:`ecosystem.formats.files`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ecosystem.cli.options import add_allow_outside_paths, add_figure_options, add_scenario, load_scenario, tidy
from ecosystem.core import flows
from ecosystem.errors import UsageError
from ecosystem.formats.scenario import Scenario

PARAMETER_KINDS = ("curation_ratio", "real_share", "tau", "K", "weight")


def register(sub) -> None:
    """Add the ``analyze`` subcommand to the ``ecosystem`` subparsers ``sub``."""
    ana = sub.add_parser("analyze", help="stable point, convergence, influence matrix and backfire report")
    add_scenario(ana)
    ana.add_argument("--json", action="store_true", help="print the analysis as JSON")
    ana.add_argument("--out", type=Path, help="also write analysis.json and the influence figure here")
    ana.add_argument("--param", action="append", default=[], metavar="KIND:TARGET",
                     help="extra parameter, e.g. tau:users_A, K:users_A, real_share:A, weight:B->A")
    ana.add_argument("--absorb", choices=tuple(flows.ABSORB), default="proportional",
                     help="what absorbs a change of a curation ratio: the other inputs in proportion (default), "
                          "the real data only or the raw synthetic inputs only")
    ana.add_argument("--at", type=int, metavar="ROUND",
                     help="analyse the ecosystem as the scenario's events leave it before round ROUND")
    add_allow_outside_paths(ana)
    add_figure_options(ana)
    ana.set_defaults(handler=_analyze)


def _parameter(text: str, model, absorb: str = "proportional") -> object:
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
    return Parameter(kind, target, absorb) if kind == "curation_ratio" else Parameter(kind, target)


def _analyze(args: argparse.Namespace) -> int:
    from ecosystem import analysis
    from ecosystem.formats import figures
    from ecosystem.formats.files import staged, to_json

    scenario: Scenario = load_scenario(args)
    model = scenario.build(mode="population")
    if args.at is not None:
        if not 1 <= args.at <= max(scenario.steps, 1):
            raise UsageError(f"--at must lie in 1..{max(scenario.steps, 1)} (the scenario's rounds), got {args.at}")
        model.run_until(args.at - 0.5)        # rounds 1..at-1, then the events of round `at`
    elif scenario.events and not args.json:
        print(f"note: {scenario.name} has {len(scenario.events)} scripted events; this is the ecosystem "
              "before any of them (--at ROUND analyses it as they leave it)", file=sys.stderr)
    params = list(dict.fromkeys(analysis.curation_parameters(model, args.absorb)
                                + [_parameter(p, model, args.absorb) for p in args.param]))
    try:
        result = analysis.analyze(model, params, args.absorb)
    except analysis.AnalysisError as err:
        raise UsageError(f"{scenario.source}: {err}") from None
    uncurated = [str(m) for m in model.kernel.models if flows.curation_ratio(model.graph, m) == 0]
    report = result.to_dict() | {"scenario": scenario.name, "at_round": args.at, "uncurated": uncurated}
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
    where = "" if r["at_round"] is None else f" (as the events leave it before round {r['at_round']})"
    print(f"{r['scenario']}{where}: stable point {status} in {r['iterations']} iterations "
          f"(residual {r['residual']:.2g})")
    verdict = "locally stable (contraction)" if r["stable"] else "NOT a contraction: retraining will not settle"
    observed = "n/a" if r["observed_rate"] is None else f"{r['observed_rate']:.4f}"
    print(f"spectral radius {r['spectral_radius']:.4f}: {verdict}; "
          f"predicted rate {r['predicted_rate']:.4f}, observed {observed} ({r['jacobian']} Jacobian)")
    print("stable alignment: " + ", ".join(
        f"{m} {tidy(a):.4f}" for m, a in zip(r["models"], r["alignment"], strict=True) if a is not None))
    print(f"influence dJ_i*/dp (rows: models; in brackets the first-arrival effect: on model i in the round "
          f"the change first reaches it; curation ratios absorbed: {r['absorb']}):")
    for m, row, raw in zip(r["models"], r["influence"], r["raw"], strict=True):
        cells = "  ".join("      n/a" if v is None else f"{tidy(v):+.4f} ({tidy(w):+.4f})"
                          for v, w in zip(row, raw, strict=True))
        print(f"  {m:<12} {cells}")
    print("  columns: " + ", ".join(r["parameters"]))
    if r["uncurated"]:
        print("  no column for models without curated inputs (curation ratio 0): " + ", ".join(r["uncurated"]))
    for key, words in (("negative_influence", "negative influence (long-run dJ_i*/dp < 0)"),
                       ("backfire", "backfire (first-arrival effect > 0, long-run < 0)")):
        if not r[key]:
            print(f"{words}: none")
        for b in r[key]:
            print(f"{words}: {b['parameter']} on {b['affected']} ({b['scope']}): first-arrival "
                  f"{tidy(b['raw']):+.4f}, long-run {tidy(b['influence']):+.4f}")
