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

from contract.config import check_number, dataclass_fields, load_yaml, parse_yaml
from contract.limits import limit

# The datapaths: fp16 and the ternary ones of docs/decisions.md item 10, then the quantized baselines.
TERNARY_DATAPATHS = ("b1.58", "a4.8", "a4.8-fp4")
#: Quantized baselines (model.baselines): weight-only INT4, W8A8 INT8 and FP8, MXFP4 on both operands.
BASELINE_DATAPATHS = ("w4a16", "w8a8-int8", "w8a8-fp8", "w4a4-mxfp4")
#: The datapaths the reference model trains (model.train); the baselines are inference-only.
TRAINABLE_DATAPATHS = ("fp16",) + TERNARY_DATAPATHS
DATAPATHS = TRAINABLE_DATAPATHS + BASELINE_DATAPATHS
FFN_KINDS = ("swiglu", "relu2glu")
DTYPES = ("float32", "float64", "float16", "bfloat16")
OVERRIDE_ACTS = ("int8", "int8-topk", "int4", "fp4")  # allowed o_act / down_act (ternary datapaths)
FP16_KV_BITS = 16  # kv_bits value meaning "FP16 cache, not quantized"
#: lm_head_bits values: 16 = the FP16 output head (docs/decisions.md 9, the default), 8 / 4 = INT8 / INT4
#: weight codes with one absmax scale per output row (vocabulary entry), INT8 absmax activations.
LM_HEAD_BITS = (16, 8, 4)
#: Upper bounds of the shape fields: a config past them is a typo, not a model (the largest dense
#: LLMs have dim 16384, ffn_dim 53248, 126 layers, 128 heads and vocabularies of 256 k).
SHAPE_LIMITS = {f: limit(f"model {f}", v, unit="", area="config files", applies_to="model configs (presets, YAML)",
                         why="the largest dense LLMs stay far below (dim 16384, ffn_dim 53248, 126 layers)")
                for f, v in {"dim": 1 << 16, "n_layers": 1024, "n_heads": 1024, "ffn_dim": 1 << 18,
                             "vocab_size": 1 << 22, "n_kv_heads": 1024, "head_dim": 1 << 12}.items()}
MAX_PARAMS = limit("model parameters", 5 * 10**11, unit="parameters", area="config files",
                   applies_to="model configs: projections plus embedding and LM head",
                   why="1 TB of FP16 weights; the largest dense LLM (405B) has 0.81 TB")


HEAD_SCALE_BYTES = 4   # fp32 scale per output row of a quantized LM head


@dataclass(frozen=True, kw_only=True)
class WeightStorage:
    """How a datapath stores one projection W[N, K]: ``code_bits`` per weight plus scales.

    ``scale``: ``matrix`` = one scale per matrix, not counted (the ternary per-matrix absmean
    scale, 4 bytes a matrix); ``row`` = one of ``scale_bytes`` per output row; ``group`` = one
    per ``group`` consecutive weights of a row along K (the last group may be shorter).
    """

    format: str              # a contract WEIGHT_FORMATS word
    code_bits: float
    scale: str = "matrix"
    group: int = 0
    scale_bytes: float = 0.0

    def matrix_bytes(self, n: int, k: int) -> float:
        """Stored bytes of W[n, k]: codes plus scales."""
        codes = n * k * self.code_bits / 8
        if self.scale == "matrix":
            return float(codes)
        per_row = 1 if self.scale == "row" else -(-k // self.group)
        return float(codes + n * per_row * self.scale_bytes)


#: datapath -> storage of its decoder-block projections (ternary: 2-bit packing [docs/decisions.md 2];
#: the baselines as model.baselines states them; w4a16's group is the config's ``weight_group``).
WEIGHT_STORAGE: dict[str, WeightStorage] = {
    "fp16": WeightStorage(format="fp16", code_bits=16),
    "b1.58": WeightStorage(format="ternary", code_bits=2),
    "a4.8": WeightStorage(format="ternary", code_bits=2),
    "a4.8-fp4": WeightStorage(format="ternary", code_bits=2),
    "w4a16": WeightStorage(format="int4", code_bits=4, scale="group", group=128, scale_bytes=2),     # FP16 scale
    "w8a8-int8": WeightStorage(format="int8", code_bits=8, scale="row", scale_bytes=4),           # fp32 scale
    "w8a8-fp8": WeightStorage(format="fp8", code_bits=8, scale="row", scale_bytes=4),             # fp32 scale
    "w4a4-mxfp4": WeightStorage(format="fp4", code_bits=4, scale="group", group=32, scale_bytes=1),  # E8M0
}
assert tuple(WEIGHT_STORAGE) == DATAPATHS


@dataclass(frozen=True)
class ModelConfig:
    """Shape and numeric choices of one LLaMA-style BitNet decoder.

    ``None`` fields take their datapath default (see the resolved properties):
    ``n_kv_heads`` -> ``n_heads`` (MHA); ``head_dim`` -> ``dim // n_heads``;
    ``ffn_act`` -> SwiGLU for fp16/b1.58, ReLU²GLU for a4.8 [A48 eq.5];
    ``kv_bits`` -> 3 for a4.8 datapaths [A48 §3.1], FP16 (16) otherwise.

    Paper-fidelity knobs (each default keeps the traces as they were):

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
    weight_group: int = 128             # w4a16: weights per FP16 scale along K (GPTQ / AWQ use 128)

    def __post_init__(self) -> None:
        for f, hi in SHAPE_LIMITS.items():
            v = getattr(self, f)
            if not (v is None and f in ("n_kv_heads", "head_dim")):    # None: the datapath default
                check_number(v, f, integer=True, lo=1, hi=hi)
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
            if self.datapath not in TERNARY_DATAPATHS:
                raise ValueError(f"{f}: only the ternary datapaths {TERNARY_DATAPATHS} have activation "
                                 f"quantizers to override, not {self.datapath!r}")
            if v not in OVERRIDE_ACTS:
                raise ValueError(f"{f}: unknown activation format {v!r}; known: {OVERRIDE_ACTS}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype: unknown dtype {self.dtype!r}; known: {DTYPES}")
        if not isinstance(self.name, str):
            raise ValueError(f"name: must be a string, got {self.name!r}")
        check_number(self.norm_eps, "norm_eps", lo=0.0, lo_open=True, hi=1.0)
        check_number(self.rope_theta, "rope_theta", lo=0.0, lo_open=True, hi=1e12)
        check_number(self.topk_ratio, "topk_ratio", lo=0.0, lo_open=True, hi=1.0)
        check_number(self.weight_group, "weight_group", integer=True, lo=1, hi=1 << 16)
        if self.kv_bits is not None and self.kv_bits != FP16_KV_BITS:
            _bits("kv_bits", self.kv_bits)
        for f in ("kv_bos_bits", "q_bits"):
            if getattr(self, f) is not None:
                _bits(f, getattr(self, f))
        hb = self.lm_head_bits
        if check_number(hb, "lm_head_bits", integer=True) not in LM_HEAD_BITS:
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
        params = self.linear_params + 2 * self.vocab_size * self.dim
        if params > MAX_PARAMS:
            raise ValueError(f"model shape: {params:.3g} parameters ({params * 2 / 1e12:.3g} TB of FP16 "
                             f"weights) are above the limit of {MAX_PARAMS:.0e} (dim, ffn_dim, n_layers, "
                             "vocab_size)")

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
        Values: ``fp16``, ``int8``, ``int4``, ``fp4``, ``int8-topk``, and the baselines' ``fp8``
        (E4M3 per token) and ``mxfp4`` (E2M1 in blocks of 32, op-trace word ``fp4``).  ``o_act`` /
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
            "w4a16": dict(qkv="fp16", o="fp16", ffn="fp16", down="fp16"),
            "w8a8-int8": dict(qkv="int8", o="int8", ffn="int8", down="int8"),
            "w8a8-fp8": dict(qkv="fp8", o="fp8", ffn="fp8", down="fp8"),
            "w4a4-mxfp4": dict(qkv="mxfp4", o="mxfp4", ffn="mxfp4", down="mxfp4"),
        }[self.datapath]

    @property
    def lm_head_format(self) -> str:
        """Storage format of the LM-head weights: ``fp16``, ``int8`` or ``int4`` (``lm_head_bits``)."""
        return "fp16" if self.lm_head_bits == 16 else f"int{self.lm_head_bits}"

    @property
    def weight_format(self) -> str:
        """Storage format of the decoder-block projections: fp16, ternary, or a baseline's int4 / int8 / fp8 /
        fp4 (``WEIGHT_STORAGE``)."""
        return self.weight_storage.format

    @property
    def weight_storage(self) -> "WeightStorage":
        """How the datapath stores a decoder-block projection (codes and scales)."""
        st = WEIGHT_STORAGE[self.datapath]
        return dataclasses.replace(st, group=self.weight_group) if self.datapath == "w4a16" else st

    @property
    def lm_head_bytes(self) -> float:
        """Bytes of the LM head: FP16, or INT8 / INT4 codes plus one fp32 scale per vocabulary row."""
        V, D = self.vocab_size, self.dim
        if self.lm_head_bits == 16:
            return float(V * D * 2)
        return V * D * self.lm_head_bits / 8 + V * HEAD_SCALE_BYTES

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
            raw = load_yaml(p)
            if isinstance(raw, Mapping) and "name" not in raw:   # label it by its file, never by its path
                raw = {**raw, "name": p.stem}
            return cls.from_dict(raw, where=str(p))
        return cls.from_dict(parse_yaml(str(source), where="model config YAML"))


def _bits(name: str, v: Any) -> None:
    # 2..7: the KV codes are stored unsigned in int8 codes of model.quant.QTensor
    check_number(v, name, integer=True, lo=2, hi=7)


# Presets. Shapes: a4.8 paper Table 6 (= b1.58 / LLaMA sizes, MHA) [A48 Table 6, docs/paper-facts.md §2.2];
# vocabulary 32000 (LLaMA tokenizer, UNCONFIRMED for a4.8, docs/paper-facts.md §2.2);
# 2B4T: GPU model.py ModelArgs / tech report [2B4T, docs/paper-facts.md §5.2].
# Llama shapes (any datapath applies: "ternary 70B" is llama3-70b with datapath b1.58):
# 13b = Llama-2-13B (Touvron et al. 2023, arXiv 2307.09288, Table 1 and the released config.json);
# llama2-70b = Llama-2-70B (same paper: GQA with 8 KV heads); llama3-8b / llama3-70b = Llama 3
# (Grattafiori et al. 2024, arXiv 2407.21783, Table 3: GQA 8 KV heads, vocabulary 128256, RoPE theta 500000).
PRESETS: dict[str, dict[str, Any]] = {
    "700m": dict(dim=1536, ffn_dim=4096, n_heads=24, n_layers=24, vocab_size=32000),
    "1.3b": dict(dim=2048, ffn_dim=5460, n_heads=32, n_layers=24, vocab_size=32000),
    "3b": dict(dim=3200, ffn_dim=8640, n_heads=32, n_layers=26, vocab_size=32000),
    "7b": dict(dim=4096, ffn_dim=11008, n_heads=32, n_layers=32, vocab_size=32000),
    "2b4t": dict(dim=2560, ffn_dim=6912, n_heads=20, n_kv_heads=5, head_dim=128, n_layers=30,
                 vocab_size=128256, ffn_act="relu2glu", rope_theta=500000.0),
    "13b": dict(dim=5120, ffn_dim=13824, n_heads=40, n_layers=40, vocab_size=32000),
    "llama3-8b": dict(dim=4096, ffn_dim=14336, n_heads=32, n_kv_heads=8, n_layers=32, vocab_size=128256,
                      rope_theta=500000.0),
    "llama2-70b": dict(dim=8192, ffn_dim=28672, n_heads=64, n_kv_heads=8, n_layers=80, vocab_size=32000),
    "llama3-70b": dict(dim=8192, ffn_dim=28672, n_heads=64, n_kv_heads=8, n_layers=80, vocab_size=128256,
                       rope_theta=500000.0),
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


@dataclass(frozen=True, kw_only=True)
class WeightBytes:
    """Stored weight bytes of a whole model (:func:`weight_bytes`)."""

    projections: float       # q/k/v/o/gate/up/down of every layer, codes plus scales
    norms: float             # FP16 RMSNorm gains: per layer attn, attn_sub, ffn, ffn_sub; one final
    embedding: float         # FP16 token-embedding table
    lm_head: float           # FP16, or INT8 / INT4 codes plus per-row scales (lm_head_bits)

    @property
    def total(self) -> float:
        return self.projections + self.norms + self.embedding + self.lm_head


def weight_bytes(cfg: ModelConfig, datapath: str | None = None) -> WeightBytes:
    """The memory the weights of ``cfg`` need on ``datapath`` (default: the config's own).

    The same storage rules as the op trace's ``weight_bytes`` column (``WEIGHT_STORAGE``,
    ``lm_head_bytes``); the KV cache comes on top (``model.trace.kv_bytes``).
    """
    if datapath is not None and datapath != cfg.datapath:
        cfg = get_config(cfg, datapath)
    D, F, A, KVW = cfg.dim, cfg.ffn_dim, cfg.n_heads * cfg.hd, cfg.kv_heads * cfg.hd
    st = cfg.weight_storage
    per_layer = (st.matrix_bytes(A, D) + 2 * st.matrix_bytes(KVW, D) + st.matrix_bytes(D, A)
                 + 2 * st.matrix_bytes(F, D) + st.matrix_bytes(D, F))
    return WeightBytes(projections=cfg.n_layers * per_layer,
                       norms=float((cfg.n_layers * (2 * D + A + F) + D) * 2),
                       embedding=float(cfg.vocab_size * D * 2), lm_head=cfg.lm_head_bytes)


def memory_table(presets: "tuple[str, ...] | None" = None,
                 datapaths: "tuple[str, ...] | None" = None) -> list[dict[str, Any]]:
    """Weight memory of every preset on every datapath: one row per pair (:func:`weight_bytes`)."""
    rows = []
    for p in presets or tuple(n for n in PRESETS if n != "tiny"):
        for d in datapaths or DATAPATHS:
            cfg = get_config(p, d)
            wb = weight_bytes(cfg)
            rows.append(dict(preset=p, datapath=d, params=cfg.linear_params + 2 * cfg.vocab_size * cfg.dim,
                             projection_bytes=wb.projections, total_bytes=wb.total))
    return rows
