"""Tile configurations: what each launcher accepts, what the benchmark sweeps, what it measured best.

* ``CONFIG_RULES[kernel]``: every key a launcher's ``config=`` accepts, with its rule (a power of
  two, a positive int, a bool, one of a few values).  :func:`resolve_config` merges a launcher's
  hand-picked default, the measured entry of a :class:`ConfigTable` and the caller's override,
  and refuses an unknown key or a bad value (``BK=3``, ``BN=0``, ``num_warps=-4``) with a
  ``ValueError`` naming the key, before anything is launched.
* ``CANDIDATES[kernel]``: the configs ``bitsim bench-kernels --configs`` checks (bit-exact for
  the GEMM/GEMV kernels; attention within its stated tolerance) and times on every benchmarked
  shape; only a correct one can win.
* :class:`ConfigTable`: the measured winners per kernel and shape key.  It is an immutable value
  that is **passed** to launchers (``tuned=``); a sweep returns a new table
  (:meth:`ConfigTable.with_entry`) and writes it as ``tuned_configs.json``;
  :func:`load_config_table` reads such a file back, checking every entry.  No module state
  changes during a run: a launcher called without ``tuned=`` uses its hand-picked default.

Why these candidates: the ``sm_90`` compile check in ``docs/kernels.md`` (register counts and
spills per tile) and the H100/H200 runs recorded there.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

#: rule names: "pow2" (a positive power of two), "pos" (a positive int), "bool", or a tuple of
#: the allowed values.
CONFIG_RULES: dict[str, dict[str, object]] = {
    "gemm": {"BM": "pow2", "BN": "pow2", "BK": "pow2", "GROUP_M": "pos", "SWAP": "bool", "UCODE": "bool",
             "SPLIT_K": "pos", "JOIN": "bool", "SWAR": "bool", "num_warps": (1, 2, 4, 8, 16), "num_stages": "pos"},
    "gemv": {"BN": "pow2", "KB": "pow2", "num_warps": (1, 2, 4, 8, 16), "num_stages": "pos"},
    "sparse": {"WBN": "pow2", "BI": "pow2", "num_warps": (1, 2, 4, 8, 16)},
    "sparse_masked": {"WBN": "pow2", "BI": "pow2", "KS": "pow2", "COMPACT": "bool", "num_warps": (1, 2, 4, 8, 16)},
    "attention": {"BT": "pow2", "S": "pos", "num_warps": (1, 2, 4, 8, 16), "USE_DOT": "bool", "FMA": "bool",
                  "num_stages": "pos"},
    "attention_step": {"BT": "pow2", "S": "pos", "num_warps": (1, 2, 4, 8, 16), "num_stages": "pos"},
}
KERNELS = tuple(CONFIG_RULES)

#: limits that keep a tile inside what one program can hold
MAX_TILE = {"BM": 512, "BN": 1024, "BK": 1024, "KB": 1024, "WBN": 1024, "BI": 1024, "BT": 1024, "S": 1024,
            "KS": 64, "GROUP_M": 64, "SPLIT_K": 64, "num_stages": 8}

#: GEMM tiles for the batch of a decode step (M <= 128), swept by the benchmark's serving section:
#: with few rows the tile count over N sets how many SMs work
SMALL_M_GEMM_CANDIDATES: tuple[dict, ...] = (
    dict(BM=16, BN=16, BK=256, num_warps=4, num_stages=4),
    dict(BM=16, BN=32, BK=256, num_warps=4, num_stages=4),
    dict(BM=16, BN=64, BK=256, num_warps=4, num_stages=4),
    dict(BM=16, BN=32, BK=512, num_warps=4, num_stages=3),
    dict(BM=16, BN=64, BK=256, num_warps=4, num_stages=4, SWAP=True),
    dict(BM=32, BN=64, BK=256, num_warps=4, num_stages=4, SWAP=True),
    dict(BM=32, BN=32, BK=256, num_warps=4, num_stages=4),
    dict(BM=64, BN=64, BK=128, num_warps=4, num_stages=4),
    dict(BM=64, BN=64, BK=256, num_warps=4, num_stages=3, SWAP=True),
    dict(BM=128, BN=64, BK=128, num_warps=4, num_stages=4),
    # M = 128 in one M tile: each weight tile is decoded once, and narrow N tiles give every SM one
    dict(BM=128, BN=32, BK=128, num_warps=4, num_stages=4),
    dict(BM=128, BN=32, BK=256, num_warps=8, num_stages=3),
    dict(BM=128, BN=16, BK=256, num_warps=4, num_stages=3),
    # UCODE (int8 only): the MMA takes the stored fields code + 1, sum(x) comes off once per output
    dict(BM=16, BN=64, BK=256, num_warps=4, num_stages=4, UCODE=True),
    dict(BM=16, BN=32, BK=256, num_warps=4, num_stages=4, UCODE=True),
    dict(BM=64, BN=64, BK=128, num_warps=4, num_stages=4, UCODE=True),
    dict(BM=128, BN=32, BK=128, num_warps=4, num_stages=4, UCODE=True),
    # split-K: a few N tiles leave most SMs idle and each program a long serial K loop; splitting K
    # multiplies the programs (and the weight bytes in flight) by SPLIT_K for one partial-tile pass
    dict(BM=16, BN=32, BK=256, num_warps=4, num_stages=4, SPLIT_K=4),
    dict(BM=16, BN=64, BK=256, num_warps=4, num_stages=4, SPLIT_K=4),
    dict(BM=16, BN=64, BK=256, num_warps=4, num_stages=4, SPLIT_K=2),
    dict(BM=16, BN=32, BK=128, num_warps=4, num_stages=4, SPLIT_K=8),
    dict(BM=32, BN=32, BK=256, num_warps=4, num_stages=4, SPLIT_K=4),
    dict(BM=32, BN=64, BK=256, num_warps=4, num_stages=4, SWAP=True, SPLIT_K=4),
    dict(BM=64, BN=64, BK=128, num_warps=4, num_stages=4, SPLIT_K=4),
    dict(BM=128, BN=32, BK=128, num_warps=4, num_stages=4, SPLIT_K=2),
    dict(BM=128, BN=64, BK=128, num_warps=4, num_stages=4, SPLIT_K=4),
    dict(BM=128, BN=32, BK=128, num_warps=4, num_stages=4, UCODE=True, SPLIT_K=4),
    # SWAR: the fields decoded four weight bytes per register, each field against its own activation columns
    # (the JOIN decode, per-field tensors joined into K order, was measured no faster and left the sweep)
    dict(BM=16, BN=32, BK=256, num_warps=4, num_stages=4, SPLIT_K=4, SWAR=True),
    dict(BM=16, BN=64, BK=256, num_warps=4, num_stages=4, SPLIT_K=4, SWAR=True),
    dict(BM=16, BN=32, BK=512, num_warps=4, num_stages=3, SWAR=True),
    dict(BM=16, BN=64, BK=256, num_warps=4, num_stages=4, SWAR=True),
    dict(BM=16, BN=64, BK=256, num_warps=4, num_stages=4, SWAP=True, SWAR=True),
    dict(BM=32, BN=32, BK=256, num_warps=4, num_stages=4, SWAR=True),
    dict(BM=32, BN=64, BK=256, num_warps=4, num_stages=4, SWAP=True, SPLIT_K=4, SWAR=True),
    dict(BM=128, BN=32, BK=128, num_warps=4, num_stages=4, SWAR=True),
    dict(BM=128, BN=32, BK=128, num_warps=4, num_stages=4, SPLIT_K=2, SWAR=True),
    dict(BM=128, BN=64, BK=128, num_warps=4, num_stages=4, SPLIT_K=4, SWAR=True),
    # M = 128: wide N tiles with split-K read the M x K activations a quarter to an eighth as often as the
    # narrow tiles (N / BN x 512 KB at K = 4096); on the H100 they ran slower than the narrow winners
    # (4096x11008: 39.8 against 33.7 us), so the re-reads are not what bounds M = 128
    dict(BM=128, BN=128, BK=128, num_warps=8, num_stages=3, SPLIT_K=4, SWAR=True),
    dict(BM=128, BN=256, BK=128, num_warps=8, num_stages=3, SPLIT_K=8, SWAR=True),
    dict(BM=128, BN=256, BK=128, num_warps=8, num_stages=3, SPLIT_K=4, SWAR=True),
    dict(BM=128, BN=128, BK=128, num_warps=8, num_stages=3, SPLIT_K=4),
    dict(BM=128, BN=128, BK=128, num_warps=8, num_stages=3, SWAP=True, SPLIT_K=4, SWAR=True),
    # M <= 32: a wider swapped N tile (A8 at M = 32 on four shapes) and one FP8 step per BK (A4-FP8); split-K 8,
    # a 32-wide swapped tile and eight warps were measured no faster and left the sweep
    dict(BM=32, BN=64, BK=512, num_warps=4, num_stages=3, SWAP=True, SPLIT_K=4, SWAR=True),
    dict(BM=32, BN=128, BK=256, num_warps=4, num_stages=4, SWAP=True, SPLIT_K=4, SWAR=True),
    # (M = 128 128x64 tiles with eight warps, or with BK = 64, to share the decode among more threads or cut it
    # per step were measured 1.05-2.5x slower than the winners and left the sweep)
)

#: GEMV tiles for a decode batch of 8-32 rows (``path="gemv"``), swept by the serving section: the
#: ``M x BN x KB`` int32 accumulator is the register budget, so the chunk shrinks as M grows
SERVING_GEMV_CANDIDATES: tuple[dict, ...] = (
    dict(BN=16, KB=16, num_warps=4, num_stages=4),
    dict(BN=8, KB=32, num_warps=4, num_stages=4),
    dict(BN=16, KB=32, num_warps=4, num_stages=3),
    dict(BN=32, KB=16, num_warps=4, num_stages=4),
    dict(BN=8, KB=16, num_warps=2, num_stages=4),
    dict(BN=16, KB=32, num_warps=8, num_stages=3),
    dict(BN=32, KB=32, num_warps=8, num_stages=3),
    dict(BN=8, KB=64, num_warps=4, num_stages=3),
)

CANDIDATES: dict[str, tuple[dict, ...]] = {
    "gemm": (
        dict(BM=256, BN=128, BK=128, num_warps=8, num_stages=3),
        dict(BM=128, BN=256, BK=128, num_warps=8, num_stages=3),
        dict(BM=128, BN=128, BK=128, num_warps=8, num_stages=3),
        dict(BM=128, BN=128, BK=64, num_warps=8, num_stages=4),
        dict(BM=256, BN=128, BK=64, num_warps=8, num_stages=4),
        # SWAP: the decoded weight tile is the MMA's A operand (registers), tokens are its N side
        dict(BM=128, BN=128, BK=128, num_warps=8, num_stages=3, SWAP=True),
        dict(BM=256, BN=128, BK=128, num_warps=8, num_stages=3, SWAP=True),
        dict(BM=128, BN=128, BK=64, num_warps=4, num_stages=4, SWAP=True),
        # SWAR: the weight fields decoded four bytes per register (kernels/ternary_gemm.py)
        dict(BM=256, BN=128, BK=128, num_warps=8, num_stages=3, SWAR=True),
        dict(BM=128, BN=256, BK=128, num_warps=8, num_stages=3, SWAR=True),
        dict(BM=128, BN=128, BK=128, num_warps=8, num_stages=3, SWAP=True, SWAR=True),
    ),
    "gemv": (
        dict(BN=16, KB=128, num_warps=4, num_stages=3),
        dict(BN=8, KB=128, num_warps=4, num_stages=3),
        dict(BN=16, KB=64, num_warps=4, num_stages=4),
        dict(BN=32, KB=64, num_warps=4, num_stages=3),
        dict(BN=16, KB=128, num_warps=4, num_stages=2),
        dict(BN=32, KB=128, num_warps=8, num_stages=3),
        dict(BN=8, KB=256, num_warps=4, num_stages=2),
    ),
    "sparse": (
        dict(WBN=32, BI=32, num_warps=4),
        dict(WBN=32, BI=64, num_warps=8),
        dict(WBN=16, BI=64, num_warps=4),
        dict(WBN=32, BI=128, num_warps=8),
        dict(WBN=16, BI=128, num_warps=4),
        dict(WBN=8, BI=128, num_warps=4),
    ),
    # COMPACT: the program lists its slice's non-zero rows and unpacks only those; without it every
    # row is unpacked (its load masked off where the code is 0), which an H100 ran compute-bound
    "sparse_masked": (
        dict(WBN=16, BI=32, KS=8, COMPACT=True, num_warps=4),
        dict(WBN=16, BI=64, KS=8, COMPACT=True, num_warps=4),
        dict(WBN=16, BI=64, KS=4, COMPACT=True, num_warps=4),
        dict(WBN=16, BI=32, KS=4, COMPACT=True, num_warps=2),
        dict(WBN=32, BI=32, KS=8, COMPACT=True, num_warps=4),
        dict(WBN=16, BI=128, KS=4, COMPACT=True, num_warps=8),
        dict(WBN=16, BI=32, KS=8, COMPACT=False, num_warps=4),
        dict(WBN=32, BI=64, KS=2, COMPACT=False, num_warps=8),
    ),
    "attention": (
        dict(FMA=True, BT=16, num_warps=2, S_MUL=2),
        dict(FMA=True, BT=8, num_warps=1, S_MUL=2),
        dict(FMA=True, BT=16, num_warps=2, S_MUL=2, num_stages=2),
        dict(FMA=True, BT=16, num_warps=2, S_MUL=2, num_stages=3),
        dict(FMA=True, BT=8, num_warps=1, S_MUL=2, num_stages=3),
        dict(FMA=True, BT=32, num_warps=4, S_MUL=2, num_stages=2),
        dict(FMA=True, BT=16, num_warps=2, S_MUL=4, num_stages=2),
    ),
    "attention_step": (
        dict(BT=16, num_warps=2),
        dict(BT=8, num_warps=1),
        dict(BT=16, num_warps=2, num_stages=2),
        dict(BT=16, num_warps=2, num_stages=3),
        dict(BT=32, num_warps=2, num_stages=2),
        dict(BT=8, num_warps=1, num_stages=3),
        dict(BT=16, num_warps=2, S_MUL=2, num_stages=2),
    ),
}
#: sweep-only keys (not passed to a launcher): S_MUL scales the launcher's default split count
SWEEP_KEYS = ("S_MUL",)


def check_config_value(kernel: str, key: str, value: object) -> None:
    """Raise ValueError unless ``value`` obeys ``CONFIG_RULES[kernel][key]``."""
    rules = CONFIG_RULES[kernel]
    if key not in rules:
        raise ValueError(f"unknown config key {key!r} for {kernel}; known: {sorted(rules)}")
    rule = rules[key]
    where = f"{kernel} config {key}"
    if rule == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"{where} must be true or false, got {value!r}")
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{where} must be an int, got {value!r}")
    if isinstance(rule, tuple):
        if value not in rule:
            raise ValueError(f"{where} must be one of {list(rule)}, got {value!r}")
        return
    if value <= 0:
        raise ValueError(f"{where} must be a positive int, got {value!r}")
    if rule == "pow2" and value & (value - 1):
        raise ValueError(f"{where} must be a power of two, got {value!r}")
    if key in MAX_TILE and value > MAX_TILE[key]:
        raise ValueError(f"{where} must be at most {MAX_TILE[key]}, got {value!r}")


def check_config(kernel: str, config: Mapping[str, object] | None) -> dict:
    """Check every key and value of one config (None is an empty config); return a plain dict."""
    if kernel not in CONFIG_RULES:
        raise ValueError(f"unknown kernel {kernel!r}; known: {list(KERNELS)}")
    if config is None:
        return {}
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a dict, got {type(config).__name__}")
    bad = sorted(set(config) - set(CONFIG_RULES[kernel]))
    if bad:
        raise ValueError(f"unknown config keys {bad} for {kernel}; known: {sorted(CONFIG_RULES[kernel])}")
    for key, value in config.items():
        check_config_value(kernel, key, value)
    return dict(config)


def gemm_m_bucket(M: int) -> str:
    """M ranges for tuned GEMM tiles (those of ``ternary_gemm.gemm_config``, the last one split at 4096)."""
    for top in (16, 64, 256, 4096):
        if M <= top:
            return f"M<={top}"
    return "M>4096"


def gemv_m_bucket(M: int) -> str:
    """Batch ranges for tuned tiles of the GEMV path above ``GEMV_MAX_M`` rows (powers of two to 32)."""
    for top in (8, 16, 32):
        if M <= top:
            return f"M<={top}"
    raise ValueError(f"the GEMV path takes at most 32 rows, got M={M}")


def ctx_bucket(T: int) -> str:
    """Context-length ranges for attention configs."""
    for top in (2048, 8192, 32768):
        if T <= top:
            return f"T<={top}"
    return "T>32768"


def shape_key(**dims: object) -> str:
    """``shape_key(N=4096, K=4096, M='M>256', prec='int8')`` -> ``'K=4096,M=M>256,N=4096,prec=int8'``."""
    return ",".join(f"{k}={dims[k]}" for k in sorted(dims))


@dataclass(frozen=True)
class ConfigTable:
    """Measured best configs: ``entries[kernel][shape_key] -> config``.  Immutable; passed explicitly."""

    entries: Mapping[str, Mapping[str, Mapping[str, object]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        frozen = {}
        for kernel, table in self.entries.items():
            if kernel not in CONFIG_RULES:
                raise ValueError(f"unknown kernel {kernel!r} in config table; known: {list(KERNELS)}")
            if not isinstance(table, Mapping):
                raise ValueError(f"config table entry {kernel!r} must map shape keys to configs")
            frozen[kernel] = MappingProxyType({str(k): MappingProxyType(check_config(kernel, c))
                                               for k, c in table.items()})
        object.__setattr__(self, "entries", MappingProxyType(frozen))

    def lookup(self, kernel: str, **dims: object) -> dict | None:
        """The measured config of this kernel and shape, or None."""
        if kernel not in CONFIG_RULES:
            raise ValueError(f"unknown kernel {kernel!r}; known: {list(KERNELS)}")
        cfg = self.entries.get(kernel, {}).get(shape_key(**dims))
        return dict(cfg) if cfg is not None else None

    def with_entry(self, kernel: str, key: str, config: Mapping[str, object]) -> "ConfigTable":
        """A new table with ``config`` as the entry of ``kernel`` / ``key``."""
        new = {k: dict(v) for k, v in self.entries.items()}
        new.setdefault(kernel, {})[key] = dict(config)
        return ConfigTable(new)

    def to_json(self) -> dict:
        """Plain nested dicts (the form of ``tuned_configs.json``)."""
        return {k: {s: dict(c) for s, c in v.items()} for k, v in self.entries.items()}


NO_TUNING = ConfigTable()


def load_config_table(path: str | Path) -> ConfigTable:
    """Read a ``tuned_configs.json`` written by a sweep; every kernel, key and value is checked."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object with keys among {list(KERNELS)}")
    bad = sorted(set(data) - set(KERNELS))
    if bad:
        raise ValueError(f"{path}: unknown kernels {bad}; expected keys among {list(KERNELS)}")
    for kernel, table in data.items():
        if not isinstance(table, dict) or not all(isinstance(c, dict) for c in table.values()):
            raise ValueError(f"{path}: {kernel!r} must map shape keys to config objects")
    try:
        return ConfigTable(data)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path}: {e}") from None


def resolve_config(kernel: str, default: Mapping[str, object], tuned: ConfigTable,
                   dims: Mapping[str, object] | None, override: Mapping[str, object] | None) -> dict:
    """``default`` <- measured entry of ``tuned`` for ``dims`` <- ``override``, each key checked."""
    if not isinstance(tuned, ConfigTable):
        raise TypeError(f"tuned must be a kernels.configs.ConfigTable, got {type(tuned).__name__}")
    best = tuned.lookup(kernel, **dims) if dims is not None else None
    cfg = dict(check_config(kernel, default))
    cfg.update(best or {})
    cfg.update(check_config(kernel, override))
    return cfg
