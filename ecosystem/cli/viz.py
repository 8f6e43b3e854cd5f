"""``ecosystem viz``: serve the browser page (the ``viz`` package, installed beside ``ecosystem``) on 127.0.0.1.

``viz`` is the only code that imports solara; it is imported only when the command runs, so the
package works without the ``viz`` extra, and a missing extra is a one-line ``error:``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ecosystem.cli.options import add_scenario, scenario_overrides
from ecosystem.errors import UsageError
from ecosystem.formats.names import resolve
from ecosystem.formats.scenario import load


def register(sub) -> None:
    """Add the ``viz`` subcommand to the ``ecosystem`` subparsers ``sub``."""
    viz = sub.add_parser("viz", help="serve the browser page: the ecosystem live, with knobs")
    add_scenario(viz, " shown first")
    viz.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (default 8765; 0: any free port)")
    viz.set_defaults(handler=_viz)


def _viz(args: argparse.Namespace) -> int:
    overrides = scenario_overrides(args)
    scenario = resolve(args.scenario)
    load(scenario, overrides)                        # a bad file fails here, as `error:` with exit 2
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be in 0..65535, got {args.port}")
    try:
        import solara  # noqa: F401
        import solara_assets  # noqa: F401

        from viz import server
    except ImportError as err:
        raise UsageError(f"the browser page needs the viz extra ({err.name} is missing): "
                         "pip install -e '.[viz]'") from None
    port = args.port or server.free_port()
    if not server.port_is_free(port):
        raise UsageError(f"port {port} on 127.0.0.1 is in use; pick another with --port")
    server.serve(str(Path(scenario).resolve()), port, announce=lambda line: print(line, flush=True),
                 overrides=overrides)
    return 0
