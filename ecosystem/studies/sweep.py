"""Sweeps: every (setting, seed) of a study run once, on any ``concurrent.futures.Executor``.

The function workers call, :func:`run_task`, is top-level and takes and returns plain
data (dicts of numbers, strings and lists), so it pickles to a process pool or a Dask
cluster alike; a run's numbers depend only on its task (scenario, overrides, seed), not
on the executor or the number of workers. The sweep loop keeps a bounded window of runs
in flight and stores each one as it finishes (one transaction each, see
:mod:`ecosystem.formats.store`), so a killed sweep loses at most the runs in flight.
Numbers that are not finite come back as JSON holds them (:func:`ecosystem.formats.files.json_number`:
NaN is None, infinities ``"inf"`` and ``"-inf"``), which is also how the database stores them.

The command ``ecosystem sweep`` is :mod:`ecosystem.cli.sweep`; :class:`~ecosystem.studies.batch.BatchModel`
is an :class:`EcosystemModel` built from keyword parameters, for users of ``mesa.batch_run``.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from ecosystem.core.model import ECOSYSTEM_COLUMNS, EcosystemModel
from ecosystem.errors import EcosystemError, NumericalError
from ecosystem.formats import study as study_mod
from ecosystem.formats.files import json_number as _num
from ecosystem.formats.scenario import Scenario, parse

CONVERGED_CHANGE = 1e-8
"""A run has converged when ``max_change`` (relative parameter change per round) stays below this."""
RATE_FLOOR = 1e-12
"""``max_change`` values below this are float noise and are left out of the rate estimate."""

Task = dict[str, Any]
Result = dict[str, Any]


# ---------------------------------------------------------------------------- one run
def make_task(study: study_mod.Study, setting: study_mod.Setting, seed: int) -> Task:
    """The plain-data description of one run, as sent to a worker."""
    return {
        "setting_id": setting.id, "seed": seed, "origin": study.scenario_path,
        "scenario": study.scenario_data(setting, seed), "analysis": study.analysis, "policy": study.policy,
    }


def run_task(task: Task) -> Result:
    """Run one (setting, seed); never raises: a failure comes back as ``status = "failed"``.

    Returns ``setting_id``, ``seed``, ``status`` (``done`` or ``failed``), ``started`` and
    ``finished`` (Unix time, s), ``wall_time`` (s), ``worker`` (host:pid), ``error``
    (traceback text or None), ``rounds`` (dict: ``step`` and each ecosystem column ->
    list over rounds 0..steps), ``models`` (list of per-model final metric dicts),
    ``summary`` (final ecosystem metrics, ``observed_rate``, ``converged``,
    ``converged_round``, ``steps``, ``n_models``), ``analysis`` (the stable-point
    analysis dict, ``{"error": traceback}`` if the analysis raised, or None) and ``policy``
    (:func:`policy_of` when the study has a ``[policy]``, ``{"error": traceback}`` if it raised, or None).
    """
    started, clock = time.time(), time.perf_counter()
    out = _blank(task, started)
    try:
        with _one_blas_thread():
            scenario = parse(task["scenario"], origin=task.get("origin", "<study>"))
            model = scenario.build(seed=task["seed"])
            model.run(scenario.steps)
            _finish(task, scenario, model, out)
    except Exception:  # a failed run is data: recorded with its traceback, the sweep goes on
        out["status"] = "failed"
        out["error"] = traceback.format_exc()
        out["rounds"] = out["models"] = out["summary"] = out["analysis"] = out["policy"] = None
    out["finished"] = time.time()
    out["wall_time"] = time.perf_counter() - clock
    return out


def run_tasks(tasks: list[Task]) -> list[Result]:
    """Run several seeds of one setting as one :class:`~ecosystem.core.replicates.ReplicateBatch`
    when the batch runs them (sample mode, no events, the same number of rounds, and what else
    :mod:`ecosystem.core.replicates` needs), else one by one; each result is :func:`run_task`'s
    for its task, number for number. In a batch, ``started`` and ``finished`` are the batch's and
    ``wall_time`` is its share (the batch's over its runs). A scenario that does not parse or build,
    or a run whose moments overflow, sends every task to :func:`run_task`, so each failure is that
    run's own; an error of the batch itself is raised (the sweep records the runs as failed with it)."""
    if len(tasks) < 2:
        return [run_task(t) for t in tasks]
    from ecosystem.core.replicates import ReplicateBatch

    started, clock = time.time(), time.perf_counter()
    alone = lambda: [run_task(t) for t in tasks]  # noqa: E731
    with _one_blas_thread():
        try:
            scenarios = [parse(t["scenario"], origin=t.get("origin", "<study>")) for t in tasks]
            if len({s.steps for s in scenarios}) > 1 or any(s.mode != "sample" or s.events for s in scenarios):
                return alone()                           # not a batch: nothing but the parse was spent
            batch = ReplicateBatch([s.build(seed=t["seed"]) for s, t in zip(scenarios, tasks, strict=True)])
        except (ValueError, EcosystemError):             # a bad scenario, or one a batch does not run
            return alone()
        try:
            for _ in range(scenarios[0].steps):
                batch.step()
        except NumericalError:
            return alone()
        results = []
        for task, scenario, model in zip(tasks, scenarios, batch.members, strict=True):
            results.append(out := _blank(task, started))
            _finish(task, scenario, model, out)
    finished, share = time.time(), (time.perf_counter() - clock) / len(tasks)
    for out in results:
        out.update(finished=finished, wall_time=share)
    return results


def _blank(task: Task, started: float) -> Result:
    """A run's result before it has run."""
    return {"setting_id": task["setting_id"], "seed": task["seed"], "started": started,
            "worker": f"{socket.gethostname()}:{os.getpid()}", "error": None,
            "rounds": None, "models": None, "summary": None, "analysis": None, "policy": None}


def _one_blas_thread():
    """BLAS limited to one thread: a multithreaded BLAS sums in an order that depends on its
    thread count, which would make the analysis's last digits depend on the executor."""
    return threadpool_limits(limits=1, user_api="blas")


def _finish(task: Task, scenario: Scenario, model: EcosystemModel, out: Result) -> None:
    """A finished run's results into ``out``: what :func:`collect` reads, the analysis and the policy."""
    out.update(collect(model), status="done")
    if task.get("analysis"):
        try:
            out["analysis"] = analyse(model)
        except Exception:  # the run itself is fine: keep it, with the analysis error
            out["analysis"] = {"error": traceback.format_exc()}
    if task.get("policy"):
        try:
            out["policy"] = policy_of(scenario.build(seed=task["seed"], mode="population"), task["policy"])
        except Exception:  # as for the analysis: the run is kept, with the policy's error
            out["policy"] = {"error": traceback.format_exc()}


def collect(model: EcosystemModel) -> Result:
    """Per-round ecosystem metrics, final per-model metrics and a summary, as plain data."""
    eco = model.ecosystem_frame()
    rounds = {"step": [int(s) for s in eco["step"]]}
    for column in ECOSYSTEM_COLUMNS:
        rounds[column] = [_num(v) for v in eco[column]]
    agents = model.agents_frame()
    first = agents[agents["step"] == agents["step"].min()].set_index("model")
    models = []
    for agent in model.model_agents:
        models.append({
            "model": str(agent.name), "initial_alignment": _num(first.loc[agent.name, "alignment"]),
            "alignment": _num(agent.alignment), "diversity": _num(agent.diversity), "drift": _num(agent.drift),
            "change": _num(agent.change), "curation_ratio": float(agent.curation_ratio),
            "real_share": float(agent.real_share),
        })
    rate, converged_round = convergence(eco["max_change"].to_numpy(dtype=float)[1:])
    summary = {column: _num(model.ecosystem[column]) for column in ECOSYSTEM_COLUMNS}
    summary.update(steps=int(model.steps), n_models=len(model.model_agents), observed_rate=_num(rate),
                   converged=converged_round is not None, converged_round=converged_round)
    return {"rounds": rounds, "models": models, "summary": summary}


def convergence(change: np.ndarray) -> tuple[float | None, int | None]:
    """Observed linear convergence rate and the round from which the run stays converged.

    ``change[t - 1]`` is ``max_change`` of round t (t = 1..T). The rate is
    ``exp(slope)`` of a least-squares line through ``log change`` over the second half of
    the rounds up to the last one above :data:`RATE_FLOOR` (the geometric tail, before
    float noise): the geometric mean ratio per round, right also when the decay is a
    staircase (a complex or negative leading eigenvalue); None with fewer than 4 such
    rounds. The converged round is the first t after which every change is below
    :data:`CONVERGED_CHANGE` (None if the last one is not).
    """
    change = np.where(np.isfinite(change), change, np.inf)
    above = np.flatnonzero((change > RATE_FLOOR) & np.isfinite(change))
    rate = None
    if above.size >= 4:
        t = np.arange(above[0], above[-1] + 1)
        t = t[t.size // 2:]
        if t.size >= 4:
            logs = np.log(np.maximum(change[t], RATE_FLOOR))
            rate = float(np.exp(np.polyfit(t, logs, 1)[0]))
    below = change < CONVERGED_CHANGE
    if change.size == 0 or not below[-1]:
        return rate, None
    not_below = np.flatnonzero(~below)
    return rate, int(not_below[-1] + 2) if not_below.size else 1


def analyse(model: EcosystemModel) -> dict:
    """Stable-point analysis of a finished run (:func:`ecosystem.analysis.analyze`), as plain data."""
    from ecosystem import analysis

    return analysis.analyze(model).to_dict()


def policy_of(model: EcosystemModel, settings: dict) -> dict:
    """The optimal and siloed curation policies of a run's ecosystem (its graph before any event,
    population mode, at the stable point), exactly as ``ecosystem optimize`` computes them for the
    same ``settings`` (a study's ``[policy]``: ``budget``, ``objective``, ``max_ratio``, ``absorb``):
    :meth:`ecosystem.analysis.policy.PolicyReport.to_dict` without the engine runs of each policy."""
    from ecosystem.analysis import policy

    problem = policy.make_problem(model, settings["budget"], settings["objective"],
                                  max_ratio=settings["max_ratio"], absorb=settings["absorb"])
    return policy.optimize(problem, simulate_policies=False).to_dict()


# ---------------------------------------------------------------------------- executors
def _quiet_worker() -> None:
    """Workers ignore Ctrl-C: the sweep process alone handles it (and stops them)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextmanager
def executor(workers: int = 1, dask: str | None = None) -> Iterator[cf.Executor]:
    """A ``concurrent.futures.Executor``: serial (1 worker), a process pool, or Dask.

    ``dask`` is a scheduler address (``tcp://host:8786``) or ``local`` for a
    ``LocalCluster`` of ``workers`` single-threaded worker processes on 127.0.0.1.
    Process pools use the ``spawn`` start method (no state is inherited from the sweep
    process, e.g. its open database).
    """
    if dask is not None:
        try:
            import dask as dask_config
            from distributed import Client, LocalCluster
        except ImportError:
            raise ModuleNotFoundError(
                "--dask needs Dask distributed: pip install -e \".[dask]\"") from None
        cluster = None
        if dask == "local":
            # no dashboard, so no use for the workers' statistical profiler: sampling every
            # stack each 10 ms made runs 5-10% slower here
            with dask_config.config.set({"distributed.worker.profile.enabled": False}):
                cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=None, silence_logs=40)
            client = Client(cluster)
        else:
            client = Client(dask, timeout=30)
        try:
            yield client.get_executor(pure=False)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
        return
    if workers <= 1:
        yield SerialExecutor()
        return
    pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                  initializer=_quiet_worker)
    try:
        _start_workers(pool, workers)
        yield pool
    except BaseException:
        _stop(pool)
        raise
    else:
        pool.shutdown(wait=True)


def _start_workers(pool: cf.ProcessPoolExecutor, workers: int) -> None:
    """Start the workers now, ignoring SIGINT from birth (a Ctrl-C while they import is not theirs)."""
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: workers start on demand
        return
    try:
        for _ in range(workers):
            pool.submit(int)  # each submit without an idle worker starts one
    finally:
        signal.signal(signal.SIGINT, previous)


def _stop(pool: cf.ProcessPoolExecutor) -> None:
    """Cancel queued runs and end the workers now (runs in flight are lost, not stored)."""
    processes = list(getattr(pool, "_processes", {}).values())  # no public API for this
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()


class SerialExecutor(cf.Executor):
    """Runs each submitted call at once in this process (for ``--workers 1`` and debugging)."""

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> cf.Future:
        future: cf.Future = cf.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as err:
            future.set_exception(err)
            if not isinstance(err, Exception):
                raise
        return future


# ---------------------------------------------------------------------------- the sweep
def execute(study: study_mod.Study, store, pool: cf.Executor, *, task: Callable[[Task], Result] = run_task,
            window: int = 4, progress: bool = False, batch: int = 1) -> dict[str, int]:
    """Run every unfinished (setting, seed) of ``study`` on ``pool``; store each as it finishes.

    Runs stored as ``done`` are skipped; failed ones are run again. At most ``window``
    submissions are in flight at once. ``task`` is the function workers call (a top-level
    function of a task dict; :func:`run_task` unless testing). ``batch`` > 1 submits up to that
    many seeds of one setting together, to :func:`run_tasks` (a replicate batch where it runs
    them; the same numbers). Returns counts: ``total``, ``skipped`` (already done), ``done`` and
    ``failed`` (this sweep).
    """
    from tqdm.auto import tqdm

    if batch > 1 and task is not run_task:
        raise ValueError("a custom task function runs one run at a time: batch must be 1")
    store.begin(study)
    finished = store.finished()
    todo = [(s, seed) for s, seed in study.runs() if (s.id, seed) not in finished]
    counts = {"total": len(study.settings) * len(study.seeds), "skipped": 0, "done": 0, "failed": 0}
    counts["skipped"] = counts["total"] - len(todo)
    pending = iter(_groups(todo, batch))
    running: dict[cf.Future, list[tuple[study_mod.Setting, int]]] = {}
    bar = tqdm(total=len(todo), desc=study.name, unit="run", disable=not progress, file=sys.stderr,
               dynamic_ncols=True, smoothing=0.1)
    try:
        while True:
            while len(running) < window:
                group = next(pending, None)
                if group is None:
                    break
                tasks = [make_task(study, *run) for run in group]
                future = pool.submit(task, tasks[0]) if len(tasks) == 1 else pool.submit(run_tasks, tasks)
                running[future] = group
            if not running:
                break
            done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for future in done:
                group = running.pop(future)
                try:
                    results = future.result()
                    results = [results] if len(group) == 1 else results
                except Exception as err:  # the worker itself died (e.g. out of memory)
                    now = time.time()
                    results = [{"setting_id": setting.id, "seed": seed, "status": "failed", "started": now,
                                "finished": now, "wall_time": None, "worker": None,
                                "error": "the worker function raised (or its process died):\n"
                                         + "".join(traceback.format_exception(err))} for setting, seed in group]
                for result in results:
                    store.record(result)
                    counts[result["status"]] += 1
                    bar.update()
                if counts["failed"]:
                    bar.set_postfix(failed=counts["failed"], refresh=False)
    finally:
        bar.close()
    return counts


def _groups(runs: list[tuple[study_mod.Setting, int]], size: int) -> list[list[tuple[study_mod.Setting, int]]]:
    """The runs in groups of at most ``size`` seeds of one setting: each setting's first ``size``
    seeds, setting after setting, then the next ``size``, ... (a study's runs go seed after seed
    over all settings, so a partial sweep has seen every setting)."""
    by_setting: dict[str, list[tuple[study_mod.Setting, int]]] = {}
    for run in runs:
        by_setting.setdefault(run[0].id, []).append(run)
    chunks = [[mine[i:i + size] for i in range(0, len(mine), size)] for mine in by_setting.values()]
    return [c[k] for k in range(max(map(len, chunks), default=0)) for c in chunks if k < len(c)]
