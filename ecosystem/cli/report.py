"""``ecosystem report``: tables and figures of a study's results database (:mod:`ecosystem.studies.report`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from ecosystem.cli.options import add_figure_options
from ecosystem.studies.report import write


def register(sub) -> None:
    """Add the ``report`` subcommand to the ``ecosystem`` subparsers ``sub``."""
    p = sub.add_parser("report", help="tables and figures of a study's results database")
    p.add_argument("db", type=Path, help="results database written by `ecosystem sweep`")
    p.add_argument("--out", type=Path, help="report folder (default: <database folder>/report/)")
    p.add_argument("--by", help="setting to group by (default: topology, topology.kind or the first axis)")
    p.add_argument("--parquet", action="store_true", help="also write every table as Parquet (needs pyarrow)")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    add_figure_options(p)
    p.set_defaults(handler=_report)


def _report(args: argparse.Namespace) -> int:
    out, written, notes = write(args.db, args.out, args.by, args.parquet)
    if not args.quiet:
        by = [f for f in written if f.name.startswith("by_") and f.suffix == ".csv"]
        if by:
            _print_table(pd.read_csv(by[0]))
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        print(f"wrote {len(written)} files to {out}/")
    return 0


def _print_table(table: pd.DataFrame) -> None:
    key = table.columns[0]
    columns = [("runs", "runs", "{:>6}"), ("failed", "failed", "{:>7}"),
               ("mean_alignment_mean", "align", "{:>9.4f}"), ("mean_alignment_std", "+-sd", "{:>8.4f}"),
               ("mean_diversity_mean", "diversity", "{:>10.4f}"), ("observed_rate_mean", "rate", "{:>7.3f}"),
               ("spectral_radius_mean", "radius", "{:>7.3f}"), ("backfire_frequency", "backfire", "{:>9.2f}")]
    columns = [c for c in columns if c[0] in table]
    width = max(14, int(table[key].astype(str).str.len().max()) + 2)
    print(f"{key:<{width}}" + "".join(f"{title:>{len(fmt.format(0))}}" for _, title, fmt in columns))
    for _, row in table.iterrows():
        cells = []
        for column, _, fmt in columns:
            value = row[column]
            blank = " " * len(fmt.format(0))
            cells.append(blank if pd.isna(value) else fmt.format(value))
        print(f"{row[key]!s:<{width}}" + "".join(cells))
