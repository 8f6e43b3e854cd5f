"""``ecosystem plot DIR`` on a reproduction's folder: every reproduction saves the arrays its figures
are drawn from (``figures.npz``, no pickles) and the plot redraws the same figures from them, byte
for byte, without rerunning anything; bad folders are one ``error:`` line and nothing is written.

Five reproductions run in ``--quick`` here (a few seconds each); ``gaussian-mechanism``'s redraw is
checked by ``test_figures.test_reproduce_writes_valid_svg_figures`` on its run, and
``learned-conflict`` (a slow run, end to end in ``test_learned_conditional``) through its saved data.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_figures import check_pdf, check_svg

RUN = ("collapse", "web-dynamics", "ferbach", "two-model-conflict", "conditional-llm")
FIGURES = {"collapse": ["collapse.png"], "web-dynamics": ["web_dynamics.png"], "ferbach": ["ferbach.png"],
           "two-model-conflict": ["conflict.png"], "conditional-llm": ["changes.png", "rounds.png"],
           "learned-conflict": ["changes.png", "trajectories.png"]}


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory) -> dict[str, Path]:
    """Each reproduction of :data:`RUN` run once in quick mode (seed 0): name -> its folder."""
    from ecosystem.studies.reproduce import reproduce

    root = tmp_path_factory.mktemp("reproduced")
    for name in RUN:
        reproduce(name, root / name, quick=True, seed=0)
    return {name: root / name for name in RUN}


@pytest.fixture
def copy(reproduced, tmp_path):
    """``copy(name)``: a fresh copy of reproduction ``name``'s folder, for a test to change."""
    def make(name: str) -> Path:
        return Path(shutil.copytree(reproduced[name], tmp_path / name))
    return make


def files(folder: Path) -> dict[str, bytes]:
    """Every file of ``folder`` and its bytes."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("name", RUN)
def test_a_reproduction_saves_its_figure_data_and_plot_redraws_the_same_png(cli, copy, name):
    folder = copy(name)
    assert sorted(p.name for p in folder.iterdir()) == sorted([*FIGURES[name], "figures.npz", "summary.json"])
    with np.load(folder / "figures.npz", allow_pickle=False) as npz:     # data, not pickles
        assert npz.files and all(npz[k].dtype.kind in "biufU" for k in npz.files)
    written = files(folder)
    for png in FIGURES[name]:
        (folder / png).unlink()
    done = cli("plot", folder)
    assert done.status == 0, done.err
    assert f"redrew {len(FIGURES[name])} figures" in done.out
    assert files(folder) == written           # the same PNG bytes; summary.json and figures.npz untouched


@pytest.mark.parametrize("name, fmt, check", [("ferbach", "pdf", check_pdf), ("two-model-conflict", "svg", check_svg)])
def test_plot_redraws_a_reproduction_in_another_format(cli, copy, name, fmt, check):
    folder = copy(name)
    pngs = {p: (folder / p).read_bytes() for p in FIGURES[name]}
    assert cli("plot", folder, "--format", fmt, "--dpi", "60", "--quiet").status == 0
    for png, data in pngs.items():
        check(folder / Path(png).with_suffix(f".{fmt}"))
        assert (folder / png).read_bytes() == data          # the PNGs are left as they were
    first = (folder / Path(FIGURES[name][0]).with_suffix(f".{fmt}")).read_bytes()
    assert cli("plot", folder, "--format", fmt, "--dpi", "60", "--quiet").status == 0
    assert (folder / Path(FIGURES[name][0]).with_suffix(f".{fmt}")).read_bytes() == first


def test_the_figures_are_drawn_from_the_saved_arrays(cli, copy):
    """Changing figures.npz changes the redrawn figure: the plot reads the data, it does not recompute."""
    folder = copy("collapse")
    before = (folder / "collapse.png").read_bytes()
    with np.load(folder / "figures.npz") as npz:
        data = dict(npz)
    data["variance"] = data["variance"] * 10.0
    np.savez(folder / "figures.npz", **data)
    assert cli("plot", folder, "--quiet").status == 0
    assert (folder / "collapse.png").read_bytes() != before


def test_learned_conflict_draws_from_its_saved_data(cli, tmp_path):
    """learned-conflict's figure data (its quick plan's shapes, made-up positive numbers) go through
    figures.npz to the same PNGs in a reproduction's drawing and in ``ecosystem plot``."""
    from ecosystem.formats import figures
    from ecosystem.studies import learned_conflict as learned
    from ecosystem.studies.reproduce import FIGURES as DRAW
    from ecosystem.studies.reproduce import SETTINGS

    rng = np.random.default_rng(0)
    plan = learned.QUICK
    rows = {name: {"cross": list(fractions)} | {f"{key}{j}{tail}": float(rng.uniform(0.01, 0.5))
                                               for j in ("J_p", "J_q")
                                               for key, tail in (("d", ""), ("d", "_ci"), ("discrete_", "_base"),
                                                                 ("discrete_", "_more"))}
            for name, fractions in SETTINGS.items()}
    curves = {(name, tag): rng.normal(size=(plan.seeds, plan.rounds + 1, 2)) for name in SETTINGS
              for tag in learned.SHARES}
    folder = tmp_path / "learned"
    folder.mkdir()
    learned._save_figure_data(folder, rows, curves, plan)
    DRAW["learned-conflict"](folder, figures.load_data(folder))
    (folder / "summary.json").write_text(json.dumps({"reproduction": "learned-conflict"}))
    written = files(folder)
    for png in FIGURES["learned-conflict"]:
        (folder / png).unlink()
    assert cli("plot", folder, "--quiet").status == 0
    assert files(folder) == written


def _no_summary(folder: Path) -> None:
    (folder / "summary.json").unlink()


def _corrupt(folder: Path) -> None:
    (folder / "figures.npz").write_bytes(b"not an archive")


def _truncated(folder: Path) -> None:
    path = folder / "figures.npz"
    path.write_bytes(path.read_bytes()[:400])


def _no_data(folder: Path) -> None:
    (folder / "figures.npz").unlink()


def _unknown(folder: Path) -> None:
    path = folder / "summary.json"
    path.write_text(path.read_text().replace('"reproduction": "web-dynamics"', '"reproduction": "nowhere"'))


def _array_missing(folder: Path) -> None:
    with np.load(folder / "figures.npz") as npz:
        data = {k: npz[k] for k in npz.files if k != "divergence"}
    np.savez(folder / "figures.npz", **data)


def _arrays_disagree(folder: Path) -> None:
    with np.load(folder / "figures.npz") as npz:
        data = dict(npz)
    data["labels"] = data["labels"][:3]        # three labels for four curves
    np.savez(folder / "figures.npz", **data)


@pytest.mark.parametrize("damage, file, words", [
    (_no_summary, "summary.json", "no such file"),
    (_corrupt, "figures.npz", "cannot read: not a numpy .npz archive"),
    (_truncated, "figures.npz", "cannot read"),
    (_no_data, "figures.npz", "no such file"),
    (_unknown, "summary.json", "names no known reproduction (its 'reproduction' is 'nowhere'"),
    (_array_missing, "figures.npz", "holds no array 'divergence'"),
    (_arrays_disagree, "figures.npz", "do not fit the figures of web-dynamics"),
])
def test_a_bad_reproduction_folder_is_one_error_line_and_nothing_is_written(cli, copy, damage, file, words):
    folder = copy("web-dynamics")
    (folder / "web_dynamics.png").unlink()
    damage(folder)
    before = files(folder)
    done = cli("plot", folder)
    assert done.status == 2 and done.out == ""
    assert done.err.startswith(f"error: {folder / file}: ") and words in done.err and done.err.count("\n") == 1
    assert files(folder) == before and sorted(p.name for p in folder.parent.iterdir()) == ["web-dynamics"]
