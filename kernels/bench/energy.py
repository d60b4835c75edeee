"""Board energy of sustained decode and prefill runs, from the GPU's own counters (NVML).

For each run the board's total-energy counter (``nvmlDeviceGetTotalEnergyConsumption``, mJ since
the driver loaded) is read before and after a loop of the workload that lasts ``seconds``, and
the board power (``nvmlDeviceGetPowerUsage``) is sampled every 20 ms beside it.  Joules per token
= energy / tokens; "above idle" subtracts the idle power measured first, times the run's length.
This is the whole board (GPU, HBM, VRM losses), as the counter reports it -- not dynamic-only
energy.  pynvml (nvidia-ml-py) is optional: it is in the GPU image, not a project dependency.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

import torch

from kernels.bench.harness import MeasurementLog


class BoardMeter:
    """NVML handle of GPU 0: total-energy counter and power samples."""

    def __init__(self) -> None:
        import pynvml  # optional dependency, present in the GPU image (nvidia-ml-py)

        self.nv = pynvml
        pynvml.nvmlInit()
        self.h = pynvml.nvmlDeviceGetHandleByIndex(0)
        try:
            pynvml.nvmlDeviceGetTotalEnergyConsumption(self.h)
            self.has_counter = True
        except Exception:  # noqa: BLE001 - older boards: integrate the power samples instead
            self.has_counter = False

    def energy_mj(self) -> float:
        return float(self.nv.nvmlDeviceGetTotalEnergyConsumption(self.h)) if self.has_counter else float("nan")

    def power_w(self) -> float:
        return self.nv.nvmlDeviceGetPowerUsage(self.h) / 1e3

    def clocks(self) -> dict:
        nv = self.nv
        try:
            return dict(sm_mhz=nv.nvmlDeviceGetClockInfo(self.h, nv.NVML_CLOCK_SM),
                        mem_mhz=nv.nvmlDeviceGetClockInfo(self.h, nv.NVML_CLOCK_MEM),
                        temp_c=nv.nvmlDeviceGetTemperature(self.h, nv.NVML_TEMPERATURE_GPU))
        except Exception:  # noqa: BLE001
            return {}


def _sample(meter: BoardMeter, stop: threading.Event, out: list[float], period_s: float = 0.02) -> None:
    while not stop.is_set():
        out.append(meter.power_w())
        time.sleep(period_s)


def measure_idle(meter: BoardMeter, seconds: float = 1.0) -> float:
    """Mean board power with the GPU idle (after a sync)."""
    torch.cuda.synchronize()
    time.sleep(0.3)
    samples: list[float] = []
    stop = threading.Event()
    th = threading.Thread(target=_sample, args=(meter, stop, samples), daemon=True)
    th.start()
    time.sleep(seconds)
    stop.set()
    th.join()
    return sum(samples) / max(1, len(samples))


def sustained(log: MeasurementLog, meter: BoardMeter, *, datapath: str, phase: str, scope: str,
              step: Callable[[], object], tokens_per_step: float, idle_w: float, seconds: float = 1.5,
              layers_per_step: int = 1, note: str = "") -> dict:
    """Run ``step`` back to back for ``seconds``; log joules per token (board) and above idle."""
    for _ in range(3):
        step()
    torch.cuda.synchronize()
    n = 0
    samples: list[float] = []
    stop = threading.Event()
    th = threading.Thread(target=_sample, args=(meter, stop, samples), daemon=True)
    e0 = meter.energy_mj()
    t0 = time.perf_counter()
    th.start()
    while time.perf_counter() - t0 < seconds:
        for _ in range(8):
            step()
        n += 8
        torch.cuda.synchronize()
    t1 = time.perf_counter()
    e1 = meter.energy_mj()
    stop.set()
    th.join()
    dt = t1 - t0
    mean_w = sum(samples) / max(1, len(samples))
    joules = (e1 - e0) / 1e3 if meter.has_counter else mean_w * dt
    tokens = n * tokens_per_step
    row = dict(datapath=datapath, phase=phase, scope=scope, steps=n, tokens=float(tokens), seconds=dt,
               joules=joules, mean_power_w=mean_w, max_power_w=max(samples) if samples else float("nan"),
               idle_power_w=idle_w, j_per_token=joules / tokens,
               j_per_token_above_idle=(joules - idle_w * dt) / tokens, us_per_step=1e6 * dt / n,
               layers_per_step=layers_per_step, samples=len(samples),
               source="nvml_total_energy" if meter.has_counter else "nvml_power_integral", note=note,
               gpu=log.env["gpu"], torch=log.env["torch"], triton=log.env["triton"], cuda=log.env["cuda"],
               date=log.env["date"], **{k: float(v) for k, v in meter.clocks().items()})
    log.energy.append(row)
    print(f"  energy {datapath:6s} {phase:8s} {scope:18s} {row['j_per_token'] * 1e3:9.2f} mJ/token "
          f"({mean_w:.0f} W mean, idle {idle_w:.0f} W, {n} steps, {dt:.2f} s)", flush=True)
    return row
