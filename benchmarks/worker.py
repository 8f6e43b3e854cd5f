"""One timed job in a fresh process (so that peak RSS is the job's): ``python -m benchmarks.worker JSON``.

Prints one JSON object: ``seconds`` (the timed part), ``setup`` (seconds to build) and
``peak_rss_mb``. BLAS runs on one thread in every job (see BENCHMARKS.md).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits


def gflops(size: int = 1500, threads: int = 1) -> float:
    """Best of 5 dense ``size x size`` matrix products, in GFLOP/s."""
    a = np.random.default_rng(0).random((size, size))
    best = float("inf")
    with threadpool_limits(limits=threads, user_api="blas"):
        for _ in range(5):
            start = time.perf_counter()
            a @ a
            best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best / 1e9


def warm(seconds: float = 0.5) -> int:
    """Import the engine in a pool worker and hold it a moment (so that every worker gets one)."""
    import ecosystem.studies.sweep  # noqa: F401

    time.sleep(seconds)
    return os.getpid()


def run(job: dict[str, Any]) -> dict[str, Any]:
    """Run one job: ``kind`` in full, full_all_metrics, floor, naive, naive_shared, gflops;
    ``workload`` w1, w2 or w5 (W2's construction); sizes."""
    from benchmarks import floor, naive, workloads

    kind, out = job["kind"], {}
    if kind == "memory":
        return memory(job)
    if kind == "gflops":
        return {"gflops_1_thread": gflops(threads=1), "gflops_all_threads": gflops(threads=os.cpu_count())}
    make = workloads.w1_data if job["workload"] == "w1" else workloads.w2_data   # W5 is a small W2
    start = time.perf_counter()
    size = dict(job.get("size", {}), **({"metrics": None} if kind == "full_all_metrics" else {}))
    scenario = workloads.build(make(**size))
    steps = job["steps"]
    if kind in ("full", "full_all_metrics"):
        model = scenario.build()
        out["setup"] = time.perf_counter() - start
        start = time.perf_counter()
        model.run(steps)
        out["seconds"] = time.perf_counter() - start
        model.agents_frame()  # the collected data is usable (and counted in memory)
        out["edges"] = sum(1 for _, v in scenario.graph.in_edges(model.kernel.models))
    elif kind == "floor":
        kernel = floor.Floor(scenario) if job["workload"] == "w1" else floor.SampleFloor(scenario)
        out["setup"] = time.perf_counter() - start
        out["flops_per_round"] = getattr(kernel, "flops_per_round", None)
        start = time.perf_counter()
        kernel.run(steps)
        out["seconds"] = time.perf_counter() - start
    else:
        model = (naive.NaiveW1(scenario, shared_bases=kind == "naive_shared") if job["workload"] == "w1"
                 else naive.NaiveW2(scenario))
        out["setup"] = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(steps):
            model.step()
        out["seconds"] = time.perf_counter() - start
    return out


def memory(job: dict[str, Any]) -> dict[str, Any]:
    """Peak memory of one scenario (``job["scenario"]``, a shipped name, with ``overrides``):
    the load-time estimate (:mod:`ecosystem.core.budget`) and the budget, then the run's
    ``steps`` rounds; ``peak_rss_mb`` is the process's (added by :func:`main`), ``base_rss_mb``
    the interpreter's with the engine imported, before loading."""
    from ecosystem.core import budget
    from ecosystem.formats.scenario import load

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    scenario = load(job["scenario"], job.get("overrides", {}))
    est = budget.estimate(scenario.graph, scenario.family, scenario.mode, scenario.steps)
    model = scenario.build()
    model.run(scenario.steps)
    model.agents_frame()
    return {"seconds": time.perf_counter() - start, "base_rss_mb": base, "estimate_mb": est.peak_bytes / 2**20,
            "budget_mb": budget.budget_bytes() / 2**20, "edges": est.edges}


def main() -> None:
    job = json.loads(sys.argv[1])
    if job["kind"] == "gflops":
        out = run(job)
    else:
        with threadpool_limits(limits=1, user_api="blas"):
            out = run(job)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


if __name__ == "__main__":
    main()
