"""ecosystem: multi-model self-consuming training loops with human curation, on Mesa.

Quick use::

    import ecosystem
    scenario = ecosystem.load("scenarios/default.toml")
    model = scenario.build(seed=1)
    model.run(100)
    model.agents_frame()     # one row per round per model
"""

from ecosystem.core.curation import BestOfK, Curator, Luce, Tilt
from ecosystem.core.families import Categorical, Gaussian
from ecosystem.core.flows import FlowError, curation_ratio, set_curation_ratio
from ecosystem.core.learned import Dataset, GenerativeModel, Learned
from ecosystem.core.model import EcosystemModel
from ecosystem.core.replicates import ReplicateBatch
from ecosystem.core.rewards import Ball, FromCallable, Linear, Quadratic, Tabular
from ecosystem.formats.scenario import Scenario, ScenarioError, load, parse
from ecosystem.learned import register_dataset, register_model, register_reward

__all__ = [
    "Ball", "BestOfK", "Categorical", "Curator", "Dataset", "EcosystemModel", "FlowError", "FromCallable",
    "Gaussian", "GenerativeModel", "Learned", "Linear", "Luce", "Quadratic", "ReplicateBatch", "Scenario",
    "ScenarioError", "Tabular", "Tilt", "curation_ratio", "load", "parse", "register_dataset", "register_model",
    "register_reward", "set_curation_ratio",
]
