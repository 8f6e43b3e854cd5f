"""One test per defect class of issue 18, each with the minimal input: a user error is one
``error:`` line on stderr, exit status 2 and nothing written; an accepted input runs to finite
numbers or stops loudly (:class:`~ecosystem.errors.NumericalError`)."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import warnings
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from conftest import RING, ROOT, write_study

BASE = RING.read_text()


def scenario(folder: Path, text: str = BASE, file: str = "s.toml", **replace: str) -> Path:
    """``text`` with the lines starting ``key =`` replaced by ``key = value``, written to ``folder/file``."""
    lines = text.splitlines()
    for key, value in replace.items():
        hits = [i for i, line in enumerate(lines) if line.split("=")[0].strip() == key]
        assert hits, key
        lines[hits[0]] = f"{key} = {value}"
    path = folder / file
    path.write_text("\n".join(lines) + "\n")
    return path


def refused(done, *needles: str) -> None:
    """One ``error:`` line naming every needle, exit status 2."""
    assert done.status == 2, done
    lines = done.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert "Traceback" not in done.err


# ----------------------------------------------------------------------------- 1. beyond int64
@pytest.mark.parametrize("key", ["steps", "seed"])
def test_integer_beyond_int64_is_an_error(workdir, cli, key):
    refused(cli("validate", scenario(workdir, **{key: str(2**63)})), key, "2**63 - 1")


def test_integer_of_thousands_of_digits_is_an_error(workdir, cli):
    refused(cli("validate", scenario(workdir, seed="1" + "0" * 5000)), "s.toml")


def test_event_value_beyond_int64_is_an_error(workdir, cli):
    path = scenario(workdir, BASE + '[[events]]\nround = 2\naction = "scale_real_share"\ntarget = "all"\n'
                    f"value = {2**70}\n")
    refused(cli("validate", path), "scale_real_share", "2**63 - 1")


def test_study_seed_beyond_int64_is_an_error(workdir, cli):
    study = write_study(workdir, f"seeds = [{2**64}]\n")
    refused(cli("sweep", study, "--db", workdir / "s.sqlite", "--quiet"), "seeds")
    assert not (workdir / "s.sqlite").exists()


# ----------------------------------------------------------------------------- 2. deep nesting
def test_deeply_nested_array_is_an_error_naming_the_file(workdir, cli):
    path = workdir / "deep.toml"
    path.write_text(BASE + "\n[extra]\nx = " + "[" * 600 + "]" * 600 + "\n")
    refused(cli("validate", path), "deep.toml", "nested too deeply")


# ----------------------------------------------------------------------------- 3. overflow
@pytest.mark.parametrize(("key", "value", "limit"), [
    ("normal", "{ mean = 1e200, var = 0.25 }", "1e+100"),
    ("normal", "{ mean = 0.0, var = 1e-320 }", "1e-100"),
    ("tau", "1e-320", "1e-100"),
    ("weights", "[1e308]", "1e+100"),
    ("grid", "{ start = -1e308, stop = 1e308, num = 21 }", "1e+100"),
])
def test_values_that_would_overflow_are_refused_at_load(workdir, cli, key, value, limit):
    refused(cli("validate", scenario(workdir, **{key: value})), key, limit)


def test_probabilities_near_float_max_are_refused(workdir, cli):
    text = BASE.replace("normal = { mean = 0.0, var = 0.25 }", "probs = [" + ", ".join(["1e308"] * 21) + "]")
    refused(cli("validate", scenario(workdir, text)), "probs", "1e+100")


def test_set_tau_below_the_limit_is_refused(workdir, cli):
    path = scenario(workdir, BASE + '[[events]]\nround = 2\naction = "set_tau"\ntarget = "users_m0"\n'
                    "value = 1e-320\n")
    refused(cli("validate", path), "set_tau", "1e-100")


def test_gaussian_best_of_k_beyond_its_limit_is_refused(workdir, cli):
    text = (ROOT / "tests" / "data" / "gaussian.toml").read_text()
    text = text.replace('rule = "luce"', 'rule = "best_of_k"').replace("tau = 1.0\n", "")
    refused(cli("validate", scenario(workdir, text, K="3000")), "K = 3000", "500")
    assert cli("validate", scenario(workdir, text, K="500")).status == 0


def _poison(monkeypatch) -> None:
    """Every round's moments become NaN (an overflow the load limits did not foresee)."""
    from ecosystem.core import rounds

    advance = rounds.advance

    def poisoned(*args, **kwargs):
        state = advance(*args, **kwargs)
        state.rows[:] = np.nan
        return state

    monkeypatch.setattr(rounds, "advance", poisoned)


def test_non_finite_round_fails_loudly_and_writes_nothing(workdir, cli, monkeypatch):
    _poison(monkeypatch)
    done = cli("run", RING, "--out", workdir / "out", "--quiet")
    refused(done, "round 1", "not finite")
    assert not (workdir / "out").exists()


def test_non_finite_run_is_stored_as_failed_in_a_sweep(workdir, cli, monkeypatch):
    from ecosystem.formats.store import open_existing

    _poison(monkeypatch)
    study = write_study(workdir, "seeds = [0]\n[set]\nsteps = 3\n")
    done = cli("sweep", study, "--db", workdir / "s.sqlite", "--quiet")
    assert done.status == 1, done.err                   # the sweep's status for "some runs failed"
    store = open_existing(workdir / "s.sqlite")
    assert store.count("failed") == 1 and store.count("done") == 0
    assert "NumericalError" in store.errors()[0][3]
    store.close()


# ----------------------------------------------------------------------------- 4. events' limits
@pytest.mark.parametrize(("action", "target", "value"), [
    ("set_K", "users_m0", str(2**63 - 1)),
    ("set_sample_size", "m0", "1000000000000"),
    ("set_tau", "users_m0", "1e200"),
])
def test_events_obey_the_limits_of_their_keys(workdir, cli, action, target, value):
    path = scenario(workdir, BASE + f'[[events]]\nround = 2\naction = "{action}"\ntarget = "{target}"\n'
                    f"value = {value}\n")
    refused(cli("validate", path), action)


def test_recurring_event_over_a_long_run_is_refused_not_a_hang(workdir, cli):
    path = scenario(workdir, BASE + '[[events]]\nround = 1\nevery = 1\naction = "set_K"\ntarget = "users_m0"\n'
                    "value = 3\n", steps="100000")
    refused(cli("validate", path), "apply 100000 times", "10000")


# ----------------------------------------------------------------------------- 7. topology files
TOPOLOGY = BASE.split("[topology]")[0] + '[topology]\nkind = "edgelist"\npath = "PATH"\nreal_share = 0.3\n' \
    'curation_ratio = 0.0\ncurated = "none"\n'


def topology(path: str) -> str:
    return TOPOLOGY.replace("PATH", path)


@pytest.mark.parametrize("edges", ["a b 0\nb a 0\n", "a b -1\nb a 1\n", "a b 1e308\nb a 1\n"])
def test_bad_edge_list_weights_are_errors(workdir, cli, edges):
    (workdir / "g.txt").write_text(edges)
    refused(cli("validate", scenario(workdir, topology("g.txt"))), "bad weight", "edge 1")


def test_string_graphml_weight_is_an_error_that_does_not_quote_the_file(workdir, cli):
    g = nx.DiGraph()
    g.add_edge("secret_a", "secret_b", weight="SECRET")
    g.add_edge("secret_b", "secret_a", weight="SECRET")
    nx.write_graphml(g, workdir / "g.graphml")
    text = topology("g.graphml").replace('kind = "edgelist"', 'kind = "graphml"')
    done = cli("validate", scenario(workdir, text))
    refused(done, "bad weight")
    assert "secret" not in done.err.lower()


def test_unparsable_topology_file_is_not_echoed(workdir, cli):
    (workdir / "g.txt").write_text("root:x:0:0:SECRET:/root:/bin/bash extra fields here\n")
    done = cli("validate", scenario(workdir, topology("g.txt")))
    refused(done, "not a valid edgelist file")
    assert "SECRET" not in done.err


def test_topology_path_is_relative_to_the_scenario_file(workdir, cli):
    (workdir / "sub").mkdir()
    (workdir / "sub" / "g.txt").write_text("a b 1\nb a 2\n")
    path = scenario(workdir / "sub", topology("g.txt"))
    assert cli("validate", path).status == 0         # run from another folder than the file's


@pytest.mark.parametrize("where", ["../outside.txt", "/etc/passwd"])
def test_topology_path_outside_the_folder_needs_the_flag(workdir, cli, where):
    (workdir / "outside.txt").write_text("a b 1\nb a 1\n")
    (workdir / "sub").mkdir()
    path = scenario(workdir / "sub", topology(where))
    done = cli("validate", path)
    refused(done, "outside the scenario's folder", "--allow-outside-paths")
    assert "root:" not in done.err
    if where.startswith(".."):
        assert cli("validate", path, "--allow-outside-paths").status == 0
        refused(cli("validate", path))                # the flag does not stick


# ----------------------------------------------------------------------------- 8. names
@pytest.mark.parametrize("name", ['"../../x"', '"/tmp/abs"', '".."', '"a\\\\b"', '""'])
def test_scenario_name_must_be_a_plain_file_name(workdir, cli, name):
    refused(cli("run", scenario(workdir, name=name), "--quiet"), "name", "plain file name")
    assert not (workdir / "results").exists() and not (workdir.parent / "x").exists()


def test_study_name_must_be_a_plain_file_name(workdir, cli):
    study = write_study(workdir, 'name = "../escape"\n')
    refused(cli("sweep", study, "--quiet"), "name")
    assert not (workdir / "results").exists()


# ----------------------------------------------------------------------------- 9. destination
def test_folder_in_place_of_an_output_file_fails_before_moving_anything(workdir, cli):
    out = workdir / "out"
    (out / "model.csv").mkdir(parents=True)
    refused(cli("run", RING, "--steps", "2", "--out", out, "--quiet"), "model.csv", "in the way")
    assert sorted(p.name for p in out.iterdir()) == ["model.csv"]
    assert [p.name for p in workdir.iterdir() if p.name.startswith(".out.")] == []


def test_write_error_inside_the_stage_is_one_error(tmp_path):
    from ecosystem.errors import OutputError
    from ecosystem.formats.files import staged

    with pytest.raises(OutputError, match="No space left"), staged(tmp_path / "out"):
        raise OSError(28, "No space left on device")
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- 10. the store
@pytest.fixture
def swept(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("swept")
    study = write_study(folder, "seeds = [0, 1]\n[set]\nsteps = 3\n")
    from ecosystem.cli import main

    assert main(["sweep", str(study), "--db", str(folder / "s.sqlite"), "--quiet"]) == 0
    return folder / "s.sqlite"


def test_report_reads_a_database_without_creating_files_next_to_it(swept, tmp_path, cli):
    before = sorted(p.name for p in swept.parent.iterdir())
    data = swept.read_bytes()
    swept.chmod(0o444)
    done = cli("report", swept, "--out", tmp_path / "rep", "--quiet")
    assert done.status == 0, done.err
    assert sorted(p.name for p in swept.parent.iterdir()) == before     # no -wal, no -shm
    assert swept.read_bytes() == data


def test_foreign_sqlite_file_is_refused_untouched(workdir, cli):
    db = workdir / "other.sqlite"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE customers (id INTEGER, name TEXT)")
    con.commit()
    con.close()
    data = db.read_bytes()
    refused(cli("sweep", write_study(workdir, "seeds = [0]\n"), "--db", db, "--quiet"), "another application")
    refused(cli("report", db, "--out", workdir / "rep"), "another application")
    assert db.read_bytes() == data
    assert sorted(p.name for p in workdir.iterdir()) == ["other.sqlite", "s.toml"]


def test_full_database_is_one_error_and_keeps_the_stored_runs(swept):
    from ecosystem.errors import StoreError
    from ecosystem.formats.store import Store

    store = Store(swept)
    done = store.count("done")
    result = {"setting_id": store.table("settings")["setting_id"][0], "seed": 99, "status": "failed",
              "error": "x" * 200_000}
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count = {pages}")              # the disk is full
    with pytest.raises(StoreError, match="full"):
        store.record(result)
    assert store.count("done") == done and store.count() == done
    store.close()


# ----------------------------------------------------------------------------- 12. free port
def test_port_in_time_wait_counts_as_free():
    sys.path.insert(0, str(ROOT))
    from viz.server import port_is_free

    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = server.accept()
    conn.close()                # the server side closes first: its end stays in TIME_WAIT
    client.close()
    server.close()
    assert port_is_free(port)


# ----------------------------------------------------------------------------- 13. minor
def test_duplicate_metrics_are_refused(workdir, cli):
    refused(cli("validate", scenario(workdir, BASE.replace('mode = "population"', 'mode = "population"\n'
                                                           'metrics = ["alignment", "alignment"]'))), "metrics")


def test_empty_variant_axis_name_is_refused(workdir, cli):
    refused(cli("sweep", write_study(workdir, '[variants.""]\na = { steps = 2 }\n'), "--quiet"), "variants")


def test_large_accepted_values_run_without_warnings(workdir, cli):
    path = scenario(workdir, normal="{ mean = 1e100, var = 1e-100 }", grid="{ start = -1e100, stop = 1e100, num = 21 }")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        done = cli("run", path, "--steps", "3", "--out", workdir / "out", "--quiet")
    assert done.status == 0 and done.err == "", done.err


def test_closed_stdout_pipe_is_not_a_traceback(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "ecosystem", "run", str(RING), "--steps", "2",
                             "--out", str(tmp_path / "out")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=ROOT)
    proc.stdout.close()                                   # `| head -0`: the reader is gone
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert "Traceback" not in err and "BrokenPipe" not in err, err
