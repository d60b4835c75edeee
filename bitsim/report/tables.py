"""Tables the report (``bitsim.report``) writes under ``<report>/tables/`` and the measured speedups it shares.

The report's display tables keep the column names a reader sees in ``report.md`` (``tokens/s``,
``MAPE %``); each is registered here so every file under ``tables/`` is written through
:func:`contract.write_table` against a schema. A column that means what a column of another
table means is that table's :class:`Column`, taken by name, so the two cannot drift apart.
It imports only the contract and the experiment tables.
"""
from __future__ import annotations

from bitsim.experiments.tables import GAIN_LADDER, STUDY_SUMMARY

# The report writes the board energy (kernels/) and the trained Table-2 layout (model/) under tables/: their
# schemas are registered whenever the contract is imported, so the registry never depends on import order.
from contract import kernels as _kernels  # noqa: F401
from contract.schemas import MEASURED_TRACE, Column, register
from contract.sim import SIM_SUMMARY, SIM_VALIDATION, SIM_VS_MEASURED


def _pick(columns: tuple[Column, ...], *names: str) -> tuple[Column, ...]:
    """The columns ``names`` of a registered table, in the order given."""
    by_name = {c.name: c for c in columns}
    return tuple(by_name[n] for n in names)


REPORT_CLAIMS = register("report_claims", (
    Column(name="claim", kind="str", unit="", doc="the claim, in words (bitsim.report.claims.CLAIMS)"),
    Column(name="claimed", kind="str", unit="", doc="the claimed number as stated: 55%, 3 bit, 2x, 4x, 10x, 71.4x"),
    Column(name="source", kind="str", unit="", doc="where the claim is made (source tags of docs/paper-facts.md §0)"),
    Column(name="hardware", kind="str", unit="", doc="what the number comes from: 'any (model property)', "
           "'any (storage)', 'sim: <accelerator> vs <accelerator>' or 'measured GPU (<file>): <kernel> vs <kernel>'"),
    Column(name="workload", kind="str", unit="", doc="preset, datapath, phase and context(s) the number is for"),
    Column(name="ours", kind="str", unit="", doc="our number, with its unit"),
    Column(name="verdict", kind="str", unit="", doc="holds, partly, does not hold (the rule of "
           "bitsim.report.claims.verdict), or not testable (random weights), baseline, context, n/a"),
    Column(name="why", kind="str", unit="", doc="what bounds the number: memory- or compute-bound share, "
           "bytes or rates behind it"),
    Column(name="reason", kind="str", unit="", doc="the reason in one line (the short claims table)"),
    Column(name="band", kind="str", unit="", doc="the ratio's sensitivity band per context (study_sensitivity); "
           "'' when not banded"),
    Column(name="survives", kind="str", unit="", doc="whether the verdict is the same at both ends of the band: "
           "yes, 'no: <verdict> at the band's low/high end', or n/a"),
    Column(name="claim_key", kind="str", unit="", doc="key of the claim (bitsim.report.claims.CLAIMS)"),
    Column(name="evidence", kind="str", unit="", doc="model, storage, simulated, measured kernels or measured block"),
), "one row per (claim, hardware, workload): the paper's and the press's claims against this study")

REPORT_CLAIMS_SHORT = register("report_claims_short", (
    Column(name="claim", kind="str", unit="", doc="the claim"),
    Column(name="claimed", kind="str", unit="", doc="the claimed number"),
    Column(name="evidence", kind="str", unit="", doc="what the number comes from, and the phase"),
    Column(name="ours", kind="str", unit="", doc="our number (every context: claims.csv)"),
    Column(name="verdict", kind="str", unit="", doc="the verdict (report_claims verdict)"),
    Column(name="survives", kind="str", unit="", doc="whether the verdict survives the sensitivity band"),
    Column(name="reason", kind="str", unit="", doc="one-line reason"),
), "the claims in a few rows: one headline row per claim and evidence (details in claims.csv)")

REPORT_VARIANTS = register("report_variants", (
    Column(name="preset", kind="str", unit="", doc="model preset of the comparison"),
    Column(name="profile", kind="str", unit="", doc="the comparison's one activation profile"),
    Column(name="datapath", kind="str", unit="", doc="datapath"),
    Column(name="accelerator", kind="str", unit="", doc="its matched chip (preset or YAML)"),
    Column(name="KV bits", kind="int", unit="bit", doc="KV-cache bits it runs with"),
    Column(name="changes", kind="str", unit="", doc="what the strongest-baseline rule changed ('' = nothing)"),
), "how each datapath runs in each comparison (bitsim.experiments.fair)")

REPORT_RATIOS = register("report_ratios", _pick(STUDY_SUMMARY, "preset", "phase", "context", "role") + (
    Column(name="accelerator (a4.8)", kind="str", unit="", doc="the accelerator a4.8 ran on"),
    Column(name="profile", kind="str", unit="", doc="the comparison's activation profile"),
), "a4.8 against the strongest b1.58 and fp16 per (preset, phase, context, role); for each other datapath the "
   "study ran, three more columns: 'speed a4.8/<other>' (tokens/s ratio), 'energy <other>/a4.8' (J/token ratio; "
   "empty on a dynamic-only accelerator) and 'footprint <other>/a4.8' (weights + KV bytes ratio), all x, "
   "higher = a4.8 better")

REPORT_SUMMARY = register("report_summary", _pick(STUDY_SUMMARY, "preset") + (
    Column(name="workload", kind="str", unit="", doc="'decode @ <context>' or 'prefill <tokens> tok'"),
) + _pick(STUDY_SUMMARY, "datapath", "accelerator") + (
    Column(name="tokens/s", kind="float", unit="token/s", doc="tokens per second"),
    Column(name="ms/token", kind="float", unit="ms", doc="latency per token"),
    Column(name="mJ/token", kind="float", unit="mJ/token", doc="energy per token"),
    Column(name="weights GB", kind="float", unit="GB", doc="all weights in their storage format (1e9 bytes)"),
    Column(name="KV GB", kind="float", unit="GB", doc="KV cache at the context (1e9 bytes)"),
    Column(name="memory-bound %", kind="float", unit="%", doc="share of cycles in memory-bound ops"),
), "the headline numbers of study_summary, one row per (preset, workload, datapath, accelerator): "
   "summary.csv (decode at the context nearest 2k, and prefill) and summary_all.csv (every context)")

REPORT_ACCELERATORS = register("report_accelerators", _pick(SIM_SUMMARY, "accelerator") + (
    Column(name="clock GHz", kind="float", unit="GHz", doc="clock"),
    Column(name="node nm", kind="int", unit="nm", doc="process node of the energy table"),
    Column(name="PEs", kind="int", unit="PE", doc="processing elements over all compute arrays"),
    Column(name="operand pairs", kind="str", unit="", doc="supported weights x acts pairs, comma-separated"),
    Column(name="off-chip GB/s", kind="float", unit="GB/s", doc="off-chip bandwidth"),
    Column(name="KV formats", kind="str", unit="", doc="KV-cache formats it stores, comma-separated"),
    Column(name="sparsity", kind="str", unit="", doc="zero skipping: skip fetch, skip compute, both or none"),
    Column(name="PE area mm2 (45nm)", kind="float", unit="mm2", doc="PE-array arithmetic area at 45 nm"),
    Column(name="chip area mm2", kind="float", unit="mm2", doc="whole-chip area from sim (PE, vector, SRAM, PHY at the "
           "chip's node), or the PE area when sim has none (bitsim.experiments.chipmetrics)"),
    Column(name="static W", kind="float", unit="W", doc="static power (sim's leakage model when the preset uses it)"),
    Column(name="capacity GB", kind="float", unit="GB", doc="off-chip memory capacity"),
    Column(name="basis", kind="str", unit="", doc="basis of comparison of the preset (its YAML's comparison)"),
    Column(name="energy", kind="str", unit="", doc="'dynamic + static', or 'dynamic only (no static/board "
           "power)'"),
), "the accelerators of a study, one row each (sim presets or YAML files)")

MEASURED_SPEEDUPS = register("measured_speedups", (
    Column(name="source", kind="str", unit="", doc="measured file the row comes from (one measuring run)"),
    Column(name="shape", kind="str", unit="", doc="'gemv 1x11008x4096', 'attn B1 H32 ctx8192', "
           "'block decode B1 ctx2048', 'block prefill 2048 tok'"),
    Column(name="family", kind="str", unit="", doc="linear, attention or block: which baseline it is timed "
           "against"),
    *_pick(MEASURED_TRACE, "op"),
    Column(name="kernel", kind="str", unit="", doc="implementation name; a sparse GEMV carries the sparsity "
           "it exploited, e.g. 'ours_sparse_w158a8 (s=51%)'"),
    *_pick(MEASURED_TRACE, "impl", "precision", "M", "N", "K", "sparsity", "cuda_graph", "us"),
    Column(name="baseline_us", kind="float", unit="us", doc="time of the family's FP16 baseline (cuBLAS FP16, "
           "torch SDPA, the FP16 block) at the same shape, run and timing mode"),
    Column(name="speedup", kind="float", unit="x", doc="baseline_us / us"),
    *_pick(MEASURED_TRACE, "gbps"),
    Column(name="repeats", kind="float", unit="", doc="timed repeats behind the median us (NaN when the run did not "
           "store them)"),
    Column(name="spread", kind="str", unit="", doc="what speedup_lo / speedup_hi span: 'iqr' (quartiles), "
           "'min-max', or 'none' (one run, no spread stored)"),
    Column(name="speedup_lo", kind="float", unit="x", doc="baseline's low time / kernel's high time "
           "(NaN without spread)"),
    Column(name="speedup_hi", kind="float", unit="x", doc="baseline's high time / kernel's low time "
           "(NaN without spread)"),
), "every measured kernel against the FP16 baseline of its shape, run and timing mode "
   "(bitsim.report.measured.speedups)")

REPORT_MEASURED_SPEEDUPS = register("report_measured_speedups", _pick(
    MEASURED_SPEEDUPS, "source", "shape", "kernel", "impl", "precision", "cuda_graph", "us", "baseline_us",
    "speedup", "spread", "speedup_lo", "speedup_hi", "repeats"),
    "the measured speedups the report shows: the kernels' own runs (measured_speedups columns)")

REPORT_SIM_VS_MEASURED = register("report_sim_vs_measured", tuple(
    c for c in SIM_VS_MEASURED if c.name != "skipped"),
    "the simulated calls of sim_vs_measured (rows with no op-trace equivalent, and the skipped column, left out)")

REPORT_GAIN_LADDER = register("report_gain_ladder", _pick(
    GAIN_LADDER, "preset", "context", "step", "change", "kv_bits", "accelerator") + (
    Column(name="tok/s", kind="float", unit="token/s", doc="gain_ladder tokens_per_s, rounded to a whole number"),
    Column(name="mJ/token", kind="float", unit="mJ/token", doc="gain_ladder energy_j_per_token in mJ, rounded to 0.1"),
    Column(name="KV GB", kind="float", unit="GB", doc="gain_ladder kv_bytes in GB (1e9 bytes), rounded to 0.001"),
    Column(name="off-chip MB/token", kind="float", unit="MB/token", doc="gain_ladder bytes_offchip in MB "
           "(1e6 bytes), rounded to a whole number"),
    Column(name="step x", kind="float", unit="x", doc="gain_ladder speedup_step, rounded to 0.01 (NaN on rungs 0, 1)"),
    Column(name="step x, no skipping", kind="float", unit="x", doc="gain_ladder speedup_step_no_skip, rounded to 0.01"),
    Column(name="total x", kind="float", unit="x", doc="gain_ladder speedup_total (over the strongest b1.58), "
           "rounded to 0.01"),
), "the gain ladder as the report shows it (gain_ladder rounded for reading)")

REPORT_SIM_VALIDATION = register("report_sim_validation", _pick(SIM_VALIDATION, "class", "preset", "split", "n") + (
    Column(name="MAPE %", kind="float", unit="%", doc="100 x sim_validation mape, rounded to 0.1"),
    Column(name="max |err| %", kind="float", unit="%", doc="100 x sim_validation max_abs_err, rounded to 0.1"),
    Column(name="mean err %", kind="float", unit="%", doc="100 x sim_validation mean_err (bias), rounded to 0.1"),
    Column(name="within_bound", kind="bool", unit="", doc="MAPE <= bitsim.report.measured.VALIDATION_BOUND (15 %)"),
), "simulated vs measured per kernel class, as the report shows it (sim_validation in percent)")

__all__ = ["MEASURED_SPEEDUPS", "REPORT_ACCELERATORS", "REPORT_CLAIMS", "REPORT_CLAIMS_SHORT", "REPORT_GAIN_LADDER",
           "REPORT_VARIANTS",
           "REPORT_MEASURED_SPEEDUPS", "REPORT_RATIOS", "REPORT_SIM_VALIDATION", "REPORT_SIM_VS_MEASURED",
           "REPORT_SUMMARY"]

#: The bar a published figure is held to (|error| at most this fraction).
PUBLISHED_BAR = 0.25

REPORT_PUBLISHED = register("report_published_chips", tuple(Column(name=n, kind=k, unit=u, doc=d) for n, k, u, d in (
    ("design", "str", "", "published design (chip or GPU with its kernel table)"),
    ("figure", "str", "", "the published figure: workload and quantity"),
    ("metric", "str", "", "latency, throughput, power, area, ..."),
    ("unit", "str", "", "unit of theirs and ours"),
    ("theirs", "float", "", "the published value"),
    ("ours", "float", "", "the simulator's value on the design's preset (NaN: not a target)"),
    ("error_pct", "float", "%", "(ours - theirs) / theirs"),
    ("within_bar", "bool", "", f"|error| <= {100 * PUBLISHED_BAR:.0f} %"),
    ("variant", "str", "", "stated (datasheet only), measured launch, calibrated, or not a target"),
    ("split", "str", "", "calibration or held-out (calibrated rows); all otherwise"),
    ("source", "str", "", "paper or datasheet, table or section"),
    ("explanation", "str", "", "what the model leaves out, or why the figure is not a target"),
)), "published accelerators against the simulator (sim.validation.published), every figure listed")
