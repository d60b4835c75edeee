"""Fair comparisons: the strongest baseline of every datapath, and one activation profile per comparison.

A comparison is one model preset with its datapaths, each on its chip.  The rules:

* **KV cache.** Every datapath stores its KV cache in the fewest bits it is documented to keep its
  accuracy at (:data:`KV_TOLERANCE`, with the source of each), among the KV formats any chip of the
  comparison offers ("same KV-format options"); a chip that lacks that format is granted it, and the
  row says so.  b1.58 thus runs with a 4-bit cache ([FAQ] §2: 4-bit KV PTQ is lossless), not FP16.
* **Skip logic.** When any chip of the comparison skips the weight rows of zero activations, every
  chip does ("same skip logic"); a datapath with few zeros simply gains little from it.
* **Array budget.** The presets' own arrays (iso-peak: same PE count, clock, memory and SRAM);
  iso-area and iso-power chips are sized by :mod:`bitsim.experiments.sizing`.
* **One profile.** Activation statistics are those of a trained model where ``model`` offers a
  trained profile for every datapath of the comparison, else the paper's Table 2 where it has a
  row for each, else seeded random weights (``measured``); a datapath that the chosen profile
  cannot describe leaves that comparison (it is never run on another profile beside the others).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from bitsim.experiments.paths import DATA_DIR_NAME, project_path
from bitsim.experiments.runs import Chip
from contract import read_table
from model.config import BASELINE_DATAPATHS, get_config
from model.paper_sparsity import PAPER_TABLE2
from model.trace import PROFILES as MODEL_PROFILES

#: The fewest KV-cache bits each datapath keeps its accuracy at, and where that is stated.
KV_TOLERANCE: dict[str, tuple[int, str]] = {
    "fp16": (4, "ASSUMPTION: 4-bit KV post-training quantization as lossless for FP16 as [FAQ] §2 shows it "
                "for b1.58; granted so the FP16 baseline is the strongest the simulator can describe (it can "
                "only shrink a4.8's lead)"),
    "b1.58": (4, "[FAQ] §2, Table 3: 4-bit KV post-training quantization is lossless (docs/paper-facts.md §1.7)"),
    "a4.8": (3, "[A48] §3.1, Table 3: 4-bit Q with a 3-bit KV cache (docs/paper-facts.md §1.7, §3.3)"),
    "a4.8-fp4": (3, "as a4.8 ([A48] §3.1)"),
    **{d: (4, "ASSUMPTION: as for fp16, 4-bit KV granted to the post-training-quantized baseline so it is the "
              "strongest the simulator can describe (it can only shrink a4.8's lead)") for d in BASELINE_DATAPATHS},
}
#: Bits of a KV-cache storage format (sim's ``kv_formats``); the model stores 2..7-bit codes or FP16.
KV_FORMAT_BITS = {"kv-fp16": 16, "kv-int8": 8, "kv-int4": 4, "kv-int3": 3}
MODEL_KV_BITS = (2, 3, 4, 5, 6, 7, 16)

#: Profiles a study may ask for; ``auto`` applies the one-profile rule of the module docstring.
PROFILE_CHOICES = ("auto", "measured", "paper-table2", "trained")
#: How each profile is named in every figure and table.
PROFILE_LABELS = {"measured": "random-weight statistics", "paper-table2": "paper Table 2 sparsity",
                  "trained": "trained-model profile"}
#: How baselines are configured: the strongest (rules above) or each datapath as its preset has it.
BASELINE_POLICIES = ("strongest", "as-given")


def profile_label(profile: str) -> str:
    return PROFILE_LABELS.get(profile, profile)


def kv_format(bits: int) -> str:
    """The sim KV format of ``bits`` (16 = FP16)."""
    return {16: "kv-fp16", 8: "kv-int8", 4: "kv-int4", 3: "kv-int3"}.get(int(bits), f"kv-int{int(bits)}")


@dataclass(frozen=True, kw_only=True)
class Variant:
    """One datapath as a comparison runs it: its KV cache, its chip, and what the fairness rule changed."""

    datapath: str
    kv_bits: int | None          # None: the datapath's own KV cache
    chip: Chip
    accelerator: str             # the chip's preset name or YAML, as the study was given it
    changes: str = ""            # '' when the rule changed nothing

    @property
    def label(self) -> str:
        return self.datapath + (f" ({self.changes})" if self.changes else "")


@dataclass(frozen=True, kw_only=True)
class Comparison:
    """One preset's comparison: its profile, the datapaths it holds and each one's variant."""

    preset: str
    profile: str
    profile_reason: str
    variants: Mapping[str, Variant]
    dropped: Mapping[str, str] = field(default_factory=dict)   # datapath -> why it is not in this comparison

    @property
    def datapaths(self) -> tuple[str, ...]:
        return tuple(self.variants)


def _table2_has(datapath: str, preset: str) -> bool:
    return preset in PAPER_TABLE2.get(datapath, {})


def trained_profiles(data_dir: str | Path) -> set[str]:
    """Datapaths with a committed trained profile (``trained_profile*.csv`` rows), if model can apply one."""
    if "trained" not in MODEL_PROFILES:
        return set()
    out: set[str] = set()
    for f in sorted(Path(data_dir).glob("trained_profile*.csv")):
        try:
            out |= set(read_table(f)["datapath"].astype(str))
        except (ValueError, OSError, KeyError):  # not a trained-profile table: it covers no datapath
            continue
    return out


def choose_profile(preset: str, datapaths: Sequence[str], requested: str = "auto",
                   data_dir: str | Path = project_path(DATA_DIR_NAME)) -> tuple[str, dict[str, str], str]:
    """The one profile of a preset's comparison: (profile, {dropped datapath: why}, reason).

    ``auto``: trained where every datapath of the comparison has a trained profile, else the paper's Table 2 if it
    covers b1.58 and a4.8 of ``preset`` (datapaths it lacks, e.g. a4.8-fp4, are dropped), else random
    weights.  A named profile is used as asked (a datapath it cannot describe is dropped).
    """
    if requested not in PROFILE_CHOICES:
        raise ValueError(f"profile: must be one of {PROFILE_CHOICES}, got {requested!r}")
    one_bit = [d for d in datapaths if d != "fp16"]
    if requested == "auto":
        have = trained_profiles(data_dir)
        if one_bit and set(datapaths) <= have:   # every datapath, fp16 too: one profile per comparison
            return "trained", {}, "trained-model profile of every datapath (reports/data/trained_profile*.csv)"
        why_not = ("model.trace has no 'trained' profile yet" if "trained" not in MODEL_PROFILES else
                   "no trained profile for " + ", ".join(sorted(set(datapaths) - have)))
        core = [d for d in ("b1.58", "a4.8") if d in datapaths]
        if core and all(_table2_has(d, preset) for d in core):
            dropped = {d: f"the paper's Table 2 has no {d} row for {preset}" for d in datapaths
                       if not _table2_has(d, preset)}
            return "paper-table2", dropped, (f"the paper's Table 2 sparsity of {preset} (a trained model's); "
                                             f"trained profile not used: {why_not}")
        return "measured", {}, (f"random-weight statistics: the paper's Table 2 has no {preset} row and "
                                f"{why_not}")
    if requested == "paper-table2":
        dropped = {d: f"the paper's Table 2 has no {d} row for {preset}" for d in datapaths
                   if not _table2_has(d, preset)}
        if len(dropped) == len(datapaths):
            raise ValueError(f"profile: the paper's Table 2 has no row for preset {preset!r}")
        return requested, dropped, "asked for (--profile paper-table2)"
    if requested == "trained" and "trained" not in MODEL_PROFILES:
        raise ValueError("profile: model.trace offers no 'trained' profile yet")
    return requested, {}, f"asked for (--profile {requested})"


def best_kv_bits(datapath: str, offered: Sequence[str]) -> int:
    """The fewest KV bits of the ``offered`` formats that ``datapath`` tolerates (:data:`KV_TOLERANCE`)."""
    floor = KV_TOLERANCE.get(datapath, (16, ""))[0]
    bits = sorted(b for b in (KV_FORMAT_BITS.get(f) for f in offered)
                  if b is not None and b >= floor and b in MODEL_KV_BITS)
    return bits[0] if bits else 16


def strongest(datapaths: Sequence[str], matched: Mapping[str, str], preset: str,
              policy: str = "strongest") -> dict[str, Variant]:
    """Each datapath's variant under ``policy``: the strongest baseline (module rules) or as given."""
    if policy not in BASELINE_POLICIES:
        raise ValueError(f"baselines: must be one of {BASELINE_POLICIES}, got {policy!r}")
    accs = {d: Chip.of(matched[d]).config() for d in datapaths}
    offered = sorted({f for a in accs.values() for f in a.kv_formats}, key=lambda f: KV_FORMAT_BITS.get(f, 99))
    skip_fetch = any(a.sparsity.skip_weight_fetch for a in accs.values())
    skip_compute = any(a.sparsity.skip_compute for a in accs.values())
    out = {}
    for d in datapaths:
        acc, chip = accs[d], Chip.of(matched[d])
        if policy == "as-given":
            out[d] = Variant(datapath=d, kv_bits=None, chip=chip, accelerator=matched[d])
            continue
        own = get_config(preset, d).kv_cache_bits
        bits = best_kv_bits(d, offered)
        changes, overrides = [], {}
        if bits != own:
            changes.append(f"{bits}-bit KV" if bits != 16 else "FP16 KV")
        fmt = kv_format(bits)
        if fmt not in acc.kv_formats:
            overrides["kv_formats"] = list(acc.kv_formats) + [fmt]
            changes.append(f"{fmt} granted")
        if skip_fetch and not acc.sparsity.skip_weight_fetch or skip_compute and not acc.sparsity.skip_compute:
            overrides["sparsity.skip_weight_fetch"] = skip_fetch or acc.sparsity.skip_weight_fetch
            overrides["sparsity.skip_compute"] = skip_compute or acc.sparsity.skip_compute
            changes.append("zero skipping granted")
        out[d] = Variant(datapath=d, kv_bits=None if bits == own else bits, chip=chip.with_overrides(overrides),
                         accelerator=matched[d], changes=", ".join(changes))
    return out


def plan_comparison(preset: str, datapaths: Sequence[str], matched: Mapping[str, str], *,
                    profile: str = "auto", policy: str = "strongest",
                    data_dir: str | Path = project_path(DATA_DIR_NAME)) -> Comparison:
    """The comparison of one preset: its profile (one for all its datapaths) and each datapath's variant."""
    prof, dropped, reason = choose_profile(preset, datapaths, profile, data_dir)
    kept = [d for d in datapaths if d not in dropped]
    return Comparison(preset=preset, profile=prof, profile_reason=reason,
                      variants=strongest(kept, matched, preset, policy), dropped=dropped)
