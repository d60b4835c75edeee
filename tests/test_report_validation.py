"""The report's whole-token and published-chip sections: every row listed, the misses counted as misses."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from bitsim.report.validation import (
    WHOLE_TOKEN_BOUND,
    published_rows,
    published_section,
    whole_token_rows,
    whole_token_section,
)

DATA = Path(__file__).resolve().parents[1] / "reports" / "data"


def _text(section) -> str:
    return "\n".join(b for b in section.blocks if isinstance(b, str))


def test_whole_token_section_quotes_each_gpus_tokens_and_ratios_and_counts_its_rows_within_the_goal():
    rows = whole_token_rows(DATA)
    assert {"token_decode", "block_decode", "block_prefill", "ratio"} <= set(rows.op)
    assert rows.gpu.str.contains("H200").any() and rows.gpu.str.contains("H100").any()
    text = _text(whole_token_section(rows))
    for gpu, g in rows.groupby("gpu"):
        n_ok = int((g.rel_error.abs() <= WHOLE_TOKEN_BOUND).sum())
        tokens = ", ".join(f"{r.kernel.removeprefix('7b_')} {100 * r.rel_error:+.1f} %"
                           for r in g[g.op == "token_decode"].itertuples())
        assert f"{gpu}: whole tokens {tokens};" in text
        assert f"; {n_ok} of {len(g)} rows are within the goal." in text


def test_a_synthetic_miss_is_reported_as_outside_the_goal():
    rows = pd.DataFrame([dict(row="token_decode x", op="token_decode", datapath="x", measured=100.0,
                              simulated=50.0, rel_error=-0.5, launches=1, preset="p", mechanism="m")])
    assert "0 of 1 rows are within the goal" in _text(whole_token_section(rows))
    assert whole_token_section(pd.DataFrame()) is None


def test_published_section_lists_every_figure_and_counts_each_design_within_its_bar():
    rows = published_rows()
    assert rows.within_bar.dtype == bool and len(rows) >= 20
    err = 100 * (rows.ours - rows.theirs) / rows.theirs
    targets = rows.ours.notna()
    assert (abs(err[targets] - rows.error_pct[targets]) < 1e-6).all()
    text = _text(published_section(rows))
    slim = rows[targets & rows.design.str.startswith("Slim-Llama")]
    assert f"{int(slim.within_bar.sum())} of {len(slim)} within" in text


def test_h100_tables_of_the_current_kernels_replay_on_presets_derived_for_them():
    from bitsim.report.measured import _generations, load_measured
    from sim.validation.crossgpu import H100_CURRENT_SOURCES
    from sim.validation.replay import MEASURED_DIR
    rows = load_measured(MEASURED_DIR, include_anchors=False)
    h100 = rows[rows.gpu.astype(str).str.contains("H100")]
    parts = _generations(h100, ("h100-like", "h100-triton"), True)
    assert len(parts) == 2
    (old, old_presets, _), (cur, cur_presets, _) = parts
    assert old_presets == ("h100-like", "h100-triton") and not old.source.isin(H100_CURRENT_SOURCES).any()
    assert [p.name for p in cur_presets] == ["h100-like-current", "h100-triton-current"]
    assert cur.source.isin(H100_CURRENT_SOURCES).all() and len(old) + len(cur) == len(h100)
    # without the first table to fit on, every row stays on the committed presets
    alone = _generations(h100[h100.source != "measured_h100_kernels.parquet"], ("h100-like", "h100-triton"), True)
    assert len(alone) == 1 and alone[0][1] == ("h100-like", "h100-triton")


def test_a_later_h200_run_is_held_out_whole_while_the_first_keeps_its_named_calibration_rows():
    from bitsim.report.measured import _generations, load_measured
    from sim.validation.crossgpu import H200_MEASURED, h200_calibration_mask
    from sim.validation.replay import MEASURED_DIR
    rows = load_measured(MEASURED_DIR, include_anchors=False)
    first = rows[rows.source == H200_MEASURED.name]
    later = first.assign(source="measured_h200_later.parquet")     # the same kernels, measured again
    parts = _generations(pd.concat([first, later]), ("h200-like", "h200-triton"), False)
    assert [len(p[0]) for p in parts] == [len(first), len(later)]
    (one, _, mask_one), (two, _, mask_two) = parts
    assert mask_one is h200_calibration_mask and mask_one(one).any()
    assert not mask_two(two).any() and (two.source == "measured_h200_later.parquet").all()
    # rows without a source (a caller's own table) keep the named calibration rows
    bare = _generations(first.drop(columns=["source"]), ("h200-like", "h200-triton"), False)
    assert len(bare) == 1 and bare[0][2] is h200_calibration_mask


def test_published_rows_are_replayed_once_per_process_and_inputs_and_handed_out_as_copies(monkeypatch, tmp_path):
    import shutil

    import sim
    from bitsim.report import validation as V
    first = published_rows()
    first.loc[0, "ours"] = -1.0                        # a caller's edit never reaches the next caller
    again = published_rows()
    assert again.loc[0, "ours"] != -1.0 and V._published_table.cache_info().hits >= 1
    # the key covers every data table and preset: a changed file is a new key
    root = Path(sim.__file__).parent
    for d in ("data", "presets"):
        shutil.copytree(root / d, tmp_path / "sim" / d)
    monkeypatch.setattr(sim, "__file__", str(tmp_path / "sim" / "__init__.py"))
    before = V._published_inputs_digest()
    table = tmp_path / "sim" / "data" / "published_chips.csv"
    table.write_text(table.read_text() + "\n")
    assert V._published_inputs_digest() != before
