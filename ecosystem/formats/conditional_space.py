"""The ``[space]`` of conditional models in scenario files, and their distributions.

``[space] family = "conditional"`` with ``inputs`` and ``outputs``: a count (points
``0..n-1``) or a list of coordinates (numbers or equal-length lists). A distribution (a
source, a model's ``init``) gives its domain and its answers:

- ``domain``: weights over the inputs (default: uniform);
- ``responses``: ``"uniform"``, one list of weights over the outputs (the same answer to every
  input) or one such list per input;
- or ``joint``: weights per (input, output) pair, one list per input (domain and answers follow;
  an input without mass answers uniformly).

Rewards see a pair as the point ``[x, y]``; a tabular reward gives one list of values per input.

``[space] family = "conditional_gaussian"`` with ``dx``, ``dy`` (and ``noise = "full"`` or
``"fixed"``): linear-Gaussian answers ``y | x ~ N(W x + b, S)``
(:class:`~ecosystem.core.conditional_gaussian.ConditionalGaussian`). A distribution gives
``input_mean`` (default 0) and ``input_cov`` or ``input_var`` (default 1) for its domain, and
``weights`` (``W``, ``dy`` lists of ``dx``; default 0), ``offset`` (``b``, default 0) and
``noise_cov`` or ``noise_var`` (``S``, default 1) for its answers; a number stands for a length-1
vector or a 1x1 matrix, a list for a matrix with one row or column.
"""

from __future__ import annotations

import numpy as np

from ecosystem.core.conditional import ConditionalCategorical
from ecosystem.core.conditional_gaussian import NOISES, ConditionalGaussian
from ecosystem.formats.section import Section

SPACE_KEYS = {"family", "inputs", "outputs"}
DISTRIBUTION_KEYS = {"domain", "responses", "joint"}


def _points(sec: Section, key: str) -> np.ndarray:
    value = sec.data.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        if not 1 <= value <= 10_000:
            sec.fail(f"must be a count from 1 to 10000 or a list of coordinates, got {value}", key)
        return np.arange(value, dtype=float)
    points = sec.array(key)
    if points.ndim not in (1, 2) or len(points) < 1:
        sec.fail("must be a count or a list of points (numbers or equal-length lists)", key)
    return points


def family(sec: Section) -> ConditionalCategorical:
    """The conditional family of a ``[space]`` section."""
    sec.only(SPACE_KEYS)
    inputs, outputs = _points(sec, "inputs"), _points(sec, "outputs")
    if len(outputs) < 2:
        sec.fail("needs at least 2 outputs", "outputs")
    if len(inputs) * len(outputs) > 1_000_000:
        sec.fail(f"{len(inputs)} inputs x {len(outputs)} outputs exceeds 1e6 pairs", "outputs")
    return ConditionalCategorical(inputs, outputs)


def _weights(sec: Section, key: str, shape: tuple[int, ...]) -> np.ndarray:
    w = sec.array(key, shape)
    if np.any(w < 0) or np.any(w.sum(axis=-1) <= 0):
        sec.fail("weights must be non-negative with a positive sum" + (" per input" if w.ndim > 1 else ""), key)
    return w / w.sum(axis=-1, keepdims=True)


def distribution(sec: Section, fam: ConditionalCategorical) -> np.ndarray:
    """A conditional distribution spec as a row ``(k,)``."""
    sec.only(DISTRIBUTION_KEYS)
    n_in, n_out = fam.n_in, fam.n_out
    if "joint" in sec.data:
        if len(sec.data) > 1:
            sec.fail("give joint alone, or domain and responses", "joint")
        joint = sec.array("joint", (n_in, n_out))
        if np.any(joint < 0) or joint.sum() <= 0:
            sec.fail("weights must be non-negative with a positive sum", "joint")
        return fam.from_joint(joint)
    domain = _weights(sec, "domain", (n_in,)) if "domain" in sec.data else np.full(n_in, 1.0 / n_in)
    answers = sec.data.get("responses", "uniform")
    if answers == "uniform":
        cond = np.full((n_in, n_out), 1.0 / n_out)
    elif isinstance(answers, list) and answers and not isinstance(answers[0], list):
        cond = np.tile(_weights(sec, "responses", (n_out,)), (n_in, 1))
    else:
        cond = _weights(sec, "responses", (n_in, n_out))
    return fam.join(domain[None], cond[None])[0]


GAUSSIAN_SPACE_KEYS = {"family", "dx", "dy", "noise"}
GAUSSIAN_DISTRIBUTION_KEYS = {"input_mean", "input_cov", "input_var", "weights", "offset", "noise_cov", "noise_var"}


def gaussian_family(sec: Section) -> ConditionalGaussian:
    """The conditional linear-Gaussian family of a ``[space]`` section."""
    sec.only(GAUSSIAN_SPACE_KEYS)
    dx, dy = (sec.number(key, 1, lo=1, hi=16, integer=True) for key in ("dx", "dy"))
    return ConditionalGaussian(dx, dy, sec.text("noise", "full", NOISES))


def _shaped(sec: Section, key: str, shape: tuple[int, ...], default: float) -> np.ndarray:
    """``key`` as an array of ``shape`` (default: filled with ``default``); a number or a flat list
    of the right size stands for a vector, a matrix with one row or column or a 1x1 matrix."""
    if key not in sec.data:
        return np.full(shape, default)
    value = sec.array(key)
    flat = value.ndim <= 1 and value.size == int(np.prod(shape)) and sum(n > 1 for n in shape) <= 1
    if value.shape != shape and flat:
        return value.reshape(shape)
    return sec.array(key, shape)


def _covariance(sec: Section, cov_key: str, var_key: str, n: int) -> np.ndarray:
    """A covariance ``(n, n)`` from ``cov_key`` (symmetric PSD) or ``var_key`` (a variance >= 0; default 1)."""
    if cov_key in sec.data:
        if var_key in sec.data:
            sec.fail(f"give {cov_key} or {var_key}, not both", cov_key)
        cov = _shaped(sec, cov_key, (n, n), 0.0)
        if not np.allclose(cov, cov.T) or np.linalg.eigvalsh(cov).min() < 0:
            sec.fail("must be a symmetric positive semi-definite matrix", cov_key)
        return cov
    return sec.number(var_key, 1.0, lo=0) * np.eye(n)


def gaussian_distribution(sec: Section, fam: ConditionalGaussian) -> np.ndarray:
    """A conditional linear-Gaussian distribution spec as a row ``(k,)``."""
    sec.only(GAUSSIAN_DISTRIBUTION_KEYS)
    dx, dy = fam.dx, fam.dy
    return fam.rows(_shaped(sec, "input_mean", (dx,), 0.0)[None], _covariance(sec, "input_cov", "input_var", dx)[None],
                    _shaped(sec, "weights", (dy, dx), 0.0)[None], _shaped(sec, "offset", (dy,), 0.0)[None],
                    _covariance(sec, "noise_cov", "noise_var", dy)[None])[0]
