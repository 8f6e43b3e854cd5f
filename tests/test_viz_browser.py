"""The browser page in a real browser: ``ecosystem viz`` served, driven by headless Chromium.

Starts the server on a free 127.0.0.1 port, opens the page with Playwright in the system's
Chromium (``/usr/bin/chromium``; never a downloaded browser), presses Reset and Step, changes
a knob, and keeps a screenshot in ``tests/artifacts/``. Skipped locally when Playwright or
Chromium is missing; in CI (``CI`` set) that is a failure, never a skip. Every wait is bounded.
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import ROOT
from viz_support import missing, need_module

CHROMIUM = os.environ.get("ECOSYSTEM_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "tests" / "artifacts"
START_TIMEOUT = 90.0       # server start (imports) on a busy 2-core machine
WAIT_MS = 30_000           # any one wait in the page


@pytest.fixture(scope="module")
def server():
    """``ecosystem viz default`` on a free port; yields its URL; stopped afterwards."""
    need_module("solara", "pip install -e '.[viz]'")
    need_module("solara_assets", "pip install -e '.[viz]'")
    from viz.server import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ecosystem", "viz", "default", "--port", str(port)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    url, seen, deadline = None, [], time.monotonic() + START_TIMEOUT
    while url is None and time.monotonic() < deadline and proc.poll() is None:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            continue
        seen.append(line)
        if "http://127.0.0.1:" in line:
            url = line[line.index("http://"):].split()[0]
    try:
        if url is None:
            pytest.fail(f"the viz server did not start within {START_TIMEOUT:.0f} s:\n{''.join(seen)}")
        assert url == f"http://127.0.0.1:{port}/"
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless system Chromium through Playwright, with a fresh profile."""
    sync_api = need_module("playwright.sync_api", "pip install -e '.[browser]'")
    if not Path(CHROMIUM).exists():
        missing(f"Chromium at {CHROMIUM} (apt-get install chromium)")
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, viewport={"width": 1400, "height": 1000},
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"])
        try:
            yield context
        finally:
            context.close()


def _status(page) -> str:
    return page.locator(".ecosystem-round").first.inner_text(timeout=WAIT_MS)


def _wait_round(page, k: int) -> None:
    page.locator(".ecosystem-round", has_text=f"Round {k}").first.wait_for(timeout=WAIT_MS)


def _network(page) -> bytes:
    """The network picture as the browser shows it (the first image of page 0)."""
    return page.locator("img").first.screenshot(timeout=WAIT_MS)


def test_page_in_a_real_browser(server, browser):
    page = browser.new_page()
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.on("requestfailed", lambda r: failed.append(f"failed {r.url}"))
    page.goto(server, timeout=WAIT_MS)
    reset = page.get_by_role("button", name="Reset")
    step = page.get_by_role("button", name="Step")
    reset.wait_for(timeout=WAIT_MS)

    reset.click()
    _wait_round(page, 0)
    before = _network(page)
    for k in (1, 2, 3):
        step.click()
        _wait_round(page, k)
    assert "Round 3" in _status(page)
    page.wait_for_timeout(300)                 # the image message follows the status text
    assert _network(page) != before, "the network picture did not change after three rounds"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "viz_browser_step3.png"), full_page=True)

    # change a knob (the seed) and rebuild: the status names the new seed and the round is 0 again
    seed = page.get_by_label("Seed (blank: the file's)")
    seed.fill("7")
    seed.press("Enter")
    reset.click()
    page.locator(".ecosystem-round", has_text="Round 0").first.wait_for(timeout=WAIT_MS)
    page.get_by_text("seed 7").first.wait_for(timeout=WAIT_MS)

    # an invalid knob gives a readable message in the page, not a traceback
    seed.fill("x7")
    seed.press("Enter")
    reset.click()
    page.get_by_text("seed must be an integer").first.wait_for(timeout=WAIT_MS)
    assert "Traceback" not in page.locator("body").inner_text(timeout=WAIT_MS)
    page.screenshot(path=str(ARTIFACTS / "viz_browser_error.png"), full_page=True)
    assert not [f for f in failed if "/_solara/cdn/" in f], f"front-end files not served locally: {failed}"
    page.close()


def test_artifacts_folder_is_git_ignored():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    out = subprocess.run(["git", "check-ignore", "-q", "tests/artifacts/x.png"], cwd=ROOT)
    assert out.returncode == 0
