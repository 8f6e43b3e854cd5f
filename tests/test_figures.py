"""Figures: one style, ``--format``/``--dpi`` on every command that draws, valid PDF and SVG files,
the story figure, graph colours centred on 0, and ``ecosystem plot`` redrawing from saved data."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA, data_toml

from ecosystem.formats import figures

SVG = "{http://www.w3.org/2000/svg}"


def check_pdf(path: Path) -> int:
    """Parse ``path`` as a PDF: header, trailer, and a cross-reference table whose every in-use
    entry points at its object; returns the number of objects."""
    data = path.read_bytes()
    assert data.startswith(b"%PDF-1.") and data.rstrip().endswith(b"%%EOF"), path
    start = int(re.search(rb"startxref\s+(\d+)\s+%%EOF\s*$", data).group(1))
    assert data[start:start + 4] == b"xref", "startxref does not point at the cross-reference table"
    first, count = map(int, data[start:].split(b"\n", 2)[1].split())
    rows = data[start:].split(b"\n")[2:2 + count]
    objects = 0
    for number, row in enumerate(rows, start=first):
        offset, _generation, use = row.split()
        if use == b"n":
            assert re.match(rb"%d 0 obj" % number, data[int(offset):int(offset) + 20]), (path, number)
            objects += 1
    assert b"/Type /Catalog" in data and b"/Type /Page" in data
    return objects


def check_svg(path: Path) -> ET.Element:
    """Parse ``path`` as SVG: the root is an ``<svg>`` with a size, holding drawn paths."""
    root = ET.parse(path).getroot()
    assert root.tag == f"{SVG}svg" and root.get("viewBox") and root.get("width").endswith("pt")
    assert len(root.findall(f".//{SVG}path")) > 10
    return root


@pytest.fixture
def scenario(workdir) -> Path:
    """The pinned default scenario, shorter, with a story to tell."""
    text = (DATA / "default.toml").read_text().replace("steps = 200", "steps = 30")
    path = workdir / "default.toml"
    path.write_text(text + '\n[figures]\ncontrast = ["A_base", "A_more"]\n')
    return path


def test_run_writes_valid_pdf_figures(cli, scenario, workdir):
    out = workdir / "run"
    assert cli("run", scenario, "--out", out, "--quiet", "--format", "pdf").status == 0
    written = sorted(p.name for p in out.iterdir() if p.suffix in (".png", ".pdf", ".svg"))
    assert written == ["alignment.pdf", "diversity.pdf", "graph.pdf", "story.pdf"]
    for name in written:
        assert check_pdf(out / name) > 5


def test_reproduce_writes_valid_svg_figures(cli, workdir):
    out = workdir / "gm"
    assert cli("reproduce", "gaussian-mechanism", "--quick", "--format", "svg", "--out", out).status == 0
    written = sorted(p.name for p in out.iterdir() if p.suffix not in (".json", ".npz"))
    assert written == ["alignment_proxies.svg", "alignment_vs_lambda.svg", "derivatives.svg"]
    root = check_svg(out / "derivatives.svg")
    assert root.findall(f".//{SVG}g[@id='axes_2']"), "derivatives.svg has two panels"
    drawn = {name: (out / name).read_bytes() for name in written}
    for name in written:
        (out / name).unlink()
    assert cli("plot", out, "--format", "svg", "--quiet").status == 0            # from figures.npz, no rerun
    assert {name: (out / name).read_bytes() for name in written} == drawn


@pytest.mark.parametrize("args, words", [
    (("--dpi", "5"), "--dpi must lie in 10..2400"),
    (("--format", "jpg"), "invalid choice: 'jpg'"),
])
def test_bad_figure_options_are_one_line_errors(cli, scenario, workdir, args, words):
    done = cli("run", scenario, "--out", workdir / "x", *args)
    assert done.status == 2 and words in done.err and done.err.count("\n") == 1
    assert not (workdir / "x").exists()


@pytest.mark.parametrize("command", ["run", "reproduce", "analyze", "report", "optimize", "plot"])
def test_every_command_that_draws_takes_format_and_dpi(command):
    from ecosystem.cli import _parser

    sub = next(a for a in _parser()._actions if a.dest == "command").choices[command]
    options = {s for a in sub._actions for s in a.option_strings}
    assert {"--format", "--dpi"} <= options


def test_plot_redraws_a_run_from_its_saved_data(cli, scenario, workdir):
    out = workdir / "run"
    assert cli("run", scenario, "--out", out, "--quiet").status == 0
    csvs = {p.name: p.read_bytes() for p in out.glob("*.csv")}
    for png in out.glob("*.png"):
        png.unlink()
    done = cli("plot", out, "--format", "svg")
    assert done.status == 0 and "redrew 4 figures" in done.out
    for name in ("alignment", "diversity", "graph", "story"):
        check_svg(out / f"{name}.svg")
    first = (out / "story.svg").read_bytes()
    assert cli("plot", out, "--format", "svg", "--quiet").status == 0
    assert (out / "story.svg").read_bytes() == first                  # same data, same file
    assert {p.name: p.read_bytes() for p in out.glob("*.csv")} == csvs   # data untouched


def test_plot_redraws_an_analysis(cli, scenario, workdir):
    out = workdir / "ana"
    assert cli("analyze", scenario, "--out", out).status == 0
    (out / "influence.png").unlink()
    assert cli("plot", out, "--quiet").status == 0
    assert (out / "influence.png").read_bytes().startswith(b"\x89PNG")


def test_plot_refuses_a_folder_without_data(cli, workdir):
    done = cli("plot", workdir)
    assert done.status == 2 and "holds no saved results" in done.err


def test_contrast_names_models_of_the_scenario(cli, workdir):
    from ecosystem.formats.scenario import ScenarioError, parse

    data = data_toml("default")
    data["figures"] = {"contrast": ["A_base", "nobody"]}
    with pytest.raises(ScenarioError, match=r"figures\.contrast: unknown model 'nobody'"):
        parse(data)
    data["figures"] = {"contrast": ["A_base"]}
    with pytest.raises(ScenarioError, match="two or more model names"):
        parse(data)
    data["figures"] = {"contrast": ["A_base", "A_more"]}
    assert parse(data).contrast == ("A_base", "A_more")
    assert parse(data_toml("default")).contrast == ()


def test_a_scenario_without_contrast_writes_no_story(cli, workdir):
    out = workdir / "ring"
    assert cli("run", DATA / "ring.toml", "--steps", "3", "--out", out, "--quiet").status == 0
    assert not (out / "story.png").exists() and (out / "graph.png").exists()


def test_graph_colours_are_centred_on_zero():
    import networkx as nx

    g = nx.DiGraph()
    g.add_node("m0", kind="model")
    g.add_node("m1", kind="model")
    fig, ax = figures.plt.subplots()
    bound = figures.symmetric_bound([-0.126, -0.126])
    sc = figures.draw_network(ax, g, {"m0": -0.126, "m1": -0.126}, {"m0": (0, 0), "m1": (1, 0)}, -bound, bound)
    r, g_, b, _ = sc.to_rgba(np.array([-0.126]))[0]
    assert (sc.norm.vmin, sc.norm.vmax) == (-0.126, 0.126)
    assert r > 2 * b and r > 2 * g_, "every model misaligned is drawn at the red end, not neutral"
    assert sc.to_rgba(np.array([0.0]))[0][:3] == pytest.approx((0.97, 0.97, 0.97), abs=0.03)
    figures.plt.close(fig)


def test_one_style_for_every_figure():
    assert figures.STYLE.is_file()
    assert figures.plt.rcParams["axes.prop_cycle"].by_key()["color"][:2] == ["#4477AA", "#EE6677"]
    with figures.output("svg", 72) as out:
        assert (out.format, out.dpi) == ("svg", 72)
    with pytest.raises(ValueError, match="one of png, pdf, svg"):
        with figures.output("gif"):
            pass


def test_plot_redraws_a_report_from_its_tables(cli, tmp_path):
    from test_report import finished_study

    db = finished_study(tmp_path)
    assert cli("report", db, "--quiet").status == 0
    out = db.parent / "report"
    pngs = sorted(p.stem for p in out.glob("*.png"))
    assert cli("plot", out, "--format", "pdf", "--quiet").status == 0
    assert sorted(p.stem for p in out.glob("*.pdf")) == pngs
    for pdf in out.glob("*.pdf"):
        check_pdf(pdf)


def test_the_story_shows_each_contrasted_model_run_alone(tmp_path):
    """``isolated.csv``: A_base and A_more alone (real data and their own users' curation at the same
    shares) equal the one-model scenarios written by hand; alone, more curation helps A."""
    import pandas as pd

    from ecosystem.formats import results
    from ecosystem.formats.scenario import load, parse

    scenario = load("default")
    model = scenario.build()
    model.run(scenario.steps)
    results.write(model, scenario, 0, tmp_path)
    alone = pd.read_csv(tmp_path / "isolated.csv")
    assert set(alone["model"]) == {"A_base", "A_more"} and alone["step"].max() == 200
    for name, real in (("A_base", 0.5), ("A_more", 0.4)):
        by_hand = parse({"steps": 200, "space": {"family": "categorical", "grid": {"start": -1, "stop": 1, "num": 21}},
                         "rewards": {"warm": {"kind": "linear", "weights": [2.0]}},
                         "sources": {"real": {"normal": {"mean": 0.0, "var": 0.25}}},
                         "models": {name: {"sample_size": 2000, "users": {"reward": "warm", "K": 6, "tau": 1.0},
                                           "mixture": {"real": real, "curated": 1 - real}}}}).build()
        by_hand.run(200)
        mine = alone[alone["model"] == name]["alignment"].to_numpy()
        np.testing.assert_allclose(mine, by_hand.agents_frame()["alignment"].to_numpy(), rtol=0, atol=1e-15)
    end = alone.groupby("model")["alignment"].last()
    assert round(end["A_base"], 3) == 0.738 and round(end["A_more"], 3) == 1.004 and end["A_more"] > end["A_base"]
    assert (tmp_path / "story.png").exists()


def test_plot_draws_the_graph_as_the_events_left_it(cli, workdir):
    """stories/newcomer adds model C at a round: the redrawn graph has C, coloured, as the run drew it."""
    from PIL import Image

    out = workdir / "newcomer"
    assert cli("run", "stories/newcomer", "--out", out, "--quiet").status == 0
    drawn = np.asarray(Image.open(out / "graph.png"))
    assert cli("plot", out, "--quiet").status == 0
    assert np.array_equal(np.asarray(Image.open(out / "graph.png")), drawn)
