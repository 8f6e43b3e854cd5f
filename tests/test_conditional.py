"""Conditional categorical models: per-input curation and fits against independent computations."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecosystem.core.conditional import ConditionalCategorical
from ecosystem.core.curation import Curator, Luce, Tilt
from ecosystem.core.families import Categorical
from ecosystem.core.model import EcosystemModel
from ecosystem.core.rewards import Tabular
from ecosystem.errors import ScenarioError
from ecosystem.formats.scenario import parse


def _luce_brute_force(p: np.ndarray, r: np.ndarray, K: int, tau: float) -> np.ndarray:
    """The curated distribution of K i.i.d. candidates from ``p`` with a softmax choice, by enumeration."""
    out = np.zeros_like(p)
    for tup in itertools.product(range(len(p)), repeat=K):
        prob = np.prod(p[list(tup)])
        w = np.exp(r[list(tup)] / tau)
        for i, y in enumerate(tup):
            out[y] += prob * w[i] / w.sum()
    return out


def _random_instance(seed: int):
    """A random conditional ecosystem: 2-3 models, their curators, a real source, random inputs."""
    rng = np.random.default_rng(seed)
    n_in, n_out, n = int(rng.integers(1, 4)), int(rng.integers(2, 4)), int(rng.integers(2, 4))
    fam = ConditionalCategorical(np.arange(n_in), np.arange(n_out))

    def row(sparse_domain: bool) -> np.ndarray:
        dom = rng.random(n_in) + 0.05
        if sparse_domain and n_in > 1:
            dom[rng.integers(n_in)] = 0.0
        cond = rng.dirichlet(np.ones(n_out), size=n_in)
        return fam.join((dom / dom.sum())[None], cond[None])[0]

    g = nx.DiGraph()
    g.add_node("real", kind="source", moments=row(True))
    models = [f"m{i}" for i in range(n)]
    tables = {}
    for m in models:
        g.add_node(m, kind="model", moments=row(True))
    for m in models:
        table = rng.normal(size=(n_in, n_out))
        tables[m] = table
        rule = Luce(int(rng.integers(1, 4)), float(rng.uniform(0.3, 2.0)))
        g.add_node(f"c_{m}", kind="curator", curator=Curator(rule, [Tabular(table.ravel(), name=m)]))
        g.add_edge(m, f"c_{m}")
    for v in models:
        sources = ["real", *models, *(f"c_{m}" for m in models)]
        picked = [s for s in sources if rng.random() < 0.6] or ["real"]
        w = rng.random(len(picked)) + 0.1
        for s, wi in zip(picked, w / w.sum(), strict=True):
            where = rng.choice(["producer", "consumer", "real"])
            g.add_edge(s, v, weight=float(wi), inputs=str(where))
    return fam, g, models, tables


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000))
def test_population_round_matches_an_independent_per_input_computation(seed):
    fam, g, models, tables = _random_instance(seed)
    eco = EcosystemModel(g, fam, mode="population", rng=0)
    rows = {m: g.nodes[m]["moments"] for m in models} | {"real": g.nodes["real"]["moments"]}
    dom = {k: fam.split(v[None])[0][0] for k, v in rows.items()}
    cond = {k: fam.split(v[None])[1][0] for k, v in rows.items()}
    for m in models:          # curated answers, input by input, by enumeration of the K candidates
        cur = g.nodes[f"c_{m}"]["curator"]
        curated = np.array([_luce_brute_force(cond[m][x], tables[m][x], cur.rule.K, cur.rule.tau)
                             for x in range(fam.n_in)])
        assert np.allclose(curated.sum(axis=1), 1.0, atol=1e-12)        # sum_y p H = 1 per input
        cond[f"c_{m}"], dom[f"c_{m}"] = curated, dom[m]
    eco.step()
    for i, v in enumerate(models):
        mass = np.zeros(fam.n_in)
        joint = np.zeros((fam.n_in, fam.n_out))
        for u, _, d in g.in_edges(v, data=True):
            where = d["inputs"]
            base = next(iter(g.predecessors(u))) if g.nodes[u]["kind"] == "curator" else u
            nu = dom[v] if where == "consumer" else dom["real"] if where == "real" else dom[base]
            mass += d["weight"] * nu
            joint += d["weight"] * nu[:, None] * cond[u]
        expected = cond[v].copy()                  # inputs without training pairs keep their answer
        seen = mass > 0
        expected[seen] = joint[seen] / mass[seen, None]
        got_dom, got = fam.split(eco.state[i:i + 1])
        assert np.allclose(got[0], expected, atol=1e-12)
        assert np.array_equal(got_dom[0], dom[v])                      # the domain never changes


def test_one_input_reduces_to_the_categorical_family():
    """With a single input a conditional model is a categorical model: the same trajectory."""
    coords = np.linspace(-2, 2, 7)
    base = {
        "steps": 15, "rewards": {"r": {"kind": "linear", "weights": [1.0]}},
        "models": {"a": {"init": "real"}, "b": {"init": "real"}},
        "curators": {"ca": {"curates": "a", "reward": "r", "K": 3, "tau": 0.7},
                     "cb": {"curates": "b", "reward": "r", "rule": "best_of_k", "K": 2}},
        "flows": [{"from": "real", "to": "a", "weight": 0.3}, {"from": "cb", "to": "a", "weight": 0.5},
                  {"from": "a", "to": "a", "weight": 0.2}, {"from": "real", "to": "b", "weight": 0.4},
                  {"from": "ca", "to": "b", "weight": 0.6}],
    }
    probs = np.exp(-coords ** 2)
    flat = parse(base | {"space": {"family": "categorical", "coords": coords.tolist()},
                         "sources": {"real": {"probs": probs.tolist()}}})
    conditional = parse(base | {
        "space": {"family": "conditional", "inputs": [0.0], "outputs": coords.tolist()},
        "rewards": {"r": {"kind": "linear", "weights": [0.0, 1.0]}},
        "sources": {"real": {"responses": probs.tolist()}}})
    a, b = flat.build(), conditional.build()
    a.run(15)
    b.run(15)
    assert isinstance(a.family, Categorical)
    assert np.allclose(b.family.split(b.state)[1][:, 0], a.state, atol=1e-13, rtol=0)
    for col in ("alignment", "diversity", "drift"):
        assert np.allclose(b.agents_frame()[col], a.agents_frame()[col], atol=1e-12)


def _two_domains(mode: str, size: int = 1000, seed: int = 3, rule: dict | None = None) -> dict:
    rule = rule or {"rule": "luce", "K": 4, "tau": 0.5}
    return {
        "seed": seed, "steps": 1, "mode": mode,
        "space": {"family": "conditional", "inputs": 3, "outputs": 4},
        "rewards": {"long": {"kind": "linear", "weights": [-2.0, 1.0]},
                    "copy": {"kind": "tabular", "values": np.eye(3, 4).tolist()}},
        "sources": {"real_p": {"domain": [2, 1, 0]}, "real_q": {"domain": [0, 1, 3], "responses": [4, 3, 2, 1]}},
        "models": {"p": {"init": "real_p", "sample_size": size}, "q": {"init": "real_q", "sample_size": size}},
        "curators": {"cp": {"curates": "p", "reward": "long", **rule},
                     "cq": {"curates": "q", "reward": "copy", **rule}},
        "flows": [{"from": "real_p", "to": "p", "weight": 0.3}, {"from": "cp", "to": "p", "weight": 0.4},
                  {"from": "cq", "to": "p", "weight": 0.3},
                  {"from": "real_q", "to": "q", "weight": 0.3}, {"from": "cq", "to": "q", "weight": 0.4},
                  {"from": "cp", "to": "q", "weight": 0.3, "inputs": "consumer"}],
    }


@pytest.mark.parametrize("rule", [{"rule": "luce", "K": 4, "tau": 0.5}, {"rule": "tilt", "tau": 0.8}])
def test_sample_mode_converges_to_the_population_round(rule):
    exact = parse(_two_domains("population", rule=rule)).build()
    exact.step()
    errors = []
    for size in (2_000, 200_000):
        runs = [parse(_two_domains("sample", size, seed, rule)).build() for seed in range(3)]
        for m in runs:
            m.step()
        errors.append(np.mean([np.abs(m.state - exact.state).max() for m in runs]))
    assert errors[1] < 0.025 and errors[1] < errors[0] / 3     # ~ 1/sqrt(n): 10x more accurate


def test_candidates_answer_the_same_input():
    """An input-dependent reward must not tilt which inputs a curated pair has: the K candidates
    share one input, so the curated pairs' inputs follow the producer's domain."""
    spec = _two_domains("sample", 100_000, rule={"rule": "best_of_k", "K": 4})
    spec["flows"] = [{"from": "real_p", "to": "p", "weight": 0.0}, {"from": "cp", "to": "p", "weight": 1.0},
                     {"from": "real_q", "to": "q", "weight": 1.0}]
    m = parse(spec).build()
    x = m.kernel.fixed.copy()
    x[:2] = m.state
    samples, owner = m.kernel.training_samples(x, m.kernel.sample_size, m.rng)
    inputs = samples[owner == 0] // 4
    freq = np.bincount(inputs, minlength=3) / inputs.size
    assert np.allclose(freq, [2 / 3, 1 / 3, 0.0], atol=0.01)   # "long" rewards x = 0 by 2 per step


def test_curated_rows_sum_to_one_and_tilts_are_exact():
    fam = ConditionalCategorical(np.arange(3), np.arange(5))
    rng = np.random.default_rng(0)
    rows = fam.join(rng.dirichlet(np.ones(3), 4), rng.dirichlet(np.ones(5), (4, 3)))
    table = rng.normal(size=(3, 5))
    judges = fam.judges(Curator(Tilt(0.7), [Tabular(table.ravel())]))
    dom, cond = fam.split(fam.curate(judges, rows))
    expected = fam.split(rows)[1] * np.exp(table / 0.7)
    assert np.allclose(cond, expected / expected.sum(axis=2, keepdims=True), atol=1e-13)
    assert np.array_equal(dom, fam.split(rows)[0])


def test_domain_alignment_table_has_own_domain_on_its_diagonal():
    m = parse(_two_domains("population")).build()
    m.run(3)
    table = m.measures["domain"]
    assert np.allclose(np.diag(table), m.measures["alignment"], atol=1e-13)
    frame = m.domain_alignment_frame()
    assert set(frame.columns) == {"step", "model", "domain", "alignment"} and len(frame) == 4 * 4
    # p's answers on q's domain: the domain weights applied to p's per-input rewards
    fam = m.family
    per_input = (fam.split(m.state)[1][0] * fam.reward_table(m.eval_rewards[0])).sum(axis=1)
    assert np.isclose(table[0, 1], per_input @ fam.split(m.state)[0][1])


@pytest.mark.parametrize(("change", "message"), [
    (lambda s: s.update(pools={"web": {}}), "conditional ecosystem has no pools"),
    (lambda s: s["flows"][0].update(inputs="nowhere"), "inputs must be producer, consumer or a source"),
    (lambda s: s["sources"]["real_p"].update(domain=[1, -1, 0]), "sources.real_p.domain"),
    (lambda s: s["sources"]["real_p"].update(responses=[[1, 1, 1, 1]]), "sources.real_p.responses"),
    (lambda s: s["space"].update(outputs=1), "at least 2 outputs"),
])
def test_bad_conditional_scenarios_name_what_is_wrong(change, message):
    spec = _two_domains("population")
    change(spec)
    if "pools" in spec:
        spec["flows"].append({"from": "p", "to": "web", "weight": 1.0})
    with pytest.raises(ScenarioError, match=message):
        parse(spec)


def test_inputs_on_an_unconditional_family_are_refused():
    spec = {"space": {"family": "categorical", "n": 3}, "sources": {"real": {"uniform": True}},
            "models": {"m": {}}, "flows": [{"from": "real", "to": "m", "weight": 1.0, "inputs": "consumer"}]}
    with pytest.raises(ScenarioError, match="inputs needs a conditional family"):
        parse(spec)


def test_analyze_prints_influence_and_backfire_for_a_conditional_scenario(tmp_path):
    path = tmp_path / "two.toml"
    path.write_text(TWO_DOMAINS_TOML)
    out = subprocess.run([sys.executable, "-m", "ecosystem", "analyze", str(path)],
                         capture_output=True, text=True, check=True).stdout
    assert "stable point converged" in out
    assert "influence dJ_i*/dp" in out and "curation_ratio[p]" in out
    assert "backfire" in out


TWO_DOMAINS_TOML = """
steps = 5
[space]
family = "conditional"
inputs = 3
outputs = 4
[rewards.long]
kind = "linear"
weights = [0.0, 1.0]
[rewards.copy]
kind = "tabular"
values = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]]
[sources.real_p]
domain = [1, 1, 0]
[sources.real_q]
domain = [0, 1, 1]
responses = [0.4, 0.3, 0.2, 0.1]
[models.p]
init = "real_p"
[models.q]
init = "real_q"
[curators.cp]
curates = "p"
reward = "long"
K = 4
[curators.cq]
curates = "q"
reward = "copy"
K = 4
tau = 0.5
[[flows]]
from = "real_p"
to = "p"
weight = 0.3
[[flows]]
from = "cp"
to = "p"
weight = 0.4
[[flows]]
from = "cq"
to = "p"
weight = 0.3
[[flows]]
from = "real_q"
to = "q"
weight = 0.3
[[flows]]
from = "cq"
to = "q"
weight = 0.4
[[flows]]
from = "cp"
to = "q"
weight = 0.3
inputs = "consumer"
"""


def test_the_readmes_two_tasks_numbers():
    """README "Conditional models": each model's alignment on its own and on the other's domain."""
    from ecosystem.formats.scenario import load

    scenario = load("conditional/two_tasks")
    m = scenario.build()
    m.run(scenario.steps)
    table = np.round(m.measures["domain"], 3)
    assert table.tolist() == [[-0.358, -1.011], [-0.828, -0.094]]
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert "summariser ends at -0.358 on its own prompts but -1.011" in readme
    assert "paraphraser at -0.094 on its own and -0.828" in readme


def test_inputs_a_model_never_sees_are_left_out_of_the_convergence_condition():
    """q is trained only on its own domain (inputs 1, 2): its answers at input 0 never move (an
    eigenvalue exactly 1 of the round), yet the trained part converges; the analysis says so."""
    from ecosystem import analysis
    from ecosystem.analysis.stability import inert

    m = parse(_two_domains("population") | {"steps": 5}).build()
    result = analysis.analyze(m)
    jac = analysis.jacobian(m, result.point.theta)
    frozen = inert(jac)
    assert frozen.sum() == m.family.n_out - 1              # q's free answers at input 0
    assert np.max(np.abs(np.linalg.eigvals(jac))) == pytest.approx(1.0, abs=1e-6)
    assert result.spectral_radius < 0.9 and result.to_dict()["stable"]
    assert result.spectral_radius == pytest.approx(result.observed_rate, abs=0.02)
    assert np.all(np.isfinite(result.influence.influence))
