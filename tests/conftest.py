"""Shared by the tests: the repository's paths, pinned input files, small graph builders and fixtures.

Constants and builders are imported (``from conftest import COORDS, two_model_graph``); the
fixtures are asked for by name:

- ``cli``: the ``ecosystem`` command in-process, ``cli(*args) -> (status, out, err)``;
- ``workdir``: an empty working directory (the test's ``tmp_path``) for the test's duration.

Nothing of ``ecosystem`` is imported when this file loads: a module that does not import fails
only the tests that use it.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import NamedTuple

import networkx as nx
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
"""The repository."""
SHIPPED = ROOT / "scenarios"
"""The shipped scenarios, stories and studies (tests of the shipped files read them here)."""
DATA = ROOT / "tests" / "data"
"""Pinned copies of shipped scenarios, for tests that only need some scenario (see data/README.md)."""
RING = DATA / "ring.toml"
"""The pinned ring scenario: the base of the small studies."""

N_OUT = 6
COORDS = np.linspace(-1.0, 1.0, N_OUT)
"""Outcome coordinates of the small categorical graphs."""


def data_toml(name: str) -> dict:
    """The parsed pinned scenario ``tests/data/<name>.toml``."""
    return tomllib.loads((DATA / f"{name}.toml").read_text())


def write_study(folder: Path, text: str, name: str = "s.toml") -> Path:
    """A study file ``folder/name`` on the pinned ring scenario: ``scenario = ...`` followed by ``text``."""
    path = folder / name
    path.write_text(f'scenario = "{RING}"\n' + text)
    return path


# --------------------------------------------------------------------------- graph builders


def two_model_graph(sample_size: int = 500) -> nx.DiGraph:
    """Models A and B, each half real data, half the *other* model's outputs curated by that model's users."""
    from ecosystem.core.curation import Curator, Luce
    from ecosystem.core.rewards import Tabular

    rng = np.random.default_rng(0)
    g = nx.DiGraph()
    g.add_node("data", kind="source", moments=rng.dirichlet(np.ones(N_OUT)))
    for name, sign in (("A", 1.0), ("B", -1.0)):
        g.add_node(name, kind="model", moments=rng.dirichlet(np.ones(N_OUT)), sample_size=sample_size)
        g.add_node(f"users_{name}", kind="curator", curator=Curator(Luce(3, 0.5), [Tabular(sign * COORDS)]))
        g.add_edge(name, f"users_{name}")
        g.add_edge("data", name, weight=0.5)
    g.add_edge("users_B", "A", weight=0.5)
    g.add_edge("users_A", "B", weight=0.5)
    return g


def categorical(g: nx.DiGraph, **kw):
    """An :class:`EcosystemModel` of ``g`` on the categorical family of :data:`COORDS`."""
    from ecosystem.core.families import Categorical
    from ecosystem.core.model import EcosystemModel

    return EcosystemModel(g, Categorical(COORDS), **kw)


def gaussian_row(fam, mean, cov) -> np.ndarray:
    """The moment row ``(m,)`` of one Gaussian of ``fam`` (a node's ``moments``); ``[None]`` makes it a batch."""
    return fam.moments(np.asarray(mean, dtype=float)[None], np.asarray(cov, dtype=float)[None])[0]


def transform_graph(weight: float, sample_size: int = 1000) -> tuple[nx.DiGraph, dict]:
    """Gaussian model ``m`` fed by source ``src`` through the affine map ``x -> A x + b`` (share ``weight``)
    and by a plain source ``other`` (the rest); returns the graph and its constants."""
    from ecosystem.core.families import Gaussian

    fam = Gaussian(dim=2)
    mu_s, cov_s = np.array([1.0, -2.0]), np.array([[1.0, 0.3], [0.3, 0.5]])
    mu_o = np.array([3.0, 3.0])
    A, b = np.array([[0.0, -2.0], [1.0, 0.5]]), np.array([0.5, 1.5])
    g = nx.DiGraph()
    g.add_node("src", kind="source", moments=gaussian_row(fam, mu_s, cov_s))
    g.add_node("other", kind="source", moments=gaussian_row(fam, mu_o, np.eye(2)))
    g.add_node("m", kind="model", moments=gaussian_row(fam, np.zeros(2), np.eye(2)), sample_size=sample_size)
    g.add_edge("src", "m", weight=weight, transform=(A, b))
    if weight < 1:
        g.add_edge("other", "m", weight=1 - weight)
    return g, dict(mu_s=mu_s, cov_s=cov_s, mu_o=mu_o, A=A, b=b)


# --------------------------------------------------------------------------- fixtures


class Done(NamedTuple):
    """What a command returned: exit status and captured output."""

    status: int
    out: str
    err: str


@pytest.fixture
def cli(capsys):
    """``cli(*args)`` runs ``ecosystem.cli.main(argv)`` in this process (arguments may be paths or
    numbers) and returns :class:`Done` ``(status, out, err)`` with what that call printed."""

    def run(*args) -> Done:
        from ecosystem.cli import main

        capsys.readouterr()                    # drop what was printed before
        status = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return Done(status, out, err)

    return run


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """The test's ``tmp_path`` as the working directory (restored afterwards)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
