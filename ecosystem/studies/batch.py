"""``BatchModel``: a scenario as a Mesa model class with keyword parameters, for ``mesa.batch_run``.

It builds exactly what ``ecosystem run`` builds (:meth:`~ecosystem.formats.scenario.Scenario.model_args`):
the scenario's graph, settings, metrics, builder and scripted events.
"""

from __future__ import annotations

from typing import Any

from ecosystem.core.model import EcosystemModel
from ecosystem.formats import study
from ecosystem.formats.names import resolve
from ecosystem.formats.scenario import Scenario, default_name, parse, read_toml


class BatchModel(EcosystemModel):
    """An :class:`EcosystemModel` from keyword parameters, for ``mesa.batch_run``.

    Args:
        scenario: a shipped scenario name (``ring``, ``stories/newcomer``) or a path ending in ``.toml``.
        seed: the run's seed (``batch_run`` passes it; it also seeds topology generators).
        steps: rounds to run (default: the scenario's); ``running`` turns False after them.
        **overrides: dotted scenario keys, e.g. ``**{"topology.curation_ratio": 0.3}``.

    The parsed scenario is :attr:`spec` (Mesa's ``Model.scenario`` is another concept).

    Example::

        from mesa.batchrunner import batch_run
        rows = batch_run(BatchModel, {"scenario": "ring", "topology.curation_ratio": [0.2, 0.4]},
                         rng=[0, 1], max_steps=10_000, number_processes=1)
    """

    def __init__(self, scenario: str = "default", seed: int | None = None, steps: int | None = None,
                 **overrides: Any) -> None:
        path = resolve(scenario)
        data = study.apply(read_toml(path), overrides, seed)
        self.spec: Scenario = parse(data, origin=str(path), default_name=default_name(path))
        super().__init__(**self.spec.model_args())
        self.max_rounds = self.spec.steps if steps is None else steps
        self.running = self.max_rounds > 0

    def step(self) -> None:
        """One round; ``running`` turns False after ``steps`` rounds."""
        super().step()
        self.running = self.steps < self.max_rounds
