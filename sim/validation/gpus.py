"""Which simulator presets describe a measured GPU.

Each GPU has two: the preset built from its measured ceilings (peaks and read rates, nothing fitted to
kernel rows), on which the vendor and torch baselines (cuBLAS, SDPA, torch's quantized GEMMs) are
replayed, and the preset fitted to our Triton kernels (:mod:`.calibrate`, :mod:`.crossgpu`).
"""
from __future__ import annotations

from sim.config import PRESETS

#: GPU name fragment -> (measured-ceilings preset, preset fitted to our kernels).
GPU_PRESETS = {"H100": ("h100-like", "h100-triton"), "H200": ("h200-like", "h200-triton")}


def gpu_presets(gpu: str) -> tuple[str, str] | None:
    """The (ceilings, fitted) presets that describe ``gpu`` (a GPU name as the measurements record it), or None
    when the simulator has none for it."""
    for frag, pair in GPU_PRESETS.items():
        if frag in str(gpu):
            return pair if all(p in PRESETS for p in pair) else None
    return None
