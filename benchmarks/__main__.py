"""``python -m benchmarks [--quick] [--json]``: the workloads, their baselines and the scale table.

Prints one figure per line (``name = value``); with ``--json``, one JSON object instead
(nested: ``{"w1": {"ratio_to_floor": ...}, ...}``). See BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

FULL = {
    "reps": 3,
    "w1": {"size": {"n": 2000, "outcomes": 512}, "steps": 100, "naive_steps": 3},
    "w2": {"size": {"n": 200, "dim": 8, "samples": 2000}, "steps": 20, "naive_steps": 10},
    "w3": {"runs": 48, "n": 50, "steps": 200, "workers": 2},
    "w5": {"size": {"n": 20, "dim": 4, "samples": 64}, "steps": 1000, "naive_steps": 200},
    "w6": {"seeds": 16, "steps": 100, "batch": 8},
    "reproduce": {"quick": False},
    "scale": {"big": {"n": 10_000, "outcomes": 1000}, "big_steps": 100, "steps": 10,
              "base": {"n": 1000, "outcomes": 256, "m": 3},
              "vary": {"n": [500, 1000, 2000, 4000], "outcomes": [128, 256, 512, 1024], "m": [1, 2, 4, 8]}},
    "memory": {
        "categorical": {"space.grid.num": 1_000_000, "steps": 2},
        "categorical_sample": {"mode": "sample", "topology.model.sample_size": 10_000_000, "steps": 1},
        "gaussian": {"topology.n": 100, "topology.curator.tau": 1e-4, "steps": 2},
    },
}
QUICK = {
    "reps": 1,
    "w1": {"size": {"n": 200, "outcomes": 128}, "steps": 10, "naive_steps": 2},
    "w2": {"size": {"n": 20, "dim": 4, "samples": 200}, "steps": 5, "naive_steps": 5},
    "w3": {"runs": 4, "n": 10, "steps": 20, "workers": 2},
    "w5": {"size": {"n": 20, "dim": 4, "samples": 64}, "steps": 50, "naive_steps": 10},
    "w6": {"seeds": 4, "steps": 10, "batch": 2},
    "reproduce": {"quick": True},
    "scale": {"big": {"n": 500, "outcomes": 128}, "big_steps": 5, "steps": 3,
              "base": {"n": 200, "outcomes": 64, "m": 2},
              "vary": {"n": [100, 200], "outcomes": [64, 128], "m": [1, 2]}},
    "memory": {
        "categorical": {"space.grid.num": 100_000, "steps": 1},
        "categorical_sample": {"mode": "sample", "topology.model.sample_size": 1_000_000, "steps": 1},
        "gaussian": {"topology.n": 10, "topology.curator.tau": 1e-4, "steps": 1},
    },
}


IN_PROCESS = False
"""Quick runs keep jobs in this process (no interpreter start-up per job; RSS is then the process's)."""


def job(kind: str, workload: str = "w1", size: dict | None = None, steps: int = 1) -> dict[str, Any]:
    """Run one job in a fresh interpreter (see :mod:`benchmarks.worker`)."""
    if IN_PROCESS:
        import resource

        from threadpoolctl import threadpool_limits

        from benchmarks import worker

        spec = {"kind": kind, "workload": workload, "size": size or {}, "steps": steps}
        with threadpool_limits(limits=None if kind == "gflops" else 1, user_api="blas"):
            out = worker.run(spec)
        return dict(out, peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    spec = json.dumps({"kind": kind, "workload": workload, "size": size or {}, "steps": steps})
    done = subprocess.run([sys.executable, "-m", "benchmarks.worker", spec], cwd=REPO, capture_output=True,
                          text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"benchmark job {spec} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def repeat(reps: int, workload: str, size: dict, kinds: dict[str, int]) -> dict[str, dict[str, Any]]:
    """Per job kind (-> its number of rounds): median seconds over ``reps`` fresh processes
    and the largest peak RSS. Repetitions interleave the kinds, so that the machine's drift
    (large on a shared VM) hits them alike."""
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    for _ in range(reps):
        for kind, steps in kinds.items():
            runs[kind].append(job(kind, workload, size, steps))
    out = {}
    for kind, steps in kinds.items():
        out[kind] = dict(runs[kind][0])
        out[kind]["seconds"] = statistics.median(r["seconds"] for r in runs[kind])
        out[kind]["setup"] = statistics.median(r["setup"] for r in runs[kind])
        out[kind]["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs[kind])
        out[kind]["per_round"] = out[kind]["seconds"] / steps
    return out


def workload(name: str, cfg: dict, reps: int, shared_bases: bool) -> dict[str, Any]:
    """Full model, naive baseline and floor (and W1's shared-bases ablation), measured in this run."""
    n = cfg["size"]["n"]
    kinds = {"full": cfg["steps"], "floor": cfg["steps"], "naive": cfg["naive_steps"]}
    if name == "w1":   # W1 measures what its definition asks; the engine's full set of metrics apart
        kinds["full_all_metrics"] = cfg["steps"]
    if shared_bases:
        kinds["naive_shared"] = cfg["naive_steps"]
    got = repeat(reps, name, cfg["size"], kinds)
    full, naive, fl = got["full"], got["naive"], got["floor"]
    res = {"n_models": n, "rounds": cfg["steps"], "median_s": full["seconds"], "setup_s": full["setup"],
           "model_rounds_per_s": n / full["per_round"], "peak_rss_mb": full["peak_rss_mb"],
           "naive_rounds": cfg["naive_steps"], "naive_s_per_round": naive["per_round"],
           "speedup_vs_naive": naive["per_round"] / full["per_round"],
           "floor_median_s": fl["seconds"], "ratio_to_floor": full["per_round"] / fl["per_round"],
           "floor_speedup_vs_naive": naive["per_round"] / fl["per_round"]}
    if fl["flops_per_round"]:
        res.update(floor_gflops=fl["flops_per_round"] / fl["per_round"] / 1e9,
                   full_gflops=fl["flops_per_round"] / full["per_round"] / 1e9)
    if "full_all_metrics" in got:
        every = got["full_all_metrics"]
        res.update(median_s_all_metrics=every["seconds"],
                   ratio_to_floor_all_metrics=every["per_round"] / fl["per_round"])
    if shared_bases:
        res["speedup_vs_naive_shared_bases"] = got["naive_shared"]["per_round"] / full["per_round"]
    return res


def w4(quick: bool) -> dict[str, Any]:
    """W4: learned models (:mod:`benchmarks.learned`); needs the ``learned`` extra (scikit-learn)."""
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return {"skipped": "needs scikit-learn: pip install -e '.[learned]'"}
    from benchmarks import learned

    return learned.measure(quick)


def w5(cfg: dict, reps: int) -> dict[str, Any]:
    """W5: 20 small Gaussian models in sample mode, where the fixed cost of a round dominates:
    rounds/s and the share of the engine's time outside the floor's arithmetic (the floor draws
    the same random numbers and does nothing else)."""
    res = workload("w5", cfg, reps, shared_bases=False)
    res["rounds_per_s"] = cfg["steps"] / res["median_s"]
    res["overhead_share"] = 1.0 - 1.0 / res["ratio_to_floor"]
    return res


W6_STUDIES = {"gaussian_tilt": ("gaussian.toml", {"topology.curator.rule": "tilt"}), "ring": ("ring.toml", {})}
"""W6's ecosystems: shipped scenarios in sample mode (the gaussian one curated by exact tilts)."""


def w6(cfg: dict, reps: int) -> dict[str, Any]:
    """W6: a sample-mode study's seeds, run each alone (``ecosystem sweep``) and as replicate
    batches (``ecosystem sweep --batch``), serially in this process, for each ecosystem of
    :data:`W6_STUDIES`: seconds, speedup of the batches; the results are checked equal."""
    import tempfile

    from ecosystem.formats import study as study_mod
    from ecosystem.studies import sweep

    res: dict[str, Any] = {"seeds": cfg["seeds"], "steps": cfg["steps"], "batch": cfg["batch"]}
    with tempfile.TemporaryDirectory() as tmp:
        for label, (scenario, overrides) in W6_STUDIES.items():
            sets = "".join(f'"{k}" = "{v}"\n' for k, v in overrides.items())
            path = Path(tmp) / f"{label}.toml"
            path.write_text(f'name = "w6"\nscenario = "{REPO / "scenarios" / scenario}"\n'
                            f'seeds = {{ start = 0, count = {cfg["seeds"]} }}\n[set]\nmode = "sample"\n'
                            f'steps = {cfg["steps"]}\n{sets}')
            study = study_mod.load(path)
            tasks = [sweep.make_task(study, setting, seed) for setting, seed in study.runs()]
            size = cfg["batch"]
            times: dict[str, list[float]] = {"alone": [], "batched": []}
            for _ in range(reps):   # interleaved
                start = time.perf_counter()
                alone = [sweep.run_task(t) for t in tasks]
                times["alone"].append(time.perf_counter() - start)
                start = time.perf_counter()
                batched = [r for i in range(0, len(tasks), size) for r in sweep.run_tasks(tasks[i:i + size])]
                times["batched"].append(time.perf_counter() - start)
                if any(a["status"] != "done" or (a["rounds"], a["models"]) != (b["rounds"], b["models"])
                       for a, b in zip(alone, batched, strict=True)):
                    raise RuntimeError(f"w6 {label}: batched runs differ from separate runs")
            res[f"{label}_alone_s"] = statistics.median(times["alone"])
            res[f"{label}_batched_s"] = statistics.median(times["batched"])
            res[f"{label}_speedup"] = res[f"{label}_alone_s"] / res[f"{label}_batched_s"]
    return res


def reproduce(cfg: dict, reps: int) -> dict[str, Any]:
    """CPU seconds of ``gaussian-mechanism`` (the paper's Fig. 3) through the engine and of the plain
    numpy script of issue 17 (:mod:`benchmarks.mechanism_script`), each a fresh interpreter with one
    BLAS thread (start-up and imports included); repetitions interleave the two, medians."""
    import tempfile

    flag = ["--quick"] if cfg["quick"] else []
    engine = ("from pathlib import Path; import sys; from ecosystem.studies.reproduce import reproduce; "
              f"reproduce('gaussian-mechanism', Path(sys.argv[1]), quick={cfg['quick']})")
    commands = {"gaussian_mechanism": [sys.executable, "-c", engine],
                "script": [sys.executable, "-m", "benchmarks.mechanism_script", *flag, "--out"]}
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cpu: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(reps):
        for name, command in commands.items():
            with tempfile.TemporaryDirectory() as tmp:
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                done = subprocess.run([*command, str(Path(tmp) / "out")], cwd=REPO, env=env, capture_output=True,
                                      text=True, check=False)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if done.returncode:
                raise RuntimeError(f"reproduce job {name} failed:\n{done.stderr}")
            cpu[name].append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    res: dict[str, Any] = {"quick": cfg["quick"]}
    res.update({f"{name}_cpu_s": statistics.median(times) for name, times in cpu.items()})
    res["ratio_to_script"] = res["gaussian_mechanism_cpu_s"] / res["script_cpu_s"]
    return res


def w3(cfg: dict, reps: int) -> dict[str, Any]:
    """A 48-run study: serial, process pool and Dask LocalCluster (workers started before timing)."""
    from benchmarks.worker import warm
    from benchmarks.workloads import w3_data
    from ecosystem.studies import sweep

    data = w3_data(n=cfg["n"], steps=cfg["steps"])
    tasks = [{"setting_id": "w3", "seed": s, "origin": "<benchmark w3>", "scenario": data, "analysis": False}
             for s in range(cfg["runs"])]
    res: dict[str, Any] = {"runs": cfg["runs"], "workers": cfg["workers"]}
    executors = (("serial", 1, None), ("process", cfg["workers"], None), ("dask", cfg["workers"], "local"))
    times: dict[str, list[float]] = {label: [] for label, _, _ in executors}
    starts: dict[str, list[float]] = {label: [] for label, _, _ in executors}
    for _ in range(reps):   # repetitions interleave the executors: the machine's drift hits them alike
        for label, workers, dask in executors:
            begin = time.perf_counter()
            with sweep.executor(workers, dask) as pool:
                # workers started and the engine imported in each before the clock starts
                [f.result() for f in [pool.submit(warm, 0.5 if workers > 1 else 0.0) for _ in range(workers)]]
                start = time.perf_counter()
                results = [f.result() for f in [pool.submit(sweep.run_task, t) for t in tasks]]
                times[label].append(time.perf_counter() - start)
            starts[label].append(start - begin)
            assert all(r["status"] == "done" for r in results), [r["error"] for r in results if r["error"]]
    for label, _, _ in executors:
        res[f"{label}_s"] = statistics.median(times[label])
        res[f"{label}_startup_s"] = statistics.median(starts[label])
    for label in ("process", "dask"):
        res[f"speedup_{label}"] = res["serial_s"] / res[f"{label}_s"]
        res[f"efficiency_{label}"] = res[f"speedup_{label}"] / cfg["workers"]
    return res


def scale(cfg: dict) -> dict[str, Any]:
    """The large run, and how time per round grows with models, outcomes and edges (log-log slopes)."""
    big = job("full", "w1", cfg["big"], cfg["big_steps"])
    res: dict[str, Any] = {"models": cfg["big"]["n"], "outcomes": cfg["big"]["outcomes"],
                           "rounds": cfg["big_steps"], "seconds": big["seconds"], "setup_s": big["setup"],
                           "peak_rss_mb": big["peak_rss_mb"], "table": []}
    for axis, values in cfg["vary"].items():
        points = []
        for value in values:
            size = dict(cfg["base"], **{axis: value})
            r = job("full", "w1", size, cfg["steps"])
            row = {"axis": axis, **size, "edges": r["edges"], "s_per_round": r["seconds"] / cfg["steps"]}
            res["table"].append(row)
            points.append((r["edges"] if axis == "m" else value, row["s_per_round"]))
        xs, ys = (math.log(p[0]) for p in points), (math.log(p[1]) for p in points)
        xs, ys = list(xs), list(ys)
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
        res[f"slope_{'edges' if axis == 'm' else axis}"] = slope
    return res


MEMORY_SCENARIOS = {"categorical": "ring", "categorical_sample": "ring", "gaussian": "gaussian"}
"""The shipped scenario each memory case enlarges (by the overrides in ``FULL["memory"]``)."""


def memory(cfg: dict) -> dict[str, Any]:
    """Peak memory of the largest accepted scenario of each family, each in a fresh process
    (also with ``--quick``: RSS must be the job's): its load-time estimate, the budget and the
    measured peak RSS above the interpreter's. Fails if a run exceeds the budget."""
    res: dict[str, Any] = {}
    for label, overrides in cfg.items():
        spec = json.dumps({"kind": "memory", "scenario": MEMORY_SCENARIOS[label], "overrides": overrides})
        done = subprocess.run([sys.executable, "-m", "benchmarks.worker", spec], cwd=REPO, capture_output=True,
                              text=True, check=False)
        if done.returncode:
            raise RuntimeError(f"memory job {label} failed:\n{done.stderr}")
        got = json.loads(done.stdout.strip().splitlines()[-1])
        used = got["peak_rss_mb"] - got["base_rss_mb"]
        res[label] = {"overrides": json.dumps(overrides), "seconds": got["seconds"], "edges": got["edges"],
                      "estimate_mb": got["estimate_mb"], "peak_rss_mb": got["peak_rss_mb"], "used_mb": used,
                      "budget_mb": got["budget_mb"], "within_budget": got["peak_rss_mb"] <= got["budget_mb"]}
        if not res[label]["within_budget"]:
            raise RuntimeError(f"memory job {label}: peak {got['peak_rss_mb']:.0f} MB exceeds the budget")
    return res


def machine() -> dict[str, Any]:
    """CPU model, cores, memory, versions and measured matrix-multiply GFLOP/s."""
    name = platform.processor() or platform.machine()
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout.splitlines():
            if line.startswith("Model name:"):
                name = line.split(":", 1)[1].strip()
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    import mesa
    import numpy

    return {"cpu": name, "cores": os.cpu_count(), "memory_gib": round(mem, 1), "python": platform.python_version(),
            "numpy": numpy.__version__, "mesa": mesa.__version__, **job("gflops")}


def flatten(prefix: str, value: Any, out: list[tuple[str, Any]]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            flatten(f"{prefix}.{k}" if prefix else k, v, out)
    else:
        out.append((prefix, value))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes, one repetition (a smoke run for CI)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of one figure per line")
    p.add_argument("--only", default=None, help="comma-separated subset of w1,w2,w3,w4,w5,w6,reproduce,scale,memory "
                   "(default: all; with --quick all but memory, which starts a process per family)")
    args = p.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    global IN_PROCESS
    IN_PROCESS = args.quick
    every = "w1,w2,w3,w4,w5,w6,reproduce,scale"
    only = set((args.only or (every if args.quick else f"{every},memory")).split(","))
    start = time.perf_counter()
    results: dict[str, Any] = {"quick": args.quick, "machine": machine()}
    if "w1" in only:
        results["w1"] = workload("w1", cfg["w1"], cfg["reps"], shared_bases=True)
    if "w2" in only:
        results["w2"] = workload("w2", cfg["w2"], cfg["reps"], shared_bases=False)
    if "w3" in only:
        results["w3"] = w3(cfg["w3"], cfg["reps"])
    if "w4" in only:
        results["w4"] = w4(args.quick)
    if "w5" in only:
        results["w5"] = w5(cfg["w5"], cfg["reps"])
    if "w6" in only:
        results["w6"] = w6(cfg["w6"], cfg["reps"])
    if "reproduce" in only:
        results["reproduce"] = reproduce(cfg["reproduce"], cfg["reps"])
    if "scale" in only:
        results["scale"] = scale(cfg["scale"])
    if "memory" in only:
        results["memory"] = memory(cfg["memory"])
    results["total_s"] = time.perf_counter() - start
    if args.json:
        print(json.dumps(results))
        return 0
    lines: list[tuple[str, Any]] = []
    flatten("", results, lines)
    for key, value in lines:
        if isinstance(value, list):
            for i, row in enumerate(value):
                print(f"{key}[{i}] = " + ", ".join(f"{k}={_fmt(v)}" for k, v in row.items()))
        else:
            print(f"{key} = {_fmt(value)}")
    return 0


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


if __name__ == "__main__":
    sys.exit(main())
