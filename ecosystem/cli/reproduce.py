"""``ecosystem reproduce``: reproduce a known result (:mod:`ecosystem.studies.reproduce`): figures, their
data (``figures.npz``) and summary.json."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ecosystem.cli.options import add_figure_options
from ecosystem.errors import UsageError

REPRODUCTION_NAMES = ("gaussian-mechanism", "two-model-conflict", "ferbach", "collapse", "web-dynamics",
                      "learned-conflict", "conditional-llm")
"""The keys of :data:`ecosystem.studies.reproduce.REPRODUCTIONS` (not imported: it needs scipy)."""


def register(sub) -> None:
    """Add the ``reproduce`` subcommand to the ``ecosystem`` subparsers ``sub``."""
    rep = sub.add_parser("reproduce", help="reproduce a known result: figures and summary.json")
    rep.add_argument("name", choices=REPRODUCTION_NAMES)
    rep.add_argument("--out", type=Path, help="output folder (default: results/reproduce/<name>/)")
    rep.add_argument("--quick", action="store_true", help="smaller grids and fewer replicates (a smoke run)")
    rep.add_argument("--seed", type=int, default=0, help="seed of the finite-sample runs")
    add_figure_options(rep)
    rep.set_defaults(handler=_reproduce)


def _reproduce(args: argparse.Namespace) -> int:
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
    print(f"wrote summary.json, figures.npz (the figures' data, for `ecosystem plot`) and figures to {out}/")
    return 0
