"""Analysis of the population round: stable point, convergence, influence and backfire.

:mod:`~ecosystem.analysis.stability` holds the round map, its stable point and Jacobian;
:mod:`~ecosystem.analysis.influence` the influence matrix, negative influence and backfire report and
:func:`analyze`;
:mod:`~ecosystem.analysis.policy` where to spend curation (optimal vs siloed policies, price of siloing),
:mod:`~ecosystem.analysis.policy_search` the same by simulation (derivative-free);
:mod:`~ecosystem.analysis.intervals` the 95% Student-t interval of a mean over replicates.
"""

from ecosystem.analysis import policy
from ecosystem.analysis.influence import (
    Analysis,
    Backfire,
    Influence,
    Parameter,
    alignment_gradients,
    analyze,
    backfire,
    curation_parameters,
    influence,
    influence_by_resolving,
    negative_influence,
    observed_rate,
    parameter_derivative,
)
from ecosystem.analysis.stability import RoundMap, StablePoint, affine_jacobian, jacobian, spectral_radius, stable_point
from ecosystem.errors import AnalysisError

__all__ = [
    "Analysis",
    "AnalysisError",
    "Backfire",
    "Influence",
    "Parameter",
    "RoundMap",
    "StablePoint",
    "affine_jacobian",
    "alignment_gradients",
    "analyze",
    "backfire",
    "curation_parameters",
    "influence",
    "influence_by_resolving",
    "jacobian",
    "negative_influence",
    "observed_rate",
    "parameter_derivative",
    "policy",
    "spectral_radius",
    "stable_point",
]
