"""The ``[space]`` of learned models in scenario files: a bundled dataset, a model by name,
real-data sources and rewards by name (the names are :mod:`ecosystem.learned`'s registries).

``data`` and ``model`` are a name or a table ``{ name = ..., <parameters> }``; sources give
``data`` the same way (default: the space's dataset). Plugins (``--plugin MODULE``) register
more names before the file is read; a file never imports anything itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ecosystem import learned as registry
from ecosystem.core.learned import Dataset, Learned
from ecosystem.core.rewards import Reward
from ecosystem.errors import EcosystemError, show
from ecosystem.formats.section import Section
from ecosystem.learned.plugins import load_plugins

SPACE_KEYS = {"family", "data", "model", "init_size", "eval_size", "projections", "workers"}
BUILT_IN_REWARDS = ("linear", "quadratic", "ball")
"""Reward kinds the scenario parser builds itself (on the data's coordinates)."""


def _named(sec: Section, key: str, table: list[str], default: Any = None) -> tuple[str, dict]:
    """``key = "name"`` or ``key = { name = "...", ... }``: the name and the other keys."""
    value = sec.data.get(key, default)
    if isinstance(value, str):
        name, params = value, {}
    elif isinstance(value, dict) and isinstance(value.get("name"), str):
        name, params = value["name"], {k: v for k, v in value.items() if k != "name"}
    else:
        sec.fail(f"must be a name or a table with a name, got {show(value)}", key)
    if name not in table:
        sec.fail(f"unknown {key} {name!r} (known: {', '.join(table)})", key)
    return name, params


def _call(sec: Section, key: str, make, *args):
    """``make(*args)``; a ``ValueError("param: what")`` becomes an error naming ``key.param``."""
    try:
        return make(*args)
    except EcosystemError:            # already one line naming what is wrong (e.g. scikit-learn missing)
        raise
    except ValueError as err:
        param, _, what = str(err).partition(": ")
        sec.fail(what or param, (f"{key}.{param}" if key else param) if what else key or None)


def dataset(sec: Section, key: str = "data", default: Any = None) -> Dataset:
    """The dataset ``sec[key]`` names (a name or a table of the loader's parameters)."""
    load_plugins()
    name, params = _named(sec, key, registry.DATASETS, default)
    return _call(sec, key, registry.dataset, name, params)


def family(sec: Section) -> Learned:
    """The :class:`Learned` family of a ``[space]`` with ``family = "learned"``."""
    sec.only(SPACE_KEYS)
    if "data" not in sec.data:
        sec.fail("a learned space names its data (a bundled dataset, e.g. data = \"digits\")", "data")
    space = dataset(sec)
    name, params = _named(sec, "model", registry.MODELS)
    make = _call(sec, "model", registry.model_factory, name, params, space)
    return Learned(make, dim=space.data.shape[1], bounds=space.bounds, shape=space.shape,
                   init_size=sec.number("init_size", 1000, lo=2, hi=1e7, integer=True),
                   eval_size=sec.number("eval_size", 1000, lo=10, hi=1e5, integer=True),
                   projections=sec.number("projections", 64, lo=1, hi=1024, integer=True),
                   workers=sec.number("workers", 1, lo=1, hi=64, integer=True),
                   objects=[space])


def source(sec: Section, family: Learned) -> np.ndarray:
    """A real-data source: its row (the registered dataset's handle)."""
    sec.only({"data"})
    space = family.objects[0]
    data = dataset(sec, default={"name": space.name}) if "data" in sec.data else space
    if data.data.shape[1] != family.dim:
        sec.fail(f"has {data.data.shape[1]} coordinates, the space has {family.dim}", "data")
    return family.add(data)


def reward(sec: Section, family: Learned, name: str) -> Reward:
    """A reward of a kind from :mod:`ecosystem.learned`'s registry (keys: its parameters)."""
    kind = sec.data["kind"]
    return _call(sec, "", registry.reward, kind, {k: v for k, v in sec.data.items() if k != "kind"},
                 family.objects[0], name)
