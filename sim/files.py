"""Atomic file writes for the simulator's outputs: a temporary sibling renamed into place."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def write_text_atomic(text: str, path: str | Path) -> Path:
    """Write ``text`` to ``path`` so a reader sees the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(doc: object, path: str | Path, indent: int | None = None) -> Path:
    """``json.dumps(doc)`` written atomically (see :func:`write_text_atomic`)."""
    return write_text_atomic(json.dumps(doc, indent=indent), path)
