"""The Gaussian family in the engine: fixed, diagonal and full covariance; affine edge transforms."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
from conftest import gaussian_row, transform_graph

from ecosystem.core.curation import Curator, Tilt
from ecosystem.core.families import Gaussian
from ecosystem.core.model import EcosystemModel
from ecosystem.core.rewards import Quadratic


def gaussian_self_tilt(covariance: str, mode: str) -> EcosystemModel:
    fam = Gaussian(dim=2, covariance=covariance)
    cov0 = np.array([[2.0, 0.6], [0.6, 1.0]])
    g = nx.DiGraph()
    g.add_node("m", kind="model", moments=gaussian_row(fam, np.zeros(2), cov0), sample_size=500)
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
    g.add_node("data", kind="source", moments=gaussian_row(fam, np.ones(2), cov))
    g.add_node("m", kind="model", moments=gaussian_row(fam, np.zeros(2), np.eye(2)))
    g.add_edge("data", "m", weight=1.0)
    model = EcosystemModel(g, fam)
    model.step()
    mean, fitted = model.gaussian_parameters()
    np.testing.assert_allclose(mean[0], [1.0, 1.0], rtol=1e-12)
    np.testing.assert_allclose(fitted[0], np.diag([2.0, 1.0]), atol=1e-12)


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
