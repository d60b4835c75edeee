"""`bitsim report`: the tiny study end to end, the claim verdicts, measured-data handling."""
import argparse
import base64
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import bitsim.experiments.study as study
import sim
from bitsim.cli import main
from bitsim.cli.report import register, study_config_from_args
from bitsim.experiments.ladder import gain_ladder
from bitsim.experiments.study import StudyConfig, run_study
from bitsim.report import claims as claims_module
from bitsim.report import figures
from bitsim.report.build import write_report
from bitsim.report.claims import (CLAIMS, EVALUATORS, LAYOUT, active_param_fraction, claims_table,
                                  measured_speed_rows, verdict)
from bitsim.report.collect import collect_report
from bitsim.report.document import Document, Table, render_html, render_markdown
from bitsim.report.measured import ANCHORS_SOURCE, VALIDATION_BOUND, load_measured, speedups, validate_simulator
from bitsim.tables import MEASURED_TRACE, SCHEMAS, read_table, write_table
from model.trace import build_trace

FIGURES = ("energy_by_component", "throughput", "footprint", "roofline", "sparsity_bits",
           "measured_speedups", "sim_vs_measured", "measured_roofline")


def _measured_rows() -> pd.DataFrame:
    """A small measured table in the kernels team's schema (times from docs/gpu-facts.md §1 where given)."""
    base = {c.name: {"int": 0, "float": 0.0, "str": "unknown", "bool": False}[c.kind] for c in MEASURED_TRACE}
    rows = []
    for kernel, impl, prec, us in [("cublas_fp16", "baseline", "fp16", 47.0), ("ours_w158a8", "ours", "w1.58a8", 9.0),
                                   ("ours_w158a4_fp8", "ours", "w1.58a4-fp8", 8.0)]:
        rows.append(dict(base, op="gemv", kernel=kernel, impl=impl, precision=prec, M=1, N=11008, K=4096, us=us,
                         gpu="NVIDIA H100 80GB HBM3", cuda_graph=True, exact=impl == "ours"))
    for kernel, impl, prec, us in [("cublas_fp16", "baseline", "fp16", 254.9), ("cublas_int8", "baseline", "int8", 234.9),
                                   ("ours_w158a8", "ours", "w1.58a8", 240.0), ("ours_w158a4_fp8", "ours", "w1.58a4-fp8", 170.0)]:
        rows.append(dict(base, op="gemm", kernel=kernel, impl=impl, precision=prec, M=2048, N=11008, K=4096, us=us,
                         gpu="NVIDIA H100 80GB HBM3"))
    df = pd.DataFrame(rows)
    df["bytes"] = df.N * df.K * 2.0
    df["ops"] = 2.0 * df.M * df.N * df.K
    return df


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("rep")
    write_table(_measured_rows(), root / "data" / "measured_test.parquet", "measured_trace")
    out = root / "out"
    rc = main(["report", "--presets", "tiny", "--contexts", "64,256", "--prefill-tokens", "64", "--workers", "1",
               "--measured-dir", str(root / "data"), "-o", str(out), "-q"])
    assert rc == 0
    return out


def test_report_folder_has_every_artifact(tiny_report):
    for name in FIGURES:
        for ext in ("png", "svg"):
            assert (tiny_report / "figures" / f"{name}.{ext}").stat().st_size > 1000, name
    for t in ("claims", "ratios", "summary", "accelerators", "measured_speedups", "sim_vs_measured"):
        assert len(read_table(tiny_report / "tables" / f"{t}.csv")) > 0, t
    cfg = yaml.safe_load((tiny_report / "config.yaml").read_text())
    assert cfg["study"]["presets"] == ["tiny"] and cfg["study"]["contexts"] == [64, 256]
    assert {"bitsim", "torch", "numpy", "git_commit"} <= set(cfg["versions"])
    assert len(cfg["traces"]) == 4 * 3  # 4 datapaths x (2 decode contexts + 1 prefill)


def test_html_is_self_contained(tiny_report):
    html = (tiny_report / "report.html").read_text()
    srcs = re.findall(r"src='([^']*)'", html)
    assert len(srcs) == len(FIGURES)
    for s in srcs:
        assert s.startswith("data:image/png;base64,")
        assert base64.b64decode(s.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "href='figures" not in html and "http" not in html.split("<body>")[1].split("Generated")[0]


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
    assert row.verdict.iloc[0] == "partly"


def test_matmul_energy_claim_is_judged_on_the_linear_layers_alone(tiny_report):
    c = read_table(tiny_report / "tables" / "claims.csv")
    row = c[c.ours.str.contains("matmul compute energy", na=False)].iloc[0]
    # The paper's 71.4x counts an FP16 MAC against an 8-bit add. The simulator charges width-aware PEs
    # (sim/data/hardware_costs.csv, 7 nm): FP16 multiply 0.34 + FP32 accumulate 0.38 = 0.72 pJ against a
    # 23-bit integer add for K = 11008 (0.0201 pJ): 0.72 / 0.0201 = 35.8x, below 0.9 x 71.4 -> "partly".
    assert float(row.ours.split("x")[0]) == pytest.approx(0.72 / 0.0201, abs=0.15)
    assert row.verdict == "partly"
    total = c[c.ours.str.contains("all compute energy", na=False)].iloc[0]
    assert total.verdict == "context"


def test_random_weight_statistics_do_not_judge_the_active_parameter_claim(tiny_report):
    c = read_table(tiny_report / "tables" / "claims.csv")
    measured = c[c.workload.str.contains("a4.8, measured activation statistics", na=False)]
    assert (measured.verdict == "not testable (random weights)").all() and len(measured)


def test_gain_ladder_runs_from_the_b158_row_to_the_a48_row_of_the_study(tiny_report):
    shown = read_table(tiny_report / "tables" / "gain_ladder.csv")
    summ = read_table(tiny_report / "tables" / "summary_full.csv")
    fresh = gain_ladder("tiny", sorted(shown.context.unique()))  # every rung simulated here, nothing reused
    for ctx, g in fresh.groupby("context"):
        g = g.sort_values("step")
        assert g.step.tolist() == [1, 2, 3, 4, 5]
        dec = summ[(summ.phase == "decode") & (summ.context == ctx) & (summ.role == "matched")]
        b158 = dec[dec.datapath == "b1.58"].tokens_per_s.iloc[0]
        a48 = dec[dec.datapath == "a4.8"].tokens_per_s.iloc[0]
        assert g.tokens_per_s.iloc[0] == pytest.approx(b158, rel=1e-9)  # rung 1 = the study's b1.58 row
        assert g.tokens_per_s.iloc[-1] == pytest.approx(a48, rel=1e-9)  # rung 5 = the study's a4.8 row
        assert g.speedup_total.iloc[-1] == pytest.approx(a48 / b158, rel=1e-9)
        rep = shown[shown.context == ctx].sort_values("step")
        assert rep["tok/s"].tolist() == pytest.approx(g.tokens_per_s.round(0).tolist())  # report = fresh ladder


def test_gain_ladder_changes_one_thing_per_step():
    lad = gain_ladder("tiny", [128]).sort_values("step")
    kv, w = lad.kv_bytes.to_numpy(), lad.weight_bytes.to_numpy()
    # 16-bit -> 4-bit -> 3-bit KV codes (plus per-(token, head) scales): KV bytes fall, weights do not move
    assert kv[0] > kv[1] > kv[2] == kv[3] == kv[4] and len(set(w)) == 1
    assert lad.kv_bits.tolist() == [16, 4, 3, 3, 3]
    assert kv[0] / kv[1] == pytest.approx(16 / 4, rel=0.25)  # 4-bit codes are ~1/4 of FP16, scales aside


def test_each_trace_is_built_once(monkeypatch):
    calls = []
    real = study.build_trace

    def counting(*a, **k):
        calls.append((a, tuple(sorted(k.items()))))
        return real(*a, **k)

    monkeypatch.setattr(study, "build_trace", counting)
    cfg = StudyConfig(presets=("tiny",), datapaths=("b1.58", "a4.8"), contexts=(32, 64), prefill_tokens=32,
                      workers=1, reference=("h100-like",))
    res = run_study(cfg, progress=False)
    assert len(calls) == len(cfg.workloads()) == 6
    assert len(set(calls)) == len(calls)
    assert len(res.summary) == 12  # but every trace ran on two accelerators


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


def test_one_accelerator_override_keeps_the_default_pairing_of_the_other_datapaths():
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["report", "--accelerator", "a4.8=my.yaml", "--presets", "2b4t"])
    cfg = study_config_from_args(args)
    assert cfg.matched == {"fp16": "fp16", "b1.58": "b1.58", "a4.8": "my.yaml", "a4.8-fp4": "a4.8"}


def test_unknown_datapath_is_named(tmp_path, capsys):
    rc = main(["report", "--presets", "tiny", "--datapaths", "fp17", "-o", str(tmp_path / "x"), "-q"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "unknown datapath(s) ['fp17']" in err and "Traceback" not in err


def test_bad_study_config_is_named(tmp_path, capsys):
    bad = tmp_path / "s.yaml"
    bad.write_text("presets: [tiny]\ncontxts: [64]\n")
    assert main(["report", "--config", str(bad), "-o", str(tmp_path / "o")]) == 2
    assert "contxts" in capsys.readouterr().err
    with pytest.raises(ValueError, match="contexts"):
        StudyConfig(contexts=(0,))
    with pytest.raises(ValueError, match=r"unknown datapath\(s\) \['w9'\]"):
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


def test_block_measurements_give_datapath_speedups_and_claim_rows():
    base = _measured_rows().iloc[0].to_dict()
    rows = [dict(base, op="block_decode", kernel=f"block_{dp}", impl="ours" if dp != "fp16" else "baseline",
                 precision=dp, M=1, N=4096, K=2048, us=us)
            for dp, us in (("fp16", 236.6), ("b1.58", 80.0), ("a4.8", 50.0))]
    spd = speedups(pd.DataFrame(rows))
    assert spd.set_index("kernel").speedup["block_a4.8"] == pytest.approx(236.6 / 50.0)
    assert set(spd["shape"]) == {"block decode B1 ctx2048"}
    r = measured_speed_rows(spd, "block_a4.8", "block_b1.58", CLAIMS["speedup_vs_b158"])
    assert len(r) == 1 and r[0]["ours"] == "1.60x" and r[0]["verdict"] == "partly"


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
    assert [ax.get_title(loc="left") for ax in panels] == ["decode GEMV, M = 1 (weights N x K)",
                                                          "prefill GEMM, M = 2048"]
    bars = [b for ax in panels for b in ax.patches]
    assert len(bars) == int((~spd.kernel.isin(["cublas_fp16"])).sum()) == 5
    heights = sorted(round(b.get_height(), 6) for b in bars)
    assert heights == sorted(round(v, 6) for v in spd[spd.kernel != "cublas_fp16"].speedup)
    assert [[t.get_text() for t in ax.get_xticklabels()] for ax in panels] == [["11008x4096"], ["11008x4096"]]


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
SECTION_TITLES = ["What was run", "Paper claims", "Energy and speed", "Where a4.8's decode gain comes from",
                  "Memory footprint", "Roofline", "Per-op sparsity and bits", "Measured H100 kernels",
                  "Simulator vs measured", "Files"]


def test_every_table_file_is_written_against_its_registered_schema(tiny_report):
    files = sorted((tiny_report / "tables").iterdir())
    assert {f.name for f in files} == {
        "accelerators.csv", "ceilings.csv", "claims.csv", "gain_ladder.csv", "measured_speedups.csv",
        "ops.parquet", "ratios.csv", "sim_validation.csv", "sim_vs_measured.csv", "summary.csv",
        "summary_all.csv", "summary_full.csv", "traces.parquet"}
    for f in files:
        meta = read_table(f).attrs
        assert meta["schema"] in SCHEMAS, f.name
        df = read_table(f, meta["schema"])  # validates every registered column and its kind
        assert list(df.columns)[:1] == [SCHEMAS[meta["schema"]][0].name] and len(df), f.name


def test_report_sections_come_in_order_and_each_table_links_to_its_file(tiny_report):
    md = (tiny_report / "report.md").read_text()
    assert re.findall(r"^## (.+)$", md, flags=re.M) == SECTION_TITLES
    links = re.findall(r"\(\[CSV\]\(tables/([^)]+)\)\)", md)
    assert sorted(links) == sorted({"accelerators.csv", "claims.csv", "ratios.csv", "summary.csv",
                                    "gain_ladder.csv", "measured_speedups.csv", "sim_validation.csv"})
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
