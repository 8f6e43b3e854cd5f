"""The benchmark harness runs (a smoke test: small sizes; it asserts no speed target)."""

import json
import subprocess
import sys

import numpy as np
from conftest import ROOT

from benchmarks import naive, workloads
from benchmarks.floor import Floor, SampleFloor


def test_quick_benchmark_prints_the_figures_as_json():
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--json"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    for section, keys in {"w1": ("ratio_to_floor", "speedup_vs_naive", "peak_rss_mb", "model_rounds_per_s",
                                 "ratio_to_floor_all_metrics"),
                          "w2": ("speedup_vs_naive", "ratio_to_floor", "floor_speedup_vs_naive"),
                          "w4": ("ratio_to_bare", "speedup_two_cores", "engine_s_per_round", "bare_s_per_round"),
                          "w5": ("rounds_per_s", "overhead_share", "ratio_to_floor"),
                          "w6": ("gaussian_tilt_speedup", "ring_speedup", "ring_alone_s"),
                          "reproduce": ("gaussian_mechanism_cpu_s", "script_cpu_s", "ratio_to_script"),
                          "w3": ("speedup_process", "speedup_dask", "efficiency_process", "efficiency_dask"),
                          "scale": ("seconds", "peak_rss_mb", "table"),
                          "machine": ("cpu", "gflops_1_thread")}.items():
        for key in keys:
            assert key in out[section], f"{section}.{key}"
    # the figures are measured, not asserted (a 50-round quick run on a loaded machine can put the
    # engine below its floor); the test holds how they are derived
    w5 = out["w5"]
    assert w5["ratio_to_floor"] > 0 and w5["overhead_share"] == 1.0 - 1.0 / w5["ratio_to_floor"]
    assert out["reproduce"]["gaussian_mechanism_cpu_s"] > 0
    w6 = out["w6"]
    assert w6["ring_speedup"] == w6["ring_alone_s"] / w6["ring_batched_s"]


def test_baselines_compute_the_engines_numbers():
    w1 = workloads.build(workloads.w1_data(n=40, outcomes=64, steps=4))
    assert naive.check_w1(w1, steps=4) < 1e-10
    floor = Floor(w1).run(4)
    model = w1.build()
    model.run(4)
    assert np.max(np.abs(floor - model.state)) < 1e-10
    w2 = workloads.build(workloads.w2_data(n=10, dim=3, samples=100, steps=3))
    assert naive.check_w2(w2, steps=3) < 1e-10
    model = w2.build()
    model.run(3)
    assert np.max(np.abs(SampleFloor(w2).run(3) - model.state)) < 1e-10
