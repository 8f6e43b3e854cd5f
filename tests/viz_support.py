"""Shared by the viz tests: what to do when an optional piece is missing.

Locally a missing viz extra, Playwright or Chromium skips the test; in CI (``CI`` set) it fails,
so the browser tests can never be skipped silently there.
"""

from __future__ import annotations

import importlib
import os

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def missing(what: str) -> None:
    """Skip (locally) or fail (in CI) because ``what`` is not available."""
    if in_ci():
        pytest.fail(f"{what} is missing in CI: .ci/run must install it", pytrace=False)
    pytest.skip(f"{what} is not installed")


def need_module(name: str, hint: str):
    """Import ``name`` or skip/fail with ``hint``."""
    try:
        return importlib.import_module(name)
    except ImportError:
        missing(f"{name} ({hint})")
