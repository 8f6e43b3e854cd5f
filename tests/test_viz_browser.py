"""The browser page in a real browser: ``ecosystem viz`` served, driven by headless Chromium.

Starts the server on a free 127.0.0.1 port, opens the page with Playwright in the system's
Chromium (``/usr/bin/chromium``; never a downloaded browser) as independent visitors (browser
contexts), steps, reloads, changes knobs, and keeps screenshots in ``tests/artifacts/``
(``$ECOSYSTEM_ARTIFACTS`` if set). Any page error fails the test. Skipped locally when Playwright or
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
ARTIFACTS = Path(os.environ.get("ECOSYSTEM_ARTIFACTS", ROOT / "tests" / "artifacts"))
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
def browser():
    """Headless system Chromium through Playwright; each test opens its own contexts (fresh profiles)."""
    sync_api = need_module("playwright.sync_api", "pip install -e '.[browser]'")
    if not Path(CHROMIUM).exists():
        missing(f"Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"])
        try:
            yield chromium
        finally:
            chromium.close()


class Visitor:
    """One browser context (a visitor with its own cookies) on the page, recording page errors
    and failed requests."""

    def __init__(self, browser, url: str, width: int = 1400, height: int = 1000) -> None:
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.failed: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("response", lambda r: self.failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        self.page.on("requestfailed", lambda r: self.failed.append(f"failed {r.url}"))
        self.url = url
        self.open()

    def open(self) -> None:
        self.page.goto(self.url, timeout=WAIT_MS)
        self.button("Reset").wait_for(timeout=WAIT_MS)
        self.wait_round(0)

    def reload(self) -> None:
        self.page.reload(timeout=WAIT_MS)
        self.button("Reset").wait_for(timeout=WAIT_MS)

    def button(self, name: str):
        return self.page.get_by_role("button", name=name, exact=True)

    def status(self) -> str:
        return self.page.locator(".ecosystem-round").first.inner_text(timeout=WAIT_MS)

    def wait_round(self, k: int) -> None:
        self.page.locator(".ecosystem-round", has_text=f"Round {k}").first.wait_for(timeout=WAIT_MS)

    def step(self, times: int) -> None:
        start = int(self.status().split()[-1])
        for k in range(start + 1, start + times + 1):
            self.button("Step").click()
            self.wait_round(k)

    def choose(self, knob: str, value: str) -> None:
        """Pick ``value`` in the knob whose label starts with ``knob``."""
        select = self.page.locator(".v-select", has_text=knob).first
        select.click()
        self.page.locator(".menuable__content__active").get_by_role("option", name=value, exact=True).click()
        self.page.locator(".v-select", has_text=knob).filter(has_text=value).first.wait_for(timeout=WAIT_MS)
        self.page.wait_for_timeout(500)            # the choice reaches the server before the next click

    def body(self) -> str:
        return self.page.locator("body").inner_text(timeout=WAIT_MS)

    def shot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / name
        self.page.wait_for_timeout(300)            # the image message follows the status text
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def close(self) -> None:
        assert not self.errors, f"page errors: {self.errors}"
        cdn = [f for f in self.failed if "/_solara/cdn/" in f]
        assert not cdn, f"front-end files not served locally: {cdn}"
        self.context.close()


def _picture(visitor: Visitor, k: int = 0):
    return visitor.page.locator(".ecosystem-picture").nth(k)


def test_every_visitor_and_reload_has_its_own_model(server, browser):
    one, two = Visitor(browser, server), Visitor(browser, server)
    before = _picture(one).screenshot(timeout=WAIT_MS)
    one.step(3)
    assert "Round 3" in one.status()
    assert _picture(one).screenshot(timeout=WAIT_MS) != before, "the network picture did not change"
    one.shot("viz_browser_visitor1_round3.png")
    two.page.wait_for_timeout(500)
    assert "Round 0" in two.status(), "a second visitor sees the first one's rounds"
    two.shot("viz_browser_visitor2_round0.png")
    two.step(1)
    assert "Round 1" in two.status() and "Round 3" in one.status()
    one.reload()
    one.wait_round(0)
    one.shot("viz_browser_visitor1_reloaded.png")
    one.close()
    two.close()


def test_knobs_title_tabs_and_width(server, browser):
    visitor = Visitor(browser, server)
    page = visitor.page
    assert page.title() == "ecosystem · default · explicit graph · 4 models"
    tabs = page.get_by_role("tab")
    assert [t.strip().lower() for t in tabs.all_inner_texts()] == ["ecosystem", "long-run analysis"]
    assert page.get_by_text("Curation ratio λ · now 0.5–0.6").count() == 1     # effective values by the knobs
    assert page.get_by_role("option", name="stories/newcomer").count() == 0
    visitor.page.locator(".v-select", has_text="Scenario or story").first.click()
    menu = page.locator(".menuable__content__active")
    menu.get_by_role("option", name="stories/newcomer", exact=True).wait_for(timeout=WAIT_MS)   # the stories
    assert {"default", "ring", "stories/drought"} <= {o.strip() for o in menu.get_by_role("option").all_inner_texts()}
    page.keyboard.press("Escape")
    visitor.shot("viz_browser_knobs.png")

    # an impossible combination: explained before Reset, then one message in the page, no paths
    visitor.choose("Topology", "ring")
    visitor.choose("Curation ratio", "0.8")
    message = "curation ratio λ 0.8 + real-data share 0.3 (knob at file) = 1.1 exceeds 1: lower one of them"
    page.get_by_text(message).first.wait_for(timeout=WAIT_MS)
    visitor.shot("viz_browser_impossible_before_reset.png")
    visitor.button("Reset").click()
    page.get_by_text("Cannot build this ecosystem").first.wait_for(timeout=WAIT_MS)
    page.get_by_text("Cannot build: ").wait_for(state="detached", timeout=WAIT_MS)   # the knob note gives way
    body = visitor.body()
    assert body.count("exceeds 1") == 1 and "/work" not in body and str(ROOT) not in body
    assert "Traceback" not in body
    visitor.shot("viz_browser_impossible_after_reset.png")

    # a buildable topology: the title follows it
    visitor.choose("Curation ratio", "0.4")
    page.get_by_text("Cannot build: ").wait_for(state="detached", timeout=WAIT_MS)
    visitor.button("Reset").click()
    visitor.wait_round(0)
    page.get_by_text("ecosystem: default · ring topology · 6 models").first.wait_for(timeout=WAIT_MS)
    assert page.title() == "ecosystem · default · ring topology · 6 models"

    # an invalid seed: a readable message, not a traceback
    seed = page.get_by_label("Seed (blank: the file's) · now 0")
    seed.fill("x7")
    seed.press("Enter")
    visitor.button("Reset").click()
    page.get_by_text("seed must be an integer").first.wait_for(timeout=WAIT_MS)
    assert "Traceback" not in visitor.body()
    visitor.shot("viz_browser_error.png")
    seed = page.get_by_label("Seed (blank: the file's)")
    seed.fill("7")
    seed.press("Enter")
    visitor.button("Reset").click()
    page.get_by_text("seed 7").first.wait_for(timeout=WAIT_MS)

    # the pictures follow the window's width
    wide = _picture(visitor).bounding_box()["width"]
    page.set_viewport_size({"width": 1000, "height": 1000})
    page.wait_for_timeout(500)
    narrow = _picture(visitor).bounding_box()["width"]
    assert narrow < 0.85 * wide, (wide, narrow)
    page.set_viewport_size({"width": 1400, "height": 1000})

    # the analysis tab: heatmap and backfire list
    tabs.nth(1).click()
    page.get_by_text("Long-run analysis (population mode)").first.wait_for(timeout=WAIT_MS)
    page.locator(".ecosystem-picture").first.wait_for(timeout=WAIT_MS)
    visitor.shot("viz_browser_analysis.png")
    visitor.close()


def _numbers(text: str) -> list[float]:
    return [float(x) for x in text.split()]


def test_conditional_answer_tables_and_the_policy_comparison(server, browser):
    """conditional/two_tasks: the answer tables follow a Step; the analysis tab compares the optimal
    and siloed curation policies on request (the two levers, values within their bounds). The window
    is tall enough for the whole page (the page scrolls inside, which a screenshot does not follow)."""
    visitor = Visitor(browser, server, height=1500)
    page = visitor.page
    visitor.choose("Scenario or story", "conditional/two_tasks")
    visitor.button("Reset").click()
    page.get_by_text("ecosystem: two_tasks · explicit graph · 2 models").first.wait_for(timeout=WAIT_MS)
    visitor.wait_round(0)
    tables = "answer tables of the conditional models, start and round {}"
    first = page.get_by_role("img", name=tables.format(0), exact=True)
    first.wait_for(timeout=WAIT_MS)
    before = first.screenshot(timeout=WAIT_MS)
    visitor.shot("viz_browser_conditional_round0.png")
    visitor.step(1)
    after = page.get_by_role("img", name=tables.format(1), exact=True)
    after.wait_for(timeout=WAIT_MS)
    assert "Round 1" in visitor.status() and after.screenshot(timeout=WAIT_MS) != before
    visitor.shot("viz_browser_conditional_round1.png")

    page.get_by_role("tab").nth(1).click()
    page.get_by_role("img", name="influence matrix heatmap").wait_for(timeout=WAIT_MS)
    visitor.button("Compare optimal and siloed curation").click()
    table = page.locator("table.backfire", has_text="siloed")
    table.wait_for(timeout=WAIT_MS)
    assert [h.strip() for h in table.locator("th").all_inner_texts()] == ["lever", "now", "optimal", "siloed"]
    rows = {label: _numbers(rest) for label, rest in
            (row.split(maxsplit=1) for row in table.locator("tr").all_inner_texts()[1:])}
    assert set(rows) == {"curation_ratio[summariser]", "curation_ratio[paraphraser]"}
    assert all(len(v) == 3 and all(0 <= x <= 0.9 + 1e-9 for x in v) for v in rows.values())
    assert sum(v[0] for v in rows.values()) == pytest.approx(1.0)          # now: 0.5 + 0.5, the budget
    summary = page.locator("p", has_text="price of siloing").first.inner_text(timeout=WAIT_MS)
    optimal, siloed = (float(summary.split(f"{w} ")[1].split(",")[0].split(";")[0]) for w in ("optimal", "siloed"))
    assert optimal >= siloed - 1e-9 and "budget 1" in summary
    visitor.shot("viz_browser_policy.png")
    visitor.close()


def test_artifacts_folder_is_git_ignored():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    out = subprocess.run(["git", "check-ignore", "-q", "tests/artifacts/x.png"], cwd=ROOT)
    assert out.returncode == 0
