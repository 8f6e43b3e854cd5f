"""Step + redraw rate of the browser page for a 100-model ecosystem (target: >= 2 rounds/s).

    .venv/bin/python benchmarks/viz_redraw.py            # in-process: the page rendered, Step clicked
    .venv/bin/python benchmarks/viz_redraw.py --browser  # also: served, Play pressed in headless Chromium

In-process, each Step click runs one round and re-renders every component of page 0 (network,
time series, status) down to PNG bytes. In the browser, Play runs rounds back to back (Mesa's
play interval, 50 ms here) and the round counter is read after a fixed time.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def in_process(n: int, rounds: int, topology: str) -> float:
    """Rounds per second of Step clicks on the page rendered in-process."""
    import ipyvuetify as v
    import solara

    from viz import app

    @solara.component
    def Page():
        with solara.AppLayout():
            app.make_page("ring", n=str(n), topology=topology)

    _, rc = solara.render(Page(), handle_error=False)
    step = rc.find(v.Btn, children=["Step"]).widget
    step.click()                                     # first round builds the pictures' backgrounds
    start = time.perf_counter()
    for _ in range(rounds):
        step.click()
    rate = rounds / (time.perf_counter() - start)
    rc.close()
    return rate


def in_browser(n: int, seconds: float) -> float:
    """Rounds per second with Play pressed in headless Chromium (server in a subprocess)."""
    from playwright.sync_api import sync_playwright

    from viz.server import free_port

    text = (REPO / "scenarios" / "ring.toml").read_text().replace("n = 6", f"n = {n}")
    folder = Path(tempfile.mkdtemp())
    (folder / f"ring{n}.toml").write_text(text)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ecosystem", "viz", str(folder / f"ring{n}.toml"), "--port",
                             str(port)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in proc.stdout:
            if "http://" in line:
                break
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                        args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/", timeout=60_000)
            page.get_by_role("button", name="Step").wait_for(timeout=60_000)
            page.locator(".ecosystem-round", has_text="Round 0").first.wait_for(timeout=60_000)
            page.get_by_role("button", name="▶").click()
            page.wait_for_timeout(1000)
            r0 = _round(page)
            start = time.perf_counter()
            page.wait_for_timeout(seconds * 1000)
            r1 = _round(page)
            rate = (r1 - r0) / (time.perf_counter() - start)
            page.screenshot(path=str(folder / "play.png"))
            print(f"screenshot: {folder / 'play.png'}")
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return rate


def _round(page) -> int:
    return int(re.search(r"Round (\d+)", page.locator(".ecosystem-round").first.inner_text()).group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="models (default 100)")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--browser", action="store_true", help="also measure Play in headless Chromium")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    for topology in ("ring", "barabasi_albert"):
        rate = in_process(args.n, args.rounds, topology)
        print(f"in-process, {topology} n={args.n}: {rate:.1f} rounds/s (step + redraw of page 0)")
    if args.browser:
        print(f"browser, ring n={args.n}, Play: {in_browser(args.n, args.seconds):.1f} rounds/s")


if __name__ == "__main__":
    main()
