"""Chip-to-chip interconnect (YAML) and the collective algorithms that run on it.

An interconnect is a topology (``switch``: every chip one hop from every other through a switch;
``ring``: each chip linked to two neighbours; ``mesh``: a 2-D grid), links per chip with a bandwidth
per direction, a per-step latency, a per-peer synchronisation cost, a fixed launch cost per
collective and an energy per bit moved.  All-reduce of ``S`` bytes over ``n`` chips with per-chip
injection bandwidth ``B`` (links x link bandwidth x sustained fraction), step latency ``a``, per-peer
sync ``y``, launch ``o`` and mean hop count ``d`` (1 on a switch; ~n/4 on a bidirectional ring;
~sqrt(n)/2 per axis pair on a mesh):

* ``ring``:     o + 2(n-1) (a + S / (n B))                 (reduce-scatter then all-gather, neighbours only)
* ``tree``:     o + 2 ceil(log2 n) (a + S / B)             (reduce up a binary tree, broadcast down)
* ``one-shot``: o + a + (n-1) y + (n-1) S d / B            (every chip reads every peer's whole buffer)
* ``two-shot``: o + 2a + 2(n-1) y + 2 (n-1)/n S d / B      (reduce-scatter + all-gather in two direct steps)
* ``auto``: the fastest of the four;
* ``by-size``: what a runtime's custom all-reduce does: one-shot while ``S`` is below the threshold
  ``oneshot_below_kb`` gives for ``n`` chips, two-shot above it (vLLM's rule on NVLink: always one-shot
  at 2 GPUs, below 512 KB up to 4, below 256 KB up to 8; vllm-project/vllm csrc/custom_all_reduce.cuh),
  and from ``direct_below_kb`` on (vLLM's custom all-reduce buffer, 8 MB) the ring of a collective
  library (NCCL) instead.

The direct algorithms (one-shot, two-shot) are kernels whose threads load their peers' buffers: their
bandwidth is what those loads reach (``direct_gbps``), not the links' peak; a copy-engine collective
(ring, tree) streams at the links' sustained bandwidth.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path

from contract.config import check_fields, check_number, load_yaml, quote

PRESET_DIR = Path(__file__).resolve().parents[1] / "presets" / "interconnect"
TOPOLOGIES = ("switch", "ring", "mesh")
ALGORITHMS = ("ring", "tree", "one-shot", "two-shot")
CHOICES = ALGORITHMS + ("auto", "by-size")


@dataclass(frozen=True, kw_only=True)
class InterconnectConfig:
    name: str
    description: str = ""
    topology: str = "switch"
    links_per_chip: int = 1
    link_gbps: float = 25.0           # GB/s per link per direction
    sustained_fraction: float = 1.0   # of the link bandwidth a collective reaches
    latency_us: float = 1.0           # per algorithm step
    sync_us_per_peer: float = 0.0     # flag exchange with each peer (one-shot / two-shot)
    launch_us: float = 0.0            # fixed cost of one collective (kernel launch, barrier)
    pj_per_bit: float = 10.0          # energy per bit moved over a link
    algorithm: str = "auto"           # CHOICES
    direct_gbps: float = 0.0          # GB/s per chip that one-shot / two-shot loads reach (0: links x sustained)
    oneshot_below_kb: tuple = ()      # by-size: ((most chips, KB below which one-shot runs), ...), fewest first
    direct_below_kb: float = 0.0      # by-size: ring from this size on (0: one-shot / two-shot at every size)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"interconnect.name: expected a non-empty string, got {quote(self.name)}")
        if self.topology not in TOPOLOGIES:
            raise ValueError(f"interconnect.topology: unknown topology {quote(self.topology)}; known: {TOPOLOGIES}")
        if self.algorithm not in CHOICES:
            raise ValueError(f"interconnect.algorithm: unknown algorithm {quote(self.algorithm)}; known: {CHOICES}")
        check_number(self.links_per_chip, "interconnect.links_per_chip", integer=True, lo=1, hi=1024)
        check_number(self.link_gbps, "interconnect.link_gbps", lo=0, lo_open=True, hi=1e6, unit="GB/s")
        check_number(self.sustained_fraction, "interconnect.sustained_fraction", lo=0, lo_open=True, hi=1)
        for f in ("latency_us", "sync_us_per_peer", "launch_us"):
            check_number(getattr(self, f), f"interconnect.{f}", lo=0, hi=1e6, unit="us")
        check_number(self.pj_per_bit, "interconnect.pj_per_bit", lo=0, hi=1e6, unit="pJ/bit")
        check_number(self.direct_gbps, "interconnect.direct_gbps", lo=0, hi=1e6, unit="GB/s")
        check_number(self.direct_below_kb, "interconnect.direct_below_kb", lo=0, hi=1e12, unit="KB")
        object.__setattr__(self, "oneshot_below_kb", _thresholds(self.oneshot_below_kb))
        if self.algorithm == "by-size" and not self.oneshot_below_kb:
            raise ValueError("interconnect.oneshot_below_kb: the by-size algorithm needs its thresholds, e.g. "
                             "[[2, 1.0e9], [4, 512], [8, 256]] (chips, KB below which one-shot runs)")

    @property
    def bytes_per_s(self) -> float:
        """Per-chip injection bandwidth a collective reaches (B/s)."""
        return self.links_per_chip * self.link_gbps * 1e9 * self.sustained_fraction

    @property
    def direct_bytes_per_s(self) -> float:
        """Per-chip bandwidth of the direct (one-shot, two-shot) kernels (B/s)."""
        return self.direct_gbps * 1e9 if self.direct_gbps > 0 else self.bytes_per_s

    def by_size(self, nbytes: float, n: int) -> str:
        """The algorithm the ``by-size`` rule runs for ``nbytes`` over ``n`` chips."""
        if self.direct_below_kb and nbytes >= self.direct_below_kb * 1024:
            return "ring"
        for most, kb in self.oneshot_below_kb:
            if n <= most:
                return "one-shot" if nbytes < kb * 1024 else "two-shot"
        return "two-shot"


def _thresholds(raw: object) -> tuple:
    """``oneshot_below_kb`` as a tuple of (chips, KB) pairs with increasing chips."""
    where = "interconnect.oneshot_below_kb"
    if not isinstance(raw, (list, tuple)):
        raise ValueError(f"{where}: expected a list of [chips, KB] pairs, got {quote(raw)}")
    out = []
    for i, pair in enumerate(raw):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ValueError(f"{where}[{i}]: expected a [chips, KB] pair, got {quote(pair)}")
        out.append((check_number(pair[0], f"{where}[{i}][0]", integer=True, lo=2, hi=1 << 20),
                    check_number(pair[1], f"{where}[{i}][1]", lo=0, hi=1e12, unit="KB")))
    if [c for c, _ in out] != sorted({c for c, _ in out}):
        raise ValueError(f"{where}: chip counts must increase, got {quote(raw)}")
    return tuple(out)


def load_interconnect(name_or_path: "str | Path | dict | InterconnectConfig") -> InterconnectConfig:
    """A preset name (``sim/presets/interconnect/<name>.yaml``), a YAML path, a mapping or a config."""
    if isinstance(name_or_path, InterconnectConfig):
        return name_or_path
    if isinstance(name_or_path, dict):
        raw, where = name_or_path, "interconnect"
    else:
        key = str(name_or_path)
        path = PRESET_DIR / f"{key}.yaml"
        if not path.exists():
            path = Path(key)
            if not path.exists() or path.suffix not in (".yaml", ".yml"):
                raise ValueError(f"interconnect: unknown interconnect {quote(key)}: not a preset "
                                 f"({presets()}) and no such .yaml file")
        raw, where = load_yaml(path), path.name
    d = check_fields(raw, [f.name for f in fields(InterconnectConfig)], where, required=("name",))
    return InterconnectConfig(**d)


def presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def mean_hops(topology: str, n: int) -> float:
    """Mean hop count between two distinct chips of ``n``."""
    if n <= 1 or topology == "switch":
        return 1.0
    if topology == "ring":       # bidirectional ring: mean shortest distance ~ n/4
        return sum(min(k, n - k) for k in range(1, n)) / (n - 1)
    side = math.ceil(math.sqrt(n))   # 2-D mesh: mean Manhattan distance per axis ~ side/3
    return max(1.0, 2 * (side * side - 1) / (3 * side))


def allreduce_seconds(nbytes: float, n: int, ic: InterconnectConfig, algorithm: str | None = None) -> float:
    """Time of one all-reduce of ``nbytes`` per chip over ``n`` chips (0 for one chip)."""
    if n <= 1 or nbytes <= 0:
        return 0.0
    algo = algorithm or ic.algorithm
    if algo == "auto":
        return min(allreduce_seconds(nbytes, n, ic, a) for a in ALGORITHMS)
    if algo == "by-size":
        algo = ic.by_size(nbytes, n)
    if algo not in ALGORITHMS:
        raise ValueError(f"algorithm: unknown algorithm {quote(algo)}; known: {CHOICES}")
    B, a, y, o = ic.bytes_per_s, ic.latency_us * 1e-6, ic.sync_us_per_peer * 1e-6, ic.launch_us * 1e-6
    d = mean_hops(ic.topology, n)
    if algo == "ring":
        return o + 2 * (n - 1) * (a + nbytes / (n * B))
    if algo == "tree":
        return o + 2 * math.ceil(math.log2(n)) * (a + nbytes / B)
    B = ic.direct_bytes_per_s
    if algo == "one-shot":
        return o + a + (n - 1) * y + (n - 1) * nbytes * d / B
    return o + 2 * a + 2 * (n - 1) * y + 2 * (n - 1) / n * nbytes * d / B


def allreduce_bytes_moved(nbytes: float, n: int, ic: InterconnectConfig, algorithm: str | None = None) -> float:
    """Bytes crossing links, all chips together, for one all-reduce (its energy = bytes x 8 x pJ/bit)."""
    if n <= 1 or nbytes <= 0:
        return 0.0
    algo = algorithm or ic.algorithm
    if algo == "auto":
        algo = min(ALGORITHMS, key=lambda a: allreduce_seconds(nbytes, n, ic, a))
    elif algo == "by-size":
        algo = ic.by_size(nbytes, n)
    d = mean_hops(ic.topology, n)
    per_chip = {"ring": 2 * (n - 1) / n * nbytes, "tree": 2 * nbytes,
                "one-shot": (n - 1) * nbytes * d, "two-shot": 2 * (n - 1) / n * nbytes * d}[algo]
    return n * per_chip


def allreduce_joules(nbytes: float, n: int, ic: InterconnectConfig, algorithm: str | None = None) -> float:
    return allreduce_bytes_moved(nbytes, n, ic, algorithm) * 8 * ic.pj_per_bit * 1e-12


def transfer_seconds(nbytes: float, ic: InterconnectConfig) -> float:
    """Point-to-point transfer of ``nbytes`` over one chip's links (pipeline hand-off, KV transfer)."""
    if nbytes <= 0:
        return 0.0
    return ic.launch_us * 1e-6 + ic.latency_us * 1e-6 + nbytes / ic.bytes_per_s
