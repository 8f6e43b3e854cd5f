"""``ecosystem sweep``: run every (setting, seed) of a study into a results database (:mod:`ecosystem.studies.sweep`).

``STUDY`` is a path ending in ``.toml`` or the name of a shipped study
(:func:`ecosystem.formats.names.resolve` with ``kind="study"``: ``topologies`` is
``scenarios/studies/topologies.toml``).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import sys
import time
from pathlib import Path

from ecosystem.cli.options import add_allow_outside_paths
from ecosystem.errors import UsageError
from ecosystem.formats import study as study_mod
from ecosystem.formats.names import resolve
from ecosystem.studies.sweep import execute, executor


def register(sub) -> None:
    """Add the ``sweep`` subcommand to the ``ecosystem`` subparsers ``sub``."""
    p = sub.add_parser("sweep", help="run every (setting, seed) of a study file into a results database")
    p.add_argument("study", help="study file or name (TOML; see scenarios/studies/REFERENCE.md)")
    p.add_argument("--workers", type=int, default=1, help="parallel worker processes (default 1: serial)")
    p.add_argument("--dask", metavar="ADDRESS", help="run on Dask: a scheduler address tcp://host:8786, "
                   "or 'local' for a LocalCluster of --workers processes")
    p.add_argument("--batch", type=int, default=1, metavar="N",
                   help="run up to N seeds of a setting as one replicate batch (sample mode, no events: "
                        "the same numbers, faster for small ecosystems; default 1)")
    p.add_argument("--db", type=Path, help="results database (default: results/<study name>/study.sqlite)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    add_allow_outside_paths(p)
    p.set_defaults(handler=_sweep)


def _sweep(args: argparse.Namespace) -> int:
    from ecosystem.formats import store as store_mod

    if args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")
    if args.batch < 1:
        raise UsageError(f"--batch must be >= 1, got {args.batch}")
    if args.dask is not None:
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise UsageError("--dask needs Dask distributed, which is not installed: "
                             "pip install -e \".[dask]\"") from None
    study = study_mod.load(resolve(args.study, kind="study"))
    db = args.db or Path("results") / study.name / "study.sqlite"
    if db.exists() and not db.is_file():
        raise UsageError(f"--db {str(db)!r} exists and is not a file")
    store = store_mod.Store(db)
    try:
        store.check(study)
        start = time.perf_counter()
        where = f"Dask {args.dask}" if args.dask else (
            f"{args.workers} worker processes" if args.workers > 1 else "serially")
        if not args.quiet:
            print(f"{study.name}: {len(study.settings)} settings x {len(study.seeds)} seeds, "
                  f"running {where}; results in {db}", file=sys.stderr)
        try:
            with executor(args.workers, args.dask) as pool:
                # runs in flight: 2 per worker keeps workers busy; serially, 1 (stored as soon as it ends)
                window = 2 * max(args.workers, _dask_workers(pool)) if args.dask else (
                    2 * args.workers if args.workers > 1 else 1)
                counts = execute(study, store, pool, window=window, progress=not args.quiet, batch=args.batch)
        except KeyboardInterrupt:
            print(f"error: interrupted; {store.count('done')} finished runs are stored in {db}; "
                  "run the same command again to resume", file=sys.stderr)
            return 130
        elapsed = time.perf_counter() - start
    finally:
        store.close()
    if not args.quiet:
        print(f"{study.name}: {counts['done']} runs done, {counts['failed']} failed, "
              f"{counts['skipped']} already finished ({elapsed:.1f} s); database {db}")
        if counts["failed"]:
            print(f"failed runs keep their traceback: ecosystem report {db}")
    return 1 if counts["failed"] else 0


def _dask_workers(pool: cf.Executor) -> int:
    client = getattr(pool, "_client", None)
    try:
        return len(client.scheduler_info()["workers"]) if client is not None else 1
    except Exception:
        return 1
