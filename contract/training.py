"""Tables of the training runs (``model/train.py``, ``bitsim train``) and the trained sparsity profiles.

``model.training_report`` writes them to ``reports/data/`` (``training_*.csv``, ``trained_*.csv``);
the report, the notebooks and the simulator read them.  Losses are next-byte cross-entropies in
nats per byte on the held-out (validation) split of the corpus; sparsities are fractions of zero
entries in a projection's quantized input, as in the a4.8 paper's Table 2.
"""
from __future__ import annotations

from contract.schemas import _cols, register

RUN_KEYS = _cols(
    ("run", "str", "", "run name (<datapath>-s<seed>, or an ablation's name)"),
    ("datapath", "str", "", "fp16, b1.58, a4.8 or a4.8-fp4"),
    ("seed", "int", "", "seed of the initial weights and of the data order"),
    ("variant", "str", "", "'main' or the ablation (e.g. a4.8-int4-all, a4.8-no-topk)"),
)

TRAINING_CURVE = register("training_curve", RUN_KEYS + _cols(
    ("step", "int", "step", "optimizer steps done"),
    ("tokens", "int", "token", "training tokens seen (steps x batch x sequence length)"),
    ("stage", "str", "", "numerics in force (a4.8: b1.58 during the first stage)"),
    ("lr", "float", "", "learning rate of the last step"),
    ("wd", "float", "", "weight decay of the last step"),
    ("train_loss", "float", "nat/byte", "mean training loss since the previous point (NaN at step 0)"),
    ("val_loss", "float", "nat/byte", "validation loss on the fixed curve windows"),
    ("train_s", "float", "s", "training wall time so far (evaluation excluded)"),
), "validation-loss curve of each training run (one row per evaluation point)")

TRAINING_SUMMARY = register("training_summary", RUN_KEYS + _cols(
    ("preset", "str", "", "model shape: train-<TRAIN_PRESETS name> (model/train.py)"),
    ("params_linear", "int", "", "non-embedding linear (projection) parameters"),
    ("params_total", "int", "", "all parameters incl. embedding, LM head, norms"),
    ("steps", "int", "step", "optimizer steps"),
    ("tokens", "int", "token", "training tokens"),
    ("val_loss", "float", "nat/byte", "final validation loss (final windows)"),
    ("val_bpb", "float", "bit/byte", "val_loss / ln 2"),
    ("val_ppl", "float", "", "exp(val_loss): per-byte perplexity"),
    ("eval_tokens", "int", "token", "validation tokens of the final number"),
    ("rel_to_b158", "float", "fraction", "val_loss / (b1.58 val_loss of the same seed) - 1"),
    ("train_s", "float", "s", "training wall time (GPU time of the run, evaluation excluded)"),
    ("tokens_per_s", "float", "token/s", "training throughput"),
    ("gpu", "str", "", "device name ('none' on CPU)"),
    ("torch", "str", "", "torch version of the run"),
    ("date", "str", "", "ISO date of the run"),
    ("corpus_python", "str", "", "Python version whose standard library was the corpus"),
    ("corpus_sha256_train", "str", "", "sha256 of the training split's byte stream"),
    ("corpus_sha256_val", "str", "", "sha256 of the validation split's byte stream"),
), "final validation loss of each training run, at equal training tokens")

TRAINING_ABLATION = register("training_ablation", _cols(
    ("ablation", "str", "", "what was changed"),
    ("kind", "str", "", "trained (its own run) or eval-only (the trained a4.8 model evaluated changed)"),
    ("run", "str", "", "run whose loss is val_loss"),
    ("base_run", "str", "", "the a4.8 run it is compared with (same seed and tokens)"),
    ("seed", "int", "", "seed"),
    ("val_loss", "float", "nat/byte", "validation loss with the change"),
    ("base_val_loss", "float", "nat/byte", "validation loss of base_run"),
    ("delta", "float", "nat/byte", "val_loss - base_val_loss"),
    ("delta_pct", "float", "%", "100 x delta / base_val_loss"),
), "ablations of the a4.8 recipe as loss deltas against the a4.8 run")

TRAINED_PROFILE = register("trained_profile", _cols(
    ("run", "str", "", "training run of the checkpoint"),
    ("datapath", "str", "", "b1.58, a4.8 or a4.8-fp4"),
    ("seed", "int", "", "seed"),
    ("checkpoint", "str", "", "inference checkpoint file the profile was measured on"),
    ("preset", "str", "", "model shape of the checkpoint"),
    ("layer", "int", "", "decoder layer; -1 = all layers (mean; overall: parameter-weighted)"),
    ("proj", "str", "", "qkv, out, up, gate, down (projection inputs, Table 2 columns), overall, "
                        "gate_out (zero fraction of the gate branch after ReLU² / SiLU)"),
    ("sparsity", "float", "fraction", "zero fraction of the projection's quantized input; up: gate-first "
                                      "rule 1 - mean(nnz(x) nnz(gate)) / (d_in d_ffn)"),
    ("params", "int", "", "weights of this projection group in this layer (all layers for -1)"),
    ("heldout_tokens", "int", "token", "held-out validation tokens the profile was measured on"),
    ("train_step", "int", "step", "training step of the checkpoint"),
    ("train_tokens", "int", "token", "training tokens of the checkpoint"),
), "per-projection input sparsity of trained models, measured on held-out text")

TRAINED_TABLE2 = register("trained_table2", _cols(
    ("model", "str", "", "row label"),
    ("source", "str", "", "paper (a4.8 Table 2), random (seeded random weights), or trained"),
    ("datapath", "str", "", "b1.58, a4.8 or a4.8-fp4"),
    ("preset", "str", "", "model shape"),
    ("seed", "int", "", "training seed (-1: not a trained row)"),
    ("total_params", "float", "", "non-embedding linear parameters"),
    ("activated_params", "float", "", "(1 - overall) x total_params"),
    ("qkv_pct", "float", "%", "zero entries of the Wq/Wk/Wv input"),
    ("out_pct", "float", "%", "zero entries of the Wo input"),
    ("up_pct", "float", "%", "Wup input, gate-first rule"),
    ("gate_pct", "float", "%", "Wgate input"),
    ("down_pct", "float", "%", "Wdown input"),
    ("overall_pct", "float", "%", "parameter-weighted mean of the five"),
), "per-projection input sparsity in the layout of the a4.8 paper's Table 2")

_ZERO_KEYS = _cols(
    ("datapath", "str", "", "a4.8 or b1.58 (the trained checkpoints' datapath)"),
    ("group", "str", "", "projection group whose quantized input is measured: qkv, o, gate, up, down"),
    ("grouping", "str", "", "what the M rows of a batch are: sequences (decode) or consecutive tokens (prefill)"),
)

ZERO_CORRELATION_FIT = register("zero_correlation_fit", _ZERO_KEYS + _cols(
    ("kappa", "float", "", "Beta concentration of the per-column zero frequencies (small: zeros concentrate)"),
    ("fit_sparsity", "float", "fraction", "mean zero fraction on the fitting checkpoint"),
    ("fit_rmse", "float", "fraction", "RMS error of the fitted rule over the fitted batch sizes"),
    ("fit_checkpoint", "str", "", "checkpoint the constant was fitted on"),
), "batch rule of zero skipping: the fitted Beta concentration per datapath, group and grouping")

ZERO_CORRELATION_CHECK = register("zero_correlation_check", _ZERO_KEYS + _cols(
    ("checkpoint", "str", "", "held-out checkpoint measured"),
    ("M", "int", "row", "rows of the batch"),
    ("sparsity", "float", "fraction", "mean zero fraction of the input"),
    ("measured", "float", "fraction", "fraction of columns zero in all M rows (the skip a chip sees)"),
    ("per_column", "float", "fraction", "mean_j f_j**M from the per-column zero frequencies"),
    ("independent", "float", "fraction", "sparsity**M (zeros independent: the lower bound)"),
    ("kappa", "float", "", "the fitted concentration used"),
    ("beta", "float", "fraction", "the Beta rule's row_skip at M"),
    ("beta_error", "float", "fraction", "beta - measured"),
    ("independent_error", "float", "fraction", "independent - measured"),
), "the batch rule of zero skipping against held-out measurement (one row per checkpoint, group, grouping, M)")
