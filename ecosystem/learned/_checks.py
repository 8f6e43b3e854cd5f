"""Value checks of the built-in models, datasets and rewards: each raises ``ValueError("key: ...")``
(the scenario parser prefixes the file and table), or returns the checked value."""

from __future__ import annotations

from collections.abc import Sequence

from ecosystem.errors import show


def at_least(key: str, value: int | float, low: int | float) -> int | float:
    if not value >= low:
        raise ValueError(f"{key}: must be at least {low}, got {show(value)}")
    return value


def positive(key: str, value: float) -> float:
    if not value > 0:
        raise ValueError(f"{key}: must be > 0, got {show(value)}")
    return float(value)


def one_of(key: str, value: object, options: Sequence) -> object:
    if value not in options:
        raise ValueError(f"{key}: must be one of {', '.join(map(repr, options))}, got {show(value)}")
    return value
