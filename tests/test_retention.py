"""Retention of training data across rounds: replace, accumulate, subsample (a reservoir)."""

from __future__ import annotations

import networkx as nx
import numpy as np
from conftest import COORDS, N_OUT, categorical, gaussian_row

from ecosystem.core.curation import Curator, Luce
from ecosystem.core.families import Categorical, Gaussian
from ecosystem.core.model import EcosystemModel
from ecosystem.core.rewards import Linear


def self_curated(fam, row, retention: str, count: int, sample_size: int = 100) -> nx.DiGraph:
    g = nx.DiGraph()
    cur = Curator(Luce(2, 1.0), [Linear(np.ones(fam.dim if isinstance(fam, Gaussian) else 1))])
    for i in range(count):
        g.add_node(f"m{i}", kind="model", moments=row, sample_size=sample_size, retention=retention)
        g.add_node(f"c{i}", kind="curator", curator=cur)
        g.add_edge(f"m{i}", f"c{i}")
        g.add_edge(f"c{i}", f"m{i}", weight=1.0)
    return g


def test_population_accumulate_averages_all_training_mixtures():
    p0 = np.full(N_OUT, 1 / N_OUT)
    fam = Categorical(COORDS)
    cur = Curator(Luce(2, 1.0), [Linear(np.ones(1))])
    models = {ret: EcosystemModel(self_curated(fam, p0, ret, 1), fam) for ret in ("replace", "accumulate", "subsample")}
    for m in models.values():
        m.run(6)
    # by hand: the training set of round t is the curated output of the model of round t-1
    p, mixes = p0[None], []
    for _ in range(6):
        mixes.append(cur.curate(p, COORDS[None])[0])
        p = np.mean(mixes, axis=0)[None]
    np.testing.assert_allclose(models["accumulate"].state[0], p[0], rtol=1e-12)
    # infinitely many samples: a uniform reservoir over all data seen is the same average
    np.testing.assert_allclose(models["subsample"].state[0], p[0], rtol=1e-12)
    align = {k: m.state[0] @ COORDS for k, m in models.items()}
    assert align["replace"] > align["accumulate"] + 0.05      # accumulating slows the drift


def test_sample_retention_modes_on_gaussian_drift():
    fam = Gaussian(dim=1)
    row = gaussian_row(fam, [0.0], [[1.0]])
    g = nx.DiGraph()
    for ret in ("replace", "accumulate", "subsample"):
        g = nx.union(g, nx.relabel_nodes(self_curated(fam, row, ret, 150), lambda v, r=ret: f"{r}_{v}"))
    sample = EcosystemModel(g, fam, mode="sample", rng=5)
    sample.run(8)
    mean = sample.gaussian_parameters()[0][:, 0]
    names = sample.kernel.models
    kinds = ("replace", "accumulate", "subsample")
    by = {ret: mean[[i for i, v in enumerate(names) if v.startswith(ret)]] for ret in kinds}
    exact = {}
    for ret in by:
        pop = EcosystemModel(self_curated(fam, row, ret, 1), fam, mode="population")
        pop.run(8)
        exact[ret] = pop.gaussian_parameters()[0][0, 0]
    assert exact["replace"] > exact["accumulate"] + 0.5
    # sample mode follows the exact loop (M = 100: small finite-sample bias) ...
    for ret in ("replace", "accumulate"):
        se = by[ret].std() / np.sqrt(len(by[ret]))
        assert abs(by[ret].mean() - exact[ret]) < 5 * se + 0.05 * abs(exact[ret]), (ret, by[ret].mean(), exact[ret])
    # ... and the reservoir sees all rounds' data like accumulation does
    se = np.hypot(by["subsample"].std(), by["accumulate"].std()) / np.sqrt(150)
    assert abs(by["subsample"].mean() - by["accumulate"].mean()) < 5 * se + 0.05
    assert by["replace"].mean() > by["subsample"].mean() + 0.5


def test_accumulate_in_sample_mode_pools_all_rounds():
    # models trained only on a source: accumulation averages 20 rounds of 50 samples
    g = nx.DiGraph()
    p_data = np.array([0.05, 0.1, 0.15, 0.2, 0.2, 0.3])
    g.add_node("data", kind="source", moments=p_data)
    for ret in ("replace", "accumulate", "subsample"):
        for i in range(100):
            g.add_node(f"{ret}{i}", kind="model", moments=np.full(N_OUT, 1 / N_OUT), sample_size=50, retention=ret)
            g.add_edge("data", f"{ret}{i}", weight=1.0)
    model = categorical(g, mode="sample", rng=9)
    model.run(20)
    err = np.abs(model.state - p_data).sum(axis=1)
    replace, accumulate, subsample = err[:100].mean(), err[100:200].mean(), err[200:].mean()
    assert accumulate < 0.35 * replace
    # a reservoir of M samples is as noisy as M fresh samples, not more
    assert 0.6 * replace < subsample < 1.5 * replace
    np.testing.assert_allclose(model.state.sum(axis=1), 1.0)
    assert np.all(model.state >= 0)
