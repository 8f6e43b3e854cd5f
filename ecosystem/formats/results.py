"""Writing a finished run to a results folder, all or nothing.

Files are written to a staging folder next to the destination and moved in only
when every file is complete, so an error never leaves half a result; files in the
destination that a run does not produce are left untouched.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from pathlib import Path

from ecosystem.core import flows
from ecosystem.core.model import EcosystemModel
from ecosystem.formats import figures
from ecosystem.formats.scenario import Scenario


def summary(model: EcosystemModel, scenario: Scenario, seed: int) -> dict:
    """The run's settings, final ecosystem metrics and per-model results (JSON-ready)."""
    agents = model.agents_frame()
    current = {a.name: a for a in model.model_agents}
    per_model = {}
    for name, rows in agents.groupby("model", sort=False):
        first, last = rows.iloc[0], rows.iloc[-1]
        agent = current.get(name)
        per_model[str(name)] = {
            "initial_alignment": _clean(first["alignment"]),
            "alignment": _clean(last["alignment"]),
            "diversity": _clean(last["diversity"]),
            "drift": _clean(last["drift"]),
            "first_step": int(first["step"]),
            "last_step": int(last["step"]),
            "curation_ratio": agent.curation_ratio if agent else None,
            "real_share": agent.real_share if agent else None,
            "present_at_end": agent is not None,
        }
    return {
        "scenario": scenario.name,
        "description": scenario.description,
        "source": scenario.source,
        "seed": seed,
        "steps": int(model.steps),
        "mode": model.mode,
        "order": model.order,
        "family": model.family.kind,
        "n_models": len(model.model_agents),
        "n_curators": len(flows.nodes_of(model.graph, "curator")),
        "ecosystem": {k: _clean(v) for k, v in model.ecosystem.items()},
        "models": per_model,
        "events": model.event_log,
    }


def _clean(value) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value if math.isfinite(value) else (
        "inf" if value > 0 else "-inf")


def write(model: EcosystemModel, scenario: Scenario, seed: int, out: Path) -> list[Path]:
    """Write CSVs, ``summary.json`` and figures into ``out``; returns the files written."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        agents, eco = model.agents_frame(), model.ecosystem_frame()
        eco.to_csv(stage / "model.csv", index=False)
        agents.to_csv(stage / "agents.csv", index=False)
        if model.rewards:
            model.cross_alignment_frame().to_csv(stage / "cross_alignment.csv", index=False)
        model.events_frame().to_csv(stage / "events.csv", index=False)
        marks = sorted({e["round"] for e in model.event_log})
        (stage / "summary.json").write_text(json.dumps(summary(model, scenario, seed), indent=2) + "\n")
        figures.time_series(agents, eco, "alignment", stage / "alignment.png", "alignment E[r]", marks)
        figures.time_series(agents, eco, "diversity", stage / "diversity.png",
                            "entropy (nats)" if model.family.kind == "categorical" else "total variance", marks)
        final = {a.name: a.alignment for a in model.model_agents}
        figures.network(model.graph, final, stage / "graph.png")
        out.mkdir(exist_ok=True)
        written = []
        for f in sorted(stage.iterdir()):
            f.replace(out / f.name)
            written.append(out / f.name)
        return written
    finally:
        shutil.rmtree(stage, ignore_errors=True)
