"""Replicate batches: many sample-mode runs advanced as one give each run's numbers bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from ecosystem.core.families import Gaussian
from ecosystem.core.replicates import ReplicateBatch
from ecosystem.core.rounds import RoundState, advance
from ecosystem.core.streams import Streams
from ecosystem.formats.scenario import load, parse
from ecosystem.studies import reproduce


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(np.uint64)


def _separately(models: list, rounds: int) -> list[RoundState]:
    """Each model's state after ``rounds`` rounds of ``rounds.advance`` on its own."""
    out = []
    for m in models:
        state = m.round_state
        for _ in range(rounds):
            state = advance(m.kernel, state, mode="sample", order="synchronous", rng=m.rng)
        out.append(state)
    return out


def _assert_same(batch: ReplicateBatch, states: list[RoundState]) -> None:
    for i, state in enumerate(states):
        got = batch.state(i)
        for field in ("rows", "accumulated", "accumulated_weight"):
            assert np.array_equal(_bits(getattr(got, field)), _bits(getattr(state, field))), (i, field)


@pytest.mark.parametrize(("name", "overrides"), [
    ("gaussian", {"mode": "sample"}),                                         # Luce K = 4, two user types
    ("gaussian", {"mode": "sample", "topology.curator.rule": "tilt"}),       # exact tilts, a user draw per slot
    ("gaussian", {"mode": "sample", "space.covariance": "diag", "topology.model.retention": "accumulate"}),
    ("ring", {"mode": "sample"}),                                             # categorical
])
def test_seeds_of_one_scenario_are_their_separate_runs(name, overrides):
    scenario = load(name, overrides)
    seeds = [0, 3, 11]
    batch = ReplicateBatch.of(scenario, seeds)
    batch.advance(5)
    _assert_same(batch, _separately([scenario.build(seed=s) for s in seeds], 5))


def test_kernels_of_at_most_max_nodes_give_the_same_numbers():
    scenario = load("gaussian", {"mode": "sample", "topology.curator.rule": "tilt"})
    nodes = scenario.graph.number_of_nodes()
    batch = ReplicateBatch.of(scenario, range(5), max_nodes=2 * nodes)
    assert [p.first for p in batch.parts] == [0, 2, 4]
    batch.advance(4)
    _assert_same(batch, _separately([scenario.build(seed=s) for s in range(5)], 4))


@pytest.mark.parametrize("retention", ["replace", "accumulate"])
def test_grid_points_are_their_separate_runs(retention):
    """The mechanism's grid points: different couplings (edge transforms), curation shares (a tilt;
    none at lambda = 0) and sample sizes, replicates stacked as nodes; one curator group for all."""
    ref = reproduce.mechanism_data()
    points = [(0.3, 0.3, 4), (0.6, 0.0, 12), (0.9, 0.5, 7), (0.2, 0.25, 32)]

    def build():
        models = []
        for t, lam, n in points:
            data = reproduce.mechanism_scenario(ref, t, lam, n, 3, seed=5)
            for spec in data["models"].values():
                spec["retention"] = retention
            models.append(parse(data).build())
        return models

    batch = ReplicateBatch(build())
    assert len(batch.parts) == 1 and len(batch.parts[0].kernel._group_curator) == 1   # equal curators: one group
    batch.advance(8)
    _assert_same(batch, _separately(build(), 8))


def test_pools_and_candidates_of_each_member_are_its_own():
    """Categorical web: pools pick components, curators pick among K = 3 candidates (groups per member)."""
    members = [parse(reproduce.web_scenario("sample", 4, True, seed)).build() for seed in (1, 2)]
    batch = ReplicateBatch(members)
    batch.advance(4)
    _assert_same(batch, _separately([parse(reproduce.web_scenario("sample", 4, True, s)).build() for s in (1, 2)], 4))


def test_a_synced_member_goes_on_as_its_own_run():
    scenario = load("gaussian", {"mode": "sample"})
    batch = ReplicateBatch.of(scenario, [4, 5])
    batch.advance(3)
    batch.sync()
    alone = scenario.build(seed=5)
    for _ in range(5):
        alone.step()
    member = batch.members[1]
    member.step()
    member.step()
    assert np.array_equal(_bits(member.state), _bits(alone.state))


@pytest.mark.parametrize(("name", "overrides"), [
    ("gaussian", {"mode": "sample"}),
    ("ring", {"mode": "sample", "topology.n": 5}),
])
def test_stepped_members_measure_and_collect_as_their_separate_runs(name, overrides):
    scenario = load(name, overrides)
    batch = ReplicateBatch.of(scenario, [2, 9])
    for _ in range(4):
        batch.step()
    for seed, member in zip((2, 9), batch.members, strict=True):
        alone = scenario.build(seed=seed)
        alone.run(4)
        assert member.steps == alone.steps == 4
        assert member.ecosystem_frame().equals(alone.ecosystem_frame())
        assert member.agents_frame().equals(alone.agents_frame())
        assert member.cross_alignment_frame().equals(alone.cross_alignment_frame())
        member.step()                                  # and it goes on alone as its run does
        alone.step()
        assert np.array_equal(_bits(member.state), _bits(alone.state))
    assert not batch.members[0].ecosystem_frame().equals(batch.members[1].ecosystem_frame())


def test_split_draws_choose_runs_per_block():
    """Block 0's slots come in more runs than 4 per row (its own draw sorts them), block 1's do not."""
    fam = Gaussian(3)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((7, 3, 3))
    rows = fam.moments(rng.standard_normal((7, 3)), a @ a.transpose(0, 2, 1))
    first = np.tile([0, 1], 9)                                # 18 runs of 2 rows
    second = np.repeat([0, 1, 2, 3, 4], [3, 1, 2, 5, 1])   # 5 runs of 5 rows
    want = [fam.sample(rows[:2], first, np.random.default_rng(1)),
            fam.sample(rows[2:], second, np.random.default_rng(2))]
    streams = Streams([np.random.default_rng(1), np.random.default_rng(2)])
    blocks = np.repeat([0, 1], [first.size, second.size])
    got = fam.sample(rows, np.r_[first, second + 2], streams.split(blocks, np.array([2, 5])))
    assert np.array_equal(_bits(got), _bits(np.concatenate(want)))


@pytest.mark.parametrize(("name", "overrides", "message"), [
    ("gaussian", {}, "population mode"),
    ("gaussian", {"mode": "sample", "order": "sequential"}, "sequentially"),
    ("gaussian", {"mode": "sample", "topology.model.retention": "subsample"}, "subsample"),
    ("stories/newcomer", {"mode": "sample"}, "events"),
])
def test_what_a_batch_does_not_run_is_refused(name, overrides, message):
    with pytest.raises(ValueError, match=message):
        ReplicateBatch.of(load(name, overrides), [0, 1])


def test_members_need_one_family_and_their_own_generators():
    gaussian = load("gaussian", {"mode": "sample"})
    with pytest.raises(ValueError, match="another family"):
        ReplicateBatch([gaussian.build(seed=0), load("ring", {"mode": "sample"}).build(seed=0)])
    model = gaussian.build(seed=0)
    with pytest.raises(ValueError, match="share a generator"):
        ReplicateBatch([model, model])


def test_readme_example_is_separate_runs(monkeypatch, tmp_path):
    import re

    from conftest import ROOT

    text = (ROOT / "README.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S) if "ReplicateBatch" in b)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)  # the README is project code, not user data
    alone = namespace["scenario"].build(seed=3)
    for _ in range(20):
        alone.step()
    assert np.array_equal(_bits(namespace["means"]), _bits(alone.state[:, :2]))
    assert np.array_equal(_bits(namespace["batch"].members[3].state), _bits(alone.state))
