"""Comparison bases: size a chip's arrays to a target area (iso-area) or power (iso-power).

The presets compare at iso-peak (same PE count, clock, memory, SRAM).  An architect also asks what
each datapath does with the same silicon or the same power.  Here a chip is scaled by one knob --
every compute array's copy count, the vector lanes and the SRAM bandwidth times a factor, then the
largest array's rows tuned so the target is met within a tolerance -- and the result says which basis
sized it, the target, what was met and by how much.

* iso-area: area from :func:`bitsim.experiments.chipmetrics.chip_area` (sim's whole-chip area when it
  has one, else the PE-array area at 45 nm, named), matched within 1 % with no simulation.
* iso-power: power at a workload (:func:`bitsim.experiments.chipmetrics.row_power`) by simulating a
  trace on each candidate (a safeguarded secant on the factor, a handful of runs).  The report sizes on the
  2048-token prefill: the compute-bound phase is the one that sets a chip's power budget (its
  TDP); the same chip then runs decode.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import pandas as pd

from bitsim.experiments.chipmetrics import chip_area, row_power
from bitsim.experiments.runs import Chip, simulate_job

BASES = ("iso-peak", "iso-area", "iso-power")
TOLERANCE = 0.01
MAX_ROWS = 1 << 16


@dataclass(frozen=True, kw_only=True)
class Sized:
    """A chip sized on one basis: the chip, the array factor, the target and what it reached."""

    chip: Chip
    basis: str
    factor: float          # PEs of the sized chip / PEs of the original
    target: float          # mm² (iso-area) or W (iso-power); NaN at iso-peak
    reached: float
    metric: str            # what was matched (area or power, and where the number comes from)

    @property
    def within(self) -> bool:
        return self.basis == "iso-peak" or abs(self.reached / self.target - 1) <= TOLERANCE


def _arrays(chip: Chip) -> list[tuple[str, int, int, int]]:
    """(name, rows, cols, count) of every array of the chip as it stands."""
    return [(a.name, a.rows, a.cols, a.count) for a in chip.config().arrays]


def _pes(chip: Chip) -> int:
    return sum(r * c * n for _name, r, c, n in _arrays(chip))


def scaled(chip: Chip, factor: float, main_factor: float | None = None, main_count: int | None = None) -> Chip:
    """``chip`` with ``factor`` x the PEs of every array, near continuously in ``factor``, and ``factor`` x its
    vector lanes and SRAM bandwidth (rounded).

    Each array keeps its shape and gets round(count x factor) copies (at least one); the largest
    array gets floor(count x main_factor) copies (``main_factor`` defaults to ``factor``), or exactly
    ``main_count`` when given, and its rows are set so its PE count is count x rows x main_factor
    (4 x 128 rows at 2.6: 10 x 133; with ``main_count`` 3 at 0.6: 3 x 102).
    """
    main_factor = factor if main_factor is None else main_factor
    if not factor > 0 or not main_factor > 0:
        raise ValueError(f"array factor must be positive, got {factor!r}, {main_factor!r}")
    if main_count is not None and (isinstance(main_count, bool) or not isinstance(main_count, int) or main_count < 1):
        raise ValueError(f"main_count must be a positive integer, got {main_count!r}")
    arrs = _arrays(chip)
    main = max(arrs, key=lambda a: a[1] * a[2] * a[3])
    cfg = chip.config()
    # every unit that feeds the arrays scales with them (the iso-peak rule's side units: vector lanes and SRAM
    # bandwidth per main-array MAC); memory, SRAM capacity, clock and fixed costs stay the preset's
    over: dict[str, int] = {"vector.lanes": max(1, int(round(cfg.vector.lanes * factor))),
                            "sram.bandwidth_bytes_per_cycle": max(1, int(round(cfg.sram.bandwidth_bytes_per_cycle
                                                                                * factor)))}
    for name, rows, _cols, count in arrs:
        if name == main[0]:
            n = main_count if main_count is not None else max(1, int(math.floor(count * main_factor)))
            over[f"arrays.{name}.count"] = n
            over[f"arrays.{name}.rows"] = int(min(MAX_ROWS, max(1, round(rows * count * main_factor / n))))
        else:
            over[f"arrays.{name}.count"] = max(1, int(round(count * factor)))
    return chip.with_overrides(over)


def _solve(chip: Chip, value: Callable[[Chip], float], target: float, max_evals: int,
           first: float, v1: float | None = None) -> tuple[Chip, float]:
    """The scaled chip whose ``value`` is closest to ``target``, and that value (``value`` grows with the factor).

    First the copy-count factor alone, then, with every copy count fixed, the largest array's rows alone
    (they absorb the rounding of the copy counts). The rows move at a fixed copy count because power jumps
    where a copy is added or removed (the copies work in parallel, while the extra rows of a stretched
    copy add little in prefill: 7B b1.58 draws 20.4 W with 2 x 186 rows and 23.8 W with 3 x 128), so a
    search that let the count change never reaches a target inside such a jump. Each search is a safeguarded
    secant on the factor: area and power are close to affine in the PE count (a fixed part -- memory PHYs, DRAM
    background, leakage of the SRAM -- plus a part per PE), so a secant step lands near the target in two
    or three evaluations where a bisection on the ratio ``target / value`` would not; a step that leaves the
    bracket found so far falls back to bisection. ``v1`` is ``value`` of the unscaled chip, if known.
    """
    best: list = [math.inf, chip, float("nan"), first]
    evals = 0

    def search(make: Callable[[float], Chip], x: float, budget: int, known: tuple[float, float] | None) -> None:
        nonlocal evals
        lo, hi = 1 / 16, 64.0
        pts = [known] if known is not None else []
        x = min(max(x, lo), hi)
        for _ in range(budget):
            evals += 1
            v = value(make(x))
            err = abs(v / target - 1)
            if err < best[0]:
                best[:] = [err, make(x), v, x]
            if err <= TOLERANCE / 2:
                return
            lo, hi = (x, hi) if v < target else (lo, x)
            pts = (pts + [(x, v)])[-2:]
            x = _next_factor(pts, target, lo, hi)

    search(lambda f: scaled(chip, f), first, max(1, max_evals // 2), None if v1 is None else (1.0, v1))
    if best[0] > TOLERANCE / 2:
        f, n = best[3], _main_count(best[1], chip)
        # the known point is the best chip itself; the first step assumes value proportional to the rows
        search(lambda m: scaled(chip, f, m, n), f * target / best[2], max(1, max_evals - evals), (f, best[2]))
    return best[1], best[2]


def _main_count(sized: Chip, chip: Chip) -> int:
    """Copies in ``sized`` of the array :func:`scaled` treats as ``chip``'s main one (its largest)."""
    main = max(_arrays(chip), key=lambda a: a[1] * a[2] * a[3])[0]
    return next(n for name, _r, _c, n in _arrays(sized) if name == main)


def _next_factor(pts: list[tuple[float, float]], target: float, lo: float, hi: float) -> float:
    """The secant step through the last two points, kept strictly inside the bracket ``(lo, hi)``."""
    if len(pts) == 2 and pts[0][1] != pts[1][1]:
        (x0, v0), (x1, v1) = pts
        x = x1 + (target - v1) * (x1 - x0) / (v1 - v0)
        if lo < x < hi:
            return x
    return math.sqrt(lo * hi)


def size_to_area(chip: Chip, target_mm2: float) -> Sized:
    """``chip`` scaled to ``target_mm2`` of area (within 1 %), with no simulation."""
    if not target_mm2 > 0:
        raise ValueError(f"iso-area target must be a positive area in mm², got {target_mm2!r}")
    area0, metric = chip_area(chip.config())
    if abs(area0 / target_mm2 - 1) <= TOLERANCE:
        return Sized(chip=chip, basis="iso-area", factor=1.0, target=target_mm2, reached=area0, metric=metric)
    sized, reached = _solve(chip, lambda c: chip_area(c.config())[0], target_mm2, 40, target_mm2 / area0, v1=area0)
    return Sized(chip=sized, basis="iso-area", factor=_pes(sized) / _pes(chip), target=target_mm2,
                 reached=reached, metric=metric)


def size_to_power(chip: Chip, trace: pd.DataFrame, target_w: float, max_runs: int = 10) -> Sized:
    """``chip`` scaled so its power on ``trace`` is ``target_w``, by simulating candidates.

    The closest chip found in ``max_runs`` simulations is returned with the power it reached
    (``Sized.within`` says whether that is inside the tolerance: a memory-bound step may not reach a
    target by its arrays at all).
    """
    if not target_w > 0:
        raise ValueError(f"iso-power target must be a positive power in W, got {target_w!r}")
    p0, how = row_power(simulate_job(trace, chip).row)
    metric = f"power on the sizing workload ({how})"
    if abs(p0 / target_w - 1) <= TOLERANCE:
        return Sized(chip=chip, basis="iso-power", factor=1.0, target=target_w, reached=p0, metric=metric)
    sized, reached = _solve(chip, lambda c: row_power(simulate_job(trace, c).row)[0], target_w, max_runs,
                            target_w / p0 if p0 > 0 else 1.0, v1=p0)
    return Sized(chip=sized, basis="iso-power", factor=_pes(sized) / _pes(chip), target=target_w,
                 reached=reached, metric=metric)
