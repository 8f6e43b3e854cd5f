"""Scripted events: exact effect, exact timing, file == Python, clean collection, clear errors."""

from __future__ import annotations

import copy
import json
import tomllib

import numpy as np
import pandas as pd
import pytest
from conftest import DATA, SHIPPED, data_toml

from ecosystem import parse
from ecosystem.core import flows
from ecosystem.formats.scenario import ScenarioError

BASE = data_toml("newcomer")
BASE.pop("events")
BASE["steps"] = 12

ROUND = 6
# (action, target, value, what may change: node attrs and in-edges of these names)
ACTIONS = [
    ("set_curation_ratio", "A", 0.5, {"A"}),
    ("set_real_share", "B", 0.3, {"B"}),
    ("set_sample_size", "A", 300, {"A"}),
    ("set_retention", "A", "accumulate", {"A"}),
    ("set_K", "users_A", 7, {"users_A"}),
    ("set_tau", "users_A", 0.3, {"users_A"}),
    ("set_reward", "users_A", "cool", {"users_A"}),
    ("set_flow", "B->A", 0.3, {"A"}),
    ("add_flow", "users_B->A", 0.25, {"A"}),
    ("remove_flow", "B->A", None, {"A"}),
    ("add_model", "C", {"init": {"copy": "A"}, "inputs": [{"from": "users_A", "weight": 0.5},
                                                          {"from": "real", "weight": 0.5}]}, {"C"}),
    ("remove_model", "B", None, {"A", "B", "users_B"}),
    ("add_curator", "users_X", {"curates": "B", "K": 3, "reward": "warm", "feeds": [{"to": "A", "weight": 0.3}]},
     {"A", "users_X"}),
    ("remove_curator", "users_A", None, {"A", "users_A"}),
    ("set_real_data", "real", {"uniform": True}, {"real"}),
    ("scale_real_share", "all", 0.5, {"A", "B"}),
]


def snapshot(graph):
    """Node attributes and in-edges per node, as comparable text."""
    out = {}
    for v, attrs in graph.nodes(data=True):
        shown = {k: (repr(a.rule) + str([r.name for r in a.rewards]) if k == "curator" else
                     np.round(a, 12).tolist() if isinstance(a, np.ndarray) else repr(a)) for k, a in attrs.items()}
        ins = sorted((str(u), round(d.get("weight", -1), 12)) for u, _, d in graph.in_edges(v, data=True))
        out[v] = (json.dumps(shown, sort_keys=True, default=str), ins)
    return out


@pytest.mark.parametrize("mode", ["population", "sample"])
@pytest.mark.parametrize("action,target,value,changes", ACTIONS, ids=[a[0] for a in ACTIONS])
def test_action_changes_exactly_what_it_names_at_its_round(mode, action, target, value, changes):
    data = copy.deepcopy(BASE) | {"mode": mode}
    plain = parse(copy.deepcopy(data)).build()
    data["events"] = [{"round": ROUND, "action": action, "target": target}
                      | ({} if value is None else {"value": value})]
    scripted = parse(data).build()
    before = snapshot(scripted.graph)
    plain.run(ROUND - 1)
    scripted.run(ROUND - 1)
    assert snapshot(scripted.graph) == before                 # nothing yet after round ROUND - 1
    pd.testing.assert_frame_equal(plain.agents_frame(), scripted.agents_frame())
    plain.step()
    scripted.step()                                           # the event applies before round ROUND
    after = snapshot(scripted.graph)
    changed = {v for v in set(before) | set(after) if before.get(v) != after.get(v)}
    assert changed and changed <= changes, changed
    log = scripted.events_frame()
    assert list(log["round"]) == [ROUND] and list(log["action"]) == [action]
    a, b = plain.agents_frame(), scripted.agents_frame()
    assert a[a.step < ROUND].equals(b[b.step < ROUND])
    # retention applies to data gathered from now on, so round ROUND itself looks the same;
    # sample size has no effect in population mode
    if action != "set_retention" and (action != "set_sample_size" or mode == "sample"):
        assert not a[a.step == ROUND].reset_index(drop=True).equals(b[b.step == ROUND].reset_index(drop=True))


def test_file_events_equal_python_events(tmp_path):
    data = copy.deepcopy(BASE) | {"mode": "sample", "steps": 15}
    specs = [
        {"round": 3, "action": "set_K", "target": "users_A", "value": 6},
        {"round": 5, "action": "add_model", "target": "C",
         "value": {"init": "real", "inputs": [{"from": "users_A", "weight": 1.0}]}},
        {"round": 7, "action": "set_tau", "target": "users_A", "value": 0.5, "every": 3, "until": 13},
        {"round": 9, "action": "remove_model", "target": "B"},
    ]
    from_file = parse(copy.deepcopy(data) | {"events": specs}).build()
    from_file.run(15)
    scripted = parse(copy.deepcopy(data)).build()
    for s in specs:
        scripted.schedule(s["action"], s["target"], s.get("value"), at=s["round"], every=s.get("every"),
                          until=s.get("until"))
    scripted.run(15)
    for frame in ("agents_frame", "ecosystem_frame", "events_frame", "cross_alignment_frame"):
        pd.testing.assert_frame_equal(getattr(from_file, frame)(), getattr(scripted, frame)())
    assert list(from_file.events_frame()["round"]) == [3, 5, 7, 9, 10, 13]


def test_events_at_the_same_round_apply_in_the_order_given():
    def final(order):
        data = copy.deepcopy(BASE)
        data["events"] = [{"round": 4, "action": "set_curation_ratio", "target": "A", "value": v} for v in order]
        model = parse(data).build()
        model.run(5)
        return flows.curation_ratio(model.graph, "A"), list(model.events_frame()["new"])

    assert final([0.1, 0.4]) == (pytest.approx(0.4), ["0.1", "0.4"])
    assert final([0.4, 0.1]) == (pytest.approx(0.1), ["0.4", "0.1"])


def test_condition_turns_on_curation_once():
    model = parse(copy.deepcopy(BASE) | {"steps": 30}).build()
    model.when(lambda m: m.agent("A").alignment > 0.1,
               lambda m: m.apply("add_flow", "users_B->B", 0.3), label="A above 0.1")
    model.run(30)
    log = model.events_frame()
    assert list(log["action"]) == ["when", "add_flow"]
    fired = int(log["round"].iloc[0])
    eco = model.agents_frame()
    a = eco[eco.model == "A"].set_index("step")["alignment"]
    assert a[fired - 1] > 0.1 and (a[: fired - 2] <= 0.1).all()


def test_agents_appearing_and_disappearing_keep_outputs_consistent(tmp_path, cli):
    story = DATA / "newcomer.toml"
    text = story.read_text() + '\n[[events]]\nround = 140\naction = "remove_model"\ntarget = "A"\n'
    path = tmp_path / "story.toml"
    path.write_text(text)
    done = cli("run", path, "--out", tmp_path / "out")
    assert done.status == 0, done.err
    agents = pd.read_csv(tmp_path / "out" / "agents.csv")
    span = agents.groupby("model")["step"].agg(["min", "max", "count"])
    assert (span["max"] - span["min"] + 1 == span["count"]).all()      # no silent gaps
    assert span.loc["C", "min"] == 80 and span.loc["A", "max"] == 139 and span.loc["B", "max"] == 160
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["models"]["A"]["present_at_end"] is False and summary["models"]["C"]["first_step"] == 80
    events = pd.read_csv(tmp_path / "out" / "events.csv")
    assert list(events["round"]) == [50, 50, 80, 120, 140]
    assert {"alignment.png", "diversity.png", "graph.png"} <= {p.name for p in (tmp_path / "out").iterdir()}


@pytest.mark.parametrize("event,message", [
    ({"round": 99, "action": "set_K", "target": "users_A", "value": 3}, "events[0].round: round 99 is beyond"),
    ({"round": 3, "action": "explode", "target": "A"}, "events[0].action: must be one of"),
    ({"round": 3, "action": "set_K", "target": "nobody", "value": 3}, "events[0] at round 3: set_K 'nobody'"),
    ({"round": 3, "action": "set_curation_ratio", "target": "A", "value": 1.5}, "must be a number in [0, 1]"),
    ({"round": 3, "action": "set_curation_ratio", "target": "B", "value": 0.5}, "has no curator inputs"),
    ({"round": 3, "action": "add_model", "target": "C",
      "value": {"inputs": [{"from": "real", "weight": 0.5}]}}, "inputs of 'C' must sum to 1"),
    ({"round": 3, "action": "remove_flow", "target": "real->A"}, None),
    ({"round": 3, "action": "add_flow", "target": "A->real", "value": 0.5}, "'real' is a source, not a model/pool"),
    ({"round": 3, "action": "set_flow", "target": "real->A", "value": 0.0}, None),
    ({"round": 3, "action": "set_K", "target": "users_A", "value": 3, "until": 5}, "until: needs every"),
])
def test_bad_events_give_one_line_errors(event, message):
    data = copy.deepcopy(BASE) | {"events": [event]}
    if message is None:                     # a valid event: removing a flow rescales the rest
        parse(data)
        return
    with pytest.raises(ScenarioError) as err:
        parse(data, origin="s.toml")
    text = str(err.value)
    assert text.startswith("s.toml: ") and message in text and "\n" not in text, text


def test_shipped_stories_run_and_log_their_events():
    for path in sorted((SHIPPED / "stories").glob("*/scenario.toml")):
        scenario = parse(tomllib.loads(path.read_text()), origin=str(path))
        model = scenario.build()
        model.run(scenario.steps)
        assert len(model.events_frame()) >= len(scenario.events), path
        assert np.isfinite(model.state).all()
