"""``run``, ``sweep`` and ``report`` on a real full disk and a real read-only folder: one ``error:``
line, exit status 2, nothing half-written, every finished run kept.

Each case runs the command in its own user and mount namespace (``unshare -rm``) on a tmpfs of
a few kilobytes, or one mounted read-only: real ENOSPC and EROFS from the kernel, nothing
left mounted afterwards. Skipped where the machine does not allow such namespaces.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import RING

ECOSYSTEM = [sys.executable, "-m", "ecosystem"]


def _namespaces_work() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs tmpfs /mnt"],
                          capture_output=True, check=False).returncode == 0


pytestmark = pytest.mark.skipif(not _namespaces_work(), reason="no user/mount namespaces (unshare -rm) here")


def on_small_disk(folder: Path, size: str, script: str, read_only_after: str = "") -> subprocess.CompletedProcess:
    """Run the shell ``script`` with a ``size`` tmpfs on ``folder``; ``read_only_after``: commands
    run after the tmpfs is remounted read-only (their output follows)."""
    parts = [f"mount -t tmpfs -o size={size} tmpfs {folder}", script]
    if read_only_after:
        parts += [f"mount -o remount,ro {folder}", read_only_after]
    return subprocess.run(["unshare", "-rm", "sh", "-c", " ; ".join(parts)], capture_output=True, text=True,
                          check=False, cwd=folder.parent)


def _errors(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


def test_run_on_a_full_disk_and_a_read_only_folder_is_one_line_and_writes_nothing(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    run = f"{' '.join(ECOSYSTEM)} run {RING} --out {disk}/out --quiet; echo status=$?; ls -A {disk}"
    done = on_small_disk(disk, "16k", run, read_only_after=run)
    first, second = done.stdout.split("status=")[1:3]
    assert first.startswith("2") and second.startswith("2")
    errors = _errors(done.stderr)
    assert len(errors) == 2 and "Traceback" not in done.stderr
    assert "No space left on device; nothing was written" in errors[0]
    assert "Read-only file system; nothing was written" in errors[1]
    assert first.split("\n", 1)[1].strip() == ""         # no output folder, no staging folder left


def test_sweep_on_a_full_disk_keeps_the_finished_runs_and_report_says_why_it_cannot_write(tmp_path):
    disk, keep = tmp_path / "disk", tmp_path / "kept"
    disk.mkdir()
    keep.mkdir()
    study = tmp_path / "s.toml"
    study.write_text(f'scenario = "{RING}"\nname = "s"\nseeds = {{ start = 0, count = 6 }}\n'
                     '[set]\nsteps = 30\n"topology.n" = 6\n')
    cmd = " ".join(ECOSYSTEM)
    script = (f"{cmd} sweep {study} --db {disk}/s.sqlite --quiet --allow-outside-paths; echo sweep=$?; "
              f"cp {disk}/s.sqlite* {keep}/; {cmd} report {disk}/s.sqlite --quiet; echo report=$?")
    done = on_small_disk(disk, "200k", script,
                         read_only_after=f"{cmd} report {disk}/s.sqlite --out {disk}/r --quiet; echo ro_report=$?")
    assert "sweep=2" in done.stdout and "report=2" in done.stdout and "ro_report=2" in done.stdout
    errors = _errors(done.stderr)
    assert "Traceback" not in done.stderr and len(errors) == 3
    assert "disk is full; the runs stored before are kept" in errors[0]
    assert "No space left on device; nothing was written" in errors[1]
    assert "Read-only file system; nothing was written" in errors[2]

    from ecosystem.formats.store import Store

    store = Store(keep / "s.sqlite", readonly=True)
    try:
        finished = store.count("done")
        assert 1 <= finished < 6 and store.count() == finished   # every stored run is a finished one
        assert len(store.keyed("rounds")) == 31 * finished
    finally:
        store.close()
