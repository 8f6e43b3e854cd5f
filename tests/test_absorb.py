"""What a change of curation ratio moves: ``absorb = "proportional" | "real" | "raw"`` (THEORY.md
section 4, "Words"), against closed forms on a two-model instance, through the Python API, the
scripted event, the analysis, the optimizer, the browser's knob and the command line."""

from __future__ import annotations

import json
import tomllib

import numpy as np
import pytest

from ecosystem import analysis
from ecosystem.analysis import policy
from ecosystem.core import flows
from ecosystem.errors import EventError, FlowError
from ecosystem.formats.scenario import parse

SCENARIO = """
name = "two"
steps = 20
[space]
grid = { start = -1.0, stop = 1.0, num = 11 }
[rewards.warm]
kind = "linear"
weights = [2.0]
[rewards.cool]
kind = "linear"
weights = [-2.0]
[sources.real]
normal = { mean = 0.8, var = 0.05 }
[models.A]
[models.B]
[curators.users_A]
curates = "A"
rule = "tilt"
reward = "warm"
[curators.users_B]
curates = "B"
rule = "tilt"
reward = "cool"
"""
"""A (real 0.3, raw B 0.2, curated 0.3 by its users + 0.2 of B's curated by B's users: lambda 0.5)
and B (real 0.5, raw A 0.1, curated 0.4: lambda 0.4); tilt curators (tau = 1) have the closed form
``H(p) = p e^r / Z``; the real data is warm, so absorbing by real or raw data moves A oppositely."""
FLOWS = [("real", "A", 0.3), ("B", "A", 0.2), ("users_A", "A", 0.3), ("users_B", "A", 0.2),
         ("real", "B", 0.5), ("A", "B", 0.1), ("users_B", "B", 0.4)]
TEXT = SCENARIO + "".join(f'[[flows]]\nfrom = "{u}"\nto = "{v}"\nweight = {w}\n' for u, v, w in FLOWS)
ABSORBED = {"proportional": ("source", "model"), "real": ("source",), "raw": ("model",)}


def two(events: str = "") -> dict:
    return tomllib.loads(TEXT + events)


def shares(graph, model: str) -> dict:
    return {u: graph.edges[u, model]["weight"] for u in graph.predecessors(model)}


@pytest.mark.parametrize("absorb, real, raw", [("proportional", 0.24, 0.16), ("real", 0.2, 0.2), ("raw", 0.3, 0.1)])
def test_new_shares_after_raising_lambda_follow_the_closed_form(absorb, real, raw):
    graph = parse(two()).graph.copy()
    flows.set_curation_ratio(graph, "A", 0.6, absorb)
    w = shares(graph, "A")
    assert w["users_A"] == pytest.approx(0.36) and w["users_B"] == pytest.approx(0.24)   # split kept
    assert w["real"] == pytest.approx(real) and w["B"] == pytest.approx(raw)
    assert sum(w.values()) == pytest.approx(1.0)


@pytest.mark.parametrize("absorb", ["real", "raw"])
def test_lowering_lambda_gives_the_share_to_the_absorbing_kind_only(absorb):
    graph = parse(two()).graph.copy()
    flows.set_curation_ratio(graph, "A", 0.1, absorb)
    w = shares(graph, "A")
    assert w["real"] == pytest.approx(0.7 if absorb == "real" else 0.3)
    assert w["B"] == pytest.approx(0.2 if absorb == "real" else 0.6)


@pytest.mark.parametrize("absorb, value, words", [
    ("real", 0.85, "its real-data share 0.3 cannot give 0.35"),
    ("raw", 0.75, "its raw synthetic share 0.2 cannot give 0.25"),
    ("sideways", 0.6, "absorb must be one of proportional, real, raw"),
])
def test_an_absorbing_kind_without_enough_share_is_a_flow_error(absorb, value, words):
    with pytest.raises(FlowError, match=words):
        flows.set_curation_ratio(parse(two()).graph.copy(), "A", value, absorb)


def test_a_model_without_inputs_of_the_absorbing_kind_is_a_flow_error():
    graph = parse(two()).graph.copy()
    graph.remove_edge("A", "B")                               # B: real 0.6, curated 0.4, no raw input
    graph.edges["real", "B"]["weight"] = 0.6
    with pytest.raises(FlowError, match="model 'B': has no raw synthetic inputs to absorb"):
        flows.set_curation_ratio(graph, "B", 0.5, "raw")


def tilt(p: np.ndarray, r: np.ndarray) -> np.ndarray:
    q = p * np.exp(r)
    return q / q.sum()


@pytest.mark.parametrize("absorb", ["proportional", "real", "raw"])
def test_one_round_effect_is_the_reward_of_curated_minus_absorbing_data(absorb):
    """``dG_A/dlambda_A = mean(curated inputs) - mean(absorbing inputs)`` (each weighted within its
    kind), so the one-round effect on J_A is ``r_A . (C - X)`` at the stable point."""
    model = parse(two()).build()
    result = analysis.analyze(model, absorb=absorb)
    assert result.absorb == absorb and result.to_dict()["absorb"] == absorb
    p = dict(zip(model.kernel.models, result.point.rows, strict=True))
    x = np.linspace(-1, 1, 11)
    warm, cool = 2 * x, -2 * x
    real = np.exp(-(x - 0.8) ** 2 / 0.1)
    real /= real.sum()
    curated = (0.3 * tilt(p["A"], warm) + 0.2 * tilt(p["B"], cool)) / 0.5
    inputs = {"source": (0.3, real), "model": (0.2, p["B"])}
    kinds = [inputs[k] for k in ABSORBED[absorb]]
    absorbing = sum(w * q for w, q in kinds) / sum(w for w, _ in kinds)
    a = result.influence.parameters.index(analysis.Parameter("curation_ratio", "A", absorb))
    assert result.influence.raw[0, a] == pytest.approx(warm @ (curated - absorbing), rel=1e-6)


def test_conventions_disagree_in_sign_on_this_instance():
    """Raising A's curation ratio against the (warm) real data lowers A's alignment, against B's
    (cool) raw outputs raises it: one round and in the long run."""
    effect = {}
    for absorb in ("real", "raw"):
        inf = analysis.analyze(parse(two()).build(), absorb=absorb).influence
        effect[absorb] = inf.raw[0, 0], inf.influence[0, 0]
    assert effect["real"][0] < 0 and effect["real"][1] == pytest.approx(-1.2149, abs=1e-4)   # docs/THEORY.md
    assert effect["raw"][0] > 0 and effect["raw"][1] == pytest.approx(0.2645, abs=1e-4)


def test_influence_under_real_and_raw_matches_resolved_stable_points():
    model = parse(two()).build()
    point = analysis.stable_point(model)
    for absorb in ("real", "raw"):
        param = analysis.Parameter("curation_ratio", "A", absorb)
        inf = analysis.influence(model, point, [param])
        np.testing.assert_allclose(inf.influence[:, 0], analysis.influence_by_resolving(model, point, param),
                                   rtol=1e-5, atol=1e-7)


def test_python_api_and_agent_take_absorb():
    model = parse(two()).build()
    model.set_curation_ratio("A", 0.6, absorb="raw")
    assert shares(model.graph, "A")["real"] == pytest.approx(0.3)
    with pytest.raises(EventError, match=r"value\.absorb must be one of proportional, real, raw, got 'sideways'"):
        model.set_curation_ratio("A", 0.5, absorb="sideways")


EVENT = '[[events]]\nround = 3\naction = "set_curation_ratio"\ntarget = "A"\nvalue = {0}\n'


def test_event_with_absorb_runs_like_the_graph_changed_by_hand(cli, workdir):
    path = workdir / "s.toml"
    path.write_text(TEXT + EVENT.format('{ ratio = 0.6, absorb = "real" }'))
    done = cli("run", path, "--out", workdir / "out", "--quiet")
    assert done.status == 0, done.err
    events = (workdir / "out" / "events.csv").read_text().splitlines()
    assert events[1].startswith("3,set_curation_ratio,A,0.5") and events[1].endswith(",0.6")
    model = parse(two(EVENT.format('{ ratio = 0.6, absorb = "real" }'))).build()
    model.run(3)
    assert shares(model.graph, "A") == pytest.approx({"real": 0.2, "B": 0.2, "users_A": 0.36, "users_B": 0.24})


def test_event_without_absorb_is_unchanged_proportional():
    model = parse(two(EVENT.format("0.6"))).build()
    model.run(3)
    assert shares(model.graph, "A")["real"] == pytest.approx(0.24)


@pytest.mark.parametrize("value, words", [
    ('{ ratio = 0.6, absorb = "sideways" }', "value.absorb must be one of proportional, real, raw, got 'sideways'"),
    ('{ ratio = 1.5, absorb = "real" }', "value.ratio must be a number in [0, 1], got 1.5"),
    ('{ lambda = 0.6 }', "value must be a number or a table {ratio, absorb}"),
    ('{ ratio = 0.9, absorb = "real" }', "its real-data share 0.3 cannot give 0.4"),
])
def test_bad_event_absorb_is_one_error_line_naming_the_key(cli, workdir, value, words):
    path = workdir / "s.toml"
    path.write_text(TEXT + EVENT.format(value))
    done = cli("validate", path)
    assert done.status == 2
    lines = done.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "events[0] at round 3" in lines[0]
    assert words in lines[0]


def test_analyze_absorb_flag_end_to_end(cli, workdir):
    path = workdir / "s.toml"
    path.write_text(TEXT)
    report = {}
    for absorb in ("proportional", "raw"):
        done = cli("analyze", path, "--absorb", absorb, "--json")
        assert done.status == 0, done.err
        report[absorb] = json.loads(done.out)
    assert report["proportional"]["absorb"] == "proportional" and report["raw"]["absorb"] == "raw"
    assert report["raw"]["influence"][0][0] > 0 > report["proportional"]["influence"][0][0]
    done = cli("analyze", path, "--absorb", "raw")
    assert "curation ratios absorbed: raw" in done.out and "first-arrival effect" in done.out
    done = cli("analyze", "default", "--absorb", "raw")
    assert done.status == 2
    assert done.err.strip() == ("error: model 'A_base': has no raw synthetic inputs to absorb a change of its "
                                "curation ratio (absorb = raw)")


def test_analyze_bad_absorb_value_names_the_option(cli):
    done = cli("analyze", "default", "--absorb", "sideways")
    assert done.status == 2
    assert done.err.strip() == ("error: argument --absorb: invalid choice: 'sideways' "
                                "(choose from 'proportional', 'real', 'raw')")


def test_optimizer_sets_and_reports_the_convention():
    model = parse(two()).build()
    levers = policy.curation_levers(model, hi=0.9, absorb="real")
    assert [lv.hi for lv in levers] == pytest.approx([0.8, 0.9])       # A: 0.5 + its real share 0.3
    report = policy.optimize(policy.Problem(model, levers, 1.0), n_random=0)
    out = report.to_dict()
    assert out["absorb"] == "real"
    for pol in report.policies.values():                   # the engine's events use the same convention
        assert pol.simulated == pytest.approx(pol.predicted, abs=1e-8)
    assert 'value = { ratio = ' in "\n".join(policy.event_lines(report)) and 'absorb = "real" }' in "\n".join(
        policy.event_lines(report))


def test_browser_knob_absorbs_the_curation_ratio_on_an_explicit_graph(tmp_path):
    from viz.model import VizModel

    path = tmp_path / "two.toml"
    path.write_text(TEXT)
    m = VizModel(scenario_name=str(path), curation_ratio="0.45", absorb="raw")     # every curated model
    assert m.error is None and m.absorb == "raw"
    assert shares(m.graph, "A") == pytest.approx({"real": 0.3, "B": 0.25, "users_A": 0.27, "users_B": 0.18})
    assert shares(m.graph, "B") == pytest.approx({"real": 0.5, "A": 0.05, "users_B": 0.45})
    bad = VizModel(scenario_name=str(path), curation_ratio="0.6", absorb="raw")   # B's raw share is 0.1
    assert "cannot give" in bad.error
    assert "absorb: applies to an explicit graph" in VizModel(scenario_name=str(path), absorb="real").error


def test_study_axis_varies_lambda_with_the_keys_convention(tmp_path):
    """The study reference's example: ``topology.curation_ratio`` alone is absorbed by the raw
    inputs, together with ``topology.real_share`` by the real data."""
    from ecosystem.formats import study as study_mod

    path = tmp_path / "s.toml"
    path.write_text('scenario = "ring"\n[set]\n"topology.real_share" = 0.3\n'
                    '[variants.lambda.base]\n"topology.curation_ratio" = 0.4\n'
                    '[variants.lambda.more_real_absorbs]\n"topology.curation_ratio" = 0.5\n'
                    '"topology.real_share" = 0.2\n[grid]\n"topology.n" = [4]\n')
    study = study_mod.load(path)
    mixes = []
    for setting in study.settings:
        graph = study.build(setting, 0).graph
        mixes.append((flows.real_share(graph, "m0"), flows.curation_ratio(graph, "m0")))
    assert mixes == [pytest.approx((0.3, 0.4)), pytest.approx((0.2, 0.5))]
