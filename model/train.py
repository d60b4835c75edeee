"""Training the reference decoder (fp16, b1.58, a4.8, a4.8-fp4) on a corpus that needs no download.

The model trained is :class:`model.model.Transformer` itself, on its fake-quant
path (the codes of ``model.quant`` with straight-through estimators), so a trained
checkpoint runs unchanged through the integer path and ``model.trace``.

Recipe (the papers' recipe scaled down; docs/training.md says what was run)
--------------------------------------------------------------------------
* AdamW, beta (0.9, 0.95), eps 1e-8, gradient clipping at 1.0, weight decay on the
  2-D weights only (projections, embedding, LM head), none on norm gains.
* Learning rate: linear warm-up over ``warmup_frac`` of the steps, then a cosine
  from the peak down to ``lr_min_ratio`` x peak over the rest of the run.
  Ternary datapaths (b1.58 and a4.8) use b1.58's **two-stage** schedule
  [docs/paper-facts.md §1.9, §2.2]: at the midpoint the peak drops abruptly from
  ``lr`` to ``lr_stage2`` (the cosine factor continues) and weight decay goes from
  ``weight_decay`` to 0.  fp16 keeps one peak and constant weight decay (the
  paper's LLaMA baseline).
* a4.8 and a4.8-fp4 train in **two activation stages** [A48 §2.2]: the first
  ``1 - stage2_fraction`` of the steps run the b1.58 numerics (INT8 activations,
  FP16 KV cache) with ReLU²GLU, then the model switches in place
  (:meth:`Transformer.reconfigure`) to the full datapath (INT4 / TopK / INT8 and the
  3-bit KV cache, or FP4) for the rest, with the same parameters and optimizer state.
* Every sequence is BOS followed by ``seq_len`` bytes from a random offset of the
  training split; the loss is the mean next-byte cross-entropy (nats per byte).
* On CUDA: bf16 autocast (the GEMM of codes is exact in bf16 operands; the
  accumulator is rounded to bf16 as in any bf16 layer), fused causal attention
  (``Transformer.fuse_attention``), fused AdamW, and optionally ``torch.compile``.

Checkpoints: ``<out>/<run>/state.pt`` (latent weights, optimizer state,
curve) is written every ``checkpoint_every_s`` seconds and when a time limit stops
the run; running the same config again resumes from it bit for bit.
``<out>/<run>/final.pt`` is the small inference checkpoint (``model.checkpoint``)
and ``<out>/<run>/result.json`` the run's curve and final numbers.

Output safety (docs/limits.md): every file is written atomically (temporary sibling,
rename).  :func:`check_train_paths` refuses, before any work, an output folder that is
a file, lies inside a corpus folder or would replace an input (the plan, the config, a
corpus file).  A run folder is resumed only from files this code wrote for the same
config and corpus: a ``result.json`` / ``state.pt`` / ``plan.json`` / export
``results.json`` that is unreadable, of another format or of another config is a
``ValueError`` naming it, and nothing is overwritten.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
import platform
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch.nn import functional as F

from contract.config import check_number, dataclass_fields, load_yaml
from contract.io import atomic_path, write_text_atomic
from contract.io import read_json as contract_read_json
from contract.limits import limit
from model.checkpoint import MAX_HELDOUT_SEQUENCES, save_inference_checkpoint
from model.config import TRAINABLE_DATAPATHS, ModelConfig
from model.corpus import STDLIB, VOCAB_SIZE, Corpus, build_corpus, eval_starts, windows
from model.model import Transformer

STATE_FORMAT = "bitsim-train-state"
RESULT_VERSION = 1

#: Model shapes for training (dims only; vocabulary = the byte tokenizer's).
#: ``tiny``: CI and CPU smoke tests. ``s10m``: the GPU runs of docs/training.md
#: (10.6 M non-embedding parameters, MHA, head_dim 64, GLU width 8/3 x dim).
TRAIN_PRESETS: dict[str, dict[str, int]] = {
    "tiny": dict(dim=32, n_layers=2, n_heads=2, ffn_dim=64),
    "small": dict(dim=128, n_layers=4, n_heads=4, ffn_dim=352),
    "s10m": dict(dim=384, n_layers=6, n_heads=6, ffn_dim=1024),
}

#: Defaults of the peak learning rate per datapath family (docs/training.md says why).
DEFAULT_LR = {"fp16": 2e-3, "ternary": 4e-3}
STAGE2_LR_RATIO = 2 / 3        # b1.58 / a4.8 700M: 1.5e-3 -> 1e-3 [A48 Table 7]
A48_STAGE1 = "b1.58"           # a4.8's first stage: 8-bit activations (and ReLU²GLU, FP16 KV)

#: Evaluation-only variants of a trained a4.8 model: ModelConfig changes -> name.
EVAL_VARIANTS = {
    "kv3_no_bos_rule": dict(kv_bos_bits=None),   # BOS heads at 3 bits like every token
    "kv4": dict(kv_bits=4),
    "kv_fp16": dict(kv_bits=16),
}

#: ModelConfig fields a training run may override (ablations).
MODEL_OVERRIDES = ("o_act", "down_act", "topk_ratio", "kv_bits", "kv_bos_bits", "q_bits", "ffn_act",
                   "rope_theta", "lm_head_bits")


#: Sizes of a training run: past them a run exhausts memory or takes days, and no study needs them.
MAX_SEQ_LEN = limit("training seq_len", 1 << 14, unit="bytes", area="training and checkpoints",
                    applies_to="TrainConfig.seq_len", why="the GPU runs use 512; attention memory grows as its square")
MAX_TRAIN_BATCH = limit("training batch_size", 1 << 12, unit="sequences", area="training and checkpoints",
                        applies_to="TrainConfig.batch_size and eval_batch", why="the GPU runs use 128 x 512 bytes")
MAX_TOKENS_PER_STEP = limit("training tokens per step", 1 << 20, unit="tokens", area="training and checkpoints",
                            applies_to="batch_size x seq_len", why="16x the GPU runs' 65 k; more exhausts memory")
MAX_TRAIN_STEPS = limit("training steps", 10 ** 7, unit="steps", area="training and checkpoints",
                        applies_to="TrainConfig.steps", why="the step table is made up front (steps x batch)")
MAX_EVAL_SEQUENCES = limit("evaluation sequences", 1 << 16, unit="sequences", area="training and checkpoints",
                           applies_to="TrainConfig.eval_sequences, final_eval_sequences",
                           why="the runs use 64 and 256; the validation split is a few MB")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """One training run: model, data, recipe and where it runs. Plain data, validated."""

    datapath: str = "a4.8"
    seed: int = 0
    model: str = "s10m"                       # a TRAIN_PRESETS name
    model_overrides: dict = field(default_factory=dict)   # MODEL_OVERRIDES fields (ablations)
    name: str = ""                            # run name; "" = "<datapath>-s<seed>"
    corpus: str = STDLIB                      # "stdlib" or a file / folder of text
    val_percent: float = 5.0
    seq_len: int = 512                        # bytes after BOS per sequence
    batch_size: int = 128                     # sequences per step
    steps: int = 600
    lr: float | None = None                   # peak; None = DEFAULT_LR of the datapath family
    lr_stage2: float | None = None            # two-stage peak after the midpoint; None = 2/3 lr
    lr_min_ratio: float = 0.1                 # cosine floor, as a fraction of the peak
    warmup_frac: float = 0.04
    weight_decay: float = 0.1
    two_stage: bool | None = None             # b1.58 two-stage LR/WD; None = on for ternary datapaths
    stage2_fraction: float = 0.05             # a4.8: last fraction of the steps at the full datapath
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip: float = 1.0
    eval_every: int = 0                       # steps between validation points; 0 = steps // 10
    eval_sequences: int = 64                  # validation sequences per curve point
    final_eval_sequences: int = 256           # validation sequences of the final number
    heldout_sequences: int = 32               # validation sequences stored in the checkpoint
    eval_batch: int = 64
    device: str = "auto"                      # auto, cpu, cuda
    amp: str = "auto"                         # auto (bf16 on cuda), bf16, none
    compile: bool = False                     # torch.compile the model (CUDA)
    checkpoint_every_s: float = 120.0

    def __post_init__(self) -> None:
        if self.datapath not in TRAINABLE_DATAPATHS:
            raise ValueError(f"datapath: {self.datapath!r} is not a datapath the reference model trains; "
                             f"known: {TRAINABLE_DATAPATHS}")
        if self.model not in TRAIN_PRESETS:
            raise ValueError(f"model: unknown training preset {self.model!r}; known: {sorted(TRAIN_PRESETS)}")
        if not isinstance(self.model_overrides, Mapping):
            raise ValueError(f"model_overrides: must be a mapping, got {type(self.model_overrides).__name__}")
        bad = sorted(set(self.model_overrides) - set(MODEL_OVERRIDES))
        if bad:
            raise ValueError(f"model_overrides: unknown field(s) {bad}; allowed: {list(MODEL_OVERRIDES)}")
        for f in ("name", "corpus"):
            if not isinstance(getattr(self, f), str):
                raise ValueError(f"{f}: must be a string, got {getattr(self, f)!r}")
        if self.name and not all(c.isalnum() or c in "._-" for c in self.name):
            raise ValueError(f"name: letters, digits, '.', '_' and '-' only, got {self.name!r}")
        check_number(self.seed, "seed", integer=True, lo=0, hi=2**63 - 1)
        for f, hi in (("seq_len", MAX_SEQ_LEN), ("batch_size", MAX_TRAIN_BATCH), ("steps", MAX_TRAIN_STEPS),
                      ("eval_sequences", MAX_EVAL_SEQUENCES), ("final_eval_sequences", MAX_EVAL_SEQUENCES),
                      ("heldout_sequences", MAX_HELDOUT_SEQUENCES), ("eval_batch", MAX_TRAIN_BATCH)):
            check_number(getattr(self, f), f, integer=True, lo=1, hi=hi)
        if self.batch_size * self.seq_len > MAX_TOKENS_PER_STEP:
            raise ValueError(f"batch_size x seq_len = {self.batch_size * self.seq_len} tokens per step is above "
                             f"the limit of {MAX_TOKENS_PER_STEP}")
        check_number(self.eval_every, "eval_every", integer=True, lo=0, hi=MAX_TRAIN_STEPS)
        for f in ("lr", "lr_stage2"):
            if getattr(self, f) is not None:
                check_number(getattr(self, f), f, lo=0, hi=1.0, lo_open=True)
        check_number(self.val_percent, "val_percent", lo=0, hi=50, lo_open=True)
        check_number(self.lr_min_ratio, "lr_min_ratio", lo=0, hi=1)
        check_number(self.warmup_frac, "warmup_frac", lo=0, hi=0.5)
        check_number(self.weight_decay, "weight_decay", lo=0, hi=1)
        check_number(self.stage2_fraction, "stage2_fraction", lo=0, hi=0.5, lo_open=True)
        for f in ("beta1", "beta2"):
            check_number(getattr(self, f), f, lo=0, hi=1)
        check_number(self.eps, "eps", lo=0, hi=1, lo_open=True)
        check_number(self.grad_clip, "grad_clip", lo=0, lo_open=True)
        check_number(self.checkpoint_every_s, "checkpoint_every_s", lo=0, lo_open=True)
        if self.two_stage is not None and not isinstance(self.two_stage, bool):
            raise ValueError(f"two_stage: must be true, false or null, got {self.two_stage!r}")
        if not isinstance(self.compile, bool):
            raise ValueError(f"compile: must be true or false, got {self.compile!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device: one of auto, cpu, cuda; got {self.device!r}")
        if self.amp not in ("auto", "bf16", "none"):
            raise ValueError(f"amp: one of auto, bf16, none; got {self.amp!r}")
        self.model_config()   # the model config must validate too

    # ------------------------------------------------------------ resolved
    @property
    def run_name(self) -> str:
        return self.name or f"{self.datapath}-s{self.seed}"

    @property
    def ternary(self) -> bool:
        return self.datapath != "fp16"

    @property
    def peak_lr(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR["ternary" if self.ternary else "fp16"]

    @property
    def peak_lr_stage2(self) -> float:
        return self.lr_stage2 if self.lr_stage2 is not None else self.peak_lr * STAGE2_LR_RATIO

    @property
    def uses_two_stage(self) -> bool:
        return self.ternary if self.two_stage is None else self.two_stage

    @property
    def two_activation_stages(self) -> bool:
        """a4.8 datapaths: b1.58 numerics first, the full datapath for the last stage2_fraction."""
        return self.datapath.startswith("a4.8")

    @property
    def switch_step(self) -> int:
        """First step of a4.8's second activation stage (``steps`` when there is none)."""
        if not self.two_activation_stages:
            return self.steps
        return self.steps - max(1, round(self.stage2_fraction * self.steps))

    @property
    def warmup_steps(self) -> int:
        return max(1, round(self.warmup_frac * self.steps))

    @property
    def eval_interval(self) -> int:
        return self.eval_every or max(1, self.steps // 10)

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.seq_len

    def model_config(self) -> ModelConfig:
        """The model as trained to the end (for a4.8: the second-stage datapath)."""
        dims = TRAIN_PRESETS[self.model]
        return ModelConfig(name=f"train-{self.model}", vocab_size=VOCAB_SIZE, datapath=self.datapath,
                           **dims, **dict(self.model_overrides))

    def stage_config(self, step: int) -> ModelConfig:
        """The numerics in force at ``step``."""
        final = self.model_config()
        if not self.two_activation_stages or step >= self.switch_step:
            return final
        # a4.8 stage 1: b1.58 numerics (INT8 activations, FP16 KV cache) with the final FFN (ReLU²GLU)
        return final.replace(datapath=A48_STAGE1, ffn_act=final.ffn_kind, o_act=None, down_act=None,
                             kv_bits=None, q_bits=None)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["model_overrides"] = dict(self.model_overrides)
        return d

    def replace(self, **changes: Any) -> "TrainConfig":
        return TrainConfig.from_dict({**self.to_dict(), **changes})

    @classmethod
    def from_dict(cls, data: Any, where: str = "train config") -> "TrainConfig":
        return cls(**dataclass_fields(data, cls, where))

    @classmethod
    def from_yaml(cls, path: str | Path) -> "TrainConfig":
        return cls.from_dict(load_yaml(path), where=str(path))


def lr_wd_at(cfg: TrainConfig, step: int) -> tuple[float, float]:
    """Learning rate and weight decay of ``step`` (see the module doc)."""
    w, n = cfg.warmup_steps, cfg.steps
    second = cfg.uses_two_stage and step >= n // 2
    peak = cfg.peak_lr_stage2 if second else cfg.peak_lr
    if step < w:
        return peak * (step + 1) / w, cfg.weight_decay
    progress = min(1.0, (step - w) / max(1, n - w))
    factor = cfg.lr_min_ratio + (1 - cfg.lr_min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return peak * factor, (0.0 if second else cfg.weight_decay)


# ------------------------------------------------------------------ helpers
def resolve_device(cfg: TrainConfig) -> torch.device:
    if cfg.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: 'cuda' asked for, but torch sees no CUDA device")
    return torch.device(cfg.device)


def _autocast(cfg: TrainConfig, device: torch.device):
    on = cfg.amp == "bf16" or (cfg.amp == "auto" and device.type == "cuda")
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=on)


def write_json(path: Path, obj: Any) -> None:
    """Atomic JSON write."""
    write_text_atomic(json.dumps(obj, indent=1, default=str), path)


def read_json(path: Path, what: str) -> Any:
    """A JSON file this code wrote; unreadable or corrupt is a ``ValueError`` naming the file."""
    try:
        return contract_read_json(path, what=what)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable {what} ({type(e).__name__}: {str(e)[:200]}); it was not "
                         "written by bitsim train, or is damaged: move it away (nothing was changed)") from None


def _load_state(path: Path) -> dict:
    """A training state (``state.pt``); unreadable or of another format is a ``ValueError``."""
    try:
        st = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is one clear error
        raise ValueError(f"{path}: not a readable training state ({type(e).__name__}: {str(e)[:200]}); "
                         "cannot resume: move it away to restart the run (nothing was changed)") from None
    if not isinstance(st, dict) or st.get("format") != STATE_FORMAT:
        raise ValueError(f"{path}: not a {STATE_FORMAT} file; cannot resume (an inference checkpoint? "
                         "those are final.pt)")
    missing = sorted({"config", "step", "model", "optimizer", "curve", "train_s", "loss_sum", "loss_n",
                      "corpus_sha256"} - set(st))
    if missing:
        raise ValueError(f"{path}: a training state without {missing}; cannot resume")
    return st


def _inside(path: Path, folder: Path) -> bool:
    p, f = path.resolve(), folder.resolve()
    return p == f or f in p.parents


def check_train_paths(cfgs: list[TrainConfig], out_dir: str | Path, export_dir: str | Path | None = None,
                      inputs: list[str | Path | None] = ()) -> None:
    """Refuse, before any work, outputs that would replace or pollute an input (a ``ValueError``).

    Outputs: ``out_dir`` (``plan.json``, ``<run>/state.pt``, ``final.pt``, ``result.json``) and
    ``export_dir`` (``results.json``, ``checkpoints-<i>.tar``).  Inputs: ``inputs`` (plan and
    config files) and each run's corpus.  A corpus folder may not hold an output folder (the
    outputs would become training text, and a resume would find another corpus).
    """
    out = Path(out_dir)
    folders = [("--out", out)] + ([("--export", Path(export_dir))] if export_dir is not None else [])
    for flag, f in folders:
        if f.exists() and not f.is_dir():
            raise ValueError(f"{flag} {f} is a file; give a folder")
    outputs = [out / "plan.json"] + [out / c.run_name / n for c in cfgs
                                      for n in ("state.pt", "final.pt", "result.json")]
    if export_dir is not None:
        outputs.append(Path(export_dir) / "results.json")
    corpora = sorted({c.corpus for c in cfgs if c.corpus != STDLIB})
    for i in [x for x in inputs if x is not None] + [Path(c) for c in corpora]:
        ip = Path(i)
        for o in outputs:
            if ip.resolve() == o.resolve() or (ip.exists() and o.exists() and os.path.samefile(ip, o)):
                raise ValueError(f"output {o} would replace the input {ip}; choose another --out / --export")
        if ip.is_dir():
            for flag, f in folders:
                if _inside(f, ip):
                    raise ValueError(f"{flag} {f} is inside the corpus folder {ip}: the outputs would become "
                                     "training text; choose a folder outside it")
        elif ip.exists() and any(ip.resolve() == f.resolve() for _, f in folders):
            raise ValueError(f"{ip} is an input and the output folder; choose another folder")


def make_optimizer(model: Transformer, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    decay = [p for _, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for _, p in model.named_parameters() if p.dim() < 2]
    groups = [dict(params=decay, weight_decay=cfg.weight_decay, decays=True),
              dict(params=no_decay, weight_decay=0.0, decays=False)]
    kw = dict(fused=True) if device.type == "cuda" else {}
    return torch.optim.AdamW(groups, lr=cfg.peak_lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps, **kw)


def loss_of(model: Callable, seqs: torch.Tensor) -> torch.Tensor:
    """Mean next-byte cross-entropy (nats) of sequences [n, T+1] (byte ids, valid by construction)."""
    logits = model(seqs[:, :-1], check_ids=False)
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), seqs[:, 1:].reshape(-1))


@torch.no_grad()
def evaluate(model: Callable, stream: torch.Tensor, starts: torch.Tensor, cfg: TrainConfig,
             device: torch.device) -> float:
    """Mean validation loss (nats per byte) over the windows at ``starts``."""
    total, count = torch.zeros((), dtype=torch.float64, device=device), 0
    for i in range(0, len(starts), cfg.eval_batch):
        seqs = windows(stream, starts[i:i + cfg.eval_batch], cfg.seq_len)
        with _autocast(cfg, device):
            loss = loss_of(model, seqs)
        total += loss.double() * seqs.shape[0]
        count += seqs.shape[0]
    return float(total) / count


def step_starts(cfg: TrainConfig, n_starts: int, device: torch.device) -> torch.Tensor:
    """Window starts of every training step [steps, batch], drawn once from the run's seed.

    Made up front and kept on the device: no host-to-device copy (a queue stall) per step,
    and a resumed run indexes the same table.
    """
    g = torch.Generator().manual_seed(1_000_003 * cfg.seed + 17)
    return torch.randint(0, n_starts, (cfg.steps, cfg.batch_size), generator=g).to(device)


def parameter_counts(model: Transformer) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    emb = model.tok_embeddings.weight.numel() + model.output.weight.numel()
    return dict(params_total=total, params_nonemb=total - emb, params_linear=model.cfg.linear_params)


def environment(device: torch.device) -> dict[str, str]:
    env = dict(torch=str(torch.__version__), python=platform.python_version(), device=device.type,
               date=_dt.date.today().isoformat())
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["cuda"] = str(torch.version.cuda)
    else:
        env["gpu"] = "none"
        env["cpu"] = platform.processor() or platform.machine()
    return env


# ------------------------------------------------------------------ one run
def _finished_result(cfg: TrainConfig, run_dir: Path, log: Callable[[str], None]) -> dict[str, Any] | None:
    """The result of the run if it is done; ``None`` when it has to train (or resume)."""
    result_path, final_path = run_dir / "result.json", run_dir / "final.pt"
    if not result_path.exists():
        return None
    res = read_json(result_path, "run result")
    if not isinstance(res, dict):
        raise ValueError(f"{result_path}: not a run result (a JSON object); move it away (nothing was changed)")
    if res.get("config") != cfg.to_dict():
        raise ValueError(f"{result_path}: written by another config; use another out folder or name")
    if res.get("status") != "done":
        return None
    if not final_path.exists():
        raise ValueError(f"{result_path}: the run is done but its {final_path.name} is missing; move "
                         f"{result_path.name} away to train it again")
    log(f"[{cfg.run_name}] already done: val loss {res['final']['val_loss']:.4f}")
    return res


class _Trainer:
    """One run's model, optimizer, data and progress (step, curve, running loss), from step 0 or resumed."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, corpus: Corpus, log: Callable[[str], None]):
        self.cfg, self.corpus, self.log = cfg, corpus, log
        self.state_path, self.final_path = run_dir / "state.pt", run_dir / "final.pt"
        self.result_path = run_dir / "result.json"
        self.device = device = resolve_device(cfg)
        if device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.train_stream, self.val_stream = corpus.train.to(device), corpus.val.to(device)
        n_train = self.train_stream.numel() - cfg.seq_len
        if n_train < 1:
            raise ValueError(f"corpus: the training split ({self.train_stream.numel()} bytes) is shorter than "
                             f"one sequence ({cfg.seq_len})")
        self.val_starts = eval_starts(self.val_stream.numel(), cfg.eval_sequences, cfg.seq_len)
        self.final_starts = eval_starts(self.val_stream.numel(), cfg.final_eval_sequences, cfg.seq_len)
        self.model = Transformer(cfg.stage_config(0), seed=cfg.seed).to(device)
        self.model.fuse_attention(device.type == "cuda")
        self.opt = make_optimizer(self.model, cfg, device)
        self.starts_all = step_starts(cfg, n_train + 1, device)
        self.step, self.curve, self.train_s, self.loss_sum, self.loss_n = 0, [], 0.0, 0.0, 0
        self.running, self.pending = torch.zeros((), device=device), 0
        if self.state_path.exists():
            self._resume()
        self.fwd = torch.compile(self.model) if cfg.compile else self.model

    def _corpus_sha(self) -> list[str]:
        return [self.corpus.manifest["sha256_train"], self.corpus.manifest["sha256_val"]]

    def _resume(self) -> None:
        cfg, path = self.cfg, self.state_path
        st = _load_state(path)
        if st.get("config") != cfg.to_dict():
            raise ValueError(f"{path}: a training state of another config; cannot resume")
        if st.get("corpus_sha256") != self._corpus_sha():
            raise ValueError(f"{path}: trained on another corpus (sha256 differs); cannot resume")
        step = int(st["step"])
        if not 0 <= step <= cfg.steps:
            raise ValueError(f"{path}: step {step} is outside [0, {cfg.steps}]; cannot resume")
        self.model.reconfigure(cfg.stage_config(step))
        try:
            self.model.load_state_dict(st["model"])
            self.opt.load_state_dict(st["optimizer"])
        except (RuntimeError, KeyError, ValueError, TypeError) as e:
            raise ValueError(f"{path}: its weights or optimizer state do not fit the config "
                             f"({type(e).__name__}: {str(e)[:200]}); cannot resume") from None
        self.step, self.curve, self.train_s = step, list(st["curve"]), float(st["train_s"])
        self.loss_sum, self.loss_n = float(st["loss_sum"]), int(st["loss_n"])
        self.log(f"[{cfg.run_name}] resumed at step {step}/{cfg.steps}")

    def save_state(self) -> None:
        obj = dict(format=STATE_FORMAT, config=self.cfg.to_dict(), step=self.step, model=self.model.state_dict(),
                   optimizer=self.opt.state_dict(), curve=self.curve, train_s=self.train_s,
                   loss_sum=self.loss_sum, loss_n=self.loss_n, corpus_sha256=self._corpus_sha())
        with atomic_path(self.state_path) as tmp:
            torch.save(obj, tmp)

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def flush(self) -> None:
        """Add the losses accumulated on the device to the running mean (waits for the device)."""
        self.sync()
        self.loss_sum += float(self.running)
        self.loss_n += self.pending
        self.running.zero_()
        self.pending = 0

    def eval_point(self) -> None:
        cfg, step = self.cfg, self.step
        lr, wd = lr_wd_at(cfg, max(0, step - 1))
        c = dict(step=step, tokens=step * cfg.tokens_per_step, stage=self.model.cfg.datapath, lr=lr, wd=wd,
                 train_loss=(self.loss_sum / self.loss_n) if self.loss_n else float("nan"),
                 val_loss=evaluate(self.fwd, self.val_stream, self.val_starts, cfg, self.device),
                 train_s=self.train_s)
        self.curve.append(c)
        self.loss_sum, self.loss_n = 0.0, 0
        self.log(f"[{cfg.run_name}] step {step}/{cfg.steps} ({c['stage']}) train {c['train_loss']:.4f} "
                 f"val {c['val_loss']:.4f} lr {lr:.2e} wd {wd:g} ({self.train_s:.1f} s)")

    def train_step(self) -> None:
        """One optimizer step (switching a4.8 to its second stage first when it is due)."""
        cfg = self.cfg
        if self.step == cfg.switch_step and self.model.cfg != cfg.model_config():
            self.model.reconfigure(cfg.model_config())     # a4.8 stage 2: same weights, same optimizer
            self.log(f"[{cfg.run_name}] step {self.step}: switched to the full {cfg.datapath} datapath")
        lr, wd = lr_wd_at(cfg, self.step)
        for g in self.opt.param_groups:
            g["lr"] = lr
            if g["decays"]:
                g["weight_decay"] = wd
        seqs = windows(self.train_stream, self.starts_all[self.step], cfg.seq_len)
        with _autocast(cfg, self.device):
            loss = loss_of(self.fwd, seqs)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.running += loss.detach()
        self.pending += 1
        self.step += 1

    def train(self, t_call: float, time_limit_s: float | None, stop_at: int | None) -> bool:
        """Steps until the end (True) or until the time limit / ``stop_at`` pauses the run (False)."""
        cfg = self.cfg
        if self.step == 0 and not self.curve:
            self.eval_point()
        last_save, step_s = time.perf_counter(), 0.0
        while self.step < cfg.steps:
            if (time_limit_s is not None and time.perf_counter() - t_call + 2 * step_s > time_limit_s) or \
                    (stop_at is not None and self.step >= stop_at):
                self.flush()
                self.save_state()
                self.log(f"[{cfg.run_name}] paused at step {self.step}/{cfg.steps} (time limit or stop_at), "
                         "state saved")
                return False
            t0 = time.perf_counter()
            self.train_step()
            at_eval = self.step % cfg.eval_interval == 0 or self.step == cfg.steps
            if at_eval:
                self.flush()                    # also waits for the GPU, so train_s holds the steps' time
            dt = time.perf_counter() - t0
            self.train_s += dt
            step_s = dt if step_s == 0 else 0.9 * step_s + 0.1 * dt
            if at_eval:
                self.eval_point()
            if time.perf_counter() - last_save > cfg.checkpoint_every_s and self.step < cfg.steps:
                self.flush()
                self.save_state()
                last_save = time.perf_counter()
        self.sync()
        self.save_state()
        return True

    def finish(self) -> dict[str, Any]:
        """Final validation loss, a4.8's evaluation-only variants, the inference checkpoint and the result."""
        cfg, model, device, step = self.cfg, self.model, self.device, self.step
        t_eval = time.perf_counter()
        val = evaluate(self.fwd, self.val_stream, self.final_starts, cfg, device)
        final_cfg = cfg.model_config()
        variants = {}
        if cfg.two_activation_stages:
            for vname, change in EVAL_VARIANTS.items():
                model.reconfigure(final_cfg.replace(**change))
                variants[vname] = evaluate(model, self.val_stream, self.final_starts, cfg, device)
            model.reconfigure(final_cfg)
        heldout = windows(self.val_stream, eval_starts(self.val_stream.numel(), cfg.heldout_sequences, cfg.seq_len),
                          cfg.seq_len)
        manifest = self.corpus.manifest
        meta = dict(run=cfg.run_name, datapath=cfg.datapath, seed=cfg.seed, step=step,
                    tokens=step * cfg.tokens_per_step, val_loss=val, train_config=cfg.to_dict(),
                    corpus=manifest, **environment(device))
        save_inference_checkpoint(model, self.final_path, heldout=heldout, meta=meta)
        res = dict(version=RESULT_VERSION, status="done", name=cfg.run_name, config=cfg.to_dict(),
                   model_config=final_cfg.to_dict(), **parameter_counts(model), steps=step,
                   tokens=step * cfg.tokens_per_step, switch_step=cfg.switch_step, train_s=self.train_s,
                   tokens_per_s=step * cfg.tokens_per_step / max(self.train_s, 1e-9),
                   eval_s=time.perf_counter() - t_eval, curve=self.curve,
                   final=dict(val_loss=val, val_bpb=val / math.log(2), val_ppl=math.exp(val),
                              eval_tokens=len(self.final_starts) * cfg.seq_len),
                   variants=variants, corpus=manifest, checkpoint=self.final_path.name, **environment(device))
        write_json(self.result_path, res)
        self.log(f"[{cfg.run_name}] done: {step} steps, {res['tokens']:.3g} tokens in {self.train_s:.1f} s "
                 f"({res['tokens_per_s']:.3g} tok/s); final val loss {val:.4f} nats/byte "
                 f"({res['final']['val_bpb']:.4f} bits/byte)")
        return res


def train_run(cfg: TrainConfig, out_dir: str | Path, corpus: Corpus | None = None, *,
              time_limit_s: float | None = None, stop_at: int | None = None,
              log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train (or resume, or skip if finished) one run under ``out_dir/<run>``; return its result.

    ``time_limit_s``: wall seconds this call may spend; when the next step would pass it,
    the training state is saved and the result has ``status: "paused"`` (call again to resume).
    ``stop_at``: pause the same way once this many steps are done.
    """
    t_call = time.perf_counter()
    run_dir = Path(out_dir) / cfg.run_name
    done = _finished_result(cfg, run_dir, log)
    if done is not None:
        return done
    corpus = corpus or build_corpus(cfg.corpus, cfg.val_percent)
    if corpus.manifest["val_percent"] != cfg.val_percent:
        raise ValueError("corpus: built with another val_percent than the config's")
    trainer = _Trainer(cfg, run_dir, corpus, log)
    if not trainer.train(t_call, time_limit_s, stop_at):
        return dict(status="paused", name=cfg.run_name, step=trainer.step, config=cfg.to_dict())
    return trainer.finish()


# ------------------------------------------------------------------ several runs
def plan_configs(base: Mapping[str, Any], runs: list[Mapping[str, Any]], where: str = "plan") -> list[TrainConfig]:
    """TrainConfigs of a plan: ``base`` fields, each run's fields on top; run names must differ."""
    if not isinstance(base, Mapping):
        raise ValueError(f"{where}: base must be a mapping of TrainConfig fields")
    if not isinstance(runs, list) or not runs:
        raise ValueError(f"{where}: runs must be a non-empty list")
    cfgs = []
    for i, run in enumerate(runs):
        if not isinstance(run, Mapping):
            raise ValueError(f"{where}: runs[{i}] must be a mapping of TrainConfig fields")
        cfgs.append(TrainConfig.from_dict({**base, **run}, where=f"{where}: runs[{i}]"))
    names = [c.run_name for c in cfgs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"{where}: run names repeat: {dup} (give each run a distinct name)")
    return cfgs


def load_plan(path: str | Path) -> list[TrainConfig]:
    """A plan YAML: ``base:`` (TrainConfig fields) and ``runs:`` (a list of field overrides)."""
    raw = load_yaml(path)
    if not isinstance(raw, Mapping):
        raise ValueError(f"{path}: a plan is a mapping with 'base' and 'runs'")
    unknown = sorted(set(raw) - {"base", "runs"})
    if unknown:
        raise ValueError(f"{path}: unknown plan field(s) {unknown}; known: ['base', 'runs']")
    return plan_configs(raw.get("base", {}), raw.get("runs"), where=str(path))


@torch.no_grad()
def _probe_eval(model: Transformer, stream: torch.Tensor, cfg: TrainConfig, device: torch.device) -> float:
    starts = eval_starts(stream.numel(), cfg.eval_batch, cfg.seq_len)
    evaluate(model, stream, starts, cfg, device)
    t0 = time.perf_counter()
    evaluate(model, stream, starts, cfg, device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def probe(cfg: TrainConfig, mcfg: ModelConfig, corpus: Corpus, steps: int = 6, warmup: int = 2) -> dict[str, float]:
    """Seconds per training step and per evaluation batch of ``cfg`` at the numerics ``mcfg``."""
    device = resolve_device(cfg)
    stream = corpus.train[: 4 * cfg.tokens_per_step + cfg.seq_len + 1].to(device)
    model = Transformer(mcfg, seed=cfg.seed).to(device)
    model.fuse_attention(device.type == "cuda")
    opt = make_optimizer(model, cfg, device)
    fwd = torch.compile(model) if cfg.compile else model
    starts = step_starts(cfg.replace(steps=warmup + steps), stream.numel() - cfg.seq_len, device)
    t0 = 0.0
    for i in range(warmup + steps):
        if i == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
        seqs = windows(stream, starts[i], cfg.seq_len)
        with _autocast(cfg, device):
            loss = loss_of(fwd, seqs)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    step_s = (time.perf_counter() - t0) / steps
    eval_s = _probe_eval(model, stream, cfg, device)
    del model, opt
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return dict(step_s=step_s, eval_batch_s=eval_s)


def fit_steps(cfgs: list[TrainConfig], corpus: Corpus, seconds: float, *, overhead_s: float = 4.0,
              log: Callable[[str], None] = print) -> tuple[int, dict[str, Any]]:
    """The step count (the same for every run: equal tokens) that fits all runs into ``seconds``.

    Probes each distinct numerics once (a4.8: both activation stages) and counts each
    run's evaluation batches and ``overhead_s`` (model build, checkpoint writes).
    """
    t_start = time.perf_counter()
    probes: dict[str, dict[str, float]] = {}
    for c in cfgs:
        for mc in {json.dumps(c.stage_config(0).to_dict()): c.stage_config(0),
                   json.dumps(c.model_config().to_dict()): c.model_config()}.values():
            key = json.dumps(dict(mc.to_dict(), batch=c.batch_size, seq=c.seq_len, compile=c.compile))
            if key not in probes:
                probes[key] = probe(c, mc, corpus)
                log(f"[probe] {mc.datapath} ({mc.act_formats}, {mc.ffn_kind}, kv {mc.kv_cache_bits} bits): "
                    f"{probes[key]['step_s'] * 1e3:.1f} ms/step, "
                    f"{probes[key]['eval_batch_s'] * 1e3:.1f} ms/eval batch")
    left = seconds - (time.perf_counter() - t_start)
    per_step, fixed = 0.0, 0.0
    for c in cfgs:
        k1 = json.dumps(dict(c.stage_config(0).to_dict(), batch=c.batch_size, seq=c.seq_len, compile=c.compile))
        k2 = json.dumps(dict(c.model_config().to_dict(), batch=c.batch_size, seq=c.seq_len, compile=c.compile))
        f2 = c.stage2_fraction if c.two_activation_stages else 0.0
        per_step += (1 - f2) * probes[k1]["step_s"] + f2 * probes[k2]["step_s"]
        n_eval = 11 * math.ceil(c.eval_sequences / c.eval_batch)
        variants = len(EVAL_VARIANTS) if c.two_activation_stages else 0
        n_eval += math.ceil(c.final_eval_sequences / c.eval_batch) * (1 + variants)
        fixed += n_eval * probes[k2]["eval_batch_s"] + overhead_s
    steps = int((left - fixed) / per_step) if per_step > 0 else 0
    if steps < 10:
        raise ValueError(f"fit: {seconds:.0f} s leave {left - fixed:.0f} s of training for {len(cfgs)} runs "
                         f"at {per_step:.3f} s per step of all runs: fewer than 10 steps")
    steps = steps // 10 * 10
    info = dict(seconds=seconds, probe_s=time.perf_counter() - t_start, seconds_per_step_all_runs=per_step,
                fixed_s=fixed, steps=steps, probes=list(probes.values()))
    log(f"[fit] {len(cfgs)} runs in {seconds:.0f} s: {steps} steps each "
        f"({steps * cfgs[0].tokens_per_step:.3g} tokens per run)")
    return steps, info


def run_plan(cfgs: list[TrainConfig], out_dir: str | Path, *, time_budget_s: float | None = None,
             fit_seconds: float | None = None, log: Callable[[str], None] = print,
             on_done: Callable[[dict[str, Any], Path], None] | None = None) -> list[dict[str, Any]]:
    """Run several configs in turn under ``out_dir`` (each resumes or is skipped if done).

    ``fit_seconds``: first choose ``steps`` for all runs by probing (stored in
    ``out_dir/plan.json``, reused when the plan is run again).  ``time_budget_s``:
    stop (saving the running one's state) when this call's wall time is spent.
    ``on_done(result, run_dir)`` is called after each finished run.
    """
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    corpora: dict[tuple, Corpus] = {}

    def corpus_of(c: TrainConfig) -> Corpus:
        key = (c.corpus, c.val_percent)
        if key not in corpora:
            corpora[key] = build_corpus(c.corpus, c.val_percent)
            m = corpora[key].manifest
            log(f"[corpus] {m['source']} (Python {m['python']}): {m['files_train']} + {m['files_val']} files, "
                f"{m['bytes_train']} + {m['bytes_val']} bytes, sha256 train {m['sha256_train'][:16]}, "
                f"val {m['sha256_val'][:16]}")
        return corpora[key]

    plan_path = out_dir / "plan.json"
    if fit_seconds is not None:
        if plan_path.exists():
            prev = read_json(plan_path, "training plan")
            try:
                steps, info = int(prev["fit"]["steps"]), prev["fit"]
                prev_runs = [TrainConfig.from_dict(r, where=f"{plan_path}: runs").replace(steps=steps).to_dict()
                             for r in prev["runs"]]
            except (KeyError, TypeError, ValueError) as e:
                raise ValueError(f"{plan_path}: not a training plan written by bitsim train ({type(e).__name__}: "
                                 f"{str(e)[:200]}); use another --out (nothing was changed)") from None
            if prev_runs != [c.replace(steps=steps).to_dict() for c in cfgs]:
                raise ValueError(f"{plan_path}: fitted for another set of runs; use another --out, or run "
                                 "the same plan again to resume it (nothing was changed)")
            log(f"[fit] reusing {plan_path}: {steps} steps per run")
        else:
            steps, info = fit_steps(cfgs, corpus_of(cfgs[0]), fit_seconds, log=log)
        cfgs = [c.replace(steps=steps) for c in cfgs]
        write_json(plan_path, dict(fit=info, runs=[c.to_dict() for c in cfgs]))
    results = []
    for c in cfgs:
        left = None if time_budget_s is None else time_budget_s - (time.perf_counter() - t0)
        if left is not None and left < 10:
            log(f"[plan] time budget spent; {c.run_name} and later runs not started")
            break
        res = train_run(c, out_dir, corpus_of(c), time_limit_s=left, log=log)
        results.append(res)
        if res.get("status") != "done":
            break
        if on_done is not None:
            on_done(res, out_dir / c.run_name)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return results


class Exporter:
    """Gathers finished runs into a few files (for machines that return only a few files).

    ``results.json``: every finished run's result; ``checkpoints-<i>.tar``: their
    ``final.pt`` files as ``<run>.pt`` (ternary runs only unless ``all_checkpoints``),
    a new tar once one passes ``tar_limit`` bytes.
    """

    def __init__(self, folder: str | Path, tar_limit: int = 12 << 20, all_checkpoints: bool = False):
        self.folder = Path(folder)
        self.tar_limit = tar_limit
        self.all_checkpoints = all_checkpoints
        if self.folder.exists() and not self.folder.is_dir():
            raise ValueError(f"--export {self.folder} is a file; give a folder")
        old = self.folder / "results.json"
        self.results: dict[str, Any] = read_json(old, "export results file") if old.exists() else {}
        if not isinstance(self.results, dict) or not all(
                isinstance(r, dict) and r.get("name") == k and "config" in r for k, r in self.results.items()):
            raise ValueError(f"{old}: not a results file written by bitsim train (a mapping run name -> "
                             "result); choose another --export folder (nothing was changed)")
        for tar in sorted(self.folder.glob("checkpoints-*.tar")):
            if not tarfile.is_tarfile(tar):
                raise ValueError(f"{tar}: not a tar file; choose another --export folder (nothing was changed)")
        self.folder.mkdir(parents=True, exist_ok=True)

    def __call__(self, res: dict[str, Any], run_dir: Path) -> None:
        self.results[res["name"]] = res
        write_json(self.folder / "results.json", self.results)
        if res["config"]["datapath"] == "fp16" and not self.all_checkpoints:
            return
        arcname = f"{res['name']}.pt"
        for tar in sorted(self.folder.glob("checkpoints-*.tar")):   # a resumed plan re-reports done runs
            with tarfile.open(tar) as t:
                if arcname in t.getnames():
                    return
        i = 0
        while (self.folder / f"checkpoints-{i}.tar").exists() and \
                (self.folder / f"checkpoints-{i}.tar").stat().st_size > self.tar_limit:
            i += 1
        with tarfile.open(self.folder / f"checkpoints-{i}.tar", "a") as tar:
            tar.add(run_dir / "final.pt", arcname=arcname)
