"""The report's whole-token and published-chip validation: tables and their sections.

Whole before parts: the simulator's verdicts rest on whole decode tokens and decoder blocks, not only
on kernel classes. The whole-token rows are the committed replays of :data:`WHOLE_TOKEN_FILES`: every measured
H200 token and block on the H200 presets, and every one of the H100's twenty-first run, measured after every
fit, on the presets of the current kernels (written by ``bitsim validate --whole-token``; nothing is fitted to
them); the published-chip rows are computed here from ``sim/data/published_chips.csv``
(``sim.validation.published``).
"""
from __future__ import annotations

import functools
from pathlib import Path

import pandas as pd

import sim
from bitsim.report.document import Section, Table
from bitsim.report.tables import PUBLISHED_BAR, REPORT_PUBLISHED
from contract import read_table
from contract.io import files_digest
from sim.validation.published import validate_published
from sim.validation.whole_token import token_label

#: The committed whole-token replays the report shows, one GPU each, in this order
WHOLE_TOKEN_FILES = ("sim_whole_token_h200.csv", "sim_whole_token_h100_kernels9.csv")
#: The goal a whole token, a block and a token ratio are held to (simulated vs measured).
WHOLE_TOKEN_BOUND = 0.10
PUBLISHED_BOUND = PUBLISHED_BAR

def whole_token_rows(measured_dir: Path) -> pd.DataFrame:
    """The committed whole-token replays of :data:`WHOLE_TOKEN_FILES` the measured folder has, in that order (an
    empty frame when it has none)."""
    paths = [Path(measured_dir) / f for f in WHOLE_TOKEN_FILES]
    frames = [read_table(p, "sim_whole_token") for p in paths if p.is_file()]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def published_rows() -> pd.DataFrame:
    """Every published figure with the simulator's value and its error (``report_published_chips``)."""
    return _published_table(_published_inputs_digest()).copy()


def _published_inputs_digest() -> str:
    """SHA-256 of every file the published-chip replay reads (the simulator's data tables and presets)."""
    root = Path(sim.__file__).parent
    files = sorted(p for d in ("data", "presets") for p in (root / d).rglob("*") if p.is_file())
    return files_digest(files, prefix="\n".join(str(p.relative_to(root)) for p in files))


@functools.lru_cache(maxsize=2)
def _published_table(inputs_digest: str) -> pd.DataFrame:
    """:func:`published_rows` of the inputs ``inputs_digest`` names: computed once per process and input (a report
    rebuilt in the same process replays the published chips once; a changed table or preset is a new key)."""
    table, _fit = validate_published()
    out = table[[c.name for c in REPORT_PUBLISHED]].reset_index(drop=True)
    out["within_bar"] = out["within_bar"].fillna(False).astype(bool)   # a figure that is not a target is not within
    return out


def _pct(x: float) -> str:
    return f"{100 * x:+.1f} %"


def whole_token_section(rows: pd.DataFrame) -> Section | None:
    """Whole tokens and blocks first, then the ratios the study's verdicts rest on, per GPU; the misses named."""
    if rows.empty:
        return None
    s = Section("Whole token and block: simulated vs measured")
    per_gpu = rows.groupby(rows["gpu"] if "gpu" in rows else pd.Series("", index=rows.index), sort=False)
    s.text("Every measured 7B decode token, decoder block and block prefill is replayed on the presets of its GPU "
           "(baselines on the ceilings' preset, our kernels on the fitted one), held out: nothing is fitted to "
           f"these rows. Goal: within {100 * WHOLE_TOKEN_BOUND:.0f} %. "
           + " ".join(_whole_token_summary(str(gpu), g) for gpu, g in per_gpu)
           + " Where a row misses, the table names the mechanism the replay leaves out; the GPU verdicts of the "
             "study are therefore read from the measured rows, and the simulator's from the accelerator presets, "
             "never mixed.")
    cols = ["row", "launches", "measured", "simulated", "rel_error", "preset", "mechanism"]
    shown = rows[(["gpu"] if "gpu" in rows else []) + cols]
    s.table(Table(name="whole_token_validation", df=shown, caption="Whole tokens, blocks and token ratios "
                  "(measured and simulated in µs, ratios as x; rel_error = (sim - measured) / measured)"))
    return s


def _token_label(r) -> str:
    """A token row's datapath as its kernel names it (:func:`sim.validation.whole_token.token_label`), else its
    ``datapath``."""
    return token_label(getattr(r, "kernel", "") or "") or str(r.datapath)


def _whole_token_summary(gpu: str, rows: pd.DataFrame) -> str:
    """One GPU's sentence: its tokens, its ratios, how many of its rows are within the goal."""
    tok = rows[rows.op == "token_decode"]
    ratios = rows[rows.op == "ratio"]
    within = int((rows.rel_error.abs() <= WHOLE_TOKEN_BOUND).sum())
    return ((f"{gpu}: " if gpu else "")
            + "whole tokens " + ", ".join(f"{_token_label(r)} {_pct(r.rel_error)}" for r in tok.itertuples())
            + "; token ratios " + ", ".join(f"{r.datapath} measured {r.measured:.2f}x, simulated "
                                            f"{r.simulated:.2f}x ({_pct(r.rel_error)})" for r in ratios.itertuples())
            + f"; {within} of {len(rows)} rows are within the goal.")


def published_section(rows: pd.DataFrame) -> Section | None:
    """Every published figure, the ones outside the bar included, with what the model leaves out."""
    if rows.empty:
        return None
    s = Section("Published chips")
    targets = rows[rows.ours.notna()]
    lines = []
    for (design, variant, split), g in targets.groupby(["design", "variant", "split"], sort=False):
        lines.append(f"{design}, {variant}{'' if split == 'all' else ' ' + split}: "
                     f"{int(g.within_bar.sum())} of {len(g)} within ±{100 * PUBLISHED_BOUND:.0f} %")
    s.text("Published accelerators and a published GPU kernel table replayed on presets built from their "
           "descriptions (`sim/data/published_chips.csv`, each figure with its source). " + "; ".join(lines) + ". "
           "Figures a design's public description does not let us reproduce are listed as not targets, with why.")
    s.table(Table(name="published_chips", df=rows.drop(columns=["source"]),
                  caption="Published figures against the simulator (error = (ours - theirs) / theirs)"))
    return s
