"""The report's prose reads right whatever the numbers: ratios below 1, missing phases, one context,
one sequence; a custom chip keeps its own name; what a finding quotes is what its figure draws."""
import re
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import yaml
from matplotlib.colors import to_rgba
from matplotlib.image import imread

import sim
from bitsim.experiments.study import StudyConfig
from bitsim.report import figures
from bitsim.report.build import FIGURES, git_description
from bitsim.report.collect import collect_report
from bitsim.report.conclusions import (
    KV_OUTWEIGHS,
    batch_ratios,
    buys,
    chip_advice,
    faster,
    findings,
    kv_step_gains,
    over_contexts,
)
from bitsim.report.figures.axes import capacity_batches
from bitsim.report.figures.common import legend_below, outside_texts
from bitsim.report.figures.measured import class_colours
from bitsim.report.sections import quantity
from model.trace import build_trace


# ---------------------------------------------------------------- the words for numbers
def test_a_ratio_below_one_reads_slower_and_one_reads_as_fast():
    assert faster(1.44) == "1.44x faster"
    assert faster(0.56) == f"{1 / 0.56:.2f}x slower"
    assert faster(1.001) == "as fast (1.00x)"
    assert faster(float("nan")) == "n/a"


def test_a_step_below_one_costs_speed():
    assert buys(1.2) == "buy 1.20x"
    assert buys(0.53) == f"cost {1 / 0.53:.2f}x (0.53x the speed)"
    assert buys(1.0) == "buy nothing (1.00x)"
    assert buys(0.53, singular=True).startswith("costs ")


def test_one_context_is_named_once():
    assert over_contexts({2048: 1.41}) == "1.41x at 2k context"
    assert over_contexts({512: 1.5, 2048: 1.4, 32768: 1.3}) == "1.50x at 512 and 1.30x at 32k context"
    assert over_contexts({2048: 0.5}, faster) == "2.00x slower at 2k context"


# ---------------------------------------------------------------- a design on which a4.8 loses
@pytest.fixture(scope="module")
def losing(tmp_path_factory):
    """A tiny study whose a4.8 chip is the a4.8 preset (name kept: 'a4.8') with an eighth of its bandwidth,
    one decode context and no prefill."""
    root = tmp_path_factory.mktemp("losing")
    raw = yaml.safe_load((Path(sim.__file__).parent / "presets" / "a4.8.yaml").read_text())
    raw["offchip"]["bandwidth_gbps"] = raw["offchip"]["bandwidth_gbps"] / 8
    slow = root / "slow.yaml"
    slow.write_text(yaml.safe_dump(raw))
    (root / "none").mkdir()
    cfg = StudyConfig(presets=("tiny",), datapaths=("fp16", "b1.58", "a4.8"), contexts=(256,), prefill_tokens=0,
                      workers=1, reference=("h100-like",), experiments=("ladder", "batch"), batches=(1, 4),
                      matched={"fp16": "fp16", "b1.58": "b1.58", "a4.8": str(slow)}, measured_dir=str(root / "none"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = collect_report(cfg)
    return data, [str(w.message) for w in caught], slow


def test_findings_on_a_losing_design_say_slower_and_never_garble(losing):
    data, _, _ = losing
    lad = data.axes["ladder"]
    total = float(lad[lad.step == 3].speedup_total.iloc[0])
    assert total < 1   # the design does lose: the test would prove nothing otherwise
    text = "\n".join(findings(data) + chip_advice(data))
    assert f"a4.8 is {1 / total:.2f}x slower at 256 context" in text
    assert not re.search(r"0\.\d\dx faster", text)
    assert "n/a" not in text and "prefill" not in text.split("Attention array")[0]   # no prefill was run
    assert "1 sequences" not in text
    assert not re.search(r"at (\S+) context and [\d.]+x at \1", text)   # one context named once
    assert "buy 0." not in text and "buys 0." not in text


def test_every_headline_states_batch_context_basis_profile_and_energy_basis(losing):
    data, _, _ = losing
    for f in findings(data):
        head = f.split("**")[2][:400]
        for word in ("batch", "context", "iso-peak", "random-weight statistics"):
            assert word in head, (word, f)
        assert "speed only" in head or "energy" in head, f


def test_the_batch_ratios_a_finding_quotes_are_the_ones_the_figure_draws(losing):
    data, _, _ = losing
    quoted = batch_ratios(data)
    fig = figures.batch_sweep(data.axes["batch"])
    drawn = {line.get_label(): dict(zip(np.round(line.get_xdata()).astype(int), line.get_ydata()))
             for line in fig.axes[1].lines if line.get_label().startswith("a4.8 /")}
    assert drawn["a4.8 / fp16"] == pytest.approx(quoted)
    bt = data.axes["batch"]
    on = bt[(bt.skip == "on") & bt.feasible.astype(bool)].set_index(["batch", "datapath"]).tokens_per_s
    assert quoted[1] == pytest.approx(on[(1, "a4.8")] / on[(1, "fp16")])   # recomputed from the table


def test_the_capacity_batch_is_marked_where_weights_and_kv_fill_the_chip(losing):
    data, _, _ = losing
    bt = data.axes["batch"]
    caps = capacity_batches(bt)
    r = bt[(bt.datapath == "b1.58") & (bt.batch == 4)].iloc[0]
    assert caps["b1.58"] == pytest.approx((r.capacity_gb * 1e9 - r.weight_bytes) / (r.kv_bytes / 4))


def test_a_custom_chip_named_like_a_preset_keeps_a_name_of_its_own(losing):
    data, caught, slow = losing
    label = f"a4.8 ({slow.name})"
    assert any("named 'a4.8'" in m and label in m for m in caught)
    acc = data.tables["accelerators"].df.accelerator.tolist()
    assert label in acc and acc.count("a4.8") == 0     # the preset a4.8 is not in this study
    s = data.study.summary
    assert set(s[s.datapath == "a4.8"].accelerator) == {label, "h100-like"}
    roofs = data.study.ceilings
    assert label in set(roofs.accelerator) and "a4.8" not in set(roofs.accelerator)   # its own roofs
    fig = FIGURES["energy_by_component"](data)
    ticks = " ".join(t.get_text() for ax in fig.axes for t in ax.get_xticklabels())
    assert label in ticks


def test_kv_step_gains_are_the_ladder_step(losing):
    data, _, _ = losing
    lad = data.axes["ladder"]
    assert kv_step_gains(data) == {256: pytest.approx(float(lad[lad.step == 2].speedup_step.iloc[0]))}


# ---------------------------------------------------------------- figures
def test_two_reference_chips_are_two_lines_each_named(losing):
    data, _, _ = losing
    s = data.study.summary
    ref = s[s.role == "reference"]
    two = pd.concat([s, ref.assign(accelerator="mine", tokens_per_s=3 * ref.tokens_per_s)], ignore_index=True)
    fig = figures.throughput(two)
    lines = [line for line in fig.axes[0].lines if line.get_label().startswith("a4.8 on h100-like")
             or line.get_label() == "a4.8 on mine"]
    assert sorted(line.get_label() for line in lines) == ["a4.8 on h100-like", "a4.8 on mine"]
    assert len({str(line.get_linestyle()) for line in lines}) == 2
    mine = next(line for line in lines if line.get_label() == "a4.8 on mine")
    assert list(mine.get_ydata()) == pytest.approx(list(3 * ref[ref.datapath == "a4.8"].sort_values("context")
                                                         .tokens_per_s))


def test_sim_vs_measured_gives_every_kernel_class_its_own_colour():
    classes = [f"class {i}" for i in range(14)]
    colours = class_colours(classes)
    assert len({tuple(np.round(to_rgba(c), 4)) for c in colours.values()}) == len(classes)
    with pytest.raises(ValueError, match="distinct colours"):
        class_colours([f"c{i}" for i in range(40)])


def test_save_writes_png_svg_and_pdf_with_the_legend_below_the_axes(tmp_path):
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([1, 2], [1, 2], label="the one line")
    legend_below(fig, [ax])
    paths = figures.save(fig, tmp_path, "f")
    assert [p.suffix for p in paths] == [".png", ".svg", ".pdf"]
    assert "the one line" in (tmp_path / "f.svg").read_text()
    assert imread(tmp_path / "f.png").shape[0] > 2 * 200   # the legend below the 2-inch axes is inside the crop


def test_git_description_says_commit_and_counts_only_tracked_changes(tmp_path):
    assert git_description(tmp_path) == "unknown"   # not a repository
    d = git_description(Path(__file__).resolve().parent.parent)
    assert re.fullmatch(r"commit [0-9a-f]{12}( plus uncommitted changes to \d+ tracked files?)?", d)


def test_compare_takes_the_simulators_own_summary_table_and_names_each_chip(tmp_path):
    raw = yaml.safe_load((Path(sim.__file__).parent / "presets" / "a4.8.yaml").read_text())
    raw["offchip"]["bandwidth_gbps"] = raw["offchip"]["bandwidth_gbps"] / 2
    mine = tmp_path / "mine.yaml"
    mine.write_text(yaml.safe_dump(raw))   # keeps the preset's name: two bars must still read apart
    trace = build_trace("tiny", "a4.8", phase="decode", context=64)
    table = sim.summary_table([sim.simulate(trace, a).summary for a in ("a4.8", str(mine), "h100-like")])
    fig = figures.compare(table)
    speed = fig.axes[0]
    assert [round(b.get_height(), 6) for b in speed.patches] == [round(v, 6) for v in table.tokens_per_s]
    names = [t.get_text() for t in speed.get_xticklabels()]
    assert names == ["a4.8", "a4.8 (2)", "h100-like\n(dynamic only)"]
    per_mm2 = [b.get_height() for b in fig.axes[2].patches]
    assert per_mm2 == pytest.approx(list(table.tokens_per_s / table.area_mm2))
    with pytest.raises(ValueError, match="not a simulator or study summary"):
        figures.compare(table.drop(columns=["tokens_per_s"]))


def test_a_crossover_of_one_reads_singular():
    assert quantity(1.2, "sequences") == "1 sequence"
    assert quantity(9.0, "sequences") == "9 sequences"
    assert quantity(11335.1, "tokens") == "11,335 tokens"
    assert quantity(1.0, "GB/s") == "1 GB/s"


def test_step_bytes_marks_the_kv_crossover_the_summary_quotes(losing):
    data, _, _ = losing
    s = data.study.summary
    two = pd.concat([s, s.assign(context=4 * s.context, attention_bytes_offchip=4 * s.attention_bytes_offchip)],
                    ignore_index=True)
    a = two[(two.datapath == "a4.8") & (two.role == "matched") & (two.phase == "decode")].sort_values("context")
    # where the KV bytes (linear in context) reach the weight bytes, from the two points drawn
    slope = (a.attention_bytes_offchip.iloc[1] - a.attention_bytes_offchip.iloc[0]) / (a.context.iloc[1]
                                                                                      - a.context.iloc[0])
    x = float(a.gemm_bytes_offchip.iloc[0] / slope)
    cross = pd.DataFrame([{"crossover": KV_OUTWEIGHS, "datapath": "a4.8", "value": x, "unit": "tokens",
                           "where": "within the range", "range_lo": 256.0, "range_hi": 1024.0, "definition": "",
                           "figure": "context"}])
    fig = figures.step_bytes(two, cross)
    marks = [line for line in fig.axes[0].lines if line.get_marker() == "X"]
    assert len(marks) == 1 and marks[0].get_xdata()[0] == pytest.approx(x)
    assert marks[0].get_ydata()[0] == pytest.approx(a.gemm_bytes_offchip.iloc[0] / 1e6)
    assert f"{x:,.0f}" in [t.get_text() for t in fig.axes[0].texts]


def test_the_ladder_headline_is_shown_across_the_swept_batches(losing):
    data, _, _ = losing
    r = batch_ratios(data, "a4.8", "b1.58")
    assert sorted(r) == [1, 4]
    head = next(f for f in findings(data) if f.startswith("**Against the strongest b1.58"))
    assert f"a4.8 over the strongest b1.58 is {r[1]:.2f}x at batch 1, {r[4]:.2f}x at batch 4" in head


def _sensitivity_rows() -> pd.DataFrame:
    """Two headline ratios with bands as wide as the study's (a speed row far right of its claimed tick)."""
    rows = []
    for ratio, nom, lo, hi in (("speed a4.8/fp16", 9.70, 8.98, 10.37), ("energy a4.8/b1.58", 0.82, 0.8, 0.84)):
        metric, pair = ratio.split(" ")
        num, den = pair.split("/")
        for knob, value in (("static power", lo), ("off-chip pJ/bit", hi)):
            rows.append(dict(ratio=ratio, metric=metric, numerator=num, denominator=den, phase="decode",
                             context=2048, nominal=nom, profile="paper-table2", knob=knob, setting="x",
                             value=value, band_low=lo, band_high=hi))
    return pd.DataFrame(rows)


def test_value_labels_stay_inside_their_axes(losing):
    data, _, _ = losing
    fig = figures.batch_sweep(data.axes["batch"])
    assert fig.axes[1].texts and outside_texts(fig.axes[1]) == []
    fig = figures.sensitivity_bands(_sensitivity_rows(), {"speed a4.8/fp16": 4.0})
    assert len(fig.axes[0].texts) == 2 and outside_texts(fig.axes[0]) == []
    plt.close("all")


def test_the_batch_ratio_panel_has_a_legend_of_its_own_apart_from_the_datapaths(losing):
    data, _, _ = losing
    fig = figures.batch_sweep(data.axes["batch"])
    below = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    inside = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert len(below) == len(set(below)) and not any("/" in t for t in below)
    assert sorted(inside) == ["a4.8 / b1.58", "a4.8 / fp16"]
    plt.close("all")
