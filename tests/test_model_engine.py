"""Engine behaviour of EcosystemModel, the round kernel and the data-flow graph checks."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from ecosystem.core import flows
from ecosystem.core.curation import Curator, Luce, Tilt, curate_distribution
from ecosystem.core.families import Categorical, Gaussian
from ecosystem.core.flows import FlowError
from ecosystem.core.model import EcosystemModel
from ecosystem.core.rewards import Linear, Quadratic, Tabular

N_OUT = 6
COORDS = np.linspace(-1.0, 1.0, N_OUT)


def two_model_graph(sample_size: int = 500) -> nx.DiGraph:
    """Models A and B, each half real data, half the *other* model's outputs curated by that model's users."""
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


def categorical(g: nx.DiGraph, **kw) -> EcosystemModel:
    return EcosystemModel(g, Categorical(COORDS), **kw)


# --------------------------------------------------------------------------- determinism


def run_frames(seed: int, family: str = "categorical"):
    if family == "categorical":
        model = categorical(two_model_graph(), mode="sample", rng=seed)
    else:
        model = EcosystemModel(gaussian_pair_graph(), Gaussian(dim=2), mode="sample", rng=seed)
    model.run(4)
    return model.agents_frame(), model.ecosystem_frame(), model.state.copy()


def gaussian_pair_graph() -> nx.DiGraph:
    fam = Gaussian(dim=2)
    g = nx.DiGraph()
    g.add_node("data", kind="source", moments=fam.moments(np.zeros((1, 2)), np.eye(2)[None])[0])
    for name in ("P", "Q"):
        g.add_node(name, kind="model", moments=fam.moments(np.ones((1, 2)), 2 * np.eye(2)[None])[0],
                   sample_size=200)
        g.add_edge("data", name, weight=0.4)
    g.add_node("users", kind="curator", curator=Curator(Luce(4, 1.0), [Quadratic(g=np.array([1.0, 0.0]))]))
    g.add_edge("P", "users")
    g.add_edge("users", "Q", weight=0.6)
    g.add_edge("Q", "P", weight=0.6, transform=(np.array([[0.0, -1.0], [1.0, 0.0]]), np.array([0.5, 0.0])))
    return g


@pytest.mark.parametrize("family", ["categorical", "gaussian"])
def test_same_seed_same_frames_different_seed_differs(family):
    agents_a, eco_a, state_a = run_frames(11, family)
    agents_b, eco_b, state_b = run_frames(11, family)
    pd.testing.assert_frame_equal(agents_a, agents_b)
    pd.testing.assert_frame_equal(eco_a, eco_b)
    np.testing.assert_array_equal(state_a, state_b)
    agents_c, eco_c, state_c = run_frames(12, family)
    assert not np.allclose(state_a, state_c)
    assert not agents_a["alignment"].equals(agents_c["alignment"])
    assert not eco_a["mean_alignment"].equals(eco_c["mean_alignment"])
    # frame layout: one row per round (and per model)
    assert list(eco_a["step"]) == [0, 1, 2, 3, 4]
    assert len(agents_a) == 5 * 2
    assert set(agents_a["model"]) == ({"A", "B"} if family == "categorical" else {"P", "Q"})


def test_population_mode_ignores_the_seed():
    a, b = categorical(two_model_graph(), rng=1), categorical(two_model_graph(), rng=2)
    a.run(5)
    b.run(5)
    np.testing.assert_array_equal(a.state, b.state)


# --------------------------------------------------------------------------- update order


def test_synchronous_and_sequential_reach_the_same_fixed_point():
    sync = categorical(two_model_graph(), order="synchronous")
    seq = categorical(two_model_graph(), order="sequential")
    sync.step()
    seq.step()
    # A updates identically; B reads A's new state only in the sequential order
    np.testing.assert_allclose(sync.state[0], seq.state[0], rtol=1e-12)
    assert np.abs(sync.state[1] - seq.state[1]).max() > 1e-4
    sync.run(200)
    seq.run(200)
    np.testing.assert_allclose(sync.state, seq.state, atol=1e-12)
    fixed = sync.state.copy()
    sync.step()
    np.testing.assert_allclose(sync.state, fixed, atol=1e-13)
    assert sync.ecosystem_frame()["max_change"].iloc[-1] < 1e-12
    # the fixed point solves the coupled equations directly
    g = two_model_graph()
    data = g.nodes["data"]["moments"]
    cur_a, cur_b = g.nodes["users_A"]["curator"], g.nodes["users_B"]["curator"]
    table = np.stack([COORDS, -COORDS])
    a_star = 0.5 * data + 0.5 * curate_distribution(cur_b, fixed[1], table[1:])[0]
    b_star = 0.5 * data + 0.5 * curate_distribution(cur_a, fixed[0], table[:1])[0]
    np.testing.assert_allclose(fixed, np.stack([a_star, b_star]), atol=1e-12)


def test_sequential_sample_mode_runs():
    model = categorical(two_model_graph(), mode="sample", order="sequential", rng=3)
    model.run(3)
    assert np.all(model.state >= 0)
    np.testing.assert_allclose(model.state.sum(axis=1), 1.0)


# --------------------------------------------------------------------------- shares


def shares_graph() -> nx.DiGraph:
    g = two_model_graph()
    # A: 0.5 real, 0.2 curated by B's users, 0.1 curated by its own users, 0.2 its own raw outputs
    g.edges["data", "A"]["weight"] = 0.5
    g.edges["users_B", "A"]["weight"] = 0.2
    g.add_edge("users_A", "A", weight=0.1)
    g.add_edge("A", "A", weight=0.2)
    return g


def test_curation_ratio_setter_rescales_shares():
    model = categorical(shares_graph())
    agent = model.model_agents[0]
    assert agent.name == "A"
    assert agent.curation_ratio == pytest.approx(0.3)
    assert agent.real_share == pytest.approx(0.5)
    agent.curation_ratio = 0.6
    g = model.graph
    assert agent.curation_ratio == pytest.approx(0.6)
    # curated edges keep their proportions; the others absorb the change proportionally
    assert g.edges["users_B", "A"]["weight"] == pytest.approx(0.4)
    assert g.edges["users_A", "A"]["weight"] == pytest.approx(0.2)
    assert g.edges["data", "A"]["weight"] == pytest.approx(0.5 * 0.4 / 0.7)
    assert g.edges["A", "A"]["weight"] == pytest.approx(0.2 * 0.4 / 0.7)
    assert sum(w for *_, w in g.in_edges("A", data="weight")) == pytest.approx(1.0, abs=1e-12)
    # B untouched
    assert model.model_agents[1].curation_ratio == pytest.approx(0.5)
    # the kernel was recompiled: the next round uses the new shares
    before = model.state.copy()
    model.step()
    fresh = categorical(model.graph.copy())
    fresh.state[:] = before
    fresh.step()
    np.testing.assert_allclose(model.state, fresh.state, rtol=1e-12)
    assert model.agents_frame().query("model == 'A'")["curation_ratio"].iloc[-1] == pytest.approx(0.6)


def test_theory_example_half_real_half_curated():
    model = categorical(two_model_graph())
    model.model_agents[0].curation_ratio = 0.6
    assert model.graph.edges["data", "A"]["weight"] == pytest.approx(0.4)
    assert model.graph.edges["users_B", "A"]["weight"] == pytest.approx(0.6)
    model.model_agents[1].real_share = 0.8
    assert model.graph.edges["data", "B"]["weight"] == pytest.approx(0.8)
    assert model.graph.edges["users_A", "B"]["weight"] == pytest.approx(0.2)
    assert model.model_agents[1].curation_ratio == pytest.approx(0.2)


def test_share_setter_rejects_impossible_values():
    model = categorical(two_model_graph())
    with pytest.raises(FlowError, match="'A'"):
        model.model_agents[0].curation_ratio = 1.5
    g = two_model_graph()
    g.remove_edge("users_B", "A")
    g.edges["data", "A"]["weight"] = 1.0
    g.remove_node("users_B")
    model = categorical(g)
    with pytest.raises(FlowError, match="no curator inputs"):
        model.model_agents[0].curation_ratio = 0.3
    with pytest.raises(FlowError, match="cannot drop below 1"):
        model.model_agents[0].real_share = 0.5


# --------------------------------------------------------------------------- retention


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
        mixes.append(curate_distribution(cur, p, COORDS[None])[0])
        p = np.mean(mixes, axis=0)[None]
    np.testing.assert_allclose(models["accumulate"].state[0], p[0], rtol=1e-12)
    # infinitely many samples: a uniform reservoir over all data seen is the same average
    np.testing.assert_allclose(models["subsample"].state[0], p[0], rtol=1e-12)
    align = {k: m.state[0] @ COORDS for k, m in models.items()}
    assert align["replace"] > align["accumulate"] + 0.05      # accumulating slows the drift


def test_sample_retention_modes_on_gaussian_drift():
    fam = Gaussian(dim=1)
    row = fam.moments(np.zeros((1, 1)), np.ones((1, 1, 1)))[0]
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


# --------------------------------------------------------------------------- pools


def pool_graph(sample_size: int = 1000) -> nx.DiGraph:
    g = nx.DiGraph()
    left = np.array([0.2, 0.5, 0.3, 0, 0, 0])
    right = np.array([0, 0, 0, 0.1, 0.6, 0.3])
    g.add_node("sl", kind="source", moments=left)
    g.add_node("sr", kind="source", moments=right)
    for name, src in (("L", "sl"), ("R", "sr")):
        g.add_node(name, kind="model", moments=g.nodes[src]["moments"], sample_size=sample_size)
        g.add_edge(src, name, weight=1.0)
    g.add_node("web", kind="pool")
    g.add_edge("L", "web", weight=0.3)
    g.add_edge("R", "web", weight=0.7)
    g.add_node("users", kind="curator", curator=Curator(Luce(3, 1.0), [Tabular(-COORDS)]))
    g.add_edge("web", "users")
    g.add_node("C", kind="model", moments=np.full(N_OUT, 1 / N_OUT), sample_size=sample_size)
    g.add_edge("web", "C", weight=0.5)
    g.add_edge("users", "C", weight=0.5)
    return g


def test_pool_mixes_models_and_feeds_models():
    g = pool_graph()
    web = 0.3 * g.nodes["sl"]["moments"] + 0.7 * g.nodes["sr"]["moments"]
    expected = 0.5 * web + 0.5 * curate_distribution(g.nodes["users"]["curator"], web, -COORDS[None])[0]
    pop = categorical(pool_graph())
    pop.step()
    np.testing.assert_allclose(pop.state[pop.kernel.models.index("C")], expected, rtol=1e-12)
    # sample mode: C's data come from L and R in pool proportions (disjoint supports)
    big = categorical(pool_graph(sample_size=40_000), mode="sample", rng=4)
    big.step()
    c = big.state[big.kernel.models.index("C")]
    assert abs(c[:3].sum() - expected[:3].sum()) < 5 * np.sqrt(0.25 / 40_000) + 1e-3
    np.testing.assert_allclose(c, expected, atol=0.01)


def test_pool_can_feed_pool_and_gaussian_curator_cannot_judge_pool():
    g = pool_graph()
    g.add_node("mirror", kind="pool")
    g.add_edge("web", "mirror", weight=1.0)
    g.edges["web", "C"]["weight"] = 0.25
    g.add_edge("mirror", "C", weight=0.25)
    model = categorical(g)
    model.step()                        # a pool of a pool is fine
    fam = Gaussian(dim=1)
    gg = nx.DiGraph()
    row = fam.moments(np.zeros((1, 1)), np.ones((1, 1, 1)))[0]
    gg.add_node("m", kind="model", moments=row)
    gg.add_node("web", kind="pool")
    gg.add_edge("m", "web", weight=1.0)
    gg.add_node("users", kind="curator", curator=Curator(Tilt(1.0), [Linear([1.0])]))
    gg.add_edge("web", "users")
    gg.add_edge("users", "m", weight=1.0)
    with pytest.raises(FlowError, match="'web' -> 'users'"):
        EcosystemModel(gg, fam)


# --------------------------------------------------------------------------- Gaussian family


def gaussian_self_tilt(covariance: str, mode: str) -> EcosystemModel:
    fam = Gaussian(dim=2, covariance=covariance)
    cov0 = np.array([[2.0, 0.6], [0.6, 1.0]])
    g = nx.DiGraph()
    g.add_node("m", kind="model", moments=fam.moments(np.zeros((1, 2)), cov0[None])[0], sample_size=500)
    g.add_node("users", kind="curator", curator=Curator(Tilt(1.0), [Quadratic(g=np.array([1.0, -1.0]), eta=0.5)]))
    g.add_edge("m", "users")
    g.add_edge("users", "m", weight=1.0)
    return EcosystemModel(g, fam, mode=mode, rng=0)


@pytest.mark.parametrize("mode", ["population", "sample"])
def test_fixed_covariance_stays_put(mode):
    cov0 = np.array([[2.0, 0.6], [0.6, 1.0]])
    fixed, full = gaussian_self_tilt("fixed", mode), gaussian_self_tilt("full", mode)
    fixed.run(3)
    full.run(3)
    mean_f, cov_f = fixed.gaussian_parameters()
    cov_u = full.gaussian_parameters()[1]
    np.testing.assert_allclose(cov_f[0], cov0, rtol=1e-10)
    assert np.linalg.det(cov_u[0]) < 0.5 * np.linalg.det(cov0)        # the quadratic tilt shrinks it
    assert np.linalg.norm(mean_f[0]) > 0.5                              # the mean still moves
    if mode == "population":
        # one tilt step with fixed S: mu' = (I + S Q)^-1 (mu + S g), Q = eta I, applied 3 times
        mu = np.zeros(2)
        for _ in range(3):
            mu = np.linalg.solve(np.eye(2) + 0.5 * cov0, mu + cov0 @ np.array([1.0, -1.0]))
        np.testing.assert_allclose(mean_f[0], mu, rtol=1e-10)


def test_diag_covariance_drops_off_diagonals():
    fam = Gaussian(dim=2, covariance="diag")
    cov = np.array([[2.0, 0.6], [0.6, 1.0]])
    g = nx.DiGraph()
    g.add_node("data", kind="source", moments=fam.moments(np.ones((1, 2)), cov[None])[0])
    g.add_node("m", kind="model", moments=fam.moments(np.zeros((1, 2)), np.eye(2)[None])[0])
    g.add_edge("data", "m", weight=1.0)
    model = EcosystemModel(g, fam)
    model.step()
    mean, fitted = model.gaussian_parameters()
    np.testing.assert_allclose(mean[0], [1.0, 1.0], rtol=1e-12)
    np.testing.assert_allclose(fitted[0], np.diag([2.0, 1.0]), atol=1e-12)


def transform_graph(weight: float, sample_size: int = 1000) -> tuple[nx.DiGraph, dict]:
    fam = Gaussian(dim=2)
    mu_s, cov_s = np.array([1.0, -2.0]), np.array([[1.0, 0.3], [0.3, 0.5]])
    mu_o = np.array([3.0, 3.0])
    A, b = np.array([[0.0, -2.0], [1.0, 0.5]]), np.array([0.5, 1.5])
    g = nx.DiGraph()
    g.add_node("src", kind="source", moments=fam.moments(mu_s[None], cov_s[None])[0])
    g.add_node("other", kind="source", moments=fam.moments(mu_o[None], np.eye(2)[None])[0])
    g.add_node("m", kind="model", moments=fam.moments(np.zeros((1, 2)), np.eye(2)[None])[0], sample_size=sample_size)
    g.add_edge("src", "m", weight=weight, transform=(A, b))
    if weight < 1:
        g.add_edge("other", "m", weight=1 - weight)
    return g, dict(mu_s=mu_s, cov_s=cov_s, mu_o=mu_o, A=A, b=b)


def test_edge_transform_maps_the_mean_population():
    fam = Gaussian(dim=2)
    g, c = transform_graph(1.0)
    model = EcosystemModel(g, fam)
    model.step()
    mean, cov = model.gaussian_parameters()
    np.testing.assert_allclose(mean[0], c["A"] @ c["mu_s"] + c["b"], rtol=1e-12)
    np.testing.assert_allclose(cov[0], c["A"] @ c["cov_s"] @ c["A"].T, rtol=1e-12, atol=1e-14)
    # a transformed share mixed with a plain one: mixture moments
    g, c = transform_graph(0.4)
    model = EcosystemModel(g, fam)
    model.step()
    mean, _ = model.gaussian_parameters()
    np.testing.assert_allclose(mean[0], 0.4 * (c["A"] @ c["mu_s"] + c["b"]) + 0.6 * c["mu_o"], rtol=1e-12)


def test_edge_transform_in_sample_mode():
    fam = Gaussian(dim=2)
    g, c = transform_graph(1.0, sample_size=20_000)
    model = EcosystemModel(g, fam, mode="sample", rng=6)
    model.step()
    mean, cov = model.gaussian_parameters()
    target_cov = c["A"] @ c["cov_s"] @ c["A"].T
    se = np.sqrt(np.diag(target_cov) / 20_000)
    assert np.all(np.abs(mean[0] - (c["A"] @ c["mu_s"] + c["b"])) < 5 * se)
    np.testing.assert_allclose(cov[0], target_cov, atol=0.05)


# --------------------------------------------------------------------------- validation


def valid_graph() -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_node("s", kind="source", moments=np.full(N_OUT, 1 / N_OUT))
    g.add_node("m", kind="model", moments=np.full(N_OUT, 1 / N_OUT))
    g.add_node("m2", kind="model", moments=np.full(N_OUT, 1 / N_OUT))
    g.add_node("c", kind="curator", curator=Curator(Luce(2, 1.0), [Tabular(COORDS)]))
    g.add_edge("m", "c")
    g.add_edge("s", "m", weight=0.5)
    g.add_edge("c", "m", weight=0.5)
    g.add_edge("m", "m2", weight=1.0)
    return g


def test_valid_graph_passes():
    flows.validate(valid_graph())
    categorical(valid_graph()).step()


def _shares(g):
    g.edges["s", "m"]["weight"] = 0.4


def _two_producers(g):
    g.add_edge("m2", "c")


def _curator_pool_cycle(g):
    g.add_node("web", kind="pool")
    g.add_node("c2", kind="curator", curator=Curator(Luce(2, 1.0), [Tabular(COORDS)]))
    g.add_edge("web", "c2")
    g.add_edge("c2", "web", weight=0.5)
    g.add_edge("m2", "web", weight=0.5)
    g.add_edge("c2", "m2", weight=0.5)
    g.edges["m", "m2"]["weight"] = 0.5


def _unknown_kind(g):
    g.add_node("x", kind="agent")


def _negative(g):
    g.edges["s", "m"]["weight"] = -0.5
    g.edges["c", "m"]["weight"] = 1.5


def _transform_categorical(g):
    g.edges["s", "m"]["transform"] = (np.eye(1), np.zeros(1))


def _curator_of_curator(g):
    g.add_node("c2", kind="curator", curator=Curator(Luce(2, 1.0), [Tabular(COORDS)]))
    g.add_edge("c", "c2")
    g.add_edge("c2", "m2", weight=0.0)


def _source_with_input(g):
    g.add_edge("m2", "s", weight=1.0)


@pytest.mark.parametrize(
    "mutate,pattern",
    [
        (_shares, r"model 'm'.*sum to 0\.9"),
        (_two_producers, r"curator 'c'.*2"),
        (_curator_pool_cycle, r"cycle.*'(web|c2)'.*'(web|c2)'"),
        (_unknown_kind, r"node 'x'.*'agent'"),
        (_negative, r"edge 's' -> 'm'.*-0\.5"),
        (_transform_categorical, r"edge 's' -> 'm'.*gaussian"),
        (_curator_of_curator, r"edge 'c' -> 'c2'"),
        (_source_with_input, r"edge 'm2' -> 's'"),
    ],
)
def test_validate_names_the_problem(mutate, pattern):
    g = valid_graph()
    mutate(g)
    with pytest.raises(FlowError, match=pattern):
        flows.validate(g)
    with pytest.raises(FlowError, match=pattern):       # the model refuses it too
        categorical(g)


def test_validate_gaussian_transform_shape_and_retention():
    fam = Gaussian(dim=2)
    g, _ = transform_graph(1.0)
    g.edges["src", "m"]["transform"] = (np.eye(3), np.zeros(3))
    with pytest.raises(FlowError, match=r"edge 'src' -> 'm'.*2x2"):
        EcosystemModel(g, fam)
    g, _ = transform_graph(1.0)
    g.nodes["m"]["retention"] = "forever"
    with pytest.raises(FlowError, match=r"model 'm'.*retention"):
        EcosystemModel(g, fam)


@pytest.mark.parametrize("mode", ["population", "sample"])
def test_metric_selection_measures_only_what_is_asked(mode):
    """A run measuring alignment and diversity only: those columns are the full run's
    numbers, the others NaN, the model x reward table empty, the dynamics unchanged."""
    import dataclasses
    from pathlib import Path

    from ecosystem.formats.scenario import load

    full = load(Path(__file__).resolve().parents[1] / "scenarios" / "ring.toml")
    some = dataclasses.replace(full, metrics=("alignment", "diversity"))
    runs = {}
    for tag, scenario in (("full", full), ("some", some)):
        model = scenario.build(mode=mode)
        model.run(4)
        runs[tag] = model
    a, b = runs["full"].agents_frame(), runs["some"].agents_frame()
    np.testing.assert_array_equal(runs["full"].state, runs["some"].state)
    pd.testing.assert_frame_equal(a[["step", "model", "alignment", "diversity", "curation_ratio"]],
                                  b[["step", "model", "alignment", "diversity", "curation_ratio"]],
                                  check_exact=False, rtol=1e-12, atol=1e-15)   # alignment: matvec vs matmul
    assert a["drift"].notna().all() and b["drift"].isna().all() and b["change"].isna().all()
    eco = runs["some"].ecosystem_frame()
    assert eco["pairwise_divergence"].isna().all() and eco["max_change"].isna().all()
    np.testing.assert_allclose(eco["mean_alignment"], runs["full"].ecosystem_frame()["mean_alignment"], rtol=1e-12)
    assert len(runs["full"].cross_alignment_frame()) == 6 * 5 and runs["some"].cross_alignment_frame().empty
    with pytest.raises(ValueError, match="unknown metric 'entropy'"):
        EcosystemModel(full.graph.copy(), full.family, metrics=("entropy",))
