"""The family protocol is all the engine, the metrics and the analysis use.

A family defined outside the package that offers exactly the members of
:class:`ecosystem.core.families.Family` (here: a delegate that forwards only those members to
a built-in family, so any other attribute the engine reached for would fail) runs the same
ecosystem to the same numbers, in both modes, with scripted events and the analysis.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ecosystem import analysis
from ecosystem.core.families import Categorical, Family, Gaussian
from ecosystem.core.model import EcosystemModel
from ecosystem.formats.scenario import parse

MEMBERS = sorted(name for name, value in vars(Family).items()
                 if not name.startswith("_") and (callable(value) or isinstance(value, property)))


class Delegate:
    """A family of its own class offering the protocol's members and nothing else."""

    def __init__(self, inner: object) -> None:
        self.kind = inner.kind
        self._inner = inner

    @property
    def width(self) -> int:
        return self._inner.width


for _name in MEMBERS:
    if _name != "width":
        setattr(Delegate, _name, lambda self, *a, _n=_name, **k: getattr(self._inner, _n)(*a, **k))


def scenario(family: str) -> dict:
    space = {"family": "gaussian", "dim": 1} if family == "gaussian" else {"family": "categorical", "n": 7}
    rewards = ({"up": {"kind": "quadratic", "g": [1.0], "eta": 0.5},
                "down": {"kind": "quadratic", "g": [-1.0], "eta": 0.5}} if family == "gaussian" else
               {"up": {"kind": "linear", "weights": [0.5]}, "down": {"kind": "linear", "weights": [-0.3]}})
    source = {"mean": [0.0], "var": 1.0} if family == "gaussian" else {"normal": {"mean": 3.0, "var": 2.0}}
    return {
        "space": space, "rewards": rewards, "sources": {"real": source}, "steps": 6,
        "topology": {"kind": "ring", "n": 3, "real_share": 0.3, "curation_ratio": 0.4, "include_self": True,
                     "model": {"sample_size": 300},
                     "curator": {"rule": "luce", "K": 3, "rewards": ["up", "down"]}},
        "events": [{"round": 3, "action": "set_curation_ratio", "target": "m1", "value": 0.2}],
    }


def test_builtin_families_satisfy_the_protocol():
    assert isinstance(Categorical(np.arange(3.0)), Family) and isinstance(Gaussian(2), Family)
    assert isinstance(Delegate(Gaussian(2)), Family)
    assert {"fit", "curate", "sample", "empirical", "expected_reward", "diversity", "drift"} <= set(MEMBERS)


@pytest.mark.parametrize("family", ["categorical", "gaussian"])
@pytest.mark.parametrize("mode", ["population", "sample"])
def test_an_outside_family_runs_the_same_ecosystem(family, mode):
    spec = parse(scenario(family))
    frames = []
    for fam in (spec.family, Delegate(spec.family)):
        model = EcosystemModel(**(spec.model_args(mode=mode, seed=5) | {"family": fam}))
        model.run(spec.steps)
        frames.append((model.agents_frame(), model.ecosystem_frame(), model.events_frame()))
    for ours, theirs in zip(*frames, strict=True):
        pd.testing.assert_frame_equal(ours, theirs)
    assert len(frames[0][2]) == 1


@pytest.mark.parametrize("family", ["categorical", "gaussian"])
def test_an_outside_family_is_analysed_alike(family):
    data = scenario(family)
    data["topology"]["curator"] = {"rule": "tilt", "rewards": ["up", "down"]}   # closed-form curation: fast
    spec = parse(data)
    ours = analysis.analyze(spec.build())
    theirs = analysis.analyze(EcosystemModel(**(spec.model_args() | {"family": Delegate(spec.family)})))
    np.testing.assert_allclose(theirs.point.rows, ours.point.rows, atol=1e-10)
    np.testing.assert_allclose(theirs.influence.influence, ours.influence.influence, rtol=1e-5, atol=1e-8)
