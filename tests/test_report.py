"""`bitsim report`: the tiny study end to end, the claim verdicts, measured-data handling."""
import argparse
import base64
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

import bitsim.experiments.runs as runs
import sim
from bitsim.cli import main
from bitsim.cli.report import register, study_config_from_args
from bitsim.experiments.study import StageBars, StudyConfig, run_study
from bitsim.report import claims as claims_module
from bitsim.report import figures
from bitsim.report.build import FIGURES as REPORT_FIGURES
from bitsim.report.build import write_report
from bitsim.report.claims import (
    CLAIMS,
    EVALUATORS,
    LAYOUT,
    active_param_fraction,
    claims_table,
    measured_speed_rows,
    verdict,
)
from bitsim.report.collect import collect_report
from bitsim.report.document import Document, Table, render_html, render_markdown
from bitsim.report.measured import ANCHORS_SOURCE, VALIDATION_BOUND, load_measured, speedups, validate_simulator
from contract import MEASURED_TRACE, SCHEMAS, read_table, write_table
from model.trace import build_trace

FIGURES = ("energy_by_component", "throughput", "footprint", "step_bytes", "gain_ladder", "batch_sweep",
           "bandwidth_sweep", "comparison_bases", "sensitivity_bands", "roofline", "sparsity_bits", "measured_speedups",
           "sim_vs_measured", "measured_roofline")


def _measured_rows() -> pd.DataFrame:
    """A small measured table in the kernels team's schema (times from docs/gpu-facts.md §1 where given)."""
    base = {c.name: {"int": 0, "float": 0.0, "str": "unknown", "bool": False}[c.kind] for c in MEASURED_TRACE}
    rows = []
    for kernel, impl, prec, us in [("cublas_fp16", "baseline", "fp16", 47.0), ("ours_w158a8", "ours", "w1.58a8", 9.0),
                                   ("ours_w158a4_fp8", "ours", "w1.58a4-fp8", 8.0)]:
        rows.append(dict(base, op="gemv", kernel=kernel, impl=impl, precision=prec, M=1, N=11008, K=4096, us=us,
                         gpu="NVIDIA H100 80GB HBM3", cuda_graph=True, exact=impl == "ours"))
    for kernel, impl, prec, us in [("cublas_fp16", "baseline", "fp16", 254.9),
                                   ("cublas_int8", "baseline", "int8", 234.9),
                                   ("ours_w158a8", "ours", "w1.58a8", 240.0),
                                   ("ours_w158a4_fp8", "ours", "w1.58a4-fp8", 170.0)]:
        rows.append(dict(base, op="gemm", kernel=kernel, impl=impl, precision=prec, M=2048, N=11008, K=4096, us=us,
                         gpu="NVIDIA H100 80GB HBM3"))
    df = pd.DataFrame(rows)
    df["bytes"] = df.N * df.K * 2.0
    df["ops"] = 2.0 * df.M * df.N * df.K
    return df


#: Each figure the tiny report saved, as its builder returned it: name -> (width, height in inches, smallest font pt).
DRAWN: dict[str, tuple[float, float, float]] = {}


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("rep")
    write_table(_measured_rows(), root / "data" / "measured_test.parquet", "measured_trace")
    out = root / "out"
    study = root / "study.yaml"   # small sweeps: the tiny study stays a few seconds
    study.write_text("batches: [1, 4]\nbandwidth_factors: [0.5, 1.0, 2.0]\n")
    real_save = figures.save

    def recording_save(fig, out_dir, name):   # the figure as drawn, before save's font guard touches it
        DRAWN[name] = (*fig.get_size_inches(), figures.smallest_font(fig))
        return real_save(fig, out_dir, name)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(figures, "save", recording_save)
        rc = main(["report", "--config", str(study), "--presets", "tiny", "--contexts", "64,256",
                   "--prefill-tokens", "64", "--workers", "1", "--measured-dir", str(root / "data"), "-o", str(out),
                   "-q"])
    assert rc == 0
    return out


def test_report_folder_has_every_artifact(tiny_report):
    for name in FIGURES:
        for ext in ("png", "svg", "pdf"):
            assert (tiny_report / "figures" / f"{name}.{ext}").stat().st_size > 1000, name
    for t in ("claims", "claims_summary", "ratios", "summary", "accelerators", "variants", "measured_speedups",
              "sim_vs_measured", "batch", "bandwidth", "technology", "bases", "sensitivity", "crossovers"):
        assert len(read_table(tiny_report / "tables" / f"{t}.csv")) > 0, t
    cfg = yaml.safe_load((tiny_report / "config.yaml").read_text())
    assert cfg["study"]["presets"] == ["tiny"] and cfg["study"]["contexts"] == [64, 256]
    assert {"bitsim", "torch", "numpy", "git_commit"} <= set(cfg["versions"])
    assert len(cfg["traces"]) == 4 * 3  # 4 datapaths x (2 decode contexts + 1 prefill)


def test_every_report_figure_fits_a_printed_page_with_text_of_at_least_7_pt(tiny_report):
    assert set(FIGURES) <= set(DRAWN)
    page = figures.SIZES["page"][0]
    for name, (width, _, smallest) in DRAWN.items():
        assert width <= page + 1e-9, f"{name} is {width} in wide"
        assert smallest >= figures.MIN_FONT_PT, f"{name} has {smallest} pt text"
        with Image.open(tiny_report / "figures" / f"{name}.png") as im:
            dpi = im.info["dpi"][0]
            assert im.size[0] / dpi <= page + 1e-6, f"{name}.png is {im.size[0] / dpi:.2f} in wide at {dpi:.0f} dpi"


def test_html_travels_alone_with_its_figures_and_tables(tiny_report):
    html = (tiny_report / "report.html").read_text()
    srcs = re.findall(r"src='([^']*)'", html)
    assert len(srcs) == len(FIGURES)
    for s in srcs:
        assert s.startswith("data:image/png;base64,")
        assert base64.b64decode(s.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    # every CSV link carries its table: the download decodes to the file beside the page
    csvs = re.findall(r"<a download='([a-z_0-9.]+)' href='data:text/csv;base64,([^']*)'>", html)
    assert {"claims.csv", "batch.csv"} <= {n for n, _ in csvs}
    for name, data in csvs:
        assert base64.b64decode(data) == (tiny_report / "tables" / name).read_bytes(), name
    # the only links to files beside the page are a figure's SVG / PDF, and they say so
    files = re.findall(r"href='(figures/[^']*)'", html)
    assert files and all(f.endswith((".svg", ".pdf")) for f in files)
    assert html.count("in figures/ beside report.html") == len(FIGURES)
    assert "max-width:1100px" not in html and "this.classList.toggle('full')" in html


def test_summary_covers_every_workload_on_matched_and_reference(tiny_report):
    s = read_table(tiny_report / "tables" / "summary_full.csv")
    assert len(s) == 12 * 2  # each trace on its matched accelerator and on h100-like
    matched = s[s.role == "matched"].set_index("datapath").accelerator_key.to_dict()
    assert matched == {"fp16": "fp16", "b1.58": "b1.58", "a4.8": "a4.8", "a4.8-fp4": "a4.8"}
    assert set(s[s.role == "reference"].accelerator) == {"h100-like"}
    # energy components (J/token) add up to sim's total per token
    comp = s[[f"energy_{c}_j" for c in ("compute", "sram", "offchip", "vector", "static")]].sum(axis=1)
    assert ((comp - s.energy_j_per_token).abs() <= 1e-9 * s.energy_j_per_token).all()


def test_measured_claim_rows_use_the_kernel_ratio(tiny_report):
    c = read_table(tiny_report / "tables" / "claims.csv")
    row = c[c.hardware.str.contains("ours_w158a4_fp8 vs ours_w158a8") & c.workload.str.startswith("GEMM")]
    assert row.ours.iloc[0] == f"{240.0 / 170.0:.2f}x"
    assert row.verdict.iloc[0] == "partly (our kernels)"   # a measured verdict judges our kernels, not the format
    assert row.reason.iloc[0].startswith("our kernels, not the format")


def test_matmul_energy_claim_is_judged_on_the_linear_layers_alone(tiny_report):
    c = read_table(tiny_report / "tables" / "claims.csv")
    row = c[c.ours.str.contains("matmul compute energy", na=False)].iloc[0]
    ops = read_table(tiny_report / "tables" / "ops.parquet")
    lin = ops[(ops.phase == "decode") & (ops.role == "matched") & (ops.context == 64)
              & ops.op.astype(str).str.endswith("_proj")].groupby("datapath").energy_compute_pj.sum()
    ratio = lin["fp16"] / lin["b1.58"]   # recomputed from the per-op energies of the seven projections
    assert float(row.ours.split("x")[0]) == pytest.approx(ratio, abs=0.05)
    assert row.verdict == verdict(ratio, CLAIMS["arith_energy_b158"].value)
    total = c[c.ours.str.contains("all compute energy", na=False)].iloc[0]
    assert total.verdict == "context"


def test_random_weight_statistics_do_not_judge_the_active_parameter_claim(tiny_report):
    c = read_table(tiny_report / "tables" / "claims.csv")
    measured = c[c.workload.str.contains("a4.8, measured activation statistics", na=False)]
    assert (measured.verdict == "not testable (random weights)").all() and len(measured)


def test_gain_ladder_table_is_the_studys_ladder_rounded(tiny_report):
    shown = read_table(tiny_report / "tables" / "gain_ladder.csv")
    summ = read_table(tiny_report / "tables" / "summary_full.csv")
    for ctx, g in shown.groupby("context"):
        g = g.sort_values("step")
        assert g.step.tolist() == [0, 1, 2, 3]
        dec = summ[(summ.phase == "decode") & (summ.context == ctx) & (summ.role == "matched")].set_index("datapath")
        assert g["tok/s"].iloc[1] == pytest.approx(round(dec.tokens_per_s["b1.58"]))  # rung 1 = the strongest b1.58
        assert g["tok/s"].iloc[3] == pytest.approx(round(dec.tokens_per_s["a4.8"]))   # rung 3 = the study's a4.8


def test_each_trace_is_built_once(monkeypatch):
    calls = []
    real = runs.build_trace

    def counting(*a, **k):
        calls.append((repr(a), tuple(sorted((key, repr(v)) for key, v in k.items()))))
        return real(*a, **k)

    monkeypatch.setattr(runs, "build_trace", counting)
    cfg = StudyConfig(presets=("tiny",), datapaths=("b1.58", "a4.8"), contexts=(32, 64), prefill_tokens=32,
                      workers=1, reference=("h100-like",), experiments=())
    res = run_study(cfg, progress=False)
    assert len(calls) == len(cfg.workloads()) == 6
    assert len(set(calls)) == len(calls)
    assert len(res.summary) == 12  # but every trace ran on two accelerators
    calls.clear()
    res = run_study(StudyConfig(presets=("tiny",), datapaths=("b1.58", "a4.8"), contexts=(32, 64), prefill_tokens=32,
                                workers=1, batches=(1, 2), bandwidth_factors=(1.0, 2.0)), progress=False)
    assert len(set(calls)) == len(calls) > 6  # the sweeps add traces, never the same one twice


def test_flags_select_accelerator_yaml_and_no_reference(tmp_path):
    src = Path(sim.__file__).parent / "presets" / "b1.58.yaml"
    raw = yaml.safe_load(src.read_text())
    raw["name"] = "my-b158"
    raw["offchip"]["bandwidth_gbps"] = 100.0
    acc = tmp_path / "mine.yaml"
    acc.write_text(yaml.safe_dump(raw))
    out, no_measurements = tmp_path / "out", tmp_path / "none"
    no_measurements.mkdir()
    rc = main(["report", "--presets", "tiny", "--datapaths", "b1.58", "--contexts", "64", "--prefill-tokens", "0",
               "--accelerator", f"b1.58={acc}", "--reference", "", "--workers", "1", "-o", str(out), "-q",
               "--measured-dir", str(no_measurements)])
    assert rc == 0
    s = read_table(out / "tables" / "summary_full.csv")
    assert s.accelerator.tolist() == ["my-b158"] and s.role.tolist() == ["matched"]


def _matched_from_flags(*flags: str) -> dict:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    return dict(study_config_from_args(parser.parse_args(["report", *flags, "--presets", "2b4t"])).matched)


def test_one_accelerator_override_keeps_the_default_pairing_of_the_other_datapaths():
    assert _matched_from_flags("--accelerator", "b1.58=my.yaml") == {"fp16": "fp16", "b1.58": "my.yaml",
                                                                     "a4.8": "a4.8", "a4.8-fp4": "a4.8"}


def test_a_variant_riding_on_a_replaced_chip_follows_it_unless_given_its_own():
    follows = _matched_from_flags("--accelerator", "a4.8=my.yaml")
    assert follows == {"fp16": "fp16", "b1.58": "b1.58", "a4.8": "my.yaml", "a4.8-fp4": "my.yaml"}
    own = _matched_from_flags("--accelerator", "a4.8=my.yaml", "--accelerator", "a4.8-fp4=a4.8")
    assert own["a4.8"] == "my.yaml" and own["a4.8-fp4"] == "a4.8"


def test_unknown_datapath_is_named(tmp_path, capsys):
    rc = main(["report", "--presets", "tiny", "--datapaths", "fp17", "-o", str(tmp_path / "x"), "-q"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "unknown ['fp17']" in err and "datapath" in err and "Traceback" not in err


def test_bad_study_config_is_named(tmp_path, capsys):
    bad = tmp_path / "s.yaml"
    bad.write_text("presets: [tiny]\ncontxts: [64]\n")
    assert main(["report", "--config", str(bad), "-o", str(tmp_path / "o")]) == 2
    assert "contxts" in capsys.readouterr().err
    with pytest.raises(ValueError, match="contexts"):
        StudyConfig(contexts=(0,))
    with pytest.raises(ValueError, match=r"datapath.*unknown.*\['w9'\]"):
        StudyConfig(datapaths=("fp16", "w9"))
    with pytest.raises(ValueError, match="matched"):
        StudyConfig(datapaths=("fp16", "b1.58"), matched={"fp16": "fp16"})


# ---------------------------------------------------------------- pure pieces
def test_verdict_rule():
    assert verdict(1.9, 2.0) == "holds" and verdict(1.79, 2.0) == "partly"
    assert verdict(1.05, 2.0) == "does not hold" and verdict(float("nan"), 2.0) == "n/a"


def test_active_parameter_fraction_hand_computed():
    # two projections: 100 weights at 50% sparsity, 300 at 10%; LM head (layer -1) ignored
    t = pd.DataFrame({"op_class": ["gemm", "gemm", "gemm"], "layer": [0, 0, -1], "N": [10, 30, 1000],
                      "K": [10, 10, 10], "sparsity": [0.5, 0.1, 0.0], "op": ["o_proj", "down_proj", "lm_head"]})
    assert active_param_fraction(t) == pytest.approx((50 + 270) / 400)


def test_paper_table2_profile_reproduces_55_percent():
    tr = build_trace("7b", "a4.8", context=64, profile="paper-table2")
    assert active_param_fraction(tr) == pytest.approx(1 - 0.445, abs=0.005)  # [A48] Table 2: 44.5% sparse


def test_speedups_are_baseline_over_kernel_time():
    spd = speedups(_measured_rows())
    r = spd[(spd.kernel == "ours_w158a8") & (spd.M == 1)]
    assert r.speedup.iloc[0] == pytest.approx(47.0 / 9.0)
    assert (spd[spd.kernel == "cublas_fp16"].speedup == 1.0).all()


def test_speedups_pair_each_kernel_with_the_baseline_timed_in_the_same_mode():
    m = _measured_rows()
    gemv = m[m.M == 1]
    no_graph = gemv.assign(cuda_graph=False, us=gemv.us + 5.0)  # one launch at a time: + launch gap
    only_eager = no_graph[no_graph.kernel != "ours_w158a4_fp8"]
    a4_eager = no_graph[no_graph.kernel == "ours_w158a4_fp8"]
    spd = speedups(pd.concat([m[m.M > 1], gemv[gemv.kernel != "ours_w158a4_fp8"], only_eager, a4_eager],
                             ignore_index=True))
    a4 = spd[(spd.kernel == "ours_w158a4_fp8") & (spd.M == 1)].iloc[0]
    assert not a4.cuda_graph and a4.speedup == pytest.approx((47.0 + 5) / (8.0 + 5))  # eager vs eager
    a8 = spd[(spd.kernel == "ours_w158a8") & (spd.M == 1)].iloc[0]
    assert a8.cuda_graph and a8.speedup == pytest.approx(47.0 / 9.0)  # graph vs graph, the faster pairing


def test_measured_csv_is_read_only_without_its_parquet_twin(tmp_path):
    m = _measured_rows()
    write_table(m, tmp_path / "measured_a.parquet", "measured_trace")
    write_table(m, tmp_path / "measured_a.csv", "measured_trace")
    write_table(m.head(2), tmp_path / "measured_b.csv", "measured_trace")
    got = load_measured(tmp_path, include_anchors=False)
    assert len(got) == len(m) + 2 and set(got.source) == {"measured_a.parquet", "measured_b.csv"}
    with_anchors = load_measured(tmp_path)
    assert (with_anchors.source == ANCHORS_SOURCE).sum() > 0


def test_a_runs_other_tables_beside_its_measurements_are_left_out_with_a_warning(tmp_path):
    m = _measured_rows()
    write_table(m, tmp_path / "measured_a.parquet", "measured_trace")
    pd.DataFrame({"goal": ["a4.8 >= 1500 tok/s"], "value": [437.4], "verdict": ["missed"]}).to_csv(
        tmp_path / "measured_a_goals.csv", index=False)   # a plain CSV: no schema line
    with pytest.warns(UserWarning, match="measured_a_goals.csv: not a measured_trace table"):
        got = load_measured(tmp_path, include_anchors=False)
    assert len(got) == len(m) and set(got.source) == {"measured_a.parquet"}


def test_block_measurements_give_datapath_speedups_and_claim_rows():
    base = _measured_rows().iloc[0].to_dict()
    rows = [dict(base, op="block_decode", kernel=f"block_{dp}", impl="ours" if dp != "fp16" else "baseline",
                 precision=dp, M=1, N=4096, K=2048, us=us)
            for dp, us in (("fp16", 236.6), ("b1.58", 80.0), ("a4.8", 50.0))]
    spd = speedups(pd.DataFrame(rows))
    assert spd.set_index("kernel").speedup["block_a4.8"] == pytest.approx(236.6 / 50.0)
    assert set(spd["shape"]) == {"block decode B1 ctx2048"}
    r = measured_speed_rows(spd, "block_a4.8", "block_b1.58", CLAIMS["speedup_vs_b158"])
    assert len(r) == 1 and r[0]["ours"] == "1.60x" and r[0]["verdict"] == "partly (our kernels)"


def test_speedups_never_mix_measuring_runs():
    a = _measured_rows().assign(source="run_a")
    b = _measured_rows().assign(source="run_b")
    b["us"] = b["us"] * 2  # a slower machine: same ratios
    b.loc[b.kernel == "cublas_fp16", "us"] *= 3  # ... except its baseline
    spd = speedups(pd.concat([a, b], ignore_index=True))
    r = spd[(spd.kernel == "ours_w158a8") & (spd.M == 1)].set_index("source").speedup
    assert r["run_a"] == pytest.approx(47.0 / 9.0) and r["run_b"] == pytest.approx(3 * 47.0 / 9.0)


def test_simulator_validation_replays_baselines_on_ideal_and_our_kernels_on_the_fitted_gpu():
    m = _measured_rows()
    calls, classes = validate_simulator(m)
    assert len(calls) == len(m)
    ours = calls.kernel.str.startswith("ours")
    assert set(calls[ours].preset) == {"h100-triton"} and set(calls[~ours].preset) == {"h100-like"}
    assert np.allclose(calls.rel_error, (calls.sim_us - calls.measured_us) / calls.measured_us)
    for _, c in classes.iterrows():  # per-class MAPE recomputed from the calls
        sel = calls[(calls["kernel_class"] == c["class"]) & (calls.preset == c.preset) & (calls.split == c.split)]
        assert c.n == len(sel) and np.isclose(c.mape, sel.rel_error.abs().mean())
        assert c.within_bound == (c.mape <= VALIDATION_BOUND)


def test_speedup_figure_draws_one_bar_per_non_baseline_kernel_and_shape():
    spd = speedups(_measured_rows())
    fig = figures.measured_speedups(spd)
    panels = [ax for ax in fig.axes if ax.patches]
    assert [ax.get_title(loc="left") for ax in panels] == ["decode GEMV, M = 1 (weights N x K) (CUDA graph)",
                                                          "prefill GEMM, M = 2048 (one launch at a time)"]
    bars = [b for ax in panels for b in ax.patches]
    assert len(bars) == int((~spd.kernel.isin(["cublas_fp16"])).sum()) == 5
    heights = sorted(round(b.get_height(), 6) for b in bars)
    assert heights == sorted(round(v, 6) for v in spd[spd.kernel != "cublas_fp16"].speedup)
    assert [[t.get_text() for t in ax.get_xticklabels()] for ax in panels] == [["11008x4096"], ["11008x4096"]]
    # each kernel keeps one colour in every panel, and no two kernels share one
    colour = {}
    for ax in panels:
        for c in ax.containers:
            if c.get_label() and not c.get_label().startswith("_"):
                colour.setdefault(c.get_label(), set()).update(p.get_facecolor() for p in c.patches)
    assert all(len(c) == 1 for c in colour.values())
    assert len({next(iter(c)) for c in colour.values()}) == len(colour)


def test_speedup_figure_never_mixes_two_measuring_runs():
    a = _measured_rows().assign(gpu="NVIDIA H100 80GB HBM3")
    b = _measured_rows().assign(gpu="NVIDIA H200")
    b.loc[b.impl == "ours", "us"] = b.us / 2   # another run: other kernel times, so other speedups
    spd = speedups(pd.concat([a.assign(source="measured_h100_kernels.parquet"),
                              b.assign(source="measured_h200_kernels.parquet")], ignore_index=True))
    for run in ("measured_h100_kernels.parquet", "measured_h200_kernels.parquet"):
        fig = figures.measured_speedups(spd, run=run)
        heights = sorted(round(p.get_height(), 6) for ax in fig.axes for p in ax.patches)
        mine = spd[(spd.source == run) & (spd.kernel != "cublas_fp16")]
        assert heights == sorted(round(v, 6) for v in mine.speedup)
        assert run.split("_")[1] in fig._suptitle.get_text()


def test_measured_roofline_places_each_kernel_call_under_the_run_roofs():
    m = _measured_rows()
    m["tops"] = m.ops / (m.us * 1e6)
    m["gbps"] = m.bytes / (m.us * 1e3)
    base = m.iloc[0].to_dict()
    ceilings = pd.DataFrame([dict(base, op="ceiling", kernel="copy", impl="baseline", precision="fp32", us=1.0,
                                  gbps=3000.0, tops=0.0, bytes=1.0, ops=1.0),
                             dict(base, op="ceiling", kernel="cublas_int8", impl="baseline", precision="int8",
                                  us=1.0, gbps=0.0, tops=900.0, bytes=1.0, ops=1.0)])
    fig = figures.measured_roofline(pd.concat([m, ceilings], ignore_index=True))
    ax, ax2 = fig.axes
    pts = np.concatenate([c.get_offsets() for c in ax.collections])
    assert len(pts) == len(m)  # one point per kernel and shape, ceilings are roofs not points
    assert np.allclose(sorted(pts[:, 0]), sorted(m.ops / m.bytes))
    assert np.allclose(sorted(pts[:, 1]), sorted(m.tops))
    roof = ax.lines[0].get_ydata()
    assert roof.max() == 900.0  # the int8 roof
    bars = sorted(b.get_width() for b in ax2.patches)  # decode rows: 3 GEMVs at M = 1
    assert np.allclose(bars, sorted(100 * m[m.M == 1].gbps / 3000.0))


def test_document_renders_tables_in_markdown_and_escaped_html(tmp_path):
    doc = Document("T")
    table = Table(name="t", df=pd.DataFrame({"x": ["<y>|z"], "v": [1.23456]}))
    doc.section("S").text("a **b** `c`\n- item").table(table)
    md = render_markdown(doc)
    assert "| <y>\\|z | 1.23 |" in md
    html = render_html(doc, tmp_path)
    assert "&lt;y&gt;|z" in html and "<b>b</b>" in html and "<code>c</code>" in html and "<li>item</li>" in html


# ---------------------------------------------------------------- the report's structure
SECTION_TITLES = ["Executive summary", "What a 1-bit / a4.8 chip should look like", "Claims",
                  "How the comparison is set up", "a4.8 against each baseline", "Energy and speed",
                  "Where a4.8's decode gain comes from", "Batch",
                  "Context and memory footprint", "Memory bandwidth and technology", "Iso-peak, iso-area and iso-power",
                  "Sensitivity", "Roofline", "Per-op sparsity and bits", "Measured GPU kernels",
                  "Simulator vs measured", "Published chips", "Files"]


def test_every_table_file_is_written_against_its_registered_schema(tiny_report):
    files = sorted((tiny_report / "tables").iterdir())
    assert {f.name for f in files} == {
        "accelerators.csv", "bandwidth.csv", "baselines.csv", "bases.csv", "batch.csv", "ceilings.csv", "claims.csv",
        "claims_summary.csv", "crossovers.csv", "gain_ladder.csv", "measured_speedups.csv", "ops.parquet",
        "published_chips.csv", "ratios.csv", "sensitivity.csv", "sim_validation.csv", "sim_vs_measured.csv",
        "summary.csv",
        "summary_all.csv", "summary_full.csv", "technology.csv", "traces.parquet", "variants.csv"}
    for f in files:
        meta = read_table(f).attrs
        assert meta["schema"] in SCHEMAS, f.name
        df = read_table(f, meta["schema"])  # validates every registered column and its kind
        assert list(df.columns)[:1] == [SCHEMAS[meta["schema"]][0].name] and len(df), f.name


def test_report_sections_come_in_order_and_each_table_links_to_its_file(tiny_report):
    md = (tiny_report / "report.md").read_text()
    assert re.findall(r"^## (.+)$", md, flags=re.M) == SECTION_TITLES
    links = re.findall(r"\(\[CSV\]\(tables/([^)]+)\)\)", md)
    assert sorted(links) == sorted({"claims_summary.csv", "variants.csv", "accelerators.csv", "summary.csv",
                                    "gain_ladder.csv", "bases.csv", "sim_validation.csv", "baselines.csv",
                                    "published_chips.csv"})
    attached = re.findall(r"\]\(tables/([^)]+\.csv)\)", md)   # raw tables: attached, not in the body
    assert {"claims.csv", "ratios.csv", "batch.csv", "sensitivity.csv", "measured_speedups.csv"} <= set(attached)
    for name in links:
        assert (tiny_report / "tables" / name).exists()


def test_claim_rows_keep_the_published_order(tiny_report):
    # the order of reports/latest/tables/claims.csv: per claim and evidence, the simulated speed rows of both
    # speed claims before their measured kernel rows, then the measured block rows
    published = [("active_params", "model"), ("kv_bits", "storage"), ("speedup_vs_b158", "simulated"),
                 ("speedup_vs_fp16", "simulated"), ("speedup_vs_b158", "measured kernels"),
                 ("speedup_vs_fp16", "measured kernels"), ("speedup_vs_b158", "measured block"),
                 ("speedup_vs_fp16", "measured block"), ("memory_vs_fp16", "storage"),
                 ("arith_energy_b158", "simulated")]
    c = read_table(tiny_report / "tables" / "claims.csv")
    keys = {claim.text: key for key, claim in CLAIMS.items()}

    def evidence(hw: str) -> str:
        if hw.startswith("measured GPU"):
            return "measured block" if ": block_" in hw else "measured kernels"
        return {"any (model property)": "model", "any (storage)": "storage"}.get(hw, "simulated")

    rank = [published.index((keys[r.claim], evidence(r.hardware))) for r in c.itertuples()]
    assert rank == sorted(rank) and len(set(rank)) >= 6
    assert list(LAYOUT) == published


def test_every_claim_has_one_evaluator_and_an_unplaced_group_is_an_error(monkeypatch):
    assert set(EVALUATORS) == set(CLAIMS) == {key for key, _ in LAYOUT}
    summary = pd.DataFrame(columns=["preset", "phase", "role", "datapath", "context"])
    traces = pd.DataFrame(columns=["preset", "phase", "datapath", "context"])
    empty = claims_table(summary, traces, None, "7b")
    assert list(empty.columns) == [c.name for c in SCHEMAS["report_claims"]] and empty.empty
    monkeypatch.setitem(claims_module.EVALUATORS, "kv_bits", lambda inp: {"rumour": []})
    with pytest.raises(ValueError, match="rumour"):
        claims_table(summary, traces, None, "7b")


def test_a_figure_names_the_missing_registered_column():
    spd = speedups(_measured_rows())
    with pytest.raises(ValueError, match=r"measured_speedups: .*\['baseline_us'\]"):
        figures.measured_speedups(spd.drop(columns="baseline_us"))
    with pytest.raises(TypeError, match="throughput: expected a DataFrame"):
        figures.throughput({"tokens_per_s": [1.0]})


def test_write_report_never_replaces_a_folder_that_holds_files(tmp_path):
    data = collect_report(StudyConfig(presets=("tiny",), datapaths=("b1.58",), contexts=(64,), prefill_tokens=0,
                                      workers=1, reference=(), measured_dir=str(tmp_path)))
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not empty"):
        write_report(data, mine)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    out = write_report(data, tmp_path / "fresh")
    assert read_table(out / "tables" / "summary_full.csv").accelerator.tolist() == ["b1.58"]


def test_each_figure_title_or_caption_names_its_profile_and_energy_basis(tiny_report):
    md = (tiny_report / "report.md").read_text()
    captions = re.findall(r"^\*(.+)\* \(\[SVG\]\(figures/([a-z_]+)\.svg\), \[PDF\]", md, flags=re.M)
    assert {name for _c, name in captions} == set(FIGURES)
    for caption, name in captions:
        assert "profile:" in caption and "energy:" in caption, name
    # the figures themselves carry it too: a notebook that saves one alone keeps the basis in the title
    data = collect_report(StudyConfig(presets=("tiny",), datapaths=("b1.58", "a4.8"), contexts=(64,),
                                      prefill_tokens=0, workers=1, reference=(), experiments=("ladder",),
                                      measured_dir=str(tiny_report.parent / "data")))
    for name in ("throughput", "energy_by_component", "gain_ladder", "roofline"):
        fig = REPORT_FIGURES[name](data)
        title = fig._suptitle.get_text() if fig._suptitle is not None else ""
        assert "profile: tiny random-weight statistics" in title and "energy:" in title, name


def test_energy_comparisons_hold_one_energy_basis(tiny_report):
    r = read_table(tiny_report / "tables" / "ratios.csv")
    e = pd.to_numeric(r["energy b1.58/a4.8"], errors="coerce")   # an unregistered column reads as text
    assert e[r.role == "reference"].isna().all() and e[r.role == "matched"].notna().all()  # h100-like: dynamic only
    s = read_table(tiny_report / "tables" / "summary_full.csv")
    fig = figures.energy_by_component(s)
    assert "h100-like" not in " ".join(t.get_text() for ax in fig.axes for t in ax.get_xticklabels())
    assert len(figures.energy_rows(s)) == int((s.energy_basis != "dynamic-only").sum())


def test_claims_summary_is_short_and_says_whether_each_verdict_survives(tiny_report):
    short = read_table(tiny_report / "tables" / "claims_summary.csv")
    full = read_table(tiny_report / "tables" / "claims.csv")
    assert len(short) <= 12 < len(full) + 12 and set(short.claim) <= set(full.claim)
    speed = short[short.evidence.str.startswith("sim: a4.8 vs b1.58")]
    assert len(speed) == 2 and speed.survives.str.contains("yes|no:").all()


def test_validation_lists_every_class_with_calibration_apart(tiny_report):
    md = (tiny_report / "report.md").read_text()
    v = read_table(tiny_report / "tables" / "sim_validation.csv")
    sec = md.split("## Simulator vs measured", 1)[1]
    for cls in v["class"]:
        assert cls in sec
    assert "calibration calls are listed apart and never counted as validation" in sec


def test_claimed_ticks_sit_on_speed_rows_only(tiny_report):
    sens = read_table(tiny_report / "tables" / "sensitivity.csv")
    fig = figures.sensitivity_bands(sens, {"speed a4.8/b1.58": 2.0, "energy a4.8/b1.58": 9.0})
    ax = fig.axes[0]
    rows = [t.get_text() for t in ax.get_yticklabels()]
    ticks = [line for line in ax.lines if line.get_marker() == "|"]
    assert ticks and all(rows[int(line.get_ydata()[0])].startswith("speed a4.8/b1.58") for line in ticks)
    assert len(ticks) == sum(r.startswith("speed a4.8/b1.58") for r in rows)
    assert all(line.get_xdata()[0] == 2.0 for line in ticks)


def test_study_progress_is_one_tqdm_bar_per_stage_and_silent_when_off(capsys):
    with StageBars(True) as bars:
        bars.stage("first", total=2)
        bars("[1/2] tiny a4.8 decode@64 b1: trace 0.1s")
        bars("[2/2] tiny fp16 decode@64 b1: trace 0.1s")
        bars.stage("second")
        bars("[1/1] tiny b1.58 decode@64 b1: trace 0.1s")
    err = capsys.readouterr().err
    assert re.search(r"first: 100%.*2/2", err) and "second: 1trace" in err
    cfg = StudyConfig(presets=("tiny",), datapaths=("fp16", "a4.8"), contexts=(64,), prefill_tokens=0,
                      reference=(), workers=1, experiments=())
    run_study(cfg, progress=False)
    assert capsys.readouterr().err == ""
    run_study(cfg, progress=True)
    assert re.search(r"study: comparison and sweeps: 100%.*2/2", capsys.readouterr().err)
