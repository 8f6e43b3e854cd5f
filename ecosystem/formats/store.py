"""The results database of a study: one SQLite file, written one finished run at a time.

Tables (all values through bound parameters; times in Unix seconds, durations in s):

- ``meta(key, value)``: the study's name, file, base scenario, fingerprint, axes, ``[policy]``;
- ``settings(setting_id, position, labels, overrides, values_json)``: every setting (JSON text);
- ``runs(run_id, setting_id, seed, status, started, finished, wall_time, worker, error)``,
  UNIQUE on (setting_id, seed): a run is stored once, whatever happens;
- ``rounds(run_id, step, <ecosystem columns>)``: per-round ecosystem metrics;
- ``models(run_id, model, initial_alignment, alignment, diversity, drift, change,
  curation_ratio, real_share)``: final per-model metrics;
- ``summaries(run_id, steps, n_models, <final ecosystem columns>, observed_rate,
  converged, converged_round)``;
- ``analyses(run_id, spectral_radius, converged, observed_rate, n_backfire, result, error)``:
  stable-point analysis (``result`` is the full JSON; ``error`` the traceback if the
  analysis raised, the run itself being kept), when the study asks for it;
- ``policies(run_id, objective, budget, optimal, siloed, price_of_siloing, curate_less, result,
  error)``: the optimal and siloed curation policies of a study with a ``[policy]`` table
  (``optimal``/``siloed``: their predicted welfare; ``curate_less``: the models the optimum asks
  to curate less, comma-separated; ``result`` the full JSON of ``policy.json``; ``error`` as above).

The database runs in WAL mode and each finished run is one transaction, so a sweep
killed at any moment (Ctrl-C or SIGKILL) leaves every stored run whole and no run twice.

Numbers that are not finite are stored as JSON holds them (:mod:`ecosystem.formats.files`):
a NaN is NULL, an infinity the text ``'inf'`` or ``'-inf'`` (in REAL columns too), and the
JSON columns are written by :func:`~ecosystem.formats.files.to_json`; :meth:`Store.table`
(and everything reading through it) turns ``'inf'`` and ``'-inf'`` in REAL columns back into floats.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pandas as pd

from ecosystem.core.model import ECOSYSTEM_COLUMNS
from ecosystem.errors import StoreError
from ecosystem.formats.files import INFINITIES, json_number, to_json

SCHEMA_VERSION = "1"
MODEL_COLUMNS = ("initial_alignment", "alignment", "diversity", "drift", "change", "curation_ratio", "real_share")
SUMMARY_COLUMNS = ("steps", "n_models", *ECOSYSTEM_COLUMNS, "observed_rate", "converged", "converged_round")
ANALYSIS_COLUMNS = ("spectral_radius", "converged", "observed_rate", "n_backfire")
REAL_SUMMARY_COLUMNS = frozenset((*ECOSYSTEM_COLUMNS, "observed_rate"))

_ECO = ", ".join(f"{c} REAL" for c in ECOSYSTEM_COLUMNS)
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS settings (
    setting_id TEXT PRIMARY KEY, position INTEGER NOT NULL, labels TEXT NOT NULL,
    overrides TEXT NOT NULL, values_json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY, setting_id TEXT NOT NULL REFERENCES settings(setting_id),
    seed INTEGER NOT NULL, status TEXT NOT NULL CHECK (status IN ('done', 'failed')),
    started REAL, finished REAL, wall_time REAL, worker TEXT, error TEXT,
    UNIQUE (setting_id, seed));
CREATE TABLE IF NOT EXISTS rounds (
    run_id INTEGER NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE, step INTEGER NOT NULL, {_ECO},
    PRIMARY KEY (run_id, step));
CREATE TABLE IF NOT EXISTS models (
    run_id INTEGER NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE, model TEXT NOT NULL,
    {", ".join(f"{c} REAL" for c in MODEL_COLUMNS)}, PRIMARY KEY (run_id, model));
CREATE TABLE IF NOT EXISTS summaries (
    run_id INTEGER PRIMARY KEY REFERENCES runs(run_id) ON DELETE CASCADE, steps INTEGER, n_models INTEGER,
    {_ECO}, observed_rate REAL, converged INTEGER, converged_round INTEGER);
CREATE TABLE IF NOT EXISTS analyses (
    run_id INTEGER PRIMARY KEY REFERENCES runs(run_id) ON DELETE CASCADE, spectral_radius REAL,
    converged INTEGER, observed_rate REAL, n_backfire INTEGER, result TEXT, error TEXT);
CREATE TABLE IF NOT EXISTS policies (
    run_id INTEGER PRIMARY KEY REFERENCES runs(run_id) ON DELETE CASCADE, objective TEXT, budget REAL,
    optimal REAL, siloed REAL, price_of_siloing REAL, curate_less TEXT, result TEXT, error TEXT);
"""


class Store:
    """A study's SQLite results database (created if missing). Use from one thread.

    ``readonly``: open an existing database for reading only, writing nothing (no ``-wal`` or
    ``-shm`` files either when the database was closed cleanly): a read-only file or folder works.
    A SQLite file of another application is refused before anything is written to it.
    """

    def __init__(self, path: str | Path, readonly: bool = False) -> None:
        self.path = Path(path)
        try:
            if readonly:
                self.db = _connect_readonly(self.path)
                _refuse_foreign(self.db, self.path)
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            _refuse_foreign(self.db, self.path)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            with self._transaction():
                for statement in _statements(SCHEMA):
                    self.db.execute(statement)
                self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
        except (sqlite3.DatabaseError, OSError) as err:
            raise StoreError(f"{self.path}: not a usable results database: {err}") from None

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------------ writing
    def _transaction(self):
        return _Transaction(self.db)

    def check(self, study) -> None:
        """Raise :class:`StoreError` if this database holds another study's runs."""
        row = self.db.execute("SELECT value FROM meta WHERE key = 'fingerprint'").fetchone()
        if row is not None and row[0] != study.fingerprint:
            name = self.meta().get("name", "?")
            raise StoreError(f"{self.path}: holds runs of another study ({name!r}) or of an edited base scenario "
                             "or [set]; use another --db, or delete this one to start over")

    def begin(self, study) -> None:
        """Record the study (meta and settings) before its first run is stored."""
        self.check(study)
        meta = {"name": study.name, "description": study.description, "study": study.path,
                "scenario": study.scenario_path, "fingerprint": study.fingerprint,
                "axes": to_json(study.axes), "fixed": to_json(study.fixed, default=str),
                "seeds": to_json(study.seeds), "analysis": to_json(study.analysis),
                "policy": to_json(study.policy)}
        with self._transaction():
            for key, value in meta.items():
                self.db.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                                (key, value))
            start = self.db.execute("SELECT COALESCE(MAX(position) + 1, 0) FROM settings").fetchone()[0]
            for i, s in enumerate(study.settings):
                self.db.execute("INSERT OR IGNORE INTO settings VALUES (?, ?, ?, ?, ?)",
                                (s.id, start + i, to_json(s.labels), to_json(s.overrides, default=str),
                                 to_json(s.values, default=str)))

    def record(self, result: dict[str, Any]) -> int | None:
        """Store one finished run (one transaction); returns its ``run_id``.

        A run already stored as ``done`` is left as it is (None is returned); a ``failed``
        one is replaced, keeping its ``run_id``.
        """
        with self._transaction():
            row = self.db.execute(
                "INSERT INTO runs (setting_id, seed, status, started, finished, wall_time, worker, error) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (setting_id, seed) DO UPDATE SET "
                "status = excluded.status, started = excluded.started, finished = excluded.finished, "
                "wall_time = excluded.wall_time, worker = excluded.worker, error = excluded.error "
                "WHERE runs.status != 'done' RETURNING run_id",
                (result["setting_id"], int(result["seed"]), result["status"], result.get("started"),
                 result.get("finished"), result.get("wall_time"), result.get("worker"), result.get("error")),
            ).fetchone()
            if row is None:
                return None
            run_id = row[0]
            for table in ("rounds", "models", "summaries", "analyses", "policies"):
                self.db.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
            if result["status"] != "done":
                return run_id
            rounds = result["rounds"]
            columns = ("step", *ECOSYSTEM_COLUMNS)
            self.db.executemany(
                f"INSERT INTO rounds (run_id, {', '.join(columns)}) VALUES (?{', ?' * len(columns)})",
                [(run_id, step, *map(_real, row))
                 for step, *row in zip(*(rounds[c] for c in columns), strict=True)])
            self.db.executemany(
                f"INSERT INTO models (run_id, model, {', '.join(MODEL_COLUMNS)}) "
                f"VALUES (?, ?{', ?' * len(MODEL_COLUMNS)})",
                [(run_id, m["model"], *(_real(m[c]) for c in MODEL_COLUMNS)) for m in result["models"]])
            summary = result["summary"]
            self.db.execute(
                f"INSERT INTO summaries (run_id, {', '.join(SUMMARY_COLUMNS)}) "
                f"VALUES (?{', ?' * len(SUMMARY_COLUMNS)})",
                (run_id, *(_real(summary[c]) if c in REAL_SUMMARY_COLUMNS else summary[c]
                           for c in SUMMARY_COLUMNS)))
            analysis = result.get("analysis")
            if analysis and "error" in analysis:
                self.db.execute("INSERT INTO analyses (run_id, error) VALUES (?, ?)", (run_id, analysis["error"]))
            elif analysis:
                self.db.execute(
                    "INSERT INTO analyses VALUES (?, ?, ?, ?, ?, ?, NULL)",
                    (run_id, _real(analysis.get("spectral_radius")), _bool(analysis.get("converged")),
                     _real(analysis.get("observed_rate")), len(analysis.get("backfire") or []),
                     to_json(analysis, default=_json_default)))
            pol = result.get("policy")
            if pol and "error" in pol:
                self.db.execute("INSERT INTO policies (run_id, error) VALUES (?, ?)", (run_id, pol["error"]))
            elif pol:
                self.db.execute(
                    "INSERT INTO policies VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                    (run_id, pol["objective_kind"], _real(pol["budget"]),
                     _real(pol["policies"]["optimal"]["objective"]["predicted"]),
                     _real(pol["policies"]["siloed"]["objective"]["predicted"]), _real(pol["price_of_siloing"]),
                     ",".join(pol["curate_less"]), to_json(pol, default=_json_default)))
            return run_id

    # ------------------------------------------------------------------ reading
    def finished(self) -> set[tuple[str, int]]:
        """(setting_id, seed) of every run stored as ``done``."""
        return set(self.db.execute("SELECT setting_id, seed FROM runs WHERE status = 'done'"))

    def count(self, status: str | None = None) -> int:
        """Stored runs (of one ``status``, or all)."""
        if status is None:
            return self.db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        return self.db.execute("SELECT COUNT(*) FROM runs WHERE status = ?", (status,)).fetchone()[0]

    def meta(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT key, value FROM meta"))

    def runs(self) -> pd.DataFrame:
        """One row per stored run: ``run_id``, the swept settings (variant labels and dotted keys),
        ``seed``, ``status``, times, ``error``, the final ecosystem metrics and convergence,
        and the analysis columns when there are any."""
        meta = self.meta()
        axes = json.loads(meta.get("axes", "[]"))
        rows = self.db.execute(
            "SELECT r.run_id, r.setting_id, s.labels, s.values_json, r.seed, r.status, r.wall_time, r.started, "
            "r.finished, r.worker, r.error FROM runs r JOIN settings s USING (setting_id) "
            "ORDER BY s.position, r.seed").fetchall()
        records = []
        for run_id, setting_id, labels, values, seed, status, wall, started, finished, worker, error in rows:
            rec: dict[str, Any] = {"run_id": run_id, "setting_id": setting_id}
            settings = {**json.loads(labels), **json.loads(values)}
            for axis in axes:
                rec[axis] = settings.get(axis)
            for key, value in settings.items():
                rec.setdefault(key, value)
            rec.update(seed=seed, status=status, wall_time=wall, started=started, finished=finished,
                       worker=worker, error=_last_line(error))
            records.append(rec)
        base = ["run_id", "setting_id", *axes, "seed", "status", "wall_time", "started", "finished", "worker", "error"]
        frame = pd.DataFrame.from_records(records) if records else pd.DataFrame(columns=base)
        summaries = self.table("summaries")
        frame = frame.merge(summaries, on="run_id", how="left")
        analyses = self.table("analyses").drop(columns=["result"])
        analyses["error"] = analyses["error"].map(_last_line)
        if len(analyses):
            frame = frame.merge(analyses.add_prefix("analysis_").rename(columns={"analysis_run_id": "run_id"}),
                                on="run_id", how="left")
        if self.has("policies"):
            policies = self.table("policies").drop(columns=["result"])
            policies["error"] = policies["error"].map(_last_line)
            if len(policies):
                frame = frame.merge(policies.add_prefix("policy_").rename(columns={"policy_run_id": "run_id"}),
                                    on="run_id", how="left")
        return frame

    def has(self, name: str) -> bool:
        """Whether the database has table ``name`` (a database written before ``policies`` existed
        has none, and a read-only one gets none)."""
        return self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                               (name,)).fetchone() is not None

    def table(self, name: str) -> pd.DataFrame:
        """A whole table as a DataFrame (``rounds``, ``models``, ``summaries``, ``analyses``, ``policies``,
        ``settings``); infinities stored as ``'inf'`` / ``'-inf'`` in REAL columns come back as floats."""
        if name not in ("rounds", "models", "summaries", "analyses", "policies", "settings", "runs", "meta"):
            raise ValueError(f"no table {name!r}")
        cursor = self.db.execute(f"SELECT * FROM {name}")
        frame = pd.DataFrame(cursor.fetchall(), columns=[d[0] for d in cursor.description])
        for column, kind in self.db.execute(f"SELECT name, type FROM pragma_table_info('{name}')"):
            if (kind == "REAL" and not pd.api.types.is_float_dtype(frame[column])
                    and frame[column].isin(list(INFINITIES)).any()):
                frame[column] = frame[column].map(lambda v: INFINITIES.get(v, v)).astype(float)
        return frame

    def keyed(self, name: str) -> pd.DataFrame:
        """A per-run table (``rounds``, ``models``, ``summaries``, ``analyses``) keyed by
        ``setting_id`` and ``seed`` instead of ``run_id``, sorted: comparable across databases."""
        frame = self.table(name).merge(self.table("runs")[["run_id", "setting_id", "seed"]], on="run_id")
        keys = ["setting_id", "seed", *[c for c in ("step", "model") if c in frame]]
        frame = frame.drop(columns=["run_id"]).sort_values(keys, kind="stable").reset_index(drop=True)
        return frame[keys + [c for c in frame.columns if c not in keys]]

    def errors(self) -> list[tuple[int, str, int, str]]:
        """(run_id, setting_id, seed, full traceback) of every failed run."""
        return self.db.execute("SELECT run_id, setting_id, seed, error FROM runs WHERE status = 'failed' "
                               "ORDER BY run_id").fetchall()


def export(db: str | Path, out: str | Path, parquet: bool = False) -> list[Path]:
    """Write ``runs``, ``rounds``, ``models`` and ``analyses`` of ``db`` as CSV (and Parquet) files in ``out``."""
    store = open_existing(db)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    try:
        tables = {"runs": store.runs(), "rounds": store.table("rounds"), "models": store.table("models")}
        analyses = store.table("analyses")
        if len(analyses):
            tables["analyses"] = analyses
        for name, frame in tables.items():
            frame.to_csv(out / f"{name}.csv", index=False)
            written.append(out / f"{name}.csv")
            if parquet:
                frame.to_parquet(out / f"{name}.parquet", index=False)
                written.append(out / f"{name}.parquet")
    finally:
        store.close()
    return written


def open_existing(db: str | Path) -> Store:
    """A :class:`Store` on an existing results database (never creates one)."""
    path = Path(db)
    if not path.is_file():
        raise StoreError(f"{path}: no such results database")
    with path.open("rb") as fh:
        if not fh.read(16).startswith(b"SQLite format 3"):
            raise StoreError(f"{path}: not a results database (not SQLite)")
    store = Store(path, readonly=True)
    if "fingerprint" not in store.meta():
        store.close()
        raise StoreError(f"{path}: not a results database of a study (no study recorded)")
    return store


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error), retrying while another writer holds the lock."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self):
        for attempt in range(600):
            try:
                self.db.execute("BEGIN IMMEDIATE")
                return self
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) or attempt == 599:
                    raise
                time.sleep(0.1)
        return self

    def __exit__(self, kind, value, tb) -> None:
        try:
            if kind is None:
                self.db.execute("COMMIT")
                return
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
        except sqlite3.Error as err:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise StoreError(f"cannot write to the results database: {err}; the runs stored before "
                             f"are kept") from None
        if isinstance(value, sqlite3.Error):        # disk full, read-only file: the transaction is undone
            raise StoreError(f"cannot write to the results database: {value}; the runs stored before "
                             f"are kept") from None


TABLES = frozenset(("meta", "settings", "runs", "rounds", "models", "summaries", "analyses", "policies"))
"""The tables of a results database (anything else marks another application's file)."""


def _connect_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection that creates no file: ``immutable`` unless a ``-wal`` file shows a
    writer is (or was, killed) at work, whose uncommitted pages must then be read too."""
    if not path.is_file():
        raise StoreError(f"{path}: no such results database")
    wal = path.with_name(path.name + "-wal")
    uri = path.absolute().as_uri() + ("?mode=ro" if wal.exists() else "?mode=ro&immutable=1")
    return sqlite3.connect(uri, uri=True, timeout=60, isolation_level=None)


def _refuse_foreign(db: sqlite3.Connection, path: Path) -> None:
    """Raise :class:`StoreError` (closing ``db``, writing nothing) if ``db`` holds tables that are
    not those of a results database: another application's SQLite file."""
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    ours = tables <= TABLES and "meta" in tables and db.execute(
        "SELECT 1 FROM meta WHERE key = 'schema'").fetchone() is not None
    if tables and not ours:
        db.close()
        raise StoreError(f"{path}: a SQLite database of another application (its tables are not a study's "
                         f"results); refused and left untouched: give another --db")


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def _real(value: Any) -> float | str | None:
    """A value of a REAL column as JSON would hold it (:func:`~ecosystem.formats.files.json_number`);
    None for what is not a number."""
    try:
        return json_number(value)
    except (TypeError, ValueError):
        return None


def _bool(value: Any) -> int | None:
    return None if value is None else int(bool(value))


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _last_line(error: str | None) -> str | None:
    if not isinstance(error, str) or not error:
        return None
    lines = [line for line in error.strip().splitlines() if line.strip()]
    return lines[-1] if lines else None
