"""Inference checkpoints of trained models: small enough to commit, loaded without training code.

A checkpoint is one ``torch.save`` file (read back with ``weights_only=True``,
so loading runs no pickled code) holding

* ``config``: the :class:`~model.config.ModelConfig` fields of the model as trained
  (for a4.8: the second-stage datapath);
* ``ternary``: for every ternary projection, its codes packed 4 per byte
  (code + 1 in two bits, little end first) and its float32 scale alpha, exactly as
  the fake-quant forward computed them from the latent weight at the last step;
* ``float``: every other parameter (norm gains, embedding, LM head; all the
  weights of an fp16 model, stored as float16) in its training dtype;
* ``heldout``: uint8/int16 token sequences [n, T+1] from the validation split (BOS first),
  the text ``bitsim trace --checkpoint`` measures sparsity on by default;
* ``meta``: run name, datapath, seed, step, tokens, final validation loss, the
  corpus manifest (source, Python version, sha256 of each split), versions, date.

A ternary model of 10.6 M projection parameters takes about 3.5 MB.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from contract.io import atomic_path, check_input_file
from contract.limits import limit
from model import fakequant as fq
from model.config import ModelConfig
from model.model import BitLinear, Transformer

FORMAT = "bitsim-inference-checkpoint"
FORMAT_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class LoadedCheckpoint:
    """A trained model ready for inference, with its held-out text and metadata."""

    model: Transformer
    config: ModelConfig
    heldout: torch.Tensor          # int64 [n, T+1], BOS first
    meta: dict[str, Any]
    path: Path


def pack_ternary(codes: torch.Tensor) -> torch.Tensor:
    """Codes in {-1, 0, 1} (any shape) -> uint8, 4 codes per byte (code + 1, 2 bits each)."""
    c = (codes.reshape(-1).to(torch.int16) + 1).to(torch.uint8)
    if bool((c > 2).any()):
        raise ValueError("pack_ternary: codes must be -1, 0 or 1")
    pad = (-c.numel()) % 4
    c = torch.cat([c, torch.zeros(pad, dtype=torch.uint8)]).reshape(-1, 4)
    return c[:, 0] | (c[:, 1] << 2) | (c[:, 2] << 4) | (c[:, 3] << 6)


def unpack_ternary(packed: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Inverse of :func:`pack_ternary`: float32 codes of ``shape``."""
    n = 1
    for d in shape:
        n *= d
    if packed.dtype != torch.uint8 or packed.numel() != (n + 3) // 4:
        raise ValueError(f"unpack_ternary: {packed.numel()} bytes do not hold {n} codes")
    parts = torch.stack([(packed >> s) & 3 for s in (0, 2, 4, 6)], dim=1).reshape(-1)[:n]
    if bool((parts > 2).any()):
        raise ValueError("unpack_ternary: a 2-bit field holds 3, not a ternary code")
    return (parts.to(torch.float32) - 1.0).reshape(shape)


def _atomic_save(obj: Any, path: Path) -> Path:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return path


@torch.no_grad()
def save_inference_checkpoint(model: Transformer, path: str | Path, *, heldout: torch.Tensor,
                              meta: dict[str, Any]) -> Path:
    """Write ``model`` (latent or frozen weights) as an inference checkpoint (atomic)."""
    ternary: dict[str, dict[str, Any]] = {}
    floats: dict[str, torch.Tensor] = {}
    lin = {name: m for name, m in model.named_modules() if isinstance(m, BitLinear)}
    for name, p in model.named_parameters():
        mod = lin.get(name.removesuffix(".weight")) if name.endswith(".weight") else None
        if mod is not None and mod.weight_format == "ternary":
            codes, alpha = mod.frozen if mod.frozen is not None else fq.fake_ternary(p.detach().float())
            ternary[name] = dict(packed=pack_ternary(codes.cpu()), shape=list(p.shape),
                                 alpha=alpha.detach().cpu().to(torch.float32).reshape(()))
        elif mod is not None:      # fp16 datapath projection
            floats[name] = p.detach().cpu().to(torch.float16)
        else:
            floats[name] = p.detach().cpu().clone()
    if heldout.dim() != 2 or heldout.numel() == 0:
        raise ValueError(f"heldout: need token sequences [n, T+1], got shape {tuple(heldout.shape)}")
    held = heldout.cpu().to(torch.int16)
    obj = dict(format=FORMAT, format_version=FORMAT_VERSION, config=model.cfg.to_dict(),
               ternary=ternary, float=floats, heldout=held,
               meta=json.loads(json.dumps(meta, default=str)))  # plain types: weights_only loads it
    return _atomic_save(obj, Path(path))


#: Largest checkpoint file read (a 10 M-parameter ternary model takes ~3.5 MB).
MAX_CHECKPOINT_BYTES = 2 << 30
#: Held-out text a trace measures on: the committed checkpoints carry 32 sequences of 513 tokens.
MAX_HELDOUT_SEQUENCES = limit("held-out sequences", 4096, unit="sequences", area="training and checkpoints",
                              applies_to="a checkpoint's stored held-out text, --heldout-sequences",
                              why="statistics settle within a few dozen sequences; 4096 take minutes on a CPU")
MAX_HELDOUT_TOKENS = limit("held-out tokens", 1 << 21, unit="tokens", area="training and checkpoints",
                           applies_to="a checkpoint's stored held-out text, --heldout windows",
                           why="the committed checkpoints carry 16 k tokens; 2 M take minutes on a CPU")


def check_heldout_shape(shape: tuple[int, ...], what: str = "held-out text") -> None:
    """Token sequences [n, T+1]: 2-D, T >= 1, at most ``MAX_HELDOUT_SEQUENCES`` and ``MAX_HELDOUT_TOKENS``."""
    if len(shape) != 2 or shape[0] < 1 or shape[1] < 2:
        raise ValueError(f"{what}: need token sequences [n, T+1], got shape {tuple(shape)}")
    if shape[0] > MAX_HELDOUT_SEQUENCES:
        raise ValueError(f"{what}: {shape[0]} sequences are above the limit of {MAX_HELDOUT_SEQUENCES}")
    if shape[0] * shape[1] > MAX_HELDOUT_TOKENS:
        raise ValueError(f"{what}: {shape[0]} x {shape[1]} tokens are above the limit of {MAX_HELDOUT_TOKENS}")


def _checked_structure(obj: Any, path: Path) -> None:
    """The fields of a checkpoint and their types, before anything is built from them."""
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} file (a training state? use its final.pt)")
    if obj.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: format version {obj.get('format_version')!r}, this code reads "
                         f"{FORMAT_VERSION}")
    for key, kind in (("config", dict), ("ternary", dict), ("float", dict), ("heldout", torch.Tensor),
                      ("meta", dict)):
        if not isinstance(obj.get(key), kind):
            raise ValueError(f"{path}: damaged checkpoint: '{key}' is missing or not a {kind.__name__}")
    for name, t in obj["ternary"].items():
        if not (isinstance(t, dict) and isinstance(t.get("packed"), torch.Tensor)
                and isinstance(t.get("alpha"), torch.Tensor) and t["alpha"].numel() == 1
                and isinstance(t.get("shape"), (list, tuple)) and len(t["shape"]) == 2
                and all(isinstance(d, int) and d > 0 for d in t["shape"])):
            raise ValueError(f"{path}: damaged checkpoint: ternary entry {name!r} needs packed codes, a "
                             "2-D shape and one scale alpha")
        a = float(t["alpha"].reshape(()))
        if not (math.isfinite(a) and a > 0):
            raise ValueError(f"{path}: damaged checkpoint: {name} has scale alpha {a!r} (must be finite, > 0)")
    for name, t in obj["float"].items():
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise ValueError(f"{path}: damaged checkpoint: {name!r} is not a float tensor")
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{path}: damaged checkpoint: {name} holds NaN or inf")
    held = obj["heldout"]
    if held.is_floating_point():
        raise ValueError(f"{path}: damaged checkpoint: held-out text must be integer token sequences, "
                         f"got {held.dtype}")
    check_heldout_shape(tuple(held.shape), f"{path}: held-out text")
    claimed = obj["meta"].get("datapath")
    config_datapath = obj["config"].get("datapath")
    if claimed is not None and claimed != config_datapath:
        raise ValueError(f"{path}: damaged checkpoint: its config says datapath {config_datapath!r} but its "
                         f"metadata says {claimed!r}")


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> LoadedCheckpoint:
    """Read an inference checkpoint into a frozen :class:`~model.model.Transformer`.

    A missing file is ``FileNotFoundError``; a folder, an oversized, unreadable, truncated or
    damaged file, a training state or a checkpoint whose tensors do not fit its config is a
    ``ValueError`` naming the file.
    """
    path = check_input_file(path, what="checkpoint", expected="a checkpoint file (.pt)",
                            max_bytes=MAX_CHECKPOINT_BYTES, why="not an inference checkpoint of bitsim train")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is one clear error
        raise ValueError(f"{path}: not a readable checkpoint ({type(e).__name__}: {str(e)[:200]})") from None
    _checked_structure(obj, path)
    try:
        cfg = ModelConfig.from_dict(obj["config"], where="fields")
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path}: damaged checkpoint: config: {e}") from None
    model = Transformer(cfg, seed=None)
    params = dict(model.named_parameters())
    lin = {name: m for name, m in model.named_modules() if isinstance(m, BitLinear)}
    expected = set(params)
    got = set(obj["ternary"]) | set(obj["float"])
    if expected != got:
        raise ValueError(f"{path}: parameters do not match the config: missing "
                         f"{sorted(expected - got)[:5]}, unexpected {sorted(got - expected)[:5]}")
    for name, t in obj["ternary"].items():
        mod = lin.get(name.removesuffix(".weight"))
        if mod is None or mod.weight_format != "ternary":
            raise ValueError(f"{path}: {name} is stored ternary but the config's layer is not")
        try:
            mod.load_frozen_(unpack_ternary(t["packed"], tuple(t["shape"])), t["alpha"])
        except ValueError as e:
            raise ValueError(f"{path}: {name}: {e}") from None
    floats_in_ternary = sorted(n for n in obj["float"] if n.endswith(".weight") and
                               getattr(lin.get(n.removesuffix(".weight")), "weight_format", None) == "ternary")
    if floats_in_ternary:
        raise ValueError(f"{path}: {floats_in_ternary[0]} is stored as float weights but the config "
                         f"({cfg.datapath}) makes the layer ternary")
    with torch.no_grad():
        for name, t in obj["float"].items():
            if tuple(t.shape) != tuple(params[name].shape):
                raise ValueError(f"{path}: {name} has shape {tuple(t.shape)}, the config "
                                 f"{tuple(params[name].shape)}")
            params[name].data = t.to(params[name].dtype)
            params[name].requires_grad_(False)
    held = obj["heldout"].long()
    if int(held.min()) < 0 or int(held.max()) >= cfg.vocab_size:
        raise ValueError(f"{path}: damaged checkpoint: held-out token ids outside [0, {cfg.vocab_size})")
    model.to(device)
    for m in lin.values():   # the frozen codes follow the module to the device
        if m.frozen is not None:
            m.load_frozen_(m.weight.data, m.frozen[1].to(device))
    return LoadedCheckpoint(model=model.eval(), config=cfg, heldout=held, meta=dict(obj["meta"]), path=path)
