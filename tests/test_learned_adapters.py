"""The built-in learned models (scikit-learn adapters), bundled datasets and image rewards, and the
registries' checks of scenario parameters."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import ecosystem.learned as learned
from ecosystem.core.learned import Dataset
from ecosystem.learned.conformance import check


@pytest.fixture
def sk():
    """scikit-learn (skip without it), its native thread pools limited to one thread: these fits are
    small, and OpenMP pools on a busy 2-core machine slow them tenfold."""
    pytest.importorskip("sklearn")
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def digits() -> Dataset:
    pytest.importorskip("sklearn")
    return learned.dataset("digits", {})


def few(space: Dataset, n: int = 300) -> np.ndarray:
    """``n`` rows of ``space``, a fixed choice."""
    return space.data[np.random.default_rng(0).choice(len(space.data), n, replace=False)]


def make(name: str, space: Dataset, **params):
    return learned.model_factory(name, params, space)


# --------------------------------------------------------------------------- optional extra


def test_the_package_imports_without_sklearn_and_says_what_is_missing():
    script = """
import sys
sys.modules["sklearn"] = None                      # as if not installed
import numpy as np
import ecosystem.learned as L
from ecosystem.core.learned import Dataset
from ecosystem.errors import ScenarioError
for call in (lambda: L.model_factory("gaussian_mixture", {}, Dataset(np.zeros((5, 2)))),
             lambda: L.dataset("digits", {})):
    try:
        call()
    except ScenarioError as err:
        print(err)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == [
        "learned model 'gaussian_mixture' needs scikit-learn: pip install 'ecosystem[learned]'",
        "dataset 'digits' needs scikit-learn: pip install 'ecosystem[learned]'",
    ]


def test_importing_the_package_does_not_import_sklearn():
    script = "import sys, ecosystem.learned, ecosystem.learned.conformance; print('sklearn' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"


# --------------------------------------------------------------------------- adapters


@pytest.mark.parametrize(("name", "params"), [
    ("gaussian_mixture", {"components": 3, "latent": 8}),
    ("gaussian_mixture", {"components": 2, "covariance": "diag"}),
    ("bayesian_mixture", {"components": 3, "covariance": "spherical", "latent": 6}),
    ("kernel_density", {}),
])
def test_each_adapter_passes_the_conformance_suite(sk, digits, name, params):
    check(make(name, digits, **params), few(digits))


@pytest.mark.parametrize("covariance", ["full", "diag", "spherical", "tied"])
def test_mixture_sampling_draws_from_the_given_rng_only(sk, digits, covariance, monkeypatch):
    model = make("gaussian_mixture", digits, components=3, covariance=covariance, latent=5)()
    model.fit(few(digits), None, np.random.default_rng(1))
    seed = model.estimator.random_state
    monkeypatch.setattr(model.estimator, "sample", lambda *a, **k: pytest.fail("sklearn's sample was called"))
    state = np.random.get_state()[1].copy()
    a, b = model.sample(50, np.random.default_rng(3)), model.sample(50, np.random.default_rng(3))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, model.sample(50, np.random.default_rng(4)))
    assert model.estimator.random_state == seed
    assert np.array_equal(np.random.get_state()[1], state)


@pytest.mark.parametrize("covariance", ["full", "diag", "spherical", "tied"])
def test_mixture_fit_recovers_a_known_two_component_mixture(sk, covariance):
    rng = np.random.default_rng(0)
    means = np.array([[-4.0, 0.0], [4.0, 2.0]])
    cov = np.array([[1.0, 0.5], [0.5, 1.0]]) if covariance in ("full", "tied") else np.eye(2)
    which = rng.random(4000) < 0.3
    data = means[which.astype(int)] + rng.multivariate_normal([0, 0], cov, 4000)
    model = make("gaussian_mixture", Dataset(data), components=2, covariance=covariance)()
    model.fit(data, None, np.random.default_rng(1))
    order = np.argsort(model.estimator.means_[:, 0])
    np.testing.assert_allclose(model.estimator.means_[order], means, atol=0.1)
    np.testing.assert_allclose(model.estimator.weights_[order], [0.7, 0.3], atol=0.03)
    x = model.sample(40000, np.random.default_rng(2))        # the Cholesky sampling has the fitted law
    np.testing.assert_allclose(x.mean(axis=0), data.mean(axis=0), atol=0.1)
    np.testing.assert_allclose(np.cov(x.T), np.cov(data.T), atol=0.25)
    assert model.parameters().shape == (2 + 4 + np.size(model.estimator.covariances_),)


def test_unequal_weights_resample_the_training_data(sk):
    data = np.concatenate([np.zeros((200, 1)), np.full((200, 1), 10.0)]) + np.random.default_rng(0).normal(
        0, 0.1, (400, 1))
    weights = np.r_[np.ones(200), np.zeros(200)]
    for name in ("gaussian_mixture", "kernel_density"):
        model = make(name, Dataset(data))()
        model.fit(data, weights, np.random.default_rng(1))
        assert abs(model.sample(2000, np.random.default_rng(2)).mean()) < 0.1, name


def test_the_pca_front_end_is_fit_once_and_decodes_samples(sk, digits):
    model = make("gaussian_mixture", digits, components=4, latent=10)()
    model.fit(few(digits), None, np.random.default_rng(1))
    pca, axes = model.pca, model.pca.components_.copy()
    model.fit(few(digits)[::-1] + 1.0, None, np.random.default_rng(2))
    assert model.pca is pca and np.array_equal(pca.components_, axes)
    x = model.sample(500, np.random.default_rng(3))
    assert x.shape == (500, 64)
    np.testing.assert_allclose(pca.inverse_transform(pca.transform(x)), x, atol=1e-9)    # in the latent subspace
    assert model.log_prob(x).shape == (500,) and np.isfinite(model.log_prob(x)).all()
    assert model.parameters().shape == (4 + 4 * 10 + 4 * 10 * 10,)
    full = make("gaussian_mixture", digits, components=2, latent=64)()               # full rank: a rotation
    full.fit(few(digits), None, np.random.default_rng(1))
    np.testing.assert_allclose(full.pca.inverse_transform(full.pca.transform(digits.data)), digits.data, atol=1e-9)


def test_kernel_density_samples_training_points_by_weight(sk):
    data = np.array([[0.0, 0.0], [10.0, 10.0]])
    model = make("kernel_density", Dataset(data), bandwidth=0.01)()
    model.fit(data, np.array([0.9, 0.1]), np.random.default_rng(0))
    x = model.sample(20000, np.random.default_rng(1))
    assert abs((x[:, 0] > 5).mean() - 0.1) < 0.01
    assert np.abs(x - np.rint(x / 10) * 10).max() < 0.1                          # noise of bandwidth 0.01
    assert model.log_prob(data)[0] > model.log_prob(data)[1]
    assert make("kernel_density", Dataset(data, bounds=(0.0, 2.0)))().bandwidth == pytest.approx(0.1)


# --------------------------------------------------------------------------- registries


@pytest.mark.parametrize(("name", "params", "key"), [
    ("gaussian_mixture", {"components": 0}, "components"),
    ("gaussian_mixture", {"components": "ten"}, "components"),
    ("gaussian_mixture", {"components": True}, "components"),
    ("gaussian_mixture", {"covariance": "round"}, "covariance"),
    ("gaussian_mixture", {"latent": -1}, "latent"),
    ("gaussian_mixture", {"latent": 65}, "latent"),
    ("bayesian_mixture", {"tol": 0}, "tol"),
    ("bayesian_mixture", {"reg_covar": float("nan")}, "reg_covar"),
    ("gaussian_mixture", {"colour": "red"}, "colour"),
    ("gaussian_mixture", {"space": 1}, "space"),
    ("kernel_density", {"bandwidth": -1.0}, "bandwidth"),
])
def test_bad_model_parameters_are_value_errors_naming_the_key(sk, digits, name, params, key):
    with pytest.raises(ValueError, match=f"^{key}: ") as err:
        learned.model_factory(name, params, digits)
    assert type(err.value) is ValueError


@pytest.mark.parametrize(("call", "key"), [
    (lambda: learned.dataset("digits", {"classes": [3, 11]}), "classes"),
    (lambda: learned.dataset("digits", {"classes": []}), "classes"),
    (lambda: learned.dataset("photos", {"image": "moon"}), "image"),
    (lambda: learned.dataset("photos", {"patch": 0}), "patch"),
    (lambda: learned.dataset("photos", {"patch": 500}), "patch"),
    (lambda: learned.dataset("photos", {"stride": 1.5}), "stride"),
    (lambda: learned.reward("ink", {"sign": 2}, learned.dataset("digits", {}), "r"), "sign"),
    (lambda: learned.reward("ink", {"realism": -1.0}, learned.dataset("digits", {}), "r"), "realism"),
    (lambda: learned.reward("ink", {}, learned.dataset("photos", {}), "r"), "kind"),
    (lambda: learned.reward("warmth", {}, learned.dataset("digits", {}), "r"), "kind"),
    (lambda: learned.reward("warmth", {"sign": 1}, learned.dataset("photos", {}), "r"), "sign"),
])
def test_bad_dataset_and_reward_parameters_name_the_key(sk, call, key):
    with pytest.raises(ValueError, match=f"^{key}: "):
        call()


def test_unknown_names_list_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown learned model 'nope' .*gaussian_mixture"):
        learned.model_factory("nope", {}, Dataset(np.zeros((3, 1))))
    with pytest.raises(ValueError, match=r"unknown dataset 'nope' .*digits, photos"):
        learned.dataset("nope", {})
    with pytest.raises(ValueError, match=r"unknown reward kind 'nope' .*ink, warmth"):
        learned.reward("nope", {}, Dataset(np.zeros((3, 1))), "r")
    assert {"gaussian_mixture", "bayesian_mixture", "kernel_density"} <= set(learned.MODELS)


def test_a_registered_factory_gets_its_keys_and_the_space(monkeypatch):
    seen = {}

    def factory(scale: float = 1.0, space: Dataset | None = None):
        seen.update(scale=scale, space=space)
        return object()

    monkeypatch.setitem(learned.MODELS, "mine", None)      # removed again after the test
    learned.register_model("mine", factory)
    space = Dataset(np.zeros((3, 1)))
    maker = learned.model_factory("mine", {"scale": 2}, space)
    assert seen == {"scale": 2, "space": space}
    seen.clear()
    maker()
    assert seen == {"scale": 2, "space": space}
    assert learned.keys(factory) == {"scale": 1.0}
    with pytest.raises(TypeError, match="needs a default, scale has none"):
        learned.register_model("bad", lambda scale: None)


# --------------------------------------------------------------------------- datasets


def test_digits_are_the_bundled_8x8_images(sk):
    d = learned.dataset("digits", {})
    assert d.data.shape == (1797, 64) and d.bounds == (0.0, 16.0) and d.shape == (8, 8)
    assert d.data.min() == 0 and d.data.max() == 16 and np.array_equal(d.data, np.rint(d.data))
    assert learned.dataset("digits", {"classes": [0, 1]}).data.shape == (178 + 182, 64)
    assert np.array_equal(learned.dataset("digits", {}).data, d.data)


def test_photos_are_block_averaged_patches_on_a_grid(sk):
    from sklearn.datasets import load_sample_images

    both = learned.dataset("photos", {})
    assert both.data.shape == (2 * 35 * 53, 48) and both.bounds == (0.0, 1.0) and both.shape == (4, 4, 3)
    assert 0 <= both.data.min() and both.data.max() <= 1
    china = learned.dataset("photos", {"image": "china"})
    flower = learned.dataset("photos", {"image": "flower"})
    assert np.array_equal(np.concatenate([china.data, flower.data]), both.data)
    assert np.array_equal(learned.dataset("photos", {}).data, both.data)
    image = load_sample_images().images[0] / 255.0               # china: the patch of grid cell (1, 2), stride 3
    block = image[12:24, 24:36].reshape(4, 3, 4, 3, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(china.data[53 + 2].reshape(4, 4, 3), block)
    big = learned.dataset("photos", {"patch": 8, "stride": 2, "image": "flower"})
    assert big.data.shape == ((427 // 2 // 8) * (640 // 2 // 8), 192) and big.shape == (8, 8, 3)


# --------------------------------------------------------------------------- rewards


def grey(space_rows: np.ndarray) -> Dataset:
    return Dataset(space_rows, bounds=(0.0, 16.0), shape=(2, 2))


def test_ink_is_the_stroke_weight_times_sign_and_weight():
    space = grey(np.array([[0.0, 16.0, 0.0, 16.0], [4.0, 4.0, 4.0, 4.0]]))
    x = np.array([[16.0] * 4, [0.0] * 4, [8.0] * 4])
    r = learned.reward("ink", {}, space, "heavy")
    assert r.name == "heavy"
    np.testing.assert_allclose(r(x), [1.0, 0.0, 0.5])
    np.testing.assert_allclose(learned.reward("ink", {"sign": -1, "weight": 2.0}, space, "light")(x), [-2.0, 0.0, -1.0])


def test_ink_realism_is_the_distance_of_mean_and_spread_from_the_data():
    space = grey(np.array([[0.0, 16.0, 0.0, 16.0], [4.0, 4.0, 4.0, 4.0]]))     # means 8, 4; stds 8, 0
    r = learned.reward("ink", {"realism": 2.0}, space, "r")
    like = np.array([[2.0, 10.0, 2.0, 10.0]])                                   # mean 6, std 4: the average
    np.testing.assert_allclose(r(like), [6 / 16])
    flat = np.array([[6.0] * 4])                                                # mean 6, std 0: 4 away
    np.testing.assert_allclose(r(flat), [6 / 16 - 2.0 * 4 / 16])


def test_warmth_is_red_minus_blue_with_optional_realism():
    red, blue, grey_ = np.tile([1.0, 0, 0], 4), np.tile([0, 0, 1.0], 4), np.full(12, 0.5)
    space = Dataset(np.stack([red, blue]), bounds=(0.0, 1.0), shape=(2, 2, 3))
    r = learned.reward("warmth", {"weight": 3.0}, space, "warm")
    np.testing.assert_allclose(r(np.stack([red, blue, grey_])), [3.0, -3.0, 0.0])
    real = learned.reward("warmth", {"realism": 1.0}, space, "r")              # data: channel means .5, 0, .5
    np.testing.assert_allclose(real(np.tile([0.5, 0, 0.5], 4)[None]), [0.0])
    np.testing.assert_allclose(real(red[None]), [1.0 - np.sqrt(0.5 ** 2 + 0.5 ** 2)])


def test_rewards_score_the_bundled_data(sk):
    photos = learned.dataset("photos", {})
    scores = learned.reward("warmth", {"realism": 1.0}, photos, "w")(photos.data)
    assert scores.shape == (len(photos.data),) and np.isfinite(scores).all()
    digits = learned.dataset("digits", {})
    ink = learned.reward("ink", {}, digits, "ink")(digits.data)
    assert ink.shape == (1797,) and 0 < ink.min() and ink.max() < 1
