"""Learned models, datasets and rewards by name: the registries scenarios and plugins use.

A factory's keyword parameters with defaults are the keys a scenario may give it; a parameter
named ``space`` is not a key but receives the :class:`~ecosystem.core.learned.Dataset` the
models live on. Bad parameters raise ``ValueError("key: what is wrong")`` (the scenario parser
prefixes the file and table). Built-ins (scikit-learn adapters, bundled data, image rewards)
are registered here; scikit-learn is imported only when one of them is built.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable

from ecosystem.core.learned import Dataset, GenerativeModel
from ecosystem.core.rewards import Reward
from ecosystem.errors import show
from ecosystem.learned import conditional, datasets, rewards
from ecosystem.learned.sklearn import BayesianMixtureModel, GaussianMixtureModel, KernelDensityModel

MODELS: dict[str, Callable[..., GenerativeModel]] = {}
"""Model factories by name."""
DATASETS: dict[str, Callable[..., Dataset]] = {}
"""Dataset loaders by name."""
REWARDS: dict[str, Callable[..., Reward]] = {}
"""Reward factories by kind."""
CONTEXT = ("space",)
"""Parameters a factory may take that are given by the engine, not by a scenario."""


def keys(factory: Callable) -> dict[str, object]:
    """The keys a scenario may give ``factory``: its keyword parameters with defaults, and those defaults."""
    return {p.name: p.default for p in inspect.signature(factory).parameters.values()
            if p.default is not p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            and p.name not in CONTEXT}


def _register(table: dict, what: str, name: str, factory: Callable) -> None:
    if not isinstance(name, str) or not name:
        raise TypeError(f"a {what} name must be a non-empty string, got {show(name)}")
    if not callable(factory):
        raise TypeError(f"{what} '{name}': the factory {show(factory)} is not callable")
    required = [p.name for p in inspect.signature(factory).parameters.values()
                if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name not in CONTEXT]
    if required:
        raise TypeError(f"{what} '{name}': every parameter of the factory needs a default, {required[0]} has none")
    table[name] = factory


def _check_type(key: str, value: object, default: object) -> None:
    """``ValueError`` naming ``key`` if ``value`` is not of the kind of its ``default`` (bool, int,
    float, str; anything for a default of another type, e.g. None)."""
    if isinstance(default, bool):
        ok, kind = isinstance(value, bool), "true or false"
    elif isinstance(default, int):
        ok, kind = isinstance(value, int) and not isinstance(value, bool), "an integer"
    elif isinstance(default, float):
        ok, kind = (isinstance(value, int | float) and not isinstance(value, bool)
                    and math.isfinite(value)), "a finite number"
    elif isinstance(default, str):
        ok, kind = isinstance(value, str), "a string"
    else:
        return
    if not ok:
        raise ValueError(f"{key}: must be {kind}, got {show(value)}")


def _call(table: dict, what: str, name: str, params: dict, **context) -> Callable[[], object]:
    """The zero-argument call of ``table[name]`` on ``params`` (checked) and the ``context`` it takes."""
    if name not in table:
        raise ValueError(f"unknown {what} {show(name)} (known: {', '.join(sorted(table)) or 'none'})")
    factory = table[name]
    allowed = keys(factory)
    for key, value in params.items():
        if key not in allowed:
            raise ValueError(f"{key}: not a parameter of {what} '{name}' (parameters: "
                             f"{', '.join(sorted(allowed)) or 'none'})")
        _check_type(key, value, allowed[key])
    taken = inspect.signature(factory).parameters
    return functools.partial(factory, **params, **{k: v for k, v in context.items() if k in taken})


def register_model(name: str, factory: Callable[..., GenerativeModel]) -> None:
    """Make ``factory`` (keyword parameters with defaults, optionally ``space``) the model ``name``."""
    _register(MODELS, "learned model", name, factory)


def model_factory(name: str, params: dict, space: Dataset) -> Callable[[], GenerativeModel]:
    """A zero-argument maker of fresh models ``name`` with ``params``, on the data ``space``; the
    parameters are checked by building one model (``ValueError("key: ...")``)."""
    make = _call(MODELS, "learned model", name, params, space=space)
    make()
    return make


def register_dataset(name: str, loader: Callable[..., Dataset]) -> None:
    """Make ``loader`` (keyword parameters with defaults) the dataset ``name``."""
    _register(DATASETS, "dataset", name, loader)


def dataset(name: str, params: dict) -> Dataset:
    """The dataset ``name`` loaded with ``params`` (``ValueError("key: ...")`` for a bad one)."""
    return _call(DATASETS, "dataset", name, params)()


def register_reward(kind: str, factory: Callable[..., Reward]) -> None:
    """Make ``factory`` (keyword parameters with defaults, optionally ``space``) the reward kind ``kind``."""
    _register(REWARDS, "reward kind", kind, factory)


def reward(kind: str, params: dict, space: Dataset, name: str) -> Reward:
    """The reward ``kind`` with ``params`` on the data ``space``, named ``name``."""
    out = _call(REWARDS, "reward kind", kind, params, space=space)()
    out.name = name
    return out


register_model(GaussianMixtureModel.name, GaussianMixtureModel)
register_model(BayesianMixtureModel.name, BayesianMixtureModel)
register_model(KernelDensityModel.name, KernelDensityModel)
register_model(conditional.ClassConditionalModel.name, conditional.factory(model_factory, MODELS))
register_dataset("digits", datasets.digits)
register_dataset("photos", datasets.photos)
register_reward("ink", rewards.ink)
register_reward("warmth", rewards.warmth)
