"""Conditional linear-Gaussian models ``y | x ~ N(W x + b, S)``, exact in population mode.

:class:`ConditionalGaussian` holds, per node, an input distribution (its *domain*)
``N(mu_x, S_x)`` over ``x`` in ``R^dx`` and a linear-Gaussian answer ``N(W x + b, S)`` over ``y``
in ``R^dy``, defined at every input (cross-domain evaluation asks a model about inputs outside its
domain). With ``d = dx + dy``, a row of width ``k = d + d^2`` is

``[domain (dx + dx^2) | W (dy * dx) | b (dy) | S (dy * dy) | zeros (dx * dy)]``

where the domain block is the :class:`~ecosystem.core.families.Gaussian` moment row
``[mu_x, S_x + mu_x mu_x^T]`` of dimension ``dx`` (so ``rows[:, :n_in]`` are domains, as
:func:`~ecosystem.core.metrics.domain_alignment` slices them) and ``W`` is row-major ``(dy, dx)``;
the padding makes a row as wide as the statistics.

*Training statistics* are the joint moments of ``z = (x, y)``: the Gaussian moment row
``[E z (d), E z z^T (d * d)]`` of dimension ``d``. They are linear in the input distribution and in
the producer's answer moments, so the kernel sums them over edges with the edges' weights
(:meth:`pair_statistics`; in sample mode :meth:`empirical` sums ``[z, z z^T]`` of the pairs). The
fit is the weighted least-squares regression of ``y`` on ``x`` under that mixture (THEORY.md
section 7): ``W = C_yx C_xx^+``, ``b = m_y - W m_x``, ``S = C_yy - W C_xx W^T``. Where the training
inputs do not vary (the null space of ``C_xx``, e.g. a point-mass domain) ``W`` keeps the previous
row's slope; the domain never changes.

Curation compares K answers to the *same* input. Exponential tilts of rewards linear or quadratic
in ``z`` (``r(z) = g.z - z^T Q z / 2 + c``) are linear-Gaussian again: precision
``S^-1 + Q_yy / tau`` and mean ``P^-1 (S^-1 (W x + b) + (g_y - Q_yx x) / tau)`` (computed without
inverting ``S``). Population mode handles only such tilts (Luce and best-of-K raise
:class:`~ecosystem.errors.FlowError`); sample mode picks among K sampled answers for any reward.
A sample is the point ``[x, y]`` ``(d,)``; sampled inputs are points ``(m, dx)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ecosystem.core.curation import Curator
from ecosystem.core.families import Gaussian, Judges
from ecosystem.core.rewards import Reward
from ecosystem.errors import FlowError

NOISES = ("full", "fixed")
"""``noise``: ``full`` (``S`` refit every round) or ``fixed`` (``S`` stays the initial one)."""
PINV_RTOL = 1e-10
"""Eigenvalues of the training inputs' covariance below this share of ``tr E x x^T`` count as 0."""
_CHUNK = 1 << 16
"""Samples per batched matrix product in :meth:`ConditionalGaussian.sample_given`."""


def _sym(a: np.ndarray) -> np.ndarray:
    return 0.5 * (a + np.swapaxes(a, -1, -2))


def _psd(a: np.ndarray) -> np.ndarray:
    """The nearest positive semi-definite matrices of symmetric ``a`` ``(V, n, n)``."""
    vals, vecs = np.linalg.eigh(_sym(a))
    if vals.size == 0 or vals.min() >= 0:
        return _sym(a)
    return (vecs * np.clip(vals, 0, None)[:, None, :]) @ np.swapaxes(vecs, 1, 2)


@dataclass(eq=False)
class ConditionalGaussian:
    """Conditionals ``y | x ~ N(W x + b, S)``, ``x`` in ``R^dx``, ``y`` in ``R^dy``, each node with a
    Gaussian domain; rewards see a pair as the point ``[x, y]`` ``(dx + dy,)``. See the module."""

    dx: int
    dy: int
    noise: str = "full"
    quadrature_points: int = 4096
    kind = "conditional_gaussian"
    conditional = True

    def __post_init__(self) -> None:
        if self.noise not in NOISES:
            raise ValueError(f"noise must be one of {', '.join(NOISES)}, not {self.noise!r}")
        if self.dx < 1 or self.dy < 1:
            raise ValueError(f"dx and dy must be >= 1, got {self.dx} and {self.dy}")
        self._domain = Gaussian(self.dx, quadrature_points=self.quadrature_points)
        self._joint = Gaussian(self.dim, quadrature_points=self.quadrature_points)
        self._answer = Gaussian(self.dy, quadrature_points=self.quadrature_points)
        o = self.n_in
        self._slices = (slice(o, o + self.dy * self.dx), slice(o + self.dy * self.dx, o + self.dy * (self.dx + 1)),
                        slice(o + self.dy * (self.dx + 1), o + self.dy * (self.dx + 1 + self.dy)))

    @property
    def dim(self) -> int:
        """Dimension ``d = dx + dy`` of a pair ``[x, y]`` (what rewards see)."""
        return self.dx + self.dy

    @property
    def n_in(self) -> int:
        """Length of a row's domain block ``[mu_x, E x x^T]``."""
        return self.dx + self.dx * self.dx

    @property
    def width(self) -> int:
        """Length of a row and of the statistics: the Gaussian moment row of ``z``, ``d + d^2``."""
        return self.dim + self.dim * self.dim

    # -- rows
    def split(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Domains ``(V, n_in)``, ``W`` ``(V, dy, dx)``, ``b`` ``(V, dy)`` and ``S`` ``(V, dy, dy)``."""
        w, b, s = self._slices
        v = len(rows)
        return (rows[:, :self.n_in], rows[:, w].reshape(v, self.dy, self.dx), rows[:, b],
                rows[:, s].reshape(v, self.dy, self.dy))

    def join(self, domain: np.ndarray, weights: np.ndarray, offset: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """Rows ``(V, k)`` from domain blocks ``(V, n_in)``, ``W`` ``(V, dy, dx)``, ``b`` ``(V, dy)``
        and ``S`` ``(V, dy, dy)``."""
        v = len(domain)
        out = np.zeros((v, self.width))
        w, b, s = self._slices
        out[:, :self.n_in] = domain
        out[:, w] = np.reshape(weights, (v, -1))
        out[:, b] = offset
        out[:, s] = np.reshape(noise, (v, -1))
        return out

    def rows(self, input_mean: np.ndarray, input_cov: np.ndarray, weights: np.ndarray,
             offset: np.ndarray, noise_cov: np.ndarray) -> np.ndarray:
        """Rows ``(V, k)`` from ``mu_x`` ``(V, dx)``, ``S_x`` ``(V, dx, dx)``, ``W`` ``(V, dy, dx)``,
        ``b`` ``(V, dy)`` and ``S`` ``(V, dy, dy)``."""
        domain = self._domain.moments(np.reshape(input_mean, (-1, self.dx)), input_cov)
        v = len(domain)
        return self.join(domain, np.reshape(weights, (v, self.dy, self.dx)), np.reshape(offset, (v, self.dy)),
                         np.reshape(noise_cov, (v, self.dy, self.dy)))

    def domain_mean_cov(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``mu_x`` ``(V, dx)`` and ``S_x`` ``(V, dx, dx)`` of rows ``(V, k)``."""
        return self._domain.mean_cov(np.ascontiguousarray(rows[:, :self.n_in]))

    def _noise_rows(self, noise: np.ndarray) -> np.ndarray:
        """Zero-mean :class:`Gaussian` rows of dimension ``dy`` with covariances ``noise``."""
        return self._answer.moments(np.zeros((len(noise), self.dy)), noise)

    def _joint_moments(self, rows: np.ndarray, domains: np.ndarray) -> np.ndarray:
        """Gaussian moment rows ``(E, k)`` of ``z = (x, y)`` with ``x`` from ``domains`` ``(E, n_in)``
        and ``y | x`` from the conditionals of ``rows`` ``(E, k)`` (linear in both)."""
        _, w, b, s = self.split(rows)
        dx = self.dx
        m, m2 = domains[:, :dx], domains[:, dx:].reshape(-1, dx, dx)
        wm = np.einsum("eij,ej->ei", w, m)
        xy = m2 @ np.swapaxes(w, 1, 2) + m[:, :, None] * b[:, None, :]               # E x y^T
        yy = w @ xy + wm[:, :, None] * b[:, None, :] + b[:, :, None] * b[:, None, :] + s
        second = np.concatenate([np.concatenate([m2, xy], axis=2),
                                 np.concatenate([np.swapaxes(xy, 1, 2), _sym(yy)], axis=2)], axis=1)
        return np.concatenate([m, wm + b, second.reshape(len(rows), -1)], axis=1)

    # -- training mixtures and fits
    def pair_statistics(self, rows: np.ndarray, inputs_from: np.ndarray) -> np.ndarray:
        """Statistics ``(E, k)`` of pairs whose inputs follow the domains of ``inputs_from``
        ``(E, k)`` and whose answers follow the conditionals of ``rows`` ``(E, k)``."""
        return self._joint_moments(rows, inputs_from[:, :self.n_in])

    def fit(self, moments: np.ndarray, initial: np.ndarray | None = None,
            previous: np.ndarray | None = None) -> np.ndarray:
        """Weighted least squares from joint moments ``(N, k)`` (normalised statistics).

        ``W = C_yx C_xx^+`` plus, on the null space of ``C_xx`` (inputs that do not vary),
        ``previous``'s slope (``initial``'s if not given; 0 without either); ``b = m_y - W m_x``;
        ``S = C_yy - C_yx C_xx^+ C_xy`` projected to PSD (``initial``'s for ``noise="fixed"``).
        The domain is ``initial``'s (the training inputs' own without ``initial``).
        """
        dx = self.dx
        mean, cov = self._joint.mean_cov(moments)
        mx, my = mean[:, :dx], mean[:, dx:]
        cxx, cyx, cyy = cov[:, :dx, :dx], cov[:, dx:, :dx], cov[:, dx:, dx:]
        vals, vecs = np.linalg.eigh(cxx)
        scale = moments[:, self.dim + np.arange(dx) * (self.dim + 1)].sum(axis=1)     # tr E x x^T
        seen = vals > PINV_RTOL * np.maximum(scale, np.finfo(float).tiny)[:, None]
        inv = (vecs * np.where(seen, 1.0 / np.where(seen, vals, 1.0), 0.0)[:, None, :]) @ np.swapaxes(vecs, 1, 2)
        slope = cyx @ inv
        keep = previous if previous is not None else initial
        if keep is not None and not seen.all():
            unseen = (vecs * (~seen)[:, None, :]) @ np.swapaxes(vecs, 1, 2)    # projector on null(C_xx)
            slope = slope + self.split(keep)[1] @ unseen
        offset = my - np.einsum("nij,nj->ni", slope, mx)
        if self.noise == "fixed":
            if initial is None:
                raise ValueError("a fixed-noise fit needs the initial rows")
            noise = self.split(initial)[3]
        else:
            noise = _psd(cyy - cyx @ inv @ np.swapaxes(cyx, 1, 2))
        domain = self._domain.moments(mx, cxx) if initial is None else initial[:, :self.n_in]
        return self.join(domain, slope, offset, noise)

    def normalise(self, stats: np.ndarray, weight: np.ndarray) -> np.ndarray:
        """Summed statistics divided by their total weight ``(N,)``."""
        return stats / weight[:, None]

    # -- free parameters (the analysis)
    def pack(self, rows: np.ndarray) -> np.ndarray:
        """Free parameters ``(N, m)``: ``W`` (row-major), ``b`` and, for ``noise="full"``, the upper
        triangle of ``S``; the domain is fixed."""
        _, w, b, s = self.split(rows)
        parts = [w.reshape(len(rows), -1), b]
        if self.noise == "full":
            iu = np.triu_indices(self.dy)
            parts.append(s[:, iu[0], iu[1]])
        return np.concatenate(parts, axis=1)

    def unpack(self, theta: np.ndarray, initial: np.ndarray) -> np.ndarray:
        """Rows from free parameters; the domains (and a fixed ``S``) are ``initial``'s."""
        n, dxy = len(theta), self.dy * self.dx
        w = theta[:, :dxy].reshape(n, self.dy, self.dx)
        b = theta[:, dxy:dxy + self.dy]
        if self.noise == "fixed":
            s = self.split(initial)[3]
        else:
            iu = np.triu_indices(self.dy)
            s = np.zeros((n, self.dy, self.dy))
            s[:, iu[0], iu[1]] = theta[:, dxy + self.dy:]
            s[:, iu[1], iu[0]] = theta[:, dxy + self.dy:]
        return self.join(initial[:, :self.n_in], w, b, s)

    def admissible(self, rows: np.ndarray) -> bool:
        """Finite rows whose noise covariances are positive semi-definite."""
        if not np.all(np.isfinite(rows)):
            return False
        s = self.split(rows)[3]
        vals = np.linalg.eigvalsh(_sym(s))
        return bool(np.all(vals >= -1e-12 * np.maximum(1.0, np.abs(vals).max(axis=1, keepdims=True))))

    def difference_step(self, row: np.ndarray, j: int, value: float, step: float) -> float:
        """Relative to the parameter's size; at most half a positive noise variance."""
        h = step * max(1.0, abs(value))
        start = self.dy * (self.dx + 1)
        if self.noise == "full" and j >= start:
            iu = np.triu_indices(self.dy)
            if iu[0][j - start] == iu[1][j - start] and value > 0:
                return min(h, 0.5 * value)
        return h

    def reward_gradient(self, row: np.ndarray, reward: Reward) -> np.ndarray | None:
        """``d E[r] / d theta`` in closed form for a reward quadratic in ``z`` (None otherwise):
        ``dW = g_y m^T - Q_yx M - Q_yy (W M + b m^T)``, ``db = g_y - Q_yx m - Q_yy (W m + b)``,
        ``dS = -Q_yy / 2`` (``m``, ``M``: the domain's first and second moments)."""
        form = reward.quadratic_form()
        if form is None:
            return None
        g, q = self._form(form)
        dx = self.dx
        gy, qyx, qyy = g[dx:], q[dx:, :dx], q[dx:, dx:]
        domain, w, b, _ = self.split(row[None])
        w, b = w[0], b[0]
        m, m2 = domain[0, :dx], domain[0, dx:].reshape(dx, dx)
        d_w = np.outer(gy, m) - qyx @ m2 - qyy @ (w @ m2 + np.outer(b, m))
        d_b = gy - qyx @ m - qyy @ (w @ m + b)
        parts = [d_w.ravel(), d_b]
        if self.noise == "full":
            iu = np.triu_indices(self.dy)
            parts.append(np.where(iu[0] == iu[1], -0.5, -1.0) * qyy[iu])
        return np.concatenate(parts)

    def _form(self, form: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """``(g, Q)`` of a quadratic form as arrays ``(d,)`` and symmetric ``(d, d)``."""
        g, q = form
        g = np.asarray(g, dtype=float)
        q = np.asarray(q, dtype=float)
        if g.shape != (self.dim,) or q.shape != (self.dim, self.dim):
            raise ValueError(f"a reward of the conditional_gaussian family sees points of dimension {self.dim}, "
                             f"got a quadratic form of shapes {g.shape} and {q.shape}")
        return g, 0.5 * (q + q.T)

    # -- curation
    def judges(self, curator: Curator) -> Judges:
        """Handles: the rewards themselves (evaluated at points ``[x, y]``)."""
        return Judges(curator, list(curator.rewards))

    def tilts_exactly(self, curator: Curator) -> bool:
        """Tilts of rewards linear or quadratic in ``z`` are linear-Gaussian in closed form."""
        return curator.rule.tilts and all(r.quadratic_form() is not None for r in curator.rewards)

    def _tilt(self, rows: np.ndarray, g: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``W'``, ``b'``, ``S'`` of the conditionals of ``rows`` tilted by ``exp(g.z - z^T q z / 2)``
        (``g``, ``q`` already divided by ``tau``): ``S' = (I + S Q_yy)^-1 S``,
        ``W' = (I + S Q_yy)^-1 W - S' Q_yx``, ``b' = (I + S Q_yy)^-1 b + S' g_y``."""
        _, w, b, s = self.split(rows)
        dx = self.dx
        shrink = np.linalg.inv(np.eye(self.dy) + s @ q[dx:, dx:])
        s_t = _sym(shrink @ s)
        w_t = shrink @ w - s_t @ q[dx:, :dx]
        b_t = np.einsum("vij,vj->vi", shrink, b) + s_t @ g[dx:]
        return w_t, b_t, s_t

    def curate(self, judges: Judges, rows: np.ndarray) -> np.ndarray:
        """Population form of curation for producer rows ``(R, k)``: the exact tilt per input.

        Several user types give the mixture of their tilted answers, whose first two moments
        (all a least-squares fit uses) are linear-Gaussian when the types' tilted slopes agree
        (e.g. quadratic rewards of one curvature); otherwise, and for Luce or best-of-K rules,
        :class:`FlowError` (run those in sample mode).
        """
        curator = judges.curator
        if not self.tilts_exactly(curator):
            raise FlowError(
                f"conditional_gaussian: population mode curates exactly only exponential tilts (rule = \"tilt\") "
                f"of rewards linear or quadratic in [x, y], not {type(curator.rule).__name__} with "
                f"{', '.join(r.name for r in curator.rewards)}; use mode = \"sample\"")
        cache = judges.cache
        if "forms" not in cache:
            cache["forms"] = [self._form(r.quadratic_form()) for r in curator.rewards]
        tau = curator.rule.tau
        tilted = [self._tilt(rows, g / tau, q / tau) for g, q in cache["forms"]]
        w_t = tilted[0][0]
        if len(tilted) == 1:
            return self.join(rows[:, :self.n_in], *tilted[0])
        for w_u, _, _ in tilted[1:]:
            if not np.allclose(w_u, w_t, rtol=1e-9, atol=1e-12 * max(1.0, float(np.abs(w_t).max(initial=0)))):
                raise FlowError(
                    "conditional_gaussian: the user types of a curator tilt the answers' slopes W differently, "
                    "so the mixture of their answers is not linear-Gaussian (its spread depends on the input); "
                    "population mode needs one user type or types whose rewards share Q_yy and Q_yx "
                    "(use mode = \"sample\")")
        nu = curator.weights
        b_bar = sum(n * b_u for n, (_, b_u, _) in zip(nu, tilted, strict=True))
        s_bar = sum(n * (s_u + (b_u - b_bar)[:, :, None] * (b_u - b_bar)[:, None, :])
                    for n, (_, b_u, s_u) in zip(nu, tilted, strict=True))
        return self.join(rows[:, :self.n_in], w_t, b_bar, s_bar)

    # -- finite samples
    def draw_inputs(self, rows: np.ndarray, which: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One input ``(dx,)`` per entry of ``which`` from the domain of its row in ``rows`` ``(V, k)``;
        ``(m, dx)``."""
        return self._domain.sample(np.ascontiguousarray(rows[:, :self.n_in]), which, rng)

    def sample_given(self, rows: np.ndarray, which: np.ndarray, inputs: np.ndarray,
                     rng: np.random.Generator) -> np.ndarray:
        """One answer per entry of ``which`` to ``inputs`` ``(m, dx)``: pairs ``[x, y]`` ``(m, d)``."""
        x = np.asarray(inputs, dtype=float).reshape(len(inputs), self.dx)
        _, w, b, s = self.split(rows)
        y = self._answer.sample(self._noise_rows(s), which, rng)      # the noise, S^1/2 eps
        for a in range(0, len(which), _CHUNK):
            part = which[a:a + _CHUNK]
            y[a:a + _CHUNK] += np.einsum("mij,mj->mi", w[part], x[a:a + _CHUNK]) + b[part]
        return np.concatenate([x, y], axis=1)

    def sample(self, rows: np.ndarray, which: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One pair per entry of ``which``: an input from the row's domain, then an answer; ``(m, d)``."""
        return self.sample_given(rows, which, self.draw_inputs(rows, which, rng), rng)

    def empirical(self, samples: np.ndarray, owner: np.ndarray, n_owners: int,
                  weights: np.ndarray | None = None) -> np.ndarray:
        """Summed statistics ``[sum w z, sum w z z^T]`` of pairs per owner, ``(n_owners, k)``."""
        return self._joint.empirical(samples, owner, n_owners, weights)

    def scores(self, judges: Judges, user: int, samples: np.ndarray) -> np.ndarray:
        """The user's reward at pairs ``[x, y]`` ``(m, d)``."""
        return judges.handles[user](samples)

    def points(self, samples: np.ndarray) -> np.ndarray:
        """Pairs are their coordinates ``[x, y]`` ``(m, d)``."""
        return samples

    # -- metrics
    def _reward_terms(self, rows: np.ndarray, reward: Reward) -> tuple[np.ndarray, np.ndarray] | None:
        """For a reward quadratic in ``z``: ``(L (V, n_in), c (V,))`` with ``E r = c + L . domain`` for
        the conditional of each row on any domain row ``[m, M]`` (affine in the domain's moments);
        None for other rewards."""
        form = reward.quadratic_form()
        if form is None:
            return None
        g, q = self._form(form)
        dx = self.dx
        gx, gy, qxx, qxy, qyy = g[:dx], g[dx:], q[:dx, :dx], q[:dx, dx:], q[dx:, dx:]
        _, w, b, s = self.split(rows)
        wt = np.swapaxes(w, 1, 2)
        linear = gx + wt @ gy - b @ qxy.T - np.einsum("vij,vj->vi", wt @ qyy, b)
        quad = -0.5 * _sym(qxx + 2 * qxy @ w + wt @ qyy @ w)
        const = (float(reward(np.zeros((1, self.dim)))[0]) + b @ gy
                 - 0.5 * (np.einsum("vi,ij,vj->v", b, qyy, b) + np.einsum("ij,vji->v", qyy, s)))
        return np.concatenate([linear, quad.reshape(len(rows), -1)], axis=1), const

    def expected_reward(self, rows: np.ndarray, reward: Reward) -> np.ndarray:
        """``E_{x ~ domain} E_{y ~ p(.|x)} r(x, y)`` on each row's own domain, ``(V,)``: closed form for
        rewards quadratic in ``z``, else the fixed quasi-Monte-Carlo nodes of the joint Gaussian."""
        terms = self._reward_terms(rows, reward)
        if terms is not None:
            return terms[1] + np.einsum("vj,vj->v", terms[0], rows[:, :self.n_in])
        return self._joint.expected_reward(self._joint_moments(rows, rows[:, :self.n_in]), reward)

    def expected_rewards(self, rows: np.ndarray, rewards: list[Reward]) -> np.ndarray:
        return np.stack([self.expected_reward(rows, r) for r in rewards], axis=1)

    def alignment_on(self, rows: np.ndarray, reward: Reward, domains: np.ndarray) -> np.ndarray:
        """Each row's expected reward on each domain block ``(D, n_in)`` (other rows'
        ``rows[:, :n_in]``), ``(V, D)``."""
        domains = np.asarray(domains, dtype=float)
        terms = self._reward_terms(rows, reward)
        if terms is not None:
            return terms[1][:, None] + terms[0] @ domains.T
        return np.stack([self._joint.expected_reward(
            self._joint_moments(rows, np.broadcast_to(dom, (len(rows), self.n_in))), reward)
            for dom in domains], axis=1)

    def diversity(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """``diversity``: the conditional variance ``tr S`` (the same at every input); ``log_det``:
        ``log det S`` (-inf if singular)."""
        return self._answer.diversity(self._noise_rows(self.split(rows)[3]))

    def drift(self, rows: np.ndarray, reference: np.ndarray, diversity: dict | None = None) -> np.ndarray:
        """``sqrt(E_{x ~ domain} W2^2(p(.|x), p_ref(.|x)))`` on each row's own domain: the mean
        squared gap of the answers' means ``(W - W_r) x + b - b_r`` plus the Bures distance of
        ``S`` and ``S_r``."""
        reference = np.broadcast_to(np.atleast_2d(reference), rows.shape)
        domain, w, b, s = self.split(rows)
        _, w_r, b_r, s_r = self.split(reference)
        dx = self.dx
        m, m2 = domain[:, :dx], domain[:, dx:].reshape(-1, dx, dx)
        dw, db = w - w_r, b - b_r
        gap = (np.einsum("vij,vjk,vik->v", dw, m2, dw) + 2 * np.einsum("vi,vij,vj->v", db, dw, m)
               + np.einsum("vi,vi->v", db, db))
        bures = self._answer.drift(self._noise_rows(s), self._noise_rows(s_r)) ** 2
        return np.sqrt(np.clip(gap + bures, 0.0, None))

    def pairwise_divergence(self, rows: np.ndarray) -> float:
        """Mean over pairs of models of ``E_x |(W_i - W_j) x + b_i - b_j|^2 + |S_i^1/2 - S_j^1/2|_F^2``
        with ``x`` from the models' pooled domain (W2^2 of the answers when the ``S`` commute), in
        O(N) as for Gaussians."""
        n = len(rows)
        if n < 2:
            return 0.0
        domain, w, b, s = self.split(rows)
        pooled = domain.mean(axis=0)
        dx = self.dx
        aug = np.empty((dx + 1, dx + 1))                  # E [x; 1][x; 1]^T = R R^T
        aug[:dx, :dx], aug[:dx, dx], aug[dx, :dx], aug[dx, dx] = pooled[dx:].reshape(dx, dx), pooled[:dx], \
            pooled[:dx], 1.0
        vals, vecs = np.linalg.eigh(_sym(aug))
        root = vecs * np.sqrt(np.clip(vals, 0, None))
        a = (np.concatenate([w, b[:, :, None]], axis=2) @ root).reshape(n, -1)
        means = (2 * n * np.sum(a * a) - 2 * np.sum(a.sum(axis=0) ** 2)) / (n * (n - 1))
        return float(means + self._answer.pairwise_divergence(self._noise_rows(s)))
