"""Conditional models ``p(y | x)``: responses ``y`` to inputs ``x`` (prompt -> response).

:class:`ConditionalCategorical` holds, per node, an input distribution (its *domain*) and a
response table over ``n_out`` responses for each of ``n_in`` inputs. A row is
``[m (n_in), C (n_in * n_out)]``: the domain ``m(x)`` and the conditional ``C[x, y] = p(y | x)``,
defined at every input (a model answers prompts outside its domain too, which is what
cross-domain evaluation measures).

Training pairs come from edges, each with its own input distribution ``nu_e`` (the producer's
domain, the consumer's, or a real-data source's: the edge's ``inputs``). Their summed
statistics are ``[sum_e w_e nu_e(x), sum_e w_e nu_e(x) q_e(y | x)]`` (:meth:`pair_statistics`,
or counts of sampled pairs), and the maximum-likelihood conditional is, per input,
``p'(y | x) = sum_e w_e nu_e(x) q_e(y | x) / sum_e w_e nu_e(x)`` (THEORY.md section 7). A
model's domain never changes; at an input where its training set has no pairs it keeps its
previous answer.

Curation compares K responses to the *same* input: the population operator is the
categorical operator applied to each input's row ``C[x]`` with that input's reward
``r(x, .)``, batched over the producers. A sample is the pair's index ``x * n_out + y``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ecosystem.core.curation import Curator
from ecosystem.core.families import Judges, _sum_plogp
from ecosystem.core.rewards import Reward


def _draw_index(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One index per row of ``probs`` ``(m, n)`` (rows sum to 1): inverse-CDF sampling."""
    cdf = np.cumsum(probs, axis=1)
    hit = (cdf < rng.random(len(probs))[:, None] * cdf[:, -1:]).sum(axis=1)
    return np.minimum(hit, probs.shape[1] - 1)


@dataclass(eq=False)
class ConditionalCategorical:
    """Conditionals over ``n_out`` responses at ``outputs`` ``(n_out, d_y)`` for ``n_in`` inputs at
    ``inputs`` ``(n_in, d_x)``; rewards see a pair as the point ``[x, y]`` ``(d_x + d_y,)``."""

    inputs: np.ndarray
    outputs: np.ndarray
    kind = "conditional"
    conditional = True

    def __post_init__(self) -> None:
        self.inputs = np.asarray(self.inputs, dtype=float).reshape(len(self.inputs), -1)
        self.outputs = np.asarray(self.outputs, dtype=float).reshape(len(self.outputs), -1)
        x, y = np.repeat(self.inputs, self.n_out, axis=0), np.tile(self.outputs, (self.n_in, 1))
        self.coords = np.concatenate([x, y], axis=1)
        """Coordinates ``(n_in * n_out, d_x + d_y)`` of every pair, in sample-index order."""

    @property
    def n_in(self) -> int:
        return len(self.inputs)

    @property
    def n_out(self) -> int:
        return len(self.outputs)

    @property
    def width(self) -> int:
        """Length of a row: the domain and the response table."""
        return self.n_in * (1 + self.n_out)

    # -- rows
    def split(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Domains ``(V, n_in)`` and conditionals ``(V, n_in, n_out)`` of rows ``(V, k)`` (views)."""
        return rows[:, :self.n_in], rows[:, self.n_in:].reshape(len(rows), self.n_in, self.n_out)

    def join(self, domain: np.ndarray, conditional: np.ndarray) -> np.ndarray:
        """Rows ``(V, k)`` from domains ``(V, n_in)`` and conditionals ``(V, n_in, n_out)``."""
        return np.concatenate([domain, conditional.reshape(len(domain), -1)], axis=1)

    def from_joint(self, joint: np.ndarray) -> np.ndarray:
        """The row of a joint distribution ``(n_in, n_out)`` (e.g. real data); inputs without mass
        answer uniformly."""
        joint = np.asarray(joint, dtype=float) / np.sum(joint)
        domain = joint.sum(axis=1)
        cond = np.full_like(joint, 1.0 / self.n_out)
        seen = domain > 0
        cond[seen] = joint[seen] / domain[seen, None]
        return self.join(domain[None], cond[None])[0]

    def reward_table(self, reward: Reward) -> np.ndarray:
        """The reward of every pair, ``(n_in, n_out)``."""
        return np.asarray(reward(self.coords), dtype=float).reshape(self.n_in, self.n_out)

    # -- training mixtures and fits
    def pair_statistics(self, rows: np.ndarray, inputs_from: np.ndarray) -> np.ndarray:
        """Statistics ``(E, k)`` of pairs whose inputs follow the domains of ``inputs_from``
        ``(E, k)`` and whose responses follow the conditionals of ``rows`` ``(E, k)``."""
        nu = inputs_from[:, :self.n_in]
        return self.join(nu, nu[:, :, None] * self.split(rows)[1])

    def fit(self, moments: np.ndarray, initial: np.ndarray | None = None,
            previous: np.ndarray | None = None) -> np.ndarray:
        """Per-input maximum likelihood from statistics ``(N, k)``; the domain is ``initial``'s, and
        inputs without training pairs keep ``previous``'s answer (``initial``'s if not given)."""
        initial = moments if initial is None else initial
        keep = initial if previous is None else previous
        mass, joint = self.split(moments)
        cond = self.split(keep)[1].copy()
        seen = mass > 0
        cond[seen] = joint[seen] / joint[seen].sum(axis=1, keepdims=True)
        return self.join(initial[:, :self.n_in], cond)

    def normalise(self, stats: np.ndarray, weight: np.ndarray) -> np.ndarray:
        """Summed statistics (pair counts) divided by their total weight ``(N,)``."""
        return stats / weight[:, None]

    # -- free parameters (the analysis)
    def pack(self, rows: np.ndarray) -> np.ndarray:
        """Free parameters ``(N, n_in * (n_out - 1))``: every response probability but the last."""
        return self.split(rows)[1][:, :, :-1].reshape(len(rows), -1)

    def unpack(self, theta: np.ndarray, initial: np.ndarray) -> np.ndarray:
        """Rows from free parameters; the domains are ``initial``'s."""
        head = theta.reshape(len(theta), self.n_in, self.n_out - 1)
        cond = np.concatenate([head, 1.0 - head.sum(axis=2, keepdims=True)], axis=2)
        return self.join(initial[:, :self.n_in], cond)

    def admissible(self, rows: np.ndarray) -> bool:
        return bool(np.all(self.split(rows)[1] >= 0))

    def difference_step(self, row: np.ndarray, j: int, value: float, step: float) -> float:
        """At most half the room to 0 of the probability and of its input's last one."""
        cond = self.split(row[None])[1][0]
        x, y = divmod(j, self.n_out - 1)
        room = min(cond[x, y], cond[x, -1])
        return min(step, 0.5 * room) if room > 0 else step

    def reward_gradient(self, row: np.ndarray, reward: Reward) -> np.ndarray:
        """``d E[r] / d C[x, y] = m(x) (r(x, y) - r(x, last))``."""
        table = self.reward_table(reward)
        return (row[:self.n_in, None] * (table[:, :-1] - table[:, -1:])).ravel()

    # -- curation
    def judges(self, curator: Curator) -> Judges:
        """Handles: each user type's reward table ``(n_in, n_out)``."""
        return Judges(curator, [self.reward_table(r) for r in curator.rewards])

    def curate(self, judges: Judges, rows: np.ndarray) -> np.ndarray:
        """Curated rows ``(R, k)``: the domain stays, each input's responses are curated with that
        input's rewards (the rule's reusable part made per input on first use and kept)."""
        cache = judges.cache
        if "tables" not in cache:
            cache["tables"] = np.stack(judges.handles)                       # (U, n_in, n_out)
            cache["prepared"] = [[judges.curator.rule.prepare(t[x]) for t in cache["tables"]]
                                 for x in range(self.n_in)]
        domain, cond = self.split(rows)
        out = np.empty_like(cond)
        for x in range(self.n_in):
            out[:, x] = judges.curator.curate(cond[:, x], cache["tables"][:, x], cache["prepared"][x])
        return self.join(domain, out)

    def tilts_exactly(self, curator: Curator) -> bool:
        return curator.rule.tilts

    # -- finite samples
    def draw_inputs(self, rows: np.ndarray, which: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One input per entry of ``which`` from the domain of its row in ``rows`` ``(V, k)``; ``(m,)``."""
        return _draw_index(rows[which, :self.n_in], rng)

    def sample_given(self, rows: np.ndarray, which: np.ndarray, inputs: np.ndarray,
                     rng: np.random.Generator) -> np.ndarray:
        """One response per entry of ``which`` to the given ``inputs`` ``(m,)``: pair indices ``(m,)``."""
        cond = self.split(rows)[1]
        return inputs * self.n_out + _draw_index(cond[which, inputs], rng)

    def sample(self, rows: np.ndarray, which: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One pair per entry of ``which``: an input from the row's domain, then a response."""
        return self.sample_given(rows, which, self.draw_inputs(rows, which, rng), rng)

    def empirical(self, samples: np.ndarray, owner: np.ndarray, n_owners: int,
                  weights: np.ndarray | None = None) -> np.ndarray:
        """Summed statistics (weighted pair and input counts) per owner, ``(n_owners, k)``."""
        pairs = self.n_in * self.n_out
        joint = np.bincount(owner * pairs + samples, weights=weights, minlength=n_owners * pairs)
        joint = joint.reshape(n_owners, self.n_in, self.n_out)
        return self.join(joint.sum(axis=2), joint)

    def scores(self, judges: Judges, user: int, samples: np.ndarray) -> np.ndarray:
        """Reward of pair samples: a lookup in the user's table."""
        return judges.handles[user].ravel()[samples]

    def points(self, samples: np.ndarray) -> np.ndarray:
        """Coordinates ``[x, y]`` of pair samples, ``(m, d_x + d_y)``."""
        return self.coords[samples]

    # -- metrics
    def alignment_on(self, rows: np.ndarray, reward: Reward, domains: np.ndarray) -> np.ndarray:
        """``sum_x d_j(x) sum_y p_i(y | x) r(x, y)``: each row's reward on each domain ``(D, n_in)``; ``(V, D)``."""
        per_input = np.einsum("vxy,xy->vx", self.split(rows)[1], self.reward_table(reward))
        return per_input @ np.asarray(domains).T

    def expected_reward(self, rows: np.ndarray, reward: Reward) -> np.ndarray:
        """``E_{x ~ m} E_{y ~ p(.|x)} r(x, y)`` on each row's own domain, ``(V,)``."""
        domain, cond = self.split(rows)
        return np.einsum("vx,vxy,xy->v", domain, cond, self.reward_table(reward))

    def expected_rewards(self, rows: np.ndarray, rewards: list[Reward]) -> np.ndarray:
        return np.stack([self.expected_reward(rows, r) for r in rewards], axis=1)

    def diversity(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """``diversity``: the conditional entropy ``H(Y | X)`` on the row's domain, in nats."""
        domain, cond = self.split(rows)
        per_input = _sum_plogp(cond.reshape(-1, self.n_out)).reshape(len(rows), self.n_in)   # sum_y p log p
        return {"diversity": -np.einsum("vx,vx->v", domain, per_input)}

    def drift(self, rows: np.ndarray, reference: np.ndarray, diversity: dict | None = None) -> np.ndarray:
        """``E_{x ~ m} KL(p(.|x) || p_ref(.|x))`` in nats, on each row's own domain."""
        domain, cond = self.split(rows)
        ref = self.split(np.atleast_2d(reference))[1]
        with np.errstate(divide="ignore", invalid="ignore"):
            log_ratio = np.log(np.maximum(cond, np.finfo(float).tiny)) - np.log(ref)
            kl = np.sum(np.where(cond > 0, cond * log_ratio, 0.0), axis=2)
        return np.einsum("vx,vx->v", domain, kl)

    def pairwise_divergence(self, rows: np.ndarray) -> float:
        """Mean over pairs of models of the squared Hellinger distance of their answers, averaged
        uniformly over inputs (O(N), as for categorical models)."""
        n = len(rows)
        if n < 2:
            return 0.0
        cond = np.clip(self.split(rows)[1], 0, None).reshape(n, -1)
        total = 2 * n * cond.sum() - 2 * np.sum(np.sqrt(cond).sum(axis=0) ** 2)
        return float(0.5 * total / (n * (n - 1) * self.n_in))


def is_conditional(family: object) -> bool:
    """Whether ``family``'s samples are (input, response) pairs drawn input first."""
    return bool(getattr(family, "conditional", False))

