"""Issue 17: the batched sample-mode arithmetic gives the numbers of the one-product-per-run code, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from ecosystem.core.families import Gaussian, affine_runs


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(np.uint64)


@pytest.mark.parametrize("d", [1, 3, 4, 24])
def test_affine_runs_match_one_product_per_run(d):
    rng = np.random.default_rng(d)
    lengths = rng.choice([1, 2, 5, 6, 12, 13], size=40)
    starts = np.r_[0, np.cumsum(lengths)[:-1]]
    z = rng.standard_normal((lengths.sum(), d))
    matrices, offsets = rng.standard_normal((7, d, d)), rng.standard_normal((7, d))
    which = rng.integers(0, 7, size=40)
    want = z.copy()
    for a, n, j in zip(starts, lengths, which, strict=True):
        want[a:a + n] = want[a:a + n] @ matrices[j].T + offsets[j]
    affine_runs(z, starts, lengths, matrices, offsets, which)
    assert np.array_equal(_bits(z), _bits(want))


def _empirical_per_owner(samples, owner, n_owners, weights, d):
    out = np.zeros((n_owners, d + d * d))
    w = np.ones(len(samples)) if weights is None else weights
    order = np.argsort(owner, kind="stable")
    samples, owner, w = samples[order], owner[order], w[order]
    for o in range(n_owners):
        x, wo = samples[owner == o], w[owner == o]
        if len(x):
            out[o, :d] = wo @ x
            out[o, d:] = (x.T @ (wo[:, None] * x)).ravel()
    return out


@pytest.mark.parametrize("weighted", [False, True])
def test_empirical_matches_one_product_per_owner(weighted):
    d, n_owners = 5, 30
    rng = np.random.default_rng(1)
    owner = rng.choice(np.r_[np.arange(3, 20), [7] * 20], size=400)   # unsorted; owners without samples
    samples = rng.standard_normal((400, d))
    weights = rng.random(400) if weighted else None
    got = Gaussian(d).empirical(samples, owner, n_owners, weights)
    assert np.array_equal(_bits(got), _bits(_empirical_per_owner(samples, owner, n_owners, weights, d)))


def test_sampler_draws_what_sample_draws():
    fam = Gaussian(3)
    rng = np.random.default_rng(2)
    a = rng.standard_normal((6, 3, 3))
    rows = fam.moments(rng.standard_normal((6, 3)), a @ a.transpose(0, 2, 1))
    calls = [np.repeat([0, 2, 2, 5], [3, 4, 1, 2]), np.repeat([2, 1, 0], [2, 8, 3]), np.array([], dtype=np.int64)]
    one, two = np.random.default_rng(3), np.random.default_rng(3)
    draw = fam.sampler(rows)
    for which in calls:
        assert np.array_equal(_bits(draw(which, one)), _bits(fam.sample(rows, which, two)))


def test_linear_tilt_and_fixed_fit_skip_work_without_changing_a_bit():
    d = 6
    fam = Gaussian(d, covariance="fixed")
    rng = np.random.default_rng(4)
    mean = rng.standard_normal((9, d))
    mean[:3] = 0.0
    a = rng.standard_normal((9, d, d))
    rows = fam.moments(mean, a @ a.transpose(0, 2, 1) / d)
    g = rng.standard_normal(d)
    got = fam._tilt_closed_form(rows, g, np.zeros((d, d)))
    m, c = fam.mean_cov(rows)
    inv = np.linalg.inv(np.eye(d) + c @ np.zeros((d, d)))
    cov_t = inv @ c
    mean_t = np.einsum("vij,vj->vi", inv, m) + np.einsum("vij,j->vi", cov_t, g)
    assert np.array_equal(_bits(got), _bits(fam.moments(mean_t, 0.5 * (cov_t + np.swapaxes(cov_t, 1, 2)))))

    initial = fam.moments(np.zeros((9, d)), np.broadcast_to(np.eye(d) * 0.04, (9, d, d)))
    for _ in range(2):   # the second fit reads the kept covariances
        fitted = fam.fit(rows, initial.copy())
        assert np.array_equal(_bits(fitted), _bits(fam.moments(fam.mean_cov(rows)[0], fam.mean_cov(initial)[1])))
    other = initial.copy()
    other[0, d] += 1.0   # other initial rows: not the kept covariances
    want = fam.moments(fam.mean_cov(rows)[0], fam.mean_cov(other)[1])
    assert np.array_equal(_bits(fam.fit(rows, other)), _bits(want))
