"""Memory budget: what a run will hold, estimated from its compiled sizes before anything big is made.

A scenario is refused at load (:func:`check_scenario`, called by the scenario loader) when
the estimated peak memory of building it and running one round, plus what the run collects,
exceeds the *budget*; a topology generator is refused (:func:`check_edges`) before it makes
more edges than the budget holds. Both raise :class:`BudgetError` (a ``ScenarioError``),
whose message says what was asked, the estimate and the budget.

The budget, in bytes, is (first that applies):

1. the environment variable ``ECOSYSTEM_MEMORY_BUDGET``: bytes, or a number with a unit
   ``K``, ``M``, ``G``, ``T`` (powers of 1024, an optional ``iB``/``B``), e.g. ``8G``;
2. the memory the machine has available now (``MemAvailable`` of ``/proc/meminfo``, else
   ``os.sysconf`` available pages times the page size, else physical pages).

The estimates are upper bounds of the large arrays (float64 rows, the Luce basis or its
chunks, samples and candidates) plus per-node and per-edge costs of ``networkx`` graphs
(:data:`BYTES_PER_NODE`, :data:`BYTES_PER_EDGE`, measured) and of the collected table
(:data:`BYTES_PER_RECORD` per model and round). They are deliberately generous: a refused
run would have needed at least a large fraction of the budget.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from ecosystem.core import curation
from ecosystem.errors import ScenarioError

ENV = "ECOSYSTEM_MEMORY_BUDGET"
"""Environment variable overriding the budget (bytes, or e.g. ``512M``, ``8GiB``)."""

BYTES_PER_NODE = 1024
"""A node of a data-flow graph with its attribute dict (measured: ~0.6 KiB), plus its arrays."""

BYTES_PER_EDGE = 1024
"""A data-flow edge with its attribute dict, in both adjacency maps (measured: ~0.3-0.6 KiB),
counted again for the generator's own graph and the events' dry-run copy."""

BYTES_PER_RECORD = 256
"""One model's row of one round in the collected per-model table (Mesa ``DataCollector``)."""

CANDIDATE_CHUNK = 2**20
"""Sample mode: candidates drawn at once per curator group (larger draws go in chunks)."""

_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


class BudgetError(ScenarioError):
    """A scenario or topology whose estimated memory exceeds the budget."""


def available_bytes() -> int:
    """The memory the machine has available now, in bytes (see the module docstring)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def parse_bytes(text: str) -> int:
    """Bytes of ``text``: an integer, or a number with a unit K/M/G/T (1024-based), e.g. ``"1.5G"``."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([KMGT]?)(?:i?B)?\s*", str(text), flags=re.IGNORECASE)
    if not m:
        raise BudgetError(f"{ENV}: must be bytes or a number with a unit K, M, G or T, got {text!r}")
    value = int(float(m.group(1)) * _UNITS[m.group(2).upper()])
    if value <= 0:
        raise BudgetError(f"{ENV}: must be positive, got {text!r}")
    return value


def budget_bytes() -> int:
    """The budget in bytes: ``ECOSYSTEM_MEMORY_BUDGET`` if set, else :func:`available_bytes`."""
    text = os.environ.get(ENV, "").strip()
    return parse_bytes(text) if text else available_bytes()


def show(nbytes: float) -> str:
    """``nbytes`` for a message: ``5.6 GiB``."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= size:
            return f"{nbytes / size:.3g} {unit}"
    return f"{int(nbytes)} B"


def _where() -> str:
    return f"{ENV} = {os.environ[ENV]}" if os.environ.get(ENV, "").strip() else "the machine's available memory"


@dataclass
class Estimate:
    """Estimated peak bytes of building and running a scenario, by part, and its edge count."""

    edges: int
    parts: dict[str, int] = field(default_factory=dict)

    @property
    def peak_bytes(self) -> int:
        """The sum of the parts, in bytes."""
        return int(sum(self.parts.values()))

    def largest(self) -> tuple[str, int]:
        """The largest part and its bytes."""
        return max(self.parts.items(), key=lambda kv: kv[1])


def check_edges(edges: float, what: str, budget: int | None = None) -> None:
    """Refuse a graph of ``edges`` edges (``what`` says which) before it is made, if their
    estimated memory (:data:`BYTES_PER_EDGE` each) exceeds the budget."""
    budget = budget_bytes() if budget is None else budget
    need = float(edges) * BYTES_PER_EDGE
    if need > budget:
        raise BudgetError(f"{what} has {edges:.4g} edges, about {show(need)}; the memory budget is "
                          f"{show(budget)} ({_where()}): use fewer models or a sparser topology")


def _luce_bytes(rho: np.ndarray, K: int, rows: int) -> tuple[int, int]:
    """(kept, per call) bytes of the Luce operator for scores ``rho`` ``(n,)`` and ``rows`` producers."""
    n = rho.size
    if curation.luce_dense_ok(rho, K):
        s = curation._grid_size(rho - rho.max())
        return 16 * n * s, 8 * rows * (2 * s + 3 * n)
    return 0, 8 * (6 * curation.CHUNK_ELEMENTS + 5 * rows * (n + 1) + 4 * n)


def estimate(graph: nx.DiGraph, family: object, mode: str, steps: int = 1) -> Estimate:
    """Peak-memory estimate of a scenario's ``graph`` (``networkx``, built) for ``family``
    (a :class:`~ecosystem.core.families.Family`) in ``mode`` (``population`` or ``sample``)
    over ``steps`` collected rounds. Parts (bytes): ``graph``, ``rows`` (moment rows of every
    node, state, accumulators), ``curation`` (bases kept plus one call's work arrays),
    ``samples`` and ``candidates`` (sample mode), ``collection``, ``metrics``."""
    nodes = graph.number_of_nodes()
    edges = graph.number_of_edges()
    width = int(family.width)
    kinds = nx.get_node_attributes(graph, "kind")
    models = [v for v, k in kinds.items() if k == "model"]
    curators = [v for v, k in kinds.items() if k == "curator"]
    parts: dict[str, int] = {
        "graph": 2 * (nodes * (BYTES_PER_NODE + 8 * width) + edges * BYTES_PER_EDGE),
        "rows": 8 * width * (3 * nodes + 6 * len(models)) + 48 * edges,
        "collection": BYTES_PER_RECORD * len(models) * (max(int(steps), 0) + 1),
        "metrics": 8 * width * (6 * len(models) + nodes),   # temporaries of the per-round metrics
    }
    groups: dict[int, tuple[object, int]] = {}
    for v in curators:
        cur = graph.nodes[v]["curator"]
        groups[id(cur)] = (cur, groups.get(id(cur), (cur, 0))[1] + 1)
    kept, work = 0, 0
    gaussian = getattr(family, "kind", "") == "gaussian"
    for cur, rows in groups.values():
        rule = cur.rule
        if gaussian:
            q = int(getattr(family, "quadrature_points", 4096))
            d = int(getattr(family, "dim", 1))
            per = 8 * q * (4 * d + d * d + 8) + max(curation.DENSE_BYTES, 8 * 6 * curation.CHUNK_ELEMENTS)
            work = max(work, per)
            continue
        n = width
        if type(rule).__name__ == "Luce" and rule.K > 1 and hasattr(family, "reward_table"):
            for reward in cur.rewards:
                table = np.asarray(family.reward_table(reward), dtype=float) / rule.tau
                k_bytes, w_bytes = _luce_bytes(table, rule.K, rows)
                kept += k_bytes
                work = max(work, w_bytes)
        else:
            work = max(work, 8 * (8 * rows * n + 6 * curation.CHUNK_ELEMENTS))
    parts["curation"] = kept + work
    if mode == "sample":
        learned = getattr(family, "kind", "") == "learned"
        item = 8 * int(getattr(family, "dim", 1))    # a point (d,) per sample; an outcome index otherwise
        sizes = np.array([int(graph.nodes[m].get("sample_size", 1000)) for m in models], dtype=float)
        total = float(sizes.sum())
        parts["samples"] = int(total * (3 * item + 40))
        if any(graph.nodes[m].get("retention") == "subsample" for m in models):
            parts["samples"] += int(total * (2 * item + 16))
        if learned:   # evaluation draws of every model; accumulated data grows every round
            parts["evaluation"] = 3 * len(models) * int(family.eval_size) * item
            kept_all = sum(s for s, m in zip(sizes, models, strict=True)
                           if graph.nodes[m].get("retention") == "accumulate")
            parts["samples"] += int(kept_all * max(int(steps), 1) * (item + 8))
            partial = sum(s for s, m in zip(sizes, models, strict=True)     # a partial refit adds self-draws
                          if graph.nodes[m].get("retraining_rate", 1.0) < 1)
            parts["samples"] += int(partial * 2 * (item + 8))
        if groups:
            k = max(getattr(cur.rule, "candidates", 1) for cur, _ in groups.values())
            parts["candidates"] = int(min(total * k, CANDIDATE_CHUNK) * (3 * item + 48))
    return Estimate(edges=edges, parts=parts)


def check_scenario(graph: nx.DiGraph, family: object, mode: str, steps: int = 1,
                   origin: str = "<scenario>", budget: int | None = None) -> Estimate:
    """:func:`estimate` the scenario and raise :class:`BudgetError` if it exceeds the budget
    (default :func:`budget_bytes`); the estimate otherwise."""
    budget = budget_bytes() if budget is None else budget
    est = estimate(graph, family, mode, steps)
    if est.peak_bytes > budget:
        part, size = est.largest()
        raise BudgetError(
            f"{origin}: the run needs about {show(est.peak_bytes)} ({est.edges} edges, "
            f"{sum(1 for _, k in graph.nodes(data='kind') if k == 'model')} models, rows of {family.width}; "
            f"largest part: {part} {show(size)}), more than the memory budget of {show(budget)} "
            f"({_where()}; set {ENV} to change it)")
    return est


def check_topology(what: str, model_edges: float, models: int, budget: int | None = None) -> None:
    """Refuse a generated topology before generating it: ``model_edges`` (expected) edges
    between ``models`` models become about ``3 * model_edges + 4 * models`` data-flow edges
    (curated and raw inputs, real data, curators); ``what`` names the generator and its sizes."""
    check_edges(3.0 * float(model_edges) + 4.0 * float(models), what, budget)
