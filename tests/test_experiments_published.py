"""The published-chip traces the simulator replays are the model's own traces, rebuilt here from model/."""
import pandas as pd
import pytest

from bitsim.experiments.published import TRACE_SPECS, published_trace
from sim.validation.published import load_published_trace


@pytest.mark.parametrize("name", sorted(TRACE_SPECS))
def test_committed_published_trace_equals_a_fresh_build(name):
    fresh = published_trace(name).reset_index(drop=True)
    committed = load_published_trace(name)
    assert sorted(committed.columns) == sorted(fresh.columns)
    pd.testing.assert_frame_equal(committed[fresh.columns].reset_index(drop=True), fresh, check_dtype=False)


def test_an_unknown_published_trace_is_named():
    with pytest.raises(ValueError, match="unknown published trace 'nope'"):
        published_trace("nope")
