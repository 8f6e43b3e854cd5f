"""Serve the browser page (``viz/app.py``) with solara's Starlette app on uvicorn.

What ``solara run`` does, minus what needs the internet: no version check, no telemetry, no
browser opening; the front-end files come from the ``solara-assets`` package (solara's
"CDN proxy" folder), so the page works offline. Binds 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

APP = Path(__file__).resolve().parent / "app.py"
HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Whether ``port`` can be bound on 127.0.0.1 (with ``SO_REUSEADDR``, as uvicorn binds, so
    connections of a previous server left in TIME_WAIT do not count as the port being used)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def serve(scenario: str | None, port: int, announce=print, overrides: dict | None = None) -> None:
    """Serve the page for ``scenario`` on ``http://127.0.0.1:port/`` until interrupted.

    ``announce`` receives one line with the URL once the server is ready to accept requests;
    ``overrides`` (dotted keys) change ``scenario``'s keys on the page.
    """
    env = {
        "SOLARA_APP": str(APP),
        "SOLARA_TELEMETRY_MIXPANEL_ENABLE": "False",
        "SOLARA_ASSETS_PROXY": "True",          # serve the CDN files from solara-assets' local copy
        "SERVER_NAME": HOST, "SERVER_PORT": str(port),
    }
    os.environ.update(env)
    if scenario:
        os.environ["ECOSYSTEM_VIZ_SCENARIO"] = scenario
    if overrides:
        os.environ["ECOSYSTEM_VIZ_OVERRIDES"] = json.dumps(overrides)
    import uvicorn
    from solara.server import settings

    settings.main.mode = "production"
    settings.telemetry.mixpanel_enable = False

    class Server(uvicorn.Server):
        async def startup(self, sockets=None) -> None:
            await super().startup(sockets)
            announce(f"serving the ecosystem page at http://{HOST}:{port}/ (Ctrl-C stops)")

    config = uvicorn.Config("solara.server.starlette:app", host=HOST, port=port, log_level="warning",
                            access_log=False, ws_ping_interval=None)
    Server(config).run()
