"""The closed forms for exactly diagonal covariances give LAPACK's bits: ``families._eigh`` is
``np.linalg.eigh`` (eigenvalues, eigenvectors, their order under ties) and a draw through
``_draw_roots``' single products is the matrix product with the root, on random instances."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecosystem.core import families
from ecosystem.core.families import Gaussian

# few distinct values, so that ties (which LAPACK's selection sort does not keep stable) are common
VALUES = np.array([0.04, 0.04 + 1e-17, 0.04 - 2e-17, 0.05, 0.03, 1.0, 0.0, -1e-18, 2.5e-9, 7.0])


def _diagonal(rng: np.random.Generator, v: int, d: int, spread: bool) -> np.ndarray:
    diag = rng.choice(VALUES, size=(v, d))
    if spread:
        diag = diag * np.exp(rng.normal(size=(v, d)))
    cov = np.zeros((v, d, d))
    cov[:, np.arange(d), np.arange(d)] = diag
    if d > 1:                                      # negative zeros off the diagonal are zeros too
        cov[:, 1, 0] = -0.0
    return cov


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), d=st.integers(1, 40), v=st.integers(1, 12), spread=st.booleans())
def test_eigh_of_diagonal_matrices_is_lapacks(seed, d, v, spread):
    cov = _diagonal(np.random.default_rng(seed), v, d, spread)
    want_vals, want_vecs = np.linalg.eigh(cov)
    vals, vecs = families._eigh(cov)
    assert vals.tobytes() == want_vals.tobytes()
    assert vecs.tobytes() == want_vecs.tobytes()


@pytest.mark.parametrize("d", [24, 26, 64, 100])
def test_eigh_of_diagonal_matrices_is_lapacks_beyond_the_small_solver(d):
    """``dstedc`` solves matrices above 25 rows by divide and conquer; the order is the same."""
    cov = _diagonal(np.random.default_rng(d), 6, d, spread=False)
    assert families._eigh(cov)[1].tobytes() == np.linalg.eigh(cov)[1].tobytes()


def test_matrices_that_are_not_exactly_diagonal_go_to_lapack():
    rng = np.random.default_rng(3)
    cov = _diagonal(rng, 4, 5, spread=True)
    cov[2, 3, 1] = cov[2, 1, 3] = 1e-300                   # one off-diagonal entry
    assert families._diagonal_spectrum(cov) is None
    tiny = _diagonal(rng, 2, 3, spread=False) * 1e-150     # LAPACK rescales these
    assert families._diagonal_spectrum(tiny) is None
    nan = _diagonal(rng, 2, 3, spread=False)
    nan[0, 0, 0] = np.nan
    assert families._diagonal_spectrum(nan) is None
    vals, vecs = families._eigh(cov)
    want = np.linalg.eigh(cov)
    assert vals.tobytes() == want[0].tobytes() and vecs.tobytes() == want[1].tobytes()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), d=st.integers(1, 30), v=st.integers(1, 6), m=st.integers(1, 400))
def test_a_draw_from_diagonal_covariances_is_the_product_with_the_root(seed, d, v, m):
    rng = np.random.default_rng(seed)
    fam = Gaussian(dim=d, covariance="diag")
    mean = rng.normal(size=(v, d)) * rng.choice([0.0, 1.0, 1e3], size=(v, 1))
    rows = fam.moments(mean, _diagonal(rng, v, d, spread=True) ** 2)
    which = np.sort(rng.integers(0, v, size=m)) if seed % 2 else rng.integers(0, v, size=m)
    got = fam.sample(rows, which, np.random.default_rng(seed))
    # the product path: LAPACK's root, one product per run of equal rows, as for full covariances
    root_mean, root = fam._roots(rows)
    z = np.random.default_rng(seed).standard_normal((m, d))
    runs = np.r_[0, np.flatnonzero(which[1:] != which[:-1]) + 1, m]
    for a, b in itertools.pairwise(runs.tolist()):
        z[a:b] = z[a:b] @ root[which[a]].T + root_mean[which[a]]
    assert got.tobytes() == z.tobytes()
    assert fam._draw_roots(rows)[2] is not None


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), d=st.integers(1, 12), v=st.integers(1, 6))
def test_diagonal_variances_are_mean_covs_diagonal_and_only_for_diagonal_covariances(seed, d, v):
    rng = np.random.default_rng(seed)
    fam = Gaussian(dim=d)
    rows = fam.moments(rng.normal(size=(v, d)) * 3.0, _diagonal(rng, v, d, spread=True))
    got = fam._diagonal_variances(rows)
    cov = fam.mean_cov(rows)[1]
    assert got is not None and got.tobytes() == np.ascontiguousarray(np.einsum("vii->vi", cov)).tobytes()
    if d > 1:
        full = fam.moments(rng.normal(size=(v, d)), cov + 0.1 * np.eye(d) + 0.01)   # correlated
        assert fam._diagonal_variances(full) is None
