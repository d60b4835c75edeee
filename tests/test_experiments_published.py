"""The published-chip traces the simulator replays are the model's own traces, rebuilt here from model/."""
import pandas as pd
import pytest

from bitsim.experiments.harness_floors import write_harness_floors
from bitsim.experiments.published import TRACE_SPECS, published_trace
from sim.validation.published import load_harness_floors, load_published_trace


@pytest.mark.parametrize("name", sorted(TRACE_SPECS))
def test_committed_published_trace_equals_a_fresh_build(name):
    fresh = published_trace(name).reset_index(drop=True)
    committed = load_published_trace(name)
    assert sorted(committed.columns) == sorted(fresh.columns)
    pd.testing.assert_frame_equal(committed[fresh.columns].reset_index(drop=True), fresh, check_dtype=False)


def test_an_unknown_published_trace_is_named():
    with pytest.raises(ValueError, match="unknown published trace 'nope'"):
        published_trace("nope")


def test_written_harness_floors_are_read_back_with_their_device(tmp_path):
    """The table the GPU benchmark writes is the one sim reads: device in its comment lines, floors = the median
    of each path's smallest shape (hand: w2a8 median of 12, 13, 20 = 13; torch 64x64 median of 9, 11 = 10)."""
    table = pd.DataFrame({"path": ["w2a8_noop"] * 3 + ["torch_bf16"] * 3, "N": [64] * 5 + [2560],
                          "K": [64] * 5 + [2560], "repeat": [0, 1, 2, 0, 1, 0],
                          "us": [12.0, 20.0, 13.0, 9.0, 11.0, 40.0]})
    table.attrs = {"gpu": "TEST GPU", "torch": "0", "cuda": "0"}
    path = write_harness_floors(table, tmp_path / "floors.csv")
    assert "# gpu: TEST GPU" in path.read_text().splitlines()
    assert load_harness_floors(path) == {"bitnet_w2a8": 13.0, "torch_bf16": 10.0}


def test_the_harness_floor_benchmark_imports_no_simulator_so_it_runs_where_only_torch_is_installed():
    import subprocess
    import sys
    code = ("import sys, bitsim.experiments.harness_floors; "
            "print(sorted(m for m in ('sim', 'model', 'kernels', 'simpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
