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

_RUN = (
    ("world_size", "int", "", "GPUs (processes) taking part"),
    ("cuda_graph", "bool", "", "timed as replays of a CUDA graph (False: eager calls, the capture was refused)"),
    ("us", "float", "us", "median over repeats of the per-call time on the slowest rank"),
    ("us_p25", "float", "us", "first quartile over repeats"),
    ("us_p75", "float", "us", "third quartile over repeats"),
    ("us_min", "float", "us", "fastest repeat"),
    ("us_max", "float", "us", "slowest repeat"),
    ("repeats", "int", "", "repeats (each of --iters back-to-back calls)"),
    ("gpu", "str", "", "GPU name ('cpu' for a CPU run of the same code)"),
    ("gpu_count", "int", "", "GPUs on the host"),
    ("topology", "str", "", "nvidia-smi topo -m, whitespace folded"),
    ("torch", "str", "", "torch version"),
    ("nccl", "str", "", "NCCL version ('' for gloo)"),
    ("cuda", "str", "", "CUDA version"),
    ("date", "str", "", "ISO date of the run"),
    ("command", "str", "", "the command that produced the row"),
)

MEASURED_COLLECTIVES = tuple(Column(name=n, kind=k, unit=u, doc=d) for n, k, u, d in (
    ("collective", "str", "", "all_reduce, all_gather or reduce_scatter (torch.distributed, NCCL)"),
    ("bytes", "int", "B", "FP16 bytes per rank: the all-reduce buffer, the all-gather output, the reduce-scatter "
                          "input"),
) + _RUN)

MEASURED_TP_DECODE = tuple(Column(name=n, kind=k, unit=u, doc=d) for n, k, u, d in (
    ("model", "str", "", "layer shape (llama-70b: hidden 8192, 64 query / 8 KV heads of 128, FFN 28672)"),
    ("datapath", "str", "", "fp16 (cuBLAS), w8a8-fp8 (torch._scaled_mm) or b1.58 (our ternary kernel, INT8 acts)"),
    ("batch", "int", "", "tokens in the decode step"),
    ("part", "str", "", "gemm (the four sharded GEMMs), allreduce (the two all-reduces) or together (the step)"),
    ("allreduce_bytes", "int", "B", "bytes of one of the two all-reduces (batch x hidden x 2)"),
) + _RUN)

register("measured_collectives", MEASURED_COLLECTIVES,
         "collective latency on the GPUs of one host at decode sizes (kernels/bench/tensor_parallel.py writes it)")
register("measured_tp_decode", MEASURED_TP_DECODE,
         "a tensor-parallel decode step of a 70B-shaped layer, its GEMMs and all-reduces timed apart and together")
