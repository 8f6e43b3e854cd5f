"""The browser page in-process: VizModel knobs, readable errors, rendering and the Step button."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import DATA, RING
from viz_support import need_module

need_module("solara", "pip install -e '.[viz]'")

import ipyvuetify as v  # noqa: E402
import solara  # noqa: E402

from ecosystem.core import flows  # noqa: E402
from ecosystem.core.agents import CuratorAgent  # noqa: E402
from ecosystem.formats.names import shipped  # noqa: E402
from viz import app  # noqa: E402
from viz.model import FILE, VizModel, nice_ceil  # noqa: E402
from viz.pictures import NetworkPicture, SeriesPicture  # noqa: E402

# the knobs and pictures are tested on the pinned copies (tests/data); the names on the shipped files
DEFAULT = str(DATA / "default.toml")
RING_FILE = str(RING)


def test_scenario_names_lists_the_shipped_files_default_first():
    names = shipped()
    assert names[0] == "default"
    assert {"ring", "gaussian", "stories/newcomer"} <= set(names)


def test_knobs_left_at_file_build_the_scenario_as_written():
    m = VizModel(scenario_name=RING_FILE)
    assert m.error is None
    assert len(m.model_agents) == 6 and m.mode == "population" and m.seed == 0
    assert m.model_agents[0].curation_ratio == pytest.approx(0.4)


def test_topology_knobs_set_template_keys():
    m = VizModel(scenario_name=RING_FILE, n="10", curation_ratio="0.6", real_share="0.2", K="2", tau="0.5",
                 mode="sample", seed="7")
    assert m.error is None
    assert len(m.model_agents) == 10 and m.mode == "sample" and m.seed == 7
    a = m.model_agents[0]
    assert a.curation_ratio == pytest.approx(0.6) and a.real_share == pytest.approx(0.2)
    curator = m.agents_by_type[CuratorAgent][0]
    assert curator.K == 2 and curator.tau == pytest.approx(0.5)


def test_switching_an_explicit_scenario_to_a_topology_keeps_its_rewards():
    m = VizModel(scenario_name=DEFAULT, topology="barabasi_albert", n="20")
    assert m.error is None
    assert len(m.model_agents) == 20
    prefs = {m.graph.nodes[c]["curator"].preference.name for c in flows.nodes_of(m.graph, "curator")}
    assert prefs == {"warm", "cool"}


def test_explicit_scenario_knobs_set_the_shares_of_curated_models():
    m = VizModel(scenario_name=DEFAULT, curation_ratio="0.7")
    assert m.error is None
    for agent in m.model_agents:
        assert agent.curation_ratio == pytest.approx(0.7)
        assert agent.real_share == pytest.approx(0.3)


@pytest.mark.parametrize("knobs, words", [
    ({"seed": "abc"}, "seed must be an integer"),
    ({"scenario_name": DEFAULT, "n": "10"}, "pick a topology"),
    ({"scenario_name": DEFAULT, "real_share": "0.3", "curation_ratio": "0.3"}, "has none"),
    ({"scenario_name": RING_FILE, "real_share": "0.8", "curation_ratio": "0.5"}, "exceeds 1"),
    ({"scenario_name": "no_such_scenario"}, "no shipped scenario"),
])
def test_invalid_knob_combinations_give_a_message_not_an_exception(knobs, words):
    m = VizModel(**knobs)
    assert m.error and words in m.error
    m.step()                                   # does nothing, raises nothing
    assert not m.running


def test_colour_scale_is_fixed_for_a_built_model():
    m = VizModel(scenario_name=DEFAULT)
    bound = m.colour_bound
    m.run(5)
    assert m.colour_bound == bound and bound in (0.5, 1.0)
    assert nice_ceil(0.3) == pytest.approx(0.5) and nice_ceil(2.1) == pytest.approx(2.5)


def test_pictures_change_with_the_rounds():
    m = VizModel(scenario_name=RING_FILE, n="100")
    net, series = NetworkPicture(m), SeriesPicture(m)
    first = net.png(m), series.png(m)
    m.step()
    second = net.png(m), series.png(m)
    assert all(p.startswith(b"\x89PNG") for p in first + second)
    assert first[0] != second[0] and first[1] != second[1]


def _render(**knobs):
    @solara.component
    def Page():
        with solara.AppLayout():
            app.make_page("default", **knobs)

    return solara.render(Page(), handle_error=False)


def _html(rc) -> list[str]:
    """The HTML strings of the page's ``solara.HTML`` elements."""
    return [w.unsafe_innerHTML or "" for w in rc.find(solara.widgets.HTML).widgets]


def _status_html(rc) -> str:
    html = [h for h in _html(rc) if "Round" in h]
    assert len(html) == 1, html
    return html[0]


def test_page_renders_and_step_advances_the_model_and_redraws():
    _box, rc = _render()
    labels = [b.children[0] for b in rc.find(v.Btn).widgets]
    assert {"Reset", "Step"} <= set(labels)
    assert "Round 0" in _status_html(rc)
    network_before = rc.find(v.Img).widgets[0].src
    step = rc.find(v.Btn, children=["Step"]).widget
    for _ in range(3):
        step.click()
    assert "Round 3" in _status_html(rc)
    assert rc.find(v.Img).widgets[0].src != network_before
    rc.close()


def test_status_shows_no_signed_zero_and_pictures_say_what_they_show():
    m = VizModel(scenario_name=DEFAULT)                     # round 0: every alignment is 0 up to round-off
    _box, rc = solara.render(app.StatusView(m), handle_error=False)
    assert "min alignment 0.0000" in " ".join(_html(rc)) and "-0.0000" not in " ".join(_html(rc))
    rc.close()
    _box, rc = solara.render(app.NetworkView(m), handle_error=False)
    assert rc.find(v.Img).widget.alt == "data-flow graph, models coloured by alignment"
    rc.close()


def test_status_of_an_invalid_model_is_a_readable_error():
    _box, rc = solara.render(app.StatusView(VizModel(seed="x1")), handle_error=False)
    alerts = rc.find(v.Alert).widgets
    assert alerts and "seed must be an integer" in alerts[0].children[0]
    assert "Traceback" not in str(alerts[0].children)
    rc.close()


def test_analysis_view_shows_influence_and_backfire_section():
    m = VizModel(scenario_name=DEFAULT)
    result = app.analysis_result(m)
    assert "message" not in result and "figure" in result
    assert np.isfinite(result["spectral_radius"])
    _box, rc = solara.render(app.AnalysisView(m), handle_error=False)
    html = " ".join(_html(rc))
    assert "spectral radius" in html and "Backfire" in html
    assert "Negative influence" in html and "A_base" in html     # the default scenario's point
    assert "<b>Backfire</b>: none" in html      # its first-arrival effects are already negative
    assert {b["affected"] for b in result["negative_influence"] if b["scope"] == "self"} == {"A_base", "A_more"}
    rc.close()


def test_analysis_is_declined_politely_for_large_ecosystems():
    result = app.analysis_result(VizModel(scenario_name=RING_FILE, n="100"))
    assert "ecosystem analyze" in result["message"]


def test_model_params_keep_file_values_by_default():
    params = app.model_params("ring")
    assert params["scenario_name"]["value"] == "ring"
    assert all(p["value"] == FILE for k, p in params.items() if k not in ("scenario_name", "seed"))


def test_scripted_events_run_and_pictures_follow_models_that_appear():
    m = VizModel(scenario_name=str(DATA / "newcomer.toml"))
    assert m.error is None
    before = len(m.model_agents)
    for _ in range(82):
        m.step()
        app._picture(m, NetworkPicture).png(m)
        app._picture(m, SeriesPicture).png(m)
    assert len(m.model_agents) == before + 1
    names, values = m.per_model("alignment", m.steps + 1)
    assert len(names) == before + 1 and np.isnan(values[0, -1]) and np.isfinite(values[-1, -1])
    assert app._picture(m, SeriesPicture).names == names
    marks = app._picture(m, SeriesPicture).alignment.events.get_segments()
    assert [seg[0][0] for seg in marks] == [50, 80]               # the story's events so far


def test_each_page_builds_its_own_model():
    (_a, one), (_b, two) = _render(), _render()
    step = one.find(v.Btn, children=["Step"]).widget
    for _ in range(3):
        step.click()
    assert "Round 3" in _status_html(one)
    assert "Round 0" in _status_html(two)
    one.close()
    two.close()


def test_knobs_show_the_built_values_and_explain_impossible_combinations():
    _box, rc = _render()
    labels = [w.label for w in rc.find(v.Select).widgets]
    assert "Curation ratio λ · now 0.5–0.6" in labels and "Topology · now explicit graph" in labels
    assert [t.children[0] for t in rc.find(v.Tab).widgets] == ["Ecosystem", "Long-run analysis"]
    topology = rc.find(v.Select, label="Topology · now explicit graph").widget
    topology.v_model = "ring"
    rc.find(v.Select, label="Curation ratio λ · now 0.5–0.6").widget.v_model = "0.8"
    warning = rc.find(v.Alert).widget.children[0]
    assert warning == ("Cannot build: curation ratio λ 0.8 + real-data share 0.3 (knob at file) = 1.1 exceeds 1: "
                       "lower one of them")
    rc.find(v.Btn, children=["Reset"]).widget.click()
    errors = [a.children[0] for a in rc.find(v.Alert).widgets]
    assert sum("exceeds 1" in e for e in errors) == 1          # the status says it, once
    assert not any("/" in e for e in errors)                    # no path of the machine
    rc.close()


def test_round_zero_axes_do_not_zoom_into_noise():
    series = SeriesPicture(VizModel(scenario_name=DEFAULT))
    for panel in series.panels:
        lo, hi = panel.ylim
        assert hi - lo >= 1e-3
    assert series.alignment.ylim[1] - series.alignment.ylim[0] >= 0.5


def test_title_follows_the_scenario_and_topology():
    assert VizModel(scenario_name=RING_FILE).heading() == "ring · ring topology · 6 models"
    assert VizModel(scenario_name=DEFAULT, topology="star", n="4").heading() == "default · star topology · 4 models"


def test_a_topology_replaces_the_story_models_of_the_shipped_default():
    m = VizModel(scenario_name="default", topology="ring")
    assert m.error is None and len(m.model_agents) == 6


def _picture_follows_the_rounds(m: VizModel) -> None:
    """The models' own picture (:func:`viz.app.SamplesView`) is drawn and changes with a Step."""
    assert m.error is None
    _box, rc = solara.render(app.SamplesView(m), handle_error=False)
    before = rc.find(v.Img).widget.src
    m.step()
    _box2, rc2 = solara.render(app.SamplesView(m), handle_error=False)
    assert rc2.find(v.Img).widget.src != before
    rc.close()
    rc2.close()


def test_learned_models_of_pictures_show_their_samples_and_follow_the_rounds():
    pytest.importorskip("sklearn")
    _picture_follows_the_rounds(VizModel("learned/photos"))
    _box3, rc3 = solara.render(app.SamplesView(VizModel(scenario_name=DEFAULT)), handle_error=False)
    assert not rc3.find(v.Img).widgets                  # other families: no sample grid
    rc3.close()


def test_a_learned_scenario_in_population_mode_is_a_message_without_a_path():
    pytest.importorskip("sklearn")
    m = VizModel("learned/photos", mode="population")
    assert m.error.startswith("learned models run in sample mode only") and "/" not in m.error


def test_conditional_models_show_their_answer_tables_and_follow_the_rounds():
    m = VizModel("conditional/two_tasks")
    _picture_follows_the_rounds(m)
    assert 0 < m.colour_bound < 10                     # tabular rewards of pairs set the colour scale
