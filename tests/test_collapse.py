"""THEORY.md section 2: model collapse of a Gaussian refit on its own samples (sample mode).

Every model node of a graph draws its training set independently, so one
:class:`EcosystemModel` with many self-loop models runs many seeds of the same loop at once.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
from conftest import gaussian_row

from ecosystem.core.families import Gaussian
from ecosystem.core.model import EcosystemModel

MU0, SIGMA0_SQ = 1.0, 2.0


def add_loops(g: nx.DiGraph, fam: Gaussian, prefix: str, count: int, M: int, *,
              real: float = 0.0, retention: str = "replace") -> list[str]:
    """``count`` models training on their own samples (share ``1 - real``) and on ``data``."""
    names = [f"{prefix}{i}" for i in range(count)]
    start = gaussian_row(fam, [MU0], [[SIGMA0_SQ]])
    for name in names:
        g.add_node(name, kind="model", moments=start, sample_size=M, retention=retention)
        g.add_edge(name, name, weight=1.0 - real)
        if real > 0:
            g.add_edge("data", name, weight=real)
    return names


def _rows(model: EcosystemModel, names: list[str]) -> np.ndarray:
    index = {v: i for i, v in enumerate(model.kernel.models)}
    return np.array([index[v] for v in names])


def variances(model: EcosystemModel, names: list[str]) -> np.ndarray:
    return model.gaussian_parameters()[1][_rows(model, names), 0, 0]


def means(model: EcosystemModel, names: list[str]) -> np.ndarray:
    return model.gaussian_parameters()[0][_rows(model, names), 0]


@pytest.mark.parametrize("M,seed", [(10, 0), (5, 1)])
def test_mle_variance_decays_geometrically_in_expectation(M, seed):
    fam = Gaussian(dim=1)
    g = nx.DiGraph()
    names = add_loops(g, fam, "m", 3000, M)
    model = EcosystemModel(g, fam, mode="sample", rng=seed)
    shrink = (M - 1) / M
    # Var sigma_n^2 = sigma0^4 [((M-1)(M+1)/M^2)^n - ((M-1)/M)^(2n)] (chi-square products)
    for n in range(1, 11):
        model.step()
        v = variances(model, names)
        expected = SIGMA0_SQ * shrink**n
        sd = SIGMA0_SQ * np.sqrt(((M - 1) * (M + 1) / M**2) ** n - shrink ** (2 * n))
        se = sd / np.sqrt(len(v))
        assert abs(v.mean() - expected) < 4.5 * se, f"round {n}: {v.mean()} vs {expected} (se {se})"
        if n in (5, 10):
            # the mean wanders: E (mu_n - mu_0)^2 = sum_{k<n} sigma0^2 ((M-1)/M)^k / M
            # (a heavy-tailed statistic: over 50 seeds the sample mean was within 13%)
            drift = np.mean((means(model, names) - MU0) ** 2)
            expected_drift = SIGMA0_SQ / M * sum(shrink**k for k in range(n))
            assert abs(drift / expected_drift - 1) < 0.2, f"round {n}: {drift} vs {expected_drift}"
    # and it is a real decay, far beyond the noise
    assert v.mean() < 0.5 * SIGMA0_SQ


def test_unbiased_variance_still_collapses():
    fam = Gaussian(dim=1, unbiased=True)
    g = nx.DiGraph()
    M = 10
    names = add_loops(g, fam, "m", 600, M)
    model = EcosystemModel(g, fam, mode="sample", rng=7)
    for n in range(1, 6):
        model.step()
        v = variances(model, names)
        # unbiased: E sigma_n^2 = sigma0^2, a product of n chi2_{M-1}/(M-1) factors
        se = SIGMA0_SQ * np.sqrt((1 + 2 / (M - 1)) ** n - 1) / np.sqrt(len(v))
        assert abs(v.mean() - SIGMA0_SQ) < 4.5 * se, f"round {n}: {v.mean()}"
    # E (mu_n - mu_0)^2 = n sigma0^2 / M (heavy-tailed: a loose relative tolerance)
    drift = np.mean((means(model, names) - MU0) ** 2)
    assert abs(drift / (5 * SIGMA0_SQ / M) - 1) < 0.3
    model.run(195)
    v = variances(model, names)
    # almost surely sigma_n^2 -> 0: log sigma^2 drifts by E log(chi2_{M-1} / (M-1)) ~ -0.11 per round
    assert np.median(v) < 1e-6 * SIGMA0_SQ
    assert np.mean(v < 1e-2 * SIGMA0_SQ) > 0.95


def _collapse_vs_remedy(real: float, retention: str, seed: int):
    fam = Gaussian(dim=1)
    g = nx.DiGraph()
    g.add_node("data", kind="source", moments=gaussian_row(fam, [MU0], [[SIGMA0_SQ]]))
    M = 10
    control = add_loops(g, fam, "control", 300, M)
    remedy = add_loops(g, fam, "remedy", 300, M, real=real, retention=retention)
    model = EcosystemModel(g, fam, mode="sample", rng=seed)
    model.run(120)
    return variances(model, control), variances(model, remedy)


@pytest.mark.parametrize("real", [0.5, 0.2])
def test_real_data_share_prevents_collapse(real):
    control, remedy = _collapse_vs_remedy(real, "replace", seed=3)
    assert np.median(control) < 1e-3 * SIGMA0_SQ                  # the same loop without real data
    assert remedy.min() > 0.02 * SIGMA0_SQ
    assert np.median(remedy) > 0.3 * SIGMA0_SQ
    assert 0.3 * SIGMA0_SQ < remedy.mean() < 2 * SIGMA0_SQ


def test_accumulating_data_prevents_collapse():
    control, remedy = _collapse_vs_remedy(0.0, "accumulate", seed=4)
    assert np.median(control) < 1e-3 * SIGMA0_SQ
    assert remedy.min() > 0.02 * SIGMA0_SQ
    assert np.median(remedy) > 0.3 * SIGMA0_SQ


def test_population_mode_has_no_collapse():
    # infinite samples: the self-loop is the identity
    fam = Gaussian(dim=1)
    g = nx.DiGraph()
    names = add_loops(g, fam, "m", 2, 10)
    model = EcosystemModel(g, fam, mode="population", rng=0)
    model.run(50)
    np.testing.assert_allclose(variances(model, names), SIGMA0_SQ, rtol=1e-12)
    np.testing.assert_allclose(means(model, names), MU0, rtol=1e-12)


def test_collapsed_variances_stay_nonnegative():
    fam = Gaussian(dim=1)
    g = nx.DiGraph()
    names = add_loops(g, fam, "m", 200, 10)     # about a third end with a negative variance
    model = EcosystemModel(g, fam, mode="sample", rng=0)
    model.run(200)
    assert variances(model, names).min() >= 0
    assert model.agents_frame()["diversity"].min() >= 0
