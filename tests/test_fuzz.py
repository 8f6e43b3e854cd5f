"""A property-based fuzzer of the command line (issue 18): hypothesis mutates the pinned scenarios
and a small study with huge and tiny numbers, integers beyond int64, deep nesting, wrong types,
unicode and path-like names, broken shares, hostile events and hostile topology files, writes
them as TOML files and runs ``ecosystem validate``, ``run`` and ``sweep`` on them in-process.

The contract checked for every case: the command succeeds with finite outputs (no infinity
anywhere; a column is NaN either in every round from round 1 on or in none), or it fails with
one ``error:`` line on stderr and exit status 2 having written nothing; no case writes outside
its output folder; no case takes longer than :data:`CASE_SECONDS` (a hang).

``ECOSYSTEM_FUZZ_EXAMPLES`` sets the number of cases per test (default: a CI-sized run).
Sizes stay small (at most a few hundred models or outcomes): memory budgets are their own tests.
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import signal
import sqlite3
import tomllib
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import DATA, RING
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("ECOSYSTEM_FUZZ_EXAMPLES", "0")) or None
CASE_SECONDS = 60
BASES = {name: tomllib.loads((DATA / f"{name}.toml").read_text()) for name in ("ring", "gaussian", "newcomer",
                                                                              "default")}
STATS: dict[str, int] = {}


# ----------------------------------------------------------------------------- writing TOML
class Deep:
    """An array nested ``depth`` levels deep (written as brackets, not built as a Python list)."""

    def __init__(self, depth: int) -> None:
        self.depth = depth


def _key(key: str) -> str:
    return json.dumps(key, ensure_ascii=False).replace("\x7f", "\\u007f")


def _value(value: Any) -> str:
    if isinstance(value, Deep):
        return "[" * value.depth + "]" * value.depth
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    if isinstance(value, str):
        return _key(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


def dumps(data: dict) -> str:
    """``data`` as TOML: one ``key = value`` line per top-level key, tables inline."""
    return "".join(f"{_key(k)} = {_value(v)}\n" for k, v in data.items())


# ----------------------------------------------------------------------------- strategies
HUGE = [1e308, -1e308, 1.7976931348623157e308, 1e200, -1e200, 1e101, 1e100, 2**63, 2**63 - 1, -(2**63) - 1,
        2**64, 10**30, 10**400]
TINY = [1e-320, 5e-324, -5e-324, 1e-300, 1e-101, 1e-100, 0.0, -0.0, 0, -1, 1e-15]
NAMES = ["../../escaped", "/ABS/escaped", "..", ".", "a/b", "a\\b", "", " ", "日本語", "\u202eevil", "CON",
         "a\x01b", "x" * 300, "ok_name", "C:evil", "name with space"]
SHARES = [0.0, 1.0, 1.0000000001, 0.9999999999, 0.5, -0.1, 1.5, 2.0, 0.3, 0.4, 0.7]


def numbers() -> st.SearchStrategy:
    return st.one_of(st.sampled_from(HUGE + TINY + SHARES), st.integers(-5, 20_000),
                     st.floats(allow_nan=True, allow_infinity=True), st.integers(-(2**80), 2**80))


def junk(leaf_depth: int = 2) -> st.SearchStrategy:
    leaves = st.one_of(numbers(), st.booleans(), st.sampled_from(NAMES),
                       st.text(st.characters(exclude_categories=("Cs",)), max_size=8),
                       st.integers(50, 700).map(Deep))
    return st.recursive(leaves, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(st.sampled_from(
                                                            ["mean", "var", "probs", "weight", "K", "x", ""]),
                                                            inner, max_size=3)), max_leaves=6)


def _places(data: Any, prefix: tuple = ()) -> list[tuple]:
    out = []
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else []
    for key, value in items:
        out.append((*prefix, key))
        if isinstance(value, dict | list):
            out.extend(_places(value, (*prefix, key)))
    return out


def _set(data: Any, place: tuple, value: Any, delete: bool) -> None:
    for key in place[:-1]:
        data = data[key]
    if delete and isinstance(data, dict):
        del data[place[-1]]
    else:
        data[place[-1]] = value


SCALES = [1e-300, 1e-120, 1e-99, 1e-50, 1e-8, 0.5, 2.0, 3.0, 1e8, 1e50, 1e99, 1e120, 1e300, -1.0]


def _get(data: Any, place: tuple) -> Any:
    for key in place:
        data = data[key]
    return data


def _numeric(data: Any, place: tuple) -> bool:
    value = _get(data, place)
    return isinstance(value, int | float) and not isinstance(value, bool)


EVENT_ACTIONS = ["set_K", "set_tau", "set_sample_size", "set_curation_ratio", "set_real_share", "scale_real_share",
                 "set_flow", "add_flow", "remove_flow", "set_retention", "add_model", "remove_model", "set_real_data"]
TARGETS = ["m0", "m1", "A", "B", "users_m0", "users_A", "all", "real", "m0->m1", "A->B", "real->A", "nobody"]


@st.composite
def events(draw) -> dict:
    return {"round": draw(st.sampled_from([1, 2, 3, 0, 2**63, 10**30])),
            "action": draw(st.sampled_from(EVENT_ACTIONS)), "target": draw(st.sampled_from(TARGETS)),
            "value": draw(st.one_of(numbers(), st.sampled_from(["replace", "accumulate"]), junk()))}


EDGE_FILES = ["a b 0\nb a 0\n", "a b -1\nb a 1\n", "a b x\nb a 1\n", "a b 1e308\nb a 1e308\n", "a b nan\nb a 1\n",
              "a b 1\nb a 2\n", "a b 1 2 3\n", "\x00\xff\xfe", "a a 1\n", "", "a b inf\nb a 1\n",
              "a b 1\nb c 1\nc a 1\n", "日本 語 1\n語 日本 1\n"]
GRAPHML = ('<?xml version="1.0"?><graphml xmlns="http://graphml.graphdrawing.org/xmlns">'
           '<key id="w" for="edge" attr.name="weight" attr.type="{t}"/><graph edgedefault="directed">'
           '<node id="a"/><node id="b"/><edge source="a" target="b"><data key="w">{w}</data></edge>'
           '<edge source="b" target="a"><data key="w">1</data></edge></graph></graphml>')
GRAPHML_FILES = [GRAPHML.format(t="string", w="SECRET"), GRAPHML.format(t="double", w="0"),
                 GRAPHML.format(t="double", w="-2"), GRAPHML.format(t="double", w="1"),
                 GRAPHML.format(t="double", w="1e400"), "<graphml><unclosed>", "SECRET not xml"]


@st.composite
def scenarios(draw) -> tuple[dict, dict[str, bytes]]:
    """A mutated pinned scenario and the files beside it (topology files)."""
    name = draw(st.sampled_from(sorted(BASES)))
    data = copy.deepcopy(BASES[name])
    files: dict[str, bytes] = {}
    kind = draw(st.sampled_from(["scale", "scale", "scale", "edits", "names", "shares", "events", "topology",
                                 "numbers"]))
    if kind == "topology" and "topology" in data:
        fmt = draw(st.sampled_from(["edgelist", "graphml"]))
        content = draw(st.sampled_from(EDGE_FILES if fmt == "edgelist" else GRAPHML_FILES))
        path = draw(st.sampled_from(["g.txt", "../outside.txt", "/etc/hostname", "sub/../g.txt", "missing.txt",
                                     "link.txt", ""]))
        files["g.txt"] = content.encode("utf-8", "surrogateescape") if isinstance(content, str) else content
        data["topology"] = {"kind": fmt, "path": path, "real_share": draw(st.sampled_from(SHARES)),
                            "curation_ratio": draw(st.sampled_from(SHARES)), "curated": "none",
                            "include_self": draw(st.booleans())}
    elif kind == "names":
        data[draw(st.sampled_from(["name", "description", "reference", "mode"]))] = draw(st.sampled_from(NAMES))
    elif kind == "shares":
        places = [p for p in _places(data) if p[-1] in ("real_share", "curation_ratio", "weight")]
        for place in draw(st.lists(st.sampled_from(places), min_size=1, max_size=3)) if places else []:
            _set(data, place, draw(st.sampled_from(SHARES)), False)
    elif kind == "scale":               # numbers of the right kind, at extreme scales: mostly accepted
        places = [p for p in _places(data) if _numeric(data, p)]
        for place in draw(st.lists(st.sampled_from(places), min_size=1, max_size=3)):
            old = _get(data, place)
            factor = draw(st.sampled_from(SCALES))
            new = old * factor if isinstance(old, float) else max(1, old) * int(factor) if factor >= 1 else old
            _set(data, place, new, False)
    elif kind == "events":
        data["events"] = draw(st.lists(events(), min_size=1, max_size=3))
        data["steps"] = 3
    else:
        places = _places(data)
        values = numbers() if kind == "numbers" else junk()
        for _ in range(draw(st.integers(1, 3))):
            place = draw(st.sampled_from(places))
            _set(data, place, draw(values), draw(st.booleans()))
            places = _places(data) or [("steps",)]
    return data, files


@st.composite
def studies(draw) -> dict:
    """A small study on the pinned ring (2 rounds) with one part mutated."""
    data: dict[str, Any] = {"scenario": str(RING), "seeds": [0], "set": {"steps": 2}}
    part = draw(st.sampled_from(["seeds", "name", "variants", "grid", "random", "set"]))
    if part == "seeds":
        data["seeds"] = draw(st.one_of(st.lists(numbers(), max_size=3),
                                       st.fixed_dictionaries({"start": numbers(), "count": st.integers(-1, 3)}),
                                       junk()))
    elif part == "name":
        data["name"] = draw(st.sampled_from(NAMES))
    elif part == "variants":
        axis = draw(st.sampled_from(["", " ", "topology", "k", "seed", "a.b", "日本", "ok"]))
        key = draw(st.sampled_from(["topology.curator.tau", "steps", "topology.n", ""]))
        # steps: bad values, not long runs (a run of 1e5 rounds is slow, not a hang)
        value = draw(st.sampled_from([-1, 0, 2, 2**63, 10**30, 1.5, "x"]) if key == "steps" else numbers())
        data["variants"] = {axis: {draw(st.sampled_from(["x", "", "y"])): {key: value}}}
    elif part == "grid":
        data["grid"] = {draw(st.sampled_from(["topology.curator.K", "topology.curator.tau", "seed", "x"])):
                        draw(st.one_of(st.lists(numbers(), max_size=3), junk()))}
    elif part == "random":
        data["random"] = {"samples": draw(st.sampled_from([1, 2, 0, 2**63, 10**30])),
                          "seed": draw(st.sampled_from([0, -1, 2**64])),
                          "topology.curator.tau": {draw(st.sampled_from(["uniform", "loguniform", "integers"])):
                                                   draw(st.lists(numbers(), min_size=2, max_size=2))}}
    else:
        data["set"] = {draw(st.sampled_from(["topology.curator.tau", "topology.curator.K", "topology.real_share",
                                              "sources.real.normal.var", "topology.model.sample_size"])):
                       draw(numbers()), "steps": 2}
    return data


# ----------------------------------------------------------------------------- the contract
class HangError(Exception):
    """A case that ran longer than :data:`CASE_SECONDS`."""


def _alarm(signum, frame):
    raise HangError(f"a case took more than {CASE_SECONDS} s")


def snapshot(root: Path) -> dict[str, float]:
    """Every file under ``root`` with its modification time, every folder (with 0: only a new one counts)."""
    return {str(p.relative_to(root)): 0 if p.is_dir() else p.stat().st_mtime_ns
            for p in root.rglob("*") if not p.is_symlink()}


def command(cli, *args) -> tuple[Any, list[str]]:
    """``cli(*args)`` and the RuntimeWarnings it raised (printed on stderr outside pytest)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        done = cli(*args)
    return done, [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]


def check(done, allowed: list[Path], root: Path, before: dict[str, float], warned: list[str] = ()) -> str:
    """The contract for one command: returns ``"ok"`` or ``"error"``; fails the test otherwise."""
    assert "Traceback" not in done.err, done.err
    assert done.status != 0 or not warned, f"a successful command warned: {warned[:3]}"
    after = snapshot(root)
    changed = {k for k, v in after.items() if before.get(k) != v}
    outside = {k for k in changed if not any((root / k).is_relative_to(a) for a in allowed)}
    assert not outside, f"written outside the output folder: {sorted(outside)[:5]}"
    if done.status == 0:
        return "ok"
    assert done.status == 2, (done.status, done.err)
    lines = done.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.err
    assert not changed, f"an error wrote {sorted(changed)[:5]}"
    return "error"


def _checked(cli, allowed: list[Path], root: Path, before: dict[str, float], *args) -> str:
    done, warned = command(cli, *args)
    return check(done, allowed, root, before, warned)


def finite_outputs(out: Path) -> None:
    """No infinity in any CSV; every numeric column is NaN in all rounds >= 1 or in none."""
    for csv in out.glob("*.csv"):
        frame = pd.read_csv(csv)
        numeric = frame.select_dtypes("number")
        assert not numeric.isin([math.inf, -math.inf]).any().any(), f"infinity in {csv.name}"
        if "step" in frame and csv.name in ("model.csv", "agents.csv"):
            later = numeric[frame["step"] >= 1]
            for column in later:
                nan = later[column].isna()
                assert nan.all() or not nan.any(), f"{csv.name}: {column} is NaN in some rounds only"
    summary = out / "summary.json"
    if summary.exists():
        json.loads(summary.read_text())     # valid JSON (no NaN tokens)


@pytest.fixture
def sandbox(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    old = signal.signal(signal.SIGALRM, _alarm)
    yield root
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)
    print(f"\nfuzz stats: {STATS}")


def _fresh(root: Path) -> tuple[Path, Path]:
    """An empty case folder (the scenario's) and working folder, and a file outside the case folder."""
    for child in root.iterdir():
        shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    case, cwd = root / "case", root / "cwd"
    case.mkdir()
    cwd.mkdir()
    (case / "sub").mkdir()
    (root / "outside.txt").write_text("a b 1\nb a 1\n")
    (case / "link.txt").symlink_to(root / "outside.txt")
    return case, cwd


def _count(key: str) -> None:
    STATS[key] = STATS.get(key, 0) + 1


@settings(max_examples=EXAMPLES or 150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.data_too_large])
@given(case=scenarios(), mode=st.sampled_from(["population", "sample"]))
def test_fuzzed_scenarios_keep_the_contract(sandbox, cli, monkeypatch, case, mode):
    data, files = case
    folder, cwd = _fresh(sandbox)
    monkeypatch.chdir(cwd)
    text = dumps(data).replace("/ABS/", f"{sandbox}/")
    (folder / "s.toml").write_text(text, encoding="utf-8")
    for name, content in files.items():
        (folder / name).write_bytes(content)
    signal.alarm(CASE_SECONDS)
    try:
        before = snapshot(sandbox)
        status = _checked(cli, [], sandbox, before, "validate", folder / "s.toml")
        _count(f"validate {status}")
        if status == "ok":
            before = snapshot(sandbox)
            out = cwd / "out"
            args = ("run", folder / "s.toml", "--steps", "4", "--mode", mode, "--quiet")
            use_out = data.get("name") not in NAMES       # a suspicious name: where does it write?
            status = _checked(cli, [out if use_out else cwd / "results"], sandbox, before,
                              *args, *(("--out", out) if use_out else ()))
            _count(f"run {status}")
            if status == "ok":
                finite_outputs(out if use_out else next((cwd / "results").iterdir()))
    except HangError:
        _count("hang")
        raise
    finally:
        signal.alarm(0)


@settings(max_examples=EXAMPLES or 40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.data_too_large])
@given(data=studies())
def test_fuzzed_studies_keep_the_contract(sandbox, cli, monkeypatch, data):
    folder, cwd = _fresh(sandbox)
    monkeypatch.chdir(cwd)
    (folder / "study.toml").write_text(dumps(data).replace("/ABS/", f"{sandbox}/"), encoding="utf-8")
    signal.alarm(CASE_SECONDS)
    try:
        before = snapshot(sandbox)
        db = cwd / "db" / "s.sqlite"
        done, warned = command(cli, "sweep", folder / "study.toml", "--db", db, "--quiet")
        assert not warned, warned[:3]
        if done.status == 1:          # some runs failed: only ever loudly, as NumericalError
            with sqlite3.connect(db) as con:
                errors = [row[0] for row in con.execute("SELECT error FROM runs WHERE status = 'failed'")]
            assert all("NumericalError" in e for e in errors), errors[:1]
            status = "failed runs"
        else:
            status = check(done, [db.parent], sandbox, before)
        _count(f"sweep {status}")
    except HangError:
        _count("hang")
        raise
    finally:
        signal.alarm(0)
