"""User modules that register models, datasets and rewards (``ecosystem ... --plugin MODULE``).

A plugin is imported only because the command line (or the ``ECOSYSTEM_PLUGINS``
environment variable it sets, so that study workers in other processes import it too)
names it; scenario files never import anything.
"""

from __future__ import annotations

import importlib
import os

from ecosystem.errors import UsageError

PLUGINS = "ECOSYSTEM_PLUGINS"
"""The environment variable listing plugin modules, comma-separated."""


def load_plugins(names: list[str] | None = None) -> None:
    """Import the plugin modules ``names`` (default: those of :data:`PLUGINS`); importing one
    twice does nothing. A module that cannot be imported is a :class:`UsageError`."""
    if names is None:
        names = [n for n in os.environ.get(PLUGINS, "").split(",") if n]
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as err:   # any failure of user code while importing: one line, named
            raise UsageError(f"--plugin {name}: cannot import it: {type(err).__name__}: {err}") from None
