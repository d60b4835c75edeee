"""Model configuration: one validated dataclass, the named presets, YAML in/out.

A config is plain data.  ``ModelConfig.from_dict`` / ``from_yaml`` reject an
unknown field, a non-positive size or an unknown datapath with a
``ValueError`` that names the field.  Presets are listed in ``PRESETS`` with
their sources (``docs/paper-facts.md`` §2.2 and §5.2).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

from contract.config import dataclass_fields, load_yaml, parse_yaml

# The four datapaths of docs/decisions.md item 10.
DATAPATHS = ("fp16", "b1.58", "a4.8", "a4.8-fp4")
FFN_KINDS = ("swiglu", "relu2glu")
DTYPES = ("float32", "float64", "float16", "bfloat16")
OVERRIDE_ACTS = ("int8", "int8-topk", "int4", "fp4")  # allowed o_act / down_act (ternary datapaths)
FP16_KV_BITS = 16  # kv_bits value meaning "FP16 cache, not quantized"
#: lm_head_bits values: 16 = the FP16 output head (docs/decisions.md 9, the default), 8 / 4 = INT8 / INT4
#: weight codes with one absmax scale per output row (vocabulary entry), INT8 absmax activations.
LM_HEAD_BITS = (16, 8, 4)


@dataclass(frozen=True)
class ModelConfig:
    """Shape and numeric choices of one LLaMA-style BitNet decoder.

    ``None`` fields take their datapath default (see the resolved properties):
    ``n_kv_heads`` -> ``n_heads`` (MHA); ``head_dim`` -> ``dim // n_heads``;
    ``ffn_act`` -> SwiGLU for fp16/b1.58, ReLU²GLU for a4.8 [A48 eq.5];
    ``kv_bits`` -> 3 for a4.8 datapaths [A48 §3.1], FP16 (16) otherwise.

    Paper-fidelity knobs (issue 12 item 6; each default keeps the traces as they were):

    * ``q_bits``: quantize the post-RoPE query fed to Q.K^T with the KV quantizer
      (unsigned absmax code, one scale per (token, head), no BOS rule; docs/decisions.md 8).
      ``q_bits=4`` with the a4.8 default ``kv_bits=3`` is **the paper's configuration**
      ("4-bit Q with 3-bit KV", [A48 §3.1, Table 3]); the trace's ``attn_qk`` op then has
      ``act_format`` ``int4`` and a ``quant_q`` vector op.  ``None`` (default): FP16 Q.
      The op trace vocabulary has ``int3`` and ``int4`` activation formats, so a trace needs
      ``q_bits`` in (3, 4) (the model itself runs 2..7).
    * ``lm_head_bits``: 16 (default) keeps the FP16 output head of every datapath
      (docs/decisions.md 9).  8 or 4 quantize the LM-head weights to INT8 / INT4 codes
      (symmetric absmax per output row, codes in [-127, 127] / [-7, 7], an fp32 scale per
      row; no paper specifies a quantized head, this is a hardware-study knob) and its input
      to INT8 absmax per token; the trace's ``lm_head`` row is then ``int8`` / ``int4`` weights
      x ``int8`` activations with its bytes (codes plus scales), after a ``quant_lm_head`` op.
      For 2B4T (vocabulary 128256) the FP16 head is about half the bytes of a b1.58 decode step
      (657 of 1336 MB at 2k context on the b1.58 preset; INT8 halves it, INT4 quarters it).
    * **The a4.8-fp4 Wo input has no TopK** (the choice is made here, in ``_datapath_formats``):
      [A48 §2.3] lists FP4 for the QKV, up/gate *and* Wo inputs and does not say whether Wo's
      TopK 50 % stays (docs/paper-facts.md §1.6 and §8 item 5), so the variant takes the text
      literally: Wo input FP4 E2M1, dense (docs/decisions.md 10).  ``o_act="int8-topk"`` gives
      a4.8's TopK + INT8 Wo input instead; TopK followed by FP4 is not modelled.
    """

    dim: int
    n_layers: int
    n_heads: int
    ffn_dim: int
    vocab_size: int
    name: str = "custom"
    n_kv_heads: int | None = None
    head_dim: int | None = None
    norm_eps: float = 1e-5              # RMSNorm eps [docs/decisions.md 9; 2B4T]
    rope_theta: float = 10000.0         # LLaMA default; the a4.8 paper does not state it (UNCONFIRMED)
    datapath: str = "fp16"
    ffn_act: str | None = None
    topk_ratio: float = 0.5             # Wo-input TopK 50 % [A48 §3]
    kv_bits: int | None = None          # 2..7 bit codes, or 16 = FP16 cache
    kv_bos_bits: int | None = 4         # BOS heads kept at 4 bits [A48 §3.1]; None = same as kv_bits
    q_bits: int | None = None           # low-bit query: 4 = the paper's "4-bit Q, 3-bit KV" [A48 §3.1]; None = FP16
    dtype: str = "float32"              # working (latent) float dtype of the reference model
    o_act: str | None = None            # Wo-input format override (ablations); None = datapath default
    down_act: str | None = None         # Wdown-input format override (ablations); None = datapath default
    lm_head_bits: int = 16              # LM-head weight bits: 16 = FP16 head (default), 8 = INT8, 4 = INT4

    def __post_init__(self) -> None:
        for f in ("dim", "n_layers", "n_heads", "ffn_dim", "vocab_size"):
            _positive_int(f, getattr(self, f))
        for f in ("n_kv_heads", "head_dim"):
            if getattr(self, f) is not None:
                _positive_int(f, getattr(self, f))
        if self.datapath not in DATAPATHS:
            raise ValueError(f"datapath: unknown datapath {self.datapath!r}; known: {DATAPATHS}")
        if self.ffn_act is not None and self.ffn_act not in FFN_KINDS:
            raise ValueError(f"ffn_act: unknown FFN activation {self.ffn_act!r}; known: {FFN_KINDS}")
        if self.datapath.startswith("a4.8") and self.ffn_act == "swiglu":
            raise ValueError("ffn_act: the a4.8 datapaths need 'relu2glu' (their down-projection "
                             "sparsity comes from ReLU², A48 §2.1); got 'swiglu'")
        for f in ("o_act", "down_act"):
            v = getattr(self, f)
            if v is None:
                continue
            if self.datapath == "fp16":
                raise ValueError(f"{f}: the fp16 datapath has no activation quantizers to override")
            if v not in OVERRIDE_ACTS:
                raise ValueError(f"{f}: unknown activation format {v!r}; known: {OVERRIDE_ACTS}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype: unknown dtype {self.dtype!r}; known: {DTYPES}")
        if not isinstance(self.name, str):
            raise ValueError(f"name: must be a string, got {self.name!r}")
        for f in ("norm_eps", "rope_theta"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ValueError(f"{f}: must be a positive number, got {v!r}")
        r = self.topk_ratio
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0.0 < r <= 1.0:
            raise ValueError(f"topk_ratio: must be in (0, 1], got {r!r}")
        if self.kv_bits is not None and self.kv_bits != FP16_KV_BITS:
            _bits("kv_bits", self.kv_bits)
        for f in ("kv_bos_bits", "q_bits"):
            if getattr(self, f) is not None:
                _bits(f, getattr(self, f))
        hb = self.lm_head_bits
        if isinstance(hb, bool) or not isinstance(hb, int) or hb not in LM_HEAD_BITS:
            raise ValueError(f"lm_head_bits: must be one of {LM_HEAD_BITS} (16 = FP16 head, 8 = INT8, "
                             f"4 = INT4 weights), got {hb!r}")
        if self.head_dim is None and self.dim % self.n_heads:
            raise ValueError(f"head_dim: dim {self.dim} is not divisible by n_heads {self.n_heads}; "
                             "set head_dim explicitly")
        if self.n_heads % self.kv_heads:
            raise ValueError(f"n_kv_heads: n_heads {self.n_heads} is not a multiple of "
                             f"n_kv_heads {self.kv_heads}")
        if self.hd % 2:
            raise ValueError(f"head_dim: RoPE needs an even head_dim, got {self.hd}")

    # ------------------------------------------------------------ resolved
    @property
    def kv_heads(self) -> int:
        return self.n_heads if self.n_kv_heads is None else self.n_kv_heads

    @property
    def hd(self) -> int:
        """Head dimension."""
        return self.dim // self.n_heads if self.head_dim is None else self.head_dim

    @property
    def ffn_kind(self) -> str:
        if self.ffn_act is not None:
            return self.ffn_act
        return "relu2glu" if self.datapath.startswith("a4.8") else "swiglu"

    @property
    def kv_cache_bits(self) -> int:
        """Bits per KV code; 16 means an FP16 (unquantized) cache."""
        if self.kv_bits is not None:
            return self.kv_bits
        return 3 if self.datapath.startswith("a4.8") else FP16_KV_BITS

    @property
    def kv_quantized(self) -> bool:
        return self.kv_cache_bits != FP16_KV_BITS

    @property
    def bos_bits(self) -> int:
        """Bits of the BOS token's K/V heads (same as the rest for an FP16 cache)."""
        if not self.kv_quantized or self.kv_bos_bits is None:
            return self.kv_cache_bits
        return self.kv_bos_bits

    @property
    def act_formats(self) -> dict[str, str]:
        """Input format of each linear layer group [docs/decisions.md 10].

        Keys: ``qkv`` (Wq/Wk/Wv input), ``o`` (Wo), ``ffn`` (Wgate/Wup), ``down``.
        Values: ``fp16``, ``int8``, ``int4``, ``fp4``, ``int8-topk``.  ``o_act`` /
        ``down_act`` override the Wo / Wdown input (training ablations).
        """
        fm = dict(self._datapath_formats)
        if self.o_act is not None:
            fm["o"] = self.o_act
        if self.down_act is not None:
            fm["down"] = self.down_act
        return fm

    @property
    def _datapath_formats(self) -> dict[str, str]:
        return {
            "fp16": dict(qkv="fp16", o="fp16", ffn="fp16", down="fp16"),
            "b1.58": dict(qkv="int8", o="int8", ffn="int8", down="int8"),
            "a4.8": dict(qkv="int4", o="int8-topk", ffn="int4", down="int8"),
            # FP4 everywhere but the down input; Wo TopK NOT kept: [A48 §2.3] names FP4 for the Wo input
            # and is silent on TopK (UNCONFIRMED, docs/paper-facts.md §8 item 5), so the text is taken
            # literally (docs/decisions.md 10; o_act="int8-topk" for the other reading)
            "a4.8-fp4": dict(qkv="fp4", o="fp4", ffn="fp4", down="int8"),
        }[self.datapath]

    @property
    def lm_head_format(self) -> str:
        """Storage format of the LM-head weights: ``fp16``, ``int8`` or ``int4`` (``lm_head_bits``)."""
        return "fp16" if self.lm_head_bits == 16 else f"int{self.lm_head_bits}"

    @property
    def weight_format(self) -> str:
        """``fp16`` or ``ternary`` for the decoder-block projections."""
        return "fp16" if self.datapath == "fp16" else "ternary"

    @property
    def linear_params(self) -> int:
        """Non-embedding linear parameters (the paper's 'activated' base)."""
        per_layer = (self.dim * self.hd * (self.n_heads * 2 + self.kv_heads * 2)
                     + 3 * self.dim * self.ffn_dim)
        return per_layer * self.n_layers

    # ------------------------------------------------------------ data I/O
    def replace(self, **changes: Any) -> "ModelConfig":
        """A copy with some fields changed (validated)."""
        return ModelConfig.from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "model config") -> "ModelConfig":
        """Validated config from a mapping; an unknown or missing field is a ``ValueError``."""
        return cls(**dataclass_fields(data, cls, where))

    def to_yaml(self, path: str | Path | None = None) -> str:
        """YAML text of the config; also written to ``path`` if given."""
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_yaml(cls, source: str | Path) -> "ModelConfig":
        """Load from a YAML file path or a YAML string (the project's strict loader)."""
        p = Path(source) if not (isinstance(source, str) and "\n" in source) else None
        if p is not None and p.suffix in (".yaml", ".yml"):
            if not p.exists():
                raise FileNotFoundError(f"no such model config: {p}")
            return cls.from_dict(load_yaml(p), where=str(p))
        return cls.from_dict(parse_yaml(str(source), where="model config YAML"))


def _positive_int(name: str, v: Any) -> None:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"{name}: must be an integer, got {v!r}")
    if v <= 0:
        raise ValueError(f"{name}: must be positive, got {v}")


def _bits(name: str, v: Any) -> None:
    # 2..7: the KV codes are stored unsigned in int8 codes of model.quant.QTensor
    if isinstance(v, bool) or not isinstance(v, int) or not 2 <= v <= 7:
        raise ValueError(f"{name}: must be an int in [2, 7], got {v!r}")


# Presets. Shapes: a4.8 paper Table 6 (= b1.58 / LLaMA sizes, MHA) [A48 Table 6, docs/paper-facts.md §2.2];
# vocabulary 32000 (LLaMA tokenizer, UNCONFIRMED for a4.8, docs/paper-facts.md §2.2);
# 2B4T: GPU model.py ModelArgs / tech report [2B4T, docs/paper-facts.md §5.2].
PRESETS: dict[str, dict[str, Any]] = {
    "700m": dict(dim=1536, ffn_dim=4096, n_heads=24, n_layers=24, vocab_size=32000),
    "1.3b": dict(dim=2048, ffn_dim=5460, n_heads=32, n_layers=24, vocab_size=32000),
    "3b": dict(dim=3200, ffn_dim=8640, n_heads=32, n_layers=26, vocab_size=32000),
    "7b": dict(dim=4096, ffn_dim=11008, n_heads=32, n_layers=32, vocab_size=32000),
    "2b4t": dict(dim=2560, ffn_dim=6912, n_heads=20, n_kv_heads=5, head_dim=128, n_layers=30,
                 vocab_size=128256, ffn_act="relu2glu", rope_theta=500000.0),
    # small shape for tests (GQA 4:2); not from a paper
    "tiny": dict(dim=64, ffn_dim=160, n_heads=4, n_kv_heads=2, n_layers=2, vocab_size=97),
}


def get_config(preset: "str | ModelConfig", datapath: str | None = None, **overrides: Any) -> ModelConfig:
    """A preset name (or a YAML path, or a config) with an optional datapath.

    A preset's ``ffn_act`` (2b4t: ReLU²) is kept for fp16/b1.58 and forced to
    ReLU²GLU on a4.8 datapaths, which require it.
    """
    if isinstance(preset, ModelConfig):
        cfg = preset
    elif isinstance(preset, str) and preset in PRESETS:
        cfg = ModelConfig(name=preset, **PRESETS[preset])
    elif isinstance(preset, (str, Path)) and str(preset).endswith((".yaml", ".yml")):
        cfg = ModelConfig.from_yaml(preset)
    else:
        raise ValueError(f"preset: unknown preset {preset!r}; known: {sorted(PRESETS)} "
                         "(or a path to a .yaml model config)")
    changes = dict(overrides)
    if datapath is not None:
        if datapath not in DATAPATHS:
            raise ValueError(f"datapath: unknown datapath {datapath!r}; known: {DATAPATHS}")
        changes["datapath"] = datapath
        if datapath.startswith("a4.8") and cfg.ffn_act == "swiglu":
            changes.setdefault("ffn_act", "relu2glu")
    return cfg.replace(**changes) if changes else cfg
