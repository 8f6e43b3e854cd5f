"""Many independent sample-mode runs advanced as one batched round.

A :class:`ReplicateBatch` takes built models (one scenario with per-replicate seeds, or
different scenarios of the same family: grid points of a study) and advances them together:
their graphs side by side in a :class:`~ecosystem.core.rounds.RoundKernel` (``blocks``), so a
round is one pass of array operations for many runs instead of one per run (runs are compiled
into kernels of at most ``max_nodes`` nodes: beyond that a round's arrays outgrow the caches). Every run keeps
its own generator (:class:`~ecosystem.core.streams.Streams`) and draws the numbers, in the order
and shapes, that its separate run draws; the arithmetic is per row and per run (each matrix
product, each ``eigh`` has the operands it has in the separate run), so each run's rows are
bit for bit those of ``rounds.advance`` on that run alone, round after round.

Only what keeps that exact is accepted: sample mode, synchronous updates, ``replace`` or
``accumulate`` retention, built-in families (not learned, not conditional) and no events.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import networkx as nx
import numpy as np

from ecosystem.core import flows
from ecosystem.core.conditional import is_conditional
from ecosystem.core.curation import Curator
from ecosystem.core.learned import Learned
from ecosystem.core.model import EcosystemModel
from ecosystem.core.rounds import RoundKernel, RoundState, advance
from ecosystem.core.streams import Streams
from ecosystem.errors import NumericalError


class Buildable(Protocol):
    """Anything that builds a model for a seed (a :class:`~ecosystem.formats.scenario.Scenario`)."""

    def build(self, *, seed: int | None = None) -> EcosystemModel: ...


class ReplicateBatch:
    """Runs ``members`` (built models, each with its own generator) advanced together.

    ``max_nodes``: the most nodes a kernel compiles (consecutive members share one up to it).
    Each :meth:`advance` is one round of every member: member ``i``'s rows afterwards
    (:meth:`rows`, :meth:`state`) are bit for bit what ``rounds.advance(member.kernel,
    member.round_state, mode="sample", order="synchronous", rng=member.rng)`` gives, and its
    generator is left where that run leaves it. :meth:`advance` leaves the members themselves as
    they are until :meth:`sync` hands them their states (it measures nothing); :meth:`step` hands
    every member its round, which it measures and collects as its own ``step()``. Raises
    ``ValueError`` for what a batch does not run (see the module docstring) and
    :class:`~ecosystem.errors.NumericalError` when a member's moments leave the finite floats.
    """

    def __init__(self, members: Sequence[EcosystemModel], max_nodes: int = 1024) -> None:
        self.members = list(members)
        if not self.members:
            raise ValueError("a replicate batch needs at least one model")
        for i, member in enumerate(self.members):
            _check(i, member, self.members[0])
        if len({id(m.rng) for m in self.members}) < len(self.members):
            raise ValueError("replicate batch: two members share a generator (each needs its own)")
        self.parts = [_Part.of(self.members[a:b], a) for a, b in _spans(self.members, max_nodes)]
        """The kernels: consecutive members, together at most ``max_nodes`` nodes (at least one member)."""
        self._where = [(part, j) for part in self.parts for j in range(len(part.bounds) - 1)]
        self.rounds = 0
        """Rounds advanced by the batch."""

    @classmethod
    def of(cls, scenario: Buildable, seeds: Iterable[int], max_nodes: int = 1024) -> ReplicateBatch:
        """Replicates of one scenario, one per seed (``scenario.build(seed=s)``)."""
        return cls([scenario.build(seed=s) for s in seeds], max_nodes)

    def __len__(self) -> int:
        return len(self.members)

    def advance(self, rounds: int = 1) -> None:
        """``rounds`` retraining rounds of every member."""
        for _ in range(rounds):
            for part in self.parts:
                with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
                    part.state = advance(part.kernel, part.state, mode="sample", order="synchronous",
                                         rng=part.streams)
                bad = ~np.all(np.isfinite(part.state.rows), axis=1)
                if bad.any():
                    row = int(np.flatnonzero(bad)[0])
                    j = int(np.searchsorted(part.bounds, row, side="right")) - 1
                    member = self.members[part.first + j]
                    raise NumericalError(f"round {self.rounds + 1}: the moments of model "
                                         f"{member.kernel.models[row - part.bounds[j]]!r} of member {part.first + j} "
                                         "are not finite (an overflow: the inputs' scales are too far apart)")
            self.rounds += 1

    def step(self) -> None:
        """One round of every member, which each member then takes as its own ``step()``: Mesa's
        step counter, metrics and data collection as in a separate run (the same frames), with the
        rounds' arithmetic done for all members at once. A member stepped alone afterwards goes
        on from its own state; the batch does not follow it."""
        self.advance()
        for i, member in enumerate(self.members):
            member._handed = self.state(i)
            member.step()

    def rows(self, i: int) -> np.ndarray:
        """Member ``i``'s model rows ``(N_i, k)``, in its kernel's model order (a view)."""
        part, j = self._where[i]
        return part.state.rows[part.bounds[j]:part.bounds[j + 1]]

    def state(self, i: int) -> RoundState:
        """Member ``i``'s :class:`~ecosystem.core.rounds.RoundState` (arrays copied)."""
        part, j = self._where[i]
        rows, s = slice(part.bounds[j], part.bounds[j + 1]), part.state
        return RoundState(s.rows[rows].copy(), s.initial[rows].copy(), s.accumulated[rows].copy(),
                          s.accumulated_weight[rows].copy())

    def sync(self) -> None:
        """Give every member its state (``member.round_state``), e.g. to go on with ``member.step()``."""
        for i, member in enumerate(self.members):
            member.round_state = self.state(i)


@dataclass(eq=False)
class _Part:
    """Consecutive members from ``first`` on in one kernel (member ``first + j`` is block ``j``):
    their state, generators and the bounds ``(B + 1,)`` of each member's model rows."""

    kernel: RoundKernel
    state: RoundState
    streams: Streams
    first: int
    bounds: np.ndarray

    @classmethod
    def of(cls, members: list[EcosystemModel], first: int) -> _Part:
        graph, blocks = _side_by_side(members)
        states = [m.round_state for m in members]
        state = RoundState(*(np.concatenate([getattr(s, f) for s in states])
                             for f in ("rows", "initial", "accumulated", "accumulated_weight")))
        return cls(RoundKernel(graph, members[0].family, blocks), state, Streams([m.rng for m in members]), first,
                   np.r_[0, np.cumsum([len(m.kernel.models) for m in members])])


def _spans(members: list[EcosystemModel], max_nodes: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of consecutive members with at most ``max_nodes`` nodes together (or one)."""
    spans, start, nodes = [], 0, 0
    for i, member in enumerate(members):
        size = member.graph.number_of_nodes()
        if i > start and nodes + size > max_nodes:
            spans.append((start, i))
            start, nodes = i, 0
        nodes += size
    return [*spans, (start, len(members))]


def _check(i: int, member: EcosystemModel, first: EcosystemModel) -> None:
    """Refuse, naming the member, what a batch cannot run bit for bit as separate runs."""
    why = None
    if member.mode != "sample":
        why = f"runs in {member.mode} mode (a batch runs sample mode: population mode draws nothing to replicate)"
    elif member.order != "synchronous":
        why = "updates sequentially (a batch runs synchronous rounds)"
    elif isinstance(member.family, Learned) or is_conditional(member.family):
        why = "has a learned or conditional family (a batch runs the categorical and gaussian families)"
    elif member.scripted:
        why = "has scheduled events or conditions (a batch runs fixed graphs)"
    elif (member.kernel.retention == "subsample").any() or member.round_state.reservoir is not None:
        why = "keeps a subsample reservoir (a batch runs replace and accumulate retention)"
    elif not _same(member.family, first.family):
        why = "has another family than member 0 (a batch shares one family)"
    if why:
        raise ValueError(f"replicate batch: member {i} {why}")


def _same(a: object, b: object) -> bool:
    """Whether two values are equal field by field: dataclasses (families, rules, rewards) of one
    class with equal fields, sequences item by item, arrays by value, anything else by ``==``."""
    if a is b:
        return True
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and np.array_equal(a, b)
    if type(a) is not type(b):
        return False
    if dataclasses.is_dataclass(a):
        return all(_same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _side_by_side(members: list[EcosystemModel]) -> tuple[nx.DiGraph, dict]:
    """The members' graphs in one, node ``(i, name)`` for member ``i``'s ``name`` (each member's
    nodes and edges in its own order), and the block (member) of every node.

    Curators: a round curates the producers of one :class:`Curator` object together, so the
    members' curators are one object only where that draws each member's numbers in its own order:
    when every member's curators, in their order, equal member 0's and each is sampled as an exact
    tilt (:func:`_shared_curators`); otherwise each member gets copies of its own."""
    graph, blocks = nx.DiGraph(), {}
    shared = _shared_curators(members)
    for i, member in enumerate(members):
        own: dict[int, Curator] = {}
        for j, cur in enumerate(_curators(member)):
            own[id(cur)] = shared[j] if shared is not None else copy.copy(cur)
        for v, attrs in member.graph.nodes(data=True):
            attrs = dict(attrs)
            if "curator" in attrs:
                attrs["curator"] = own[id(attrs["curator"])]
            graph.add_node((i, v), **attrs)
            blocks[i, v] = i
        graph.add_edges_from(((i, u), (i, v), attrs) for u, v, attrs in member.graph.edges(data=True))
    return graph, blocks


def _curators(member: EcosystemModel) -> list[Curator]:
    """The member's distinct :class:`Curator` objects in the order its kernel curates them."""
    seen: dict[int, Curator] = {}
    for idx in sorted(member.kernel.curator_of):
        cur = member.kernel.curator_of[idx]
        seen.setdefault(id(cur), cur)
    return list(seen.values())


def _shared_curators(members: list[EcosystemModel]) -> list[Curator] | None:
    """Member 0's curators if all members' are equal to them, in order, and every one is sampled as
    an exact tilt (a draw per user type from each member's tilted rows: one group of all members
    draws what each member's group draws); else None."""
    first = members[0]
    fam, graph = first.family, first.graph
    mine = _curators(first)
    for cur in mine:
        judged = [flows.kind(graph, flows.producer(graph, v)) for v, c in graph.nodes(data="curator") if c is cur]
        if not fam.tilts_exactly(cur) or any(k not in ("model", "source") for k in judged):
            return None
    for member in members[1:]:
        theirs = _curators(member)
        if len(theirs) != len(mine) or not all(_same((c.rule, c.rewards, c.weights), (m.rule, m.rewards, m.weights))
                                               for c, m in zip(theirs, mine, strict=True)):
            return None
    return mine
