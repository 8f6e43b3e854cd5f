"""Writing a finished run to a results folder, all or nothing.

Files are written to a staging folder next to the destination and moved in only
when every file is complete (:func:`ecosystem.formats.files.staged`), so an error never
leaves half a result; files in the destination that a run does not produce are left
untouched. ``summary.json`` follows the rule for non-finite numbers of
:mod:`ecosystem.formats.files` (NaN is null, infinities the strings "inf" and "-inf").
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ecosystem.core import flows, topologies
from ecosystem.core.conditional import ConditionalCategorical
from ecosystem.core.learned import Learned
from ecosystem.core.model import EcosystemModel
from ecosystem.formats import figures, response_tables, sample_grid
from ecosystem.formats.files import json_number, staged, to_json
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
            "initial_alignment": json_number(first["alignment"]),
            "alignment": json_number(last["alignment"]),
            "diversity": json_number(last["diversity"]),
            "drift": json_number(last["drift"]),
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
        "ecosystem": {k: json_number(v) for k, v in model.ecosystem.items()},
        "models": per_model,
        "events": model.event_log,
        **_domains(model),
    }


def _domains(model: EcosystemModel) -> dict:
    """Conditional models: ``domain_alignment[model][domain]`` at the last round (else nothing)."""
    table = model.measures.get("domain")
    if table is None:
        return {}
    names = [str(m) for m in model.kernel.models]
    return {"domain_alignment": {m: {d: json_number(v) for d, v in zip(names, row, strict=True)}
                                 for m, row in zip(names, table, strict=True)}}


def isolated_runs(model: EcosystemModel, scenario: Scenario, seed: int) -> pd.DataFrame | None:
    """The story's reference: each contrasted model run alone (:func:`~ecosystem.core.topologies.isolated`:
    its real data and its own users' curation at its shares, no other model, no events) for the
    run's rounds, mode and seed; ``step, model, alignment`` rows. None for learned models (a run
    of its own each) or when no contrasted model can stand alone."""
    if isinstance(model.family, Learned):
        return None
    parts = []
    for name in scenario.contrast:
        alone = topologies.isolated(scenario.graph, name) if name in scenario.graph else None
        if alone is None:
            continue
        twin = EcosystemModel(alone, scenario.family, mode=model.mode, order=model.order, rng=seed,
                              metrics=("alignment",))
        twin.run(int(model.steps))
        parts.append(twin.agents_frame()[["step", "model", "alignment"]])
    return pd.concat(parts, ignore_index=True) if parts else None


def write(model: EcosystemModel, scenario: Scenario, seed: int, out: Path) -> list[Path]:
    """Write CSVs, ``summary.json`` and figures into ``out``; returns the files written."""
    out = Path(out)
    with staged(out) as stage:
        agents, eco = model.agents_frame(), model.ecosystem_frame()
        eco.to_csv(stage / "model.csv", index=False)
        agents.to_csv(stage / "agents.csv", index=False)
        if model.rewards:
            model.cross_alignment_frame().to_csv(stage / "cross_alignment.csv", index=False)
        if "domain" in model.measures:
            model.domain_alignment_frame().to_csv(stage / "domain_alignment.csv", index=False)
        model.events_frame().to_csv(stage / "events.csv", index=False)
        marks = sorted({e["round"] for e in model.event_log})
        (stage / "summary.json").write_text(to_json(summary(model, scenario, seed), indent=2) + "\n")
        final = {a.name: a.alignment for a in model.model_agents}
        alone = isolated_runs(model, scenario, seed) if scenario.contrast and scenario.alone else None
        if alone is not None:
            alone.to_csv(stage / "isolated.csv", index=False)
        figures.run_figures(stage, agents, eco, model.graph, final, marks, model.family.kind, scenario.contrast,
                            alone)
        if isinstance(model.family, Learned) and model.family.shape:
            sample_grid.write(model.family, model.state, model.kernel.models, stage)
        if isinstance(model.family, ConditionalCategorical):
            response_tables.write(model.family, model.initial, model.state, model.kernel.models, stage)
        written = [out / f.name for f in sorted(stage.iterdir())]
    return written
