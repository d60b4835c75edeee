"""Tables that ``kernels/`` writes besides the measured trace: the board energy of sustained runs.

Registered on import (``import contract.kernels``); this module imports nothing of the
project but the contract.
"""
from __future__ import annotations

from contract.schemas import Column, register

BOARD_ENERGY = tuple(Column(name=n, kind=k, unit=u, doc=d) for n, k, u, d in (
    ("datapath", "str", "", "fp16, b1.58 or a4.8"),
    ("phase", "str", "", "decode or prefill"),
    ("scope", "str", "", "what one step runs, e.g. 7b_token (32 blocks + final norm + FP16 LM head) or block "
                         "(one decoder block)"),
    ("steps", "int", "", "steps run back to back during the measurement"),
    ("tokens", "float", "token", "tokens processed during the measurement (steps x tokens per step)"),
    ("seconds", "float", "s", "wall time of the measurement"),
    ("joules", "float", "J", "board energy over the measurement (NVML total-energy counter difference)"),
    ("mean_power_w", "float", "W", "mean of the board power samples (every 20 ms)"),
    ("max_power_w", "float", "W", "largest board power sample"),
    ("idle_power_w", "float", "W", "mean board power with the GPU idle, measured in the same run"),
    ("j_per_token", "float", "J/token", "board energy per token of the step's scope (measured board energy, "
                                        "not dynamic-only)"),
    ("j_per_token_above_idle", "float", "J/token", "(joules - idle_power_w x seconds) / tokens"),
    ("us_per_step", "float", "us", "wall time per step during the measurement"),
    ("layers_per_step", "int", "", "decoder blocks one step runs (32 for a 7B token, 1 for a block)"),
    ("samples", "int", "", "power samples taken"),
    ("source", "str", "", "nvml_total_energy (counter) or nvml_power_integral (mean power x time)"),
    ("note", "str", "", "what the step is (kernel variant, context, batch)"),
    ("gpu", "str", "", "GPU name"),
    ("torch", "str", "", "torch version"),
    ("triton", "str", "", "triton version"),
    ("cuda", "str", "", "CUDA version"),
    ("date", "str", "", "ISO date of the run"),
))

register("board_energy", BOARD_ENERGY, "board energy of sustained decode / prefill runs on a GPU (kernels/ writes it)")
