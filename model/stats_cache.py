"""Content-addressed cache of measured op-trace statistics: in this process, and on disk.

Measuring the statistics of a 7B random-weight block takes seconds; the same (model config,
workload, seed, measuring rules, code version) always gives the same numbers, so they are
computed once and kept under the SHA-256 of everything they depend on (:func:`cache_key`).

* In-process: a dict, so a study building the same trace twice measures once.
* On disk: one JSON file per key under ``$BITSIM_CACHE_DIR``, else ``$XDG_CACHE_HOME/bitsim``,
  else ``~/.cache/bitsim``, written atomically (``contract.io.atomic_path``).  A file that cannot
  be read or does not hold what its key says is ignored and rewritten.
* ``BITSIM_NO_CACHE=1`` turns both off (every trace measures afresh).

The cached value is JSON: floats round-trip exactly (``repr``), so a cached trace is identical
to a freshly measured one.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

from contract.io import write_json_atomic

ENV_DIR = "BITSIM_CACHE_DIR"
ENV_OFF = "BITSIM_NO_CACHE"
MAX_ENTRY_BYTES = 1 << 20        # a stats entry is a few KB; anything larger is not ours

_MEMO: dict[str, Any] = {}


def enabled() -> bool:
    """Whether caching is on (``BITSIM_NO_CACHE`` unset, empty or ``0``)."""
    return os.environ.get(ENV_OFF, "") in ("", "0")


def cache_dir() -> Path:
    """The on-disk cache folder (not created here)."""
    if os.environ.get(ENV_DIR):
        return Path(os.environ[ENV_DIR]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "bitsim"


def cache_key(parts: dict[str, Any]) -> str:
    """SHA-256 of ``parts`` as canonical JSON (sorted keys): every input the cached value depends on."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def clear_memo() -> None:
    """Forget the in-process entries (the disk cache stays)."""
    _MEMO.clear()


def _path(kind: str, key: str) -> Path:
    return cache_dir() / kind / f"{key}.json"


def _read(path: Path, key: str) -> Any | None:
    try:
        if not path.is_file() or path.stat().st_size > MAX_ENTRY_BYTES:
            return None
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(doc, dict) or doc.get("key") != key or "value" not in doc:
        return None
    return doc["value"]


def cached(kind: str, parts: dict[str, Any], compute: Callable[[], Any]) -> Any:
    """The JSON value for ``parts``: from memory, else from disk, else ``compute()`` (then stored).

    ``kind`` names the sub-folder (one per kind of value).  A disk that cannot be written
    leaves the value computed and memoised; the cache never turns a result into an error.
    """
    if not enabled():
        return compute()
    key = cache_key({"kind": kind, **parts})
    if key in _MEMO:
        return json.loads(_MEMO[key])
    path = _path(kind, key)
    value = _read(path, key)
    if value is None:
        value = compute()
        try:
            write_json_atomic({"key": key, "parts": parts, "value": value}, path)
        except OSError:
            pass
    _MEMO[key] = json.dumps(value)      # stored as text: a caller cannot change the memo through its copy
    return json.loads(_MEMO[key])
