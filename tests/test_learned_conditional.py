"""The class-conditional learned model (ecosystem/learned/conditional.py), labelled datasets, and the
``learned-conflict`` reproduction end to end."""

import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn")

from ecosystem import learned
from ecosystem.formats import sample_grid
from ecosystem.formats.scenario import parse
from ecosystem.learned import conformance, datasets, rewards
from ecosystem.learned.conditional import ClassConditionalModel, Labelled, labels_of

MEANS = np.array([[0.2, 0.8, 0.5], [0.7, 0.3, 0.4], [0.5, 0.5, 0.9]])
SPREADS = np.array([0.05, 0.08, 0.03])


def labelled(counts=(600, 300, 900), seed=0) -> Labelled:
    """Three classes of 3-D Gaussian features in [0, 1] (class k: mean MEANS[k], sd SPREADS[k])."""
    rng = np.random.default_rng(seed)
    rows = [np.column_stack([MEANS[k] + SPREADS[k] * rng.standard_normal((n, 3)), np.full(n, k)])
            for k, n in enumerate(counts)]
    return Labelled(np.concatenate(rows), name="toy", bounds=(-1.0, 3.0), classes=("a", "b", "c"))


def conditional(space: Labelled, **inner) -> ClassConditionalModel:
    return learned.model_factory("class_conditional", {"inner": {"name": "gaussian_mixture", **inner}}, space)()


def test_refit_recovers_each_class_mean_and_spread():
    space = labelled()
    model = conditional(space)
    model.fit(space.data, None, np.random.default_rng(1))
    for k in range(3):
        x = model.sample_given(np.full(4000, k), np.random.default_rng(2))
        np.testing.assert_allclose(x[:, :3].mean(axis=0), MEANS[k], atol=0.01)
        np.testing.assert_allclose(x[:, :3].std(axis=0), SPREADS[k], rtol=0.1)
        assert (x[:, -1] == k).all()


def test_label_frequencies_follow_the_training_pool():
    space = labelled()
    model = conditional(space)
    model.fit(space.data, None, np.random.default_rng(0))
    np.testing.assert_allclose(model.probs, [600 / 1800, 300 / 1800, 900 / 1800])
    drawn = model.draw_inputs(20000, np.random.default_rng(3))
    np.testing.assert_allclose(np.bincount(drawn, minlength=3) / 20000, model.probs, atol=0.01)
    sampled = labels_of(model.sample(20000, np.random.default_rng(4)), 3)
    np.testing.assert_allclose(np.bincount(sampled, minlength=3) / 20000, model.probs, atol=0.01)
    # a new pool with other frequencies: the next round's labels come from it
    pool = labelled((100, 100, 800), seed=5).data
    model.fit(pool, None, np.random.default_rng(6))
    np.testing.assert_allclose(model.probs, [0.1, 0.1, 0.8])
    weights = np.where(pool[:, -1] == 2, 0.25, 1.0)            # weighted frequencies: 100, 100, 200
    model.fit(pool, weights, np.random.default_rng(7))
    np.testing.assert_allclose(model.probs, [0.25, 0.25, 0.5])


def test_a_class_missing_from_the_pool_keeps_its_model():
    space = labelled()
    model = conditional(space)
    model.fit(space.data, None, np.random.default_rng(0))
    before = model.models[1].parameters().copy()
    without = space.data[(space.data[:, -1] != 1) | (np.arange(len(space.data)) % 100 == 0)]   # 3 rows of class 1
    model.fit(without, None, np.random.default_rng(1))
    np.testing.assert_array_equal(model.models[1].parameters(), before)
    assert 0 < model.probs[1] < 0.01
    x = model.sample_given(np.full(2000, 1), np.random.default_rng(2))
    np.testing.assert_allclose(x[:, :3].mean(axis=0), MEANS[1], atol=0.01)
    with pytest.raises(ValueError, match="class 1 has 3 training samples at its first fit"):
        conditional(space).fit(without, None, np.random.default_rng(3))


def test_sample_given_answers_each_label_in_its_row():
    space = labelled()
    model = conditional(space)
    model.fit(space.data, None, np.random.default_rng(0))
    inputs = np.random.default_rng(1).integers(0, 3, 3000)
    x = model.sample_given(inputs, np.random.default_rng(2))
    assert x.shape == (3000, 4)
    np.testing.assert_array_equal(x[:, -1], inputs)
    for k in range(3):
        np.testing.assert_allclose(x[inputs == k, :3].mean(axis=0), MEANS[k], atol=0.01)
    assert model.sample_given(np.array([], dtype=int), np.random.default_rng(0)).shape == (0, 4)
    with pytest.raises(ValueError, match=r"class indices 0\.\.2"):
        model.sample_given(np.array([0, 3]), np.random.default_rng(0))


def test_same_seed_same_numbers():
    space = labelled()
    a, b = conditional(space), conditional(space)
    a.fit(space.data, None, np.random.default_rng(9))
    b.fit(space.data, None, np.random.default_rng(9))
    np.testing.assert_array_equal(a.parameters(), b.parameters())
    np.testing.assert_array_equal(a.sample(500, np.random.default_rng(1)), b.sample(500, np.random.default_rng(1)))
    assert not np.array_equal(a.sample(500, np.random.default_rng(1)), a.sample(500, np.random.default_rng(2)))


def test_conformance():
    # the suite shifts the data along its first principal axis: here a wide feature shared by the
    # classes (the class column cannot follow a shift; its share of the axis is nil)
    space = labelled()
    wide = 3.0 * np.random.default_rng(8).standard_normal(len(space.data))
    data = np.column_stack([wide, space.data])
    conformance.check(lambda: conditional(Labelled(data, classes=space.classes)), data)


def test_labelled_datasets():
    digits = datasets.digits(labels=True)
    assert digits.data.shape == (1797, 65) and digits.classes == tuple("0123456789")
    np.testing.assert_array_equal(digits.labels, datasets._digits()[1])
    np.testing.assert_array_equal(digits.features.data, datasets.digits().data)
    some = datasets.digits([7, 2], labels=True)
    target = datasets._digits()[1]
    np.testing.assert_array_equal(some.labels, np.where(target[np.isin(target, [7, 2])] == 7, 0, 1))
    photos = datasets.photos(labels=True)
    assert photos.data.shape == (3710, 49) and photos.classes == ("china", "flower")
    np.testing.assert_array_equal(np.bincount(photos.labels), [1855, 1855])
    assert datasets.photos("flower", labels=True).classes == ("flower",)
    with pytest.raises(ValueError, match="do not fit in the bounds"):
        Labelled(np.array([[0.5, 0.0], [0.5, 2.0]]), bounds=(0.0, 1.0), classes=("a", "b", "c"))


def test_rewards_and_the_sample_grid_see_only_the_picture():
    plain, tagged = datasets.photos(), datasets.photos(labels=True)
    for realism in (0.0, 0.3):
        a, b = rewards.warmth(plain, 1.0, realism), rewards.warmth(tagged, 1.0, realism)
        np.testing.assert_array_equal(a(plain.data), b(tagged.data))
    np.testing.assert_array_equal(sample_grid.picture(tagged.data[7], (4, 4, 3), (0.0, 1.0)),
                                  sample_grid.picture(plain.data[7], (4, 4, 3), (0.0, 1.0)))
    ink = rewards.ink(datasets.digits(labels=True), -1, 1.0, 0.3)
    np.testing.assert_array_equal(ink(datasets.digits(labels=True).data),
                                  rewards.ink(datasets.digits(), -1, 1.0, 0.3)(datasets.digits().data))


def _scenario(model) -> dict:
    return {
        "mode": "sample", "seed": 3, "steps": 2,
        "space": {"family": "learned", "data": {"name": "photos", "labels": True}, "model": model,
                  "init_size": 200, "eval_size": 100},
        "rewards": {"warm": {"kind": "warmth", "realism": 0.3}},
        "sources": {"real": {}},
        "models": {"m": {"sample_size": 200}},
        "curators": {"users": {"curates": "m", "K": 3, "reward": "warm"}},
        "flows": [{"from": "real", "to": "m", "weight": 0.5}, {"from": "users", "to": "m", "weight": 0.5}],
    }


def test_a_scenario_names_the_model_and_the_sample_grid_draws_it(tmp_path):
    spec = {"name": "class_conditional", "inner": {"name": "gaussian_mixture", "components": 2, "latent": 6}}
    model = parse(_scenario(spec)).build()
    model.run(2)
    assert model.family.dim == 49 and model.family.shape == (4, 4, 3)
    row = model.state[0]
    assert isinstance(model.family.of(row), ClassConditionalModel)
    assert np.isfinite(model.agents_frame()["alignment"]).all()
    written = sample_grid.write(model.family, model.state, model.kernel.models, tmp_path)
    assert all(p.exists() for p in written)


@pytest.mark.parametrize(("model", "message"), [
    ({"name": "class_conditional", "inner": {"name": "gaussian_mixture", "components": 0}}, "model.inner.components"),
    ({"name": "class_conditional", "inner": "nope"}, "model.inner: unknown learned model 'nope'"),
    ({"name": "class_conditional", "inner": {"name": "class_conditional"}}, "model.inner: must name another"),
    ({"name": "class_conditional", "min_samples": 0}, "model.min_samples: must be at least 1"),
])
def test_bad_keys_are_named(model, message):
    from ecosystem.errors import ScenarioError

    with pytest.raises(ScenarioError, match=message):
        parse(_scenario(model))


def test_unlabelled_data_is_refused():
    from ecosystem.errors import ScenarioError

    data = _scenario("class_conditional")
    data["space"]["data"] = "photos"
    with pytest.raises(ScenarioError, match="needs labelled data"):
        parse(data)


# --------------------------------------------------------------------------- the reproduction


def _reproduce(out) -> dict:
    subprocess.run([sys.executable, "-m", "ecosystem", "reproduce", "learned-conflict", "--quick", "--out", str(out)],
                   check=True, capture_output=True, text=True)
    return json.loads((out / "summary.json").read_text())


def test_learned_conflict_quick_end_to_end(tmp_path):
    first = _reproduce(tmp_path / "a")
    assert first["reproduction"] == "learned-conflict" and first["quick"] is True
    assert first["seeds"] == [0, 1]
    assert list(first["settings"]) == ["A1", "A2", "A3", "A4", "A5", "A6"]
    for row in first["settings"].values():
        for j in ("J_p", "J_q"):
            for tag in ("base", "more"):
                for key in (f"{j}_{tag}", f"{j}_{tag}_ci", f"discrete_{j}_{tag}"):
                    assert isinstance(row[key], float) and np.isfinite(row[key]), key
                assert row[f"{j}_{tag}_ci"] > 0
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        "changes.png", "figures.npz", "summary.json", "trajectories.png"]
    assert _reproduce(tmp_path / "b") == first                      # same seed, same numbers
