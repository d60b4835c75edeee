"""Pareto fronts agree with a brute-force O(n^2) dominance check."""
import numpy as np
import pandas as pd
import pytest

from bitsim.experiments.pareto import pareto_front, pareto_mask, plot_pareto


def _brute_force(cost: np.ndarray) -> np.ndarray:
    """Independent reference: i is optimal iff no j is <= everywhere and < somewhere."""
    n = len(cost)
    keep = np.ones(n, dtype=bool)
    for i in range(n):
        for j in range(n):
            if i != j and np.all(cost[j] <= cost[i]) and np.any(cost[j] < cost[i]):
                keep[i] = False
                break
    return keep


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("k", [2, 3])
def test_mask_matches_brute_force(seed, k):
    rng = np.random.default_rng(seed)
    n = 150
    # integer grid values make ties and exact duplicates common
    data = rng.integers(0, 12, size=(n, k)).astype(float)
    df = pd.DataFrame(data, columns=["tps", "jpt", "area"][:k])
    senses = {"tps": "max", "jpt": "min", "area": "min"}
    objectives = {c: senses[c] for c in df.columns}
    cost = np.column_stack([-df[c] if s == "max" else df[c] for c, s in objectives.items()])
    assert np.array_equal(pareto_mask(df, objectives), _brute_force(cost))


def test_hand_computed_front():
    df = pd.DataFrame({"tps": [10, 20, 15, 20, 5], "jpt": [1.0, 2.0, 3.0, 2.0, 0.5]})
    # (15, 3.0) is beaten by (20, 2.0); the duplicate (20, 2.0) rows are both kept.
    front = pareto_front(df, {"tps": "max", "jpt": "min"})
    assert sorted(front.index.tolist()) == [0, 1, 3, 4]
    assert front["tps"].tolist() == [20, 20, 10, 5]  # sorted by the first objective, best first


def test_bad_input_is_named():
    df = pd.DataFrame({"a": [1.0, np.nan], "b": [1, 2]})
    with pytest.raises(ValueError, match="'a'"):
        pareto_mask(df, {"a": "min"})
    with pytest.raises(ValueError, match="'zz'"):
        pareto_mask(df, {"zz": "min"})
    with pytest.raises(ValueError, match="sense"):
        pareto_mask(df, {"b": "smallest"})
    with pytest.raises(TypeError):
        pareto_mask(df.to_numpy(), {"b": "min"})


def test_plot_marks_the_front(tmp_path):
    df = pd.DataFrame({"tps": [10, 20, 15], "jpt": [1.0, 2.0, 3.0], "area": [1, 2, 3]})
    ax = plot_pareto(df, "tps", "jpt", color="area", xlabel="tokens/s", ylabel="J/token")
    front_collection = ax.collections[1]
    assert len(front_collection.get_offsets()) == 2
    assert ax.get_xlabel() == "tokens/s"
