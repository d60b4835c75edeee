"""Training text that needs no download: the Python sources of the running interpreter.

``build_corpus()`` collects every ``*.py`` file under the interpreter's standard
library (``sysconfig.get_paths()["stdlib"]``, site-/dist-packages excluded), or
under any folder or file the caller names, in sorted relative-path order, and
splits them **by file**: a file goes to the validation split when the first
byte of ``sha256(relative path)`` is below ``256 * val_percent / 100``.  The
rule depends only on the path, so a file stays on its side on every machine and
Python version; the text itself differs between Python versions, which the
manifest's ``sha256`` values record.

Tokenizer: byte level.  Token ids 0..255 are the bytes; :data:`BOS` (256) starts
every training / evaluation sequence (the token the a4.8 KV rule keeps at 4
bits sits at position 0); ids 257..263 are unused and pad the vocabulary to a
multiple of 8 (:data:`VOCAB_SIZE`) for the GPU's matrix units.  Files are
joined with one NUL byte (0), which Python sources never contain, as the
end-of-file mark.

The corpus is held as two ``uint8`` tensors (train, val) and a manifest dict:
source, Python version, file counts, bytes and the sha256 of each split's
joined byte stream.
"""
from __future__ import annotations

import hashlib
import platform
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from contract.config import check_number
from contract.limits import limit

BOS = 256
VOCAB_SIZE = 264          # 256 bytes + BOS + 7 unused ids (a multiple of 8)
EOF_BYTE = 0              # joins files; never inside a Python source
STDLIB = "stdlib"         # the corpus name that means "this interpreter's standard library"
SKIP_PARTS = ("site-packages", "dist-packages", "__pycache__")
MAX_FILE_BYTES = 4 << 20  # a source file larger than this is skipped (generated data, not code)
MAX_TEXT_BYTES = limit("corpus and held-out text", 512 << 20, unit="bytes", area="training and checkpoints",
                       applies_to="a training corpus, --heldout text (all files together)",
                       why="the standard-library corpus is about 40 MB; the text is held in memory")


@dataclass(frozen=True, kw_only=True)
class Corpus:
    """Byte streams of the two splits and the manifest that identifies them."""

    train: torch.Tensor   # uint8 [n_train_bytes]
    val: torch.Tensor     # uint8 [n_val_bytes]
    manifest: dict[str, Any]


def source_root(source: str | Path) -> Path:
    """The folder (or file) a corpus name stands for: ``stdlib`` or a path."""
    if str(source) == STDLIB:
        return Path(sysconfig.get_paths()["stdlib"])
    p = Path(source)
    if not p.exists():
        raise FileNotFoundError(f"corpus: no such file or folder: {p}")
    return p


def _read_bounded(files: list[Path], what: str) -> list[bytes]:
    """The bytes of ``files``, refused past ``MAX_TEXT_BYTES`` in all (checked before and while reading)."""
    total = sum(f.stat().st_size for f in files)
    if total > MAX_TEXT_BYTES:
        raise ValueError(f"{what}: {total:,} bytes in {len(files)} file(s) is more than the limit of "
                         f"{MAX_TEXT_BYTES:,}; give a smaller file or folder")
    out, left = [], MAX_TEXT_BYTES
    for f in files:
        with open(f, "rb") as h:            # bounded even if a file grew since it was listed
            data = h.read(left + 1)
        if len(data) > left:
            raise ValueError(f"{what}: more than the limit of {MAX_TEXT_BYTES:,} bytes; give a smaller file or folder")
        left -= len(data)
        out.append(data)
    return out


def list_files(root: Path, pattern: str = "*.py") -> list[Path]:
    """Files of the corpus in sorted relative-path order (one file: itself)."""
    if root.is_file():
        return [root]
    files = [f for f in root.rglob(pattern)
             if f.is_file() and not any(part in SKIP_PARTS for part in f.relative_to(root).parts)
             and f.stat().st_size <= MAX_FILE_BYTES]
    return sorted(files, key=lambda f: f.relative_to(root).as_posix())


def is_val_file(rel_path: str, val_percent: float) -> bool:
    """The fixed file-level split: first byte of sha256(relative path) < 256 * val_percent / 100."""
    return hashlib.sha256(rel_path.encode("utf-8")).digest()[0] < 256 * val_percent / 100


def build_corpus(source: str | Path = STDLIB, val_percent: float = 5.0, pattern: str = "*.py") -> Corpus:
    """Read, split and hash the corpus (see the module doc); no network, no cache."""
    check_number(val_percent, "val_percent", lo=0, lo_open=True, hi=100)
    if val_percent == 100:
        raise ValueError("val_percent = 100 leaves no training text; give a value in (0, 100)")
    root = source_root(source)
    files = list_files(root, pattern)
    if not files:
        raise ValueError(f"corpus: no {pattern} files under {root}")
    parts: dict[str, list[bytes]] = {"train": [], "val": []}
    counts = {"train": 0, "val": 0}
    for f, raw in zip(files, _read_bounded(files, f"corpus {root}")):
        rel = f.name if root.is_file() else f.relative_to(root).as_posix()
        data = raw.replace(bytes([EOF_BYTE]), b"")
        split = "val" if len(files) > 1 and is_val_file(rel, val_percent) else "train"
        parts[split] += [data, bytes([EOF_BYTE])]
        counts[split] += 1
    if root.is_file():  # one file: its last val_percent of bytes is the validation text
        data = parts["train"][0]
        cut = int(len(data) * (1 - val_percent / 100))
        parts = {"train": [data[:cut]], "val": [data[cut:]]}
    streams = {k: b"".join(v) for k, v in parts.items()}
    for k, v in streams.items():
        if len(v) < 4096:
            raise ValueError(f"corpus: the {k} split of {root} has only {len(v)} bytes; need >= 4096")
    manifest = dict(
        source=str(source), root=str(root), pattern=pattern, val_percent=float(val_percent),
        split_rule="val if sha256(relative path)[0] < 256*val_percent/100",
        python=platform.python_version(), files_train=counts["train"], files_val=counts["val"],
        bytes_train=len(streams["train"]), bytes_val=len(streams["val"]),
        sha256_train=hashlib.sha256(streams["train"]).hexdigest(),
        sha256_val=hashlib.sha256(streams["val"]).hexdigest(),
        tokenizer=f"bytes 0..255, BOS={BOS}, vocab {VOCAB_SIZE}",
    )
    to_t = lambda b: torch.frombuffer(bytearray(b), dtype=torch.uint8)  # noqa: E731
    return Corpus(train=to_t(streams["train"]), val=to_t(streams["val"]), manifest=manifest)


def read_stream(source: str | Path, pattern: str = "*.py") -> torch.Tensor:
    """All the text under ``source`` (a file, or a folder's ``pattern`` files in path order) as one
    uint8 stream, files joined with the NUL end-of-file byte; no split (e.g. held-out text)."""
    root = source_root(source)
    files = list_files(root, pattern)
    if not files:
        raise ValueError(f"no {pattern} files under {root}")
    data = b"".join(raw.replace(bytes([EOF_BYTE]), b"") + bytes([EOF_BYTE])
                    for raw in _read_bounded(files, f"text {root}"))
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def encode(text: str | bytes) -> torch.Tensor:
    """Byte-level token ids (int64) of a text, BOS first."""
    b = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    return torch.cat([torch.tensor([BOS]), torch.frombuffer(bytearray(b), dtype=torch.uint8).long()])


def decode(ids: torch.Tensor) -> bytes:
    """Bytes of token ids (BOS and unused ids dropped)."""
    return bytes(int(i) for i in ids.reshape(-1).tolist() if 0 <= int(i) < 256)


def windows(stream: torch.Tensor, starts: torch.Tensor, seq_len: int) -> torch.Tensor:
    """Token sequences [n, seq_len + 1]: BOS then ``seq_len`` bytes from each start offset.

    Inputs are ``[:, :-1]`` (BOS at position 0), next-byte targets ``[:, 1:]``.
    """
    idx = starts.to(stream.device)[:, None] + torch.arange(seq_len, device=stream.device)[None, :]
    body = stream[idx].long()
    bos = torch.full((body.shape[0], 1), BOS, dtype=torch.long, device=stream.device)
    return torch.cat([bos, body], dim=1)


def eval_starts(n_bytes: int, n_seq: int, seq_len: int) -> torch.Tensor:
    """Evenly spaced, fixed window starts over a split (the same text for every run)."""
    if n_bytes < seq_len + 1:
        raise ValueError(f"split of {n_bytes} bytes is shorter than one sequence ({seq_len})")
    last = n_bytes - seq_len
    return torch.linspace(0, last, n_seq, dtype=torch.float64).floor().long()
