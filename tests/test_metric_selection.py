"""A scenario's ``metrics`` key: only the chosen metrics are measured; the dynamics do not change."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from conftest import RING

from ecosystem.core.model import EcosystemModel
from ecosystem.formats.scenario import load


@pytest.mark.parametrize("mode", ["population", "sample"])
def test_metric_selection_measures_only_what_is_asked(mode):
    """A run measuring alignment and diversity only: those columns are the full run's
    numbers, the others NaN, the model x reward table empty, the dynamics unchanged."""
    full = load(RING)
    some = dataclasses.replace(full, metrics=("alignment", "diversity"))
    runs = {}
    for tag, scenario in (("full", full), ("some", some)):
        model = scenario.build(mode=mode)
        model.run(4)
        runs[tag] = model
    a, b = runs["full"].agents_frame(), runs["some"].agents_frame()
    np.testing.assert_array_equal(runs["full"].state, runs["some"].state)
    pd.testing.assert_frame_equal(a[["step", "model", "alignment", "diversity", "curation_ratio"]],
                                  b[["step", "model", "alignment", "diversity", "curation_ratio"]],
                                  check_exact=False, rtol=1e-12, atol=1e-15)   # alignment: matvec vs matmul
    assert a["drift"].notna().all() and b["drift"].isna().all() and b["change"].isna().all()
    eco = runs["some"].ecosystem_frame()
    assert eco["pairwise_divergence"].isna().all() and eco["max_change"].isna().all()
    np.testing.assert_allclose(eco["mean_alignment"], runs["full"].ecosystem_frame()["mean_alignment"], rtol=1e-12)
    assert len(runs["full"].cross_alignment_frame()) == 6 * 5 and runs["some"].cross_alignment_frame().empty
    with pytest.raises(ValueError, match="unknown metric 'entropy'"):
        EcosystemModel(full.graph.copy(), full.family, metrics=("entropy",))
