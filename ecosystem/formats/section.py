"""Checked access to the tables of scenario and study files: every error names the file,
the dotted key and the bad value (:class:`~ecosystem.errors.ScenarioError`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ecosystem.core import events
from ecosystem.errors import ScenarioError, show

INT_MAX, MAX_ABS, MIN_POSITIVE = events.INT_MAX, events.MAX_ABS, events.MIN_POSITIVE


class Section:
    """Checked access to one TOML table; every error names ``where`` (a dotted key)."""

    def __init__(self, data: Any, where: str, origin: str) -> None:
        self.origin, self.where = origin, where
        if not isinstance(data, dict):
            self.fail(f"must be a table, got {show(data)}")
        self.data = data

    def fail(self, message: str, key: str | None = None):
        at = f"{self.where}.{key}" if key and self.where else (key or self.where or "(top level)")
        raise ScenarioError(f"{self.origin}: {at}: {message}")

    def only(self, allowed: set[str]) -> None:
        for key in self.data:
            if key not in allowed:
                self.fail(f"unknown key (allowed: {', '.join(sorted(allowed))})", key)

    def sub(self, key: str, default: Any = None) -> Section:
        return Section(self.data.get(key, {} if default is None else default), self._at(key), self.origin)

    def _at(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def number(self, key: str, default: float | None = None, lo: float | None = None,
               hi: float | None = None, integer: bool = False, strict_lo: bool = False) -> Any:
        value = self.data.get(key, default)
        if value is None:
            self.fail("is required", key)
        ok = isinstance(value, int) if integer else isinstance(value, int | float)
        if isinstance(value, bool) or not ok or (isinstance(value, float) and not np.isfinite(value)):
            self.fail(f"must be {'an integer' if integer else 'a number'}, got {show(value)}", key)
        if integer and abs(value) > INT_MAX:
            self.fail(f"must be an integer of at most {INT_MAX} (2**63 - 1), got {show(value)}", key)
        if not integer and abs(value) > MAX_ABS:
            self.fail(f"must be a number of magnitude at most {MAX_ABS:g}, got {show(value)}", key)
        if not integer and strict_lo and lo == 0 and 0 < value < MIN_POSITIVE:
            self.fail(f"must be >= {MIN_POSITIVE:g} (smaller scales overflow), got {value!r}", key)
        if lo is not None and (value <= lo if strict_lo else value < lo):
            self.fail(f"must be {'>' if strict_lo else '>='} {lo}, got {value}", key)
        if hi is not None and value > hi:
            self.fail(f"must be <= {hi}, got {value}", key)
        return int(value) if integer else float(value)

    def text(self, key: str, default: str | None = None, choices: tuple[str, ...] | None = None) -> str:
        value = self.data.get(key, default)
        if not isinstance(value, str):
            self.fail("is required" if value is None else f"must be a string, got {show(value)}", key)
        if choices and value not in choices:
            self.fail(f"must be one of {', '.join(choices)}, got {value!r}", key)
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            self.fail(f"must be true or false, got {show(value)}", key)
        return value

    def array(self, key: str, shape: tuple[int | None, ...] | None = None, default: Any = None) -> np.ndarray:
        value = self.data.get(key, default)
        if value is None:
            self.fail("is required", key)
        try:
            arr = np.asarray(value, dtype=float)
        except (TypeError, ValueError, OverflowError, RecursionError):
            self.fail(f"must be numbers, got {show(value)}", key)
        if arr.dtype == object or not np.all(np.isfinite(arr)):
            self.fail(f"must be finite numbers, got {show(value)}", key)
        if arr.size and np.max(np.abs(arr)) > MAX_ABS:
            self.fail(f"must be numbers of magnitude at most {MAX_ABS:g}, got {show(value)}", key)
        if shape is not None and (arr.ndim != len(shape) or any(
                s is not None and s != a for s, a in zip(shape, arr.shape, strict=True))):
            want = "x".join("any" if s is None else str(s) for s in shape)
            self.fail(f"must have shape {want}, got {'x'.join(map(str, arr.shape)) or 'a scalar'}", key)
        return arr
