"""Where the committed data and the reports live: found from this package's location, not the working folder.

``bitsim report`` run from any folder reads ``reports/data`` of the project it is installed from
(an editable install, as the Makefile makes) and writes its runs under ``reports/``.  A relative path
in a study config names a folder of the project; a path given on the command line is made absolute
against the working folder by the command line before it reaches a config.
"""
from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
REPORTS_DIR = PROJECT_ROOT / "reports"
#: What a study config's ``measured_dir`` names by default (relative: resolved by :func:`project_path`).
DATA_DIR_NAME = "reports/data"


def project_path(path: str | Path) -> Path:
    """``path`` as it is when absolute, else under the project root."""
    p = Path(path)
    return p if p.is_absolute() else PROJECT_ROOT / p
