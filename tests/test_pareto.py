"""Pareto fronts agree with a brute-force O(n^2) dominance check."""
import numpy as np
import pandas as pd
import pytest

from bitsim.experiments.pareto import pareto_front, pareto_mask, plot_pareto, scale_axis


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


def test_infeasible_points_are_crosses_off_the_front():
    # the infeasible row (3) would dominate every other point; it must be drawn apart and never be on the front
    df = pd.DataFrame({"tps": [10.0, 20.0, 15.0, 99.0], "jpt": [1.0, 2.0, 3.0, 0.1], "area": [1, 2, 3, 4],
                       "ok": [True, True, True, False]})
    ax = plot_pareto(df, "tps", "jpt", color="area", feasible="ok", infeasible_label="too big")
    points, front, crosses = (c.get_offsets() for c in ax.collections[:3])
    assert len(points) == 3 and sorted(map(tuple, front.tolist())) == [(10.0, 1.0), (20.0, 2.0)]
    assert crosses.tolist() == [[99.0, 0.1]]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "too big (1; off the front)" in labels and any(t.startswith("Pareto front (2 of 3") for t in labels)


def test_a_log_axis_only_when_the_data_span_a_decade():
    import matplotlib.pyplot as plt

    _, ax = plt.subplots()
    assert scale_axis(ax, "x", [28.0, 40.0], log=True) == "linear"       # 28-40 mm²: a narrow range
    assert scale_axis(ax, "y", [0.5, 80.0], log=True) == "log"
    assert scale_axis(ax, "y", [0.5, 80.0], log=False) == "linear"
    assert scale_axis(ax, "x", [0.0, 80.0], log=True) == "linear"        # a zero cannot sit on a log axis
    plt.close(ax.figure)
