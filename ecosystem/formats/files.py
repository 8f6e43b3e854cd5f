"""Writing results: result folders all or nothing, and one rule for numbers that are not finite.

:func:`staged` is how every result folder is written (``ecosystem run``, ``analyze --out``,
``reproduce`` and ``report``): files go to a staging folder next to the destination and are
moved in only when every one is complete, so an error never leaves half a result; files in
the destination that the run does not produce are left untouched.

Non-finite numbers: JSON has no NaN or Infinity tokens (they are not JSON, and most readers
reject them), so everything this package writes as JSON (``summary.json``, ``analysis.json``,
``ecosystem analyze --json``, the study database's JSON columns) goes through
:func:`to_json`: NaN is ``null``, +inf and -inf are the strings ``"inf"`` and ``"-inf"``
(:func:`json_number`); finite numbers are written as :func:`json.dumps` writes them. The
study database stores what JSON would: NULL for NaN, the text ``'inf'`` or ``'-inf'`` for
an infinity (:meth:`ecosystem.formats.store.Store.table` reads them back as floats).
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ecosystem.errors import OutputError

INFINITIES = {"inf": math.inf, "-inf": -math.inf}
"""How an infinity is written (JSON strings, database text), and the float it stands for."""


@contextmanager
def staged(out: str | Path) -> Iterator[Path]:
    """A staging folder for the files of ``out``; on success every file in it is moved into ``out``.

    The stage is a hidden folder beside ``out`` (same file system, so each move is a rename).
    ``out`` (and its parents) are created on success; files already in ``out`` that the stage
    does not hold are kept, those it holds are replaced. On an error (or Ctrl-C) inside the
    block nothing is moved and the stage is removed.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{str(out)!r} exists and is not a folder; nothing was written")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as err:
        raise OutputError(f"cannot write to {str(out.parent)!r}: {err.strerror or err}; nothing was written") from None
    try:
        try:
            yield stage
        except OSError as err:
            raise OutputError(f"cannot write the results to {str(out)!r}: {err.strerror or err}; "
                              f"nothing was written") from None
        produced = sorted(stage.iterdir())
        clash = [f.name for f in produced if (out / f.name).exists() and (out / f.name).is_dir() != f.is_dir()]
        if clash:
            there = "folder" if (out / clash[0]).is_dir() else "file"
            raise OutputError(f"{str(out / clash[0])!r} is in the way (a {there} where the results put a "
                              f"{'file' if there == 'folder' else 'folder'}); nothing was written")
        try:
            out.mkdir(exist_ok=True)
            for f in produced:
                f.replace(out / f.name)
        except OSError as err:
            raise OutputError(f"cannot move the results into {str(out)!r}: {err.strerror or err}") from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def fixed4(value: float) -> str:
    """``value`` with 4 decimals and no signed zero (``-4e-17`` shows as ``0.0000``, not ``-0.0000``)."""
    return f"{round(value, 4) + 0.0:.4f}"


def json_number(value: Any) -> float | str | None:
    """A number as JSON holds it: a finite float, None for NaN (and None), ``"inf"`` / ``"-inf"``.

    Idempotent: ``json_number("inf")`` is ``"inf"``.
    """
    if value is None:
        return None
    value = float(value)
    if math.isnan(value):
        return None
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def jsonable(value: Any, default: Callable[[Any], Any] | None = None) -> Any:
    """``value`` with every non-finite float replaced by :func:`json_number` (dicts, lists and tuples walked).

    ``default`` turns other objects into JSON-ready ones (as for :func:`json.dumps`); its
    results are walked too. Finite floats are kept as they are (so they print as before).
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else json_number(value)
    if value is None or isinstance(value, str | int):
        return value
    if isinstance(value, dict):
        return {k: jsonable(v, default) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v, default) for v in value]
    if default is not None:
        return jsonable(default(value), default)
    return value  # json.dumps raises its TypeError


def to_json(value: Any, *, default: Callable[[Any], Any] | None = None, **options: Any) -> str:
    """:func:`json.dumps` of ``value`` under the rule for non-finite numbers (see the module docstring).

    ``options`` are passed to :func:`json.dumps` (``indent``, ``sort_keys``, ...).
    """
    return json.dumps(jsonable(value, default), allow_nan=False, **options)
