"""Set-up every test file shares, run by pytest before any test module is imported.

Without a CUDA GPU the Triton kernels run in Triton's interpreter on the CPU. The interpreter is chosen
by ``TRITON_INTERPRET=1`` when Triton is first imported, so the variable is set here, before any test
module imports ``kernels``. A value the caller set (``TRITON_INTERPRET=0`` on a GPU machine) is kept.
Figures are drawn with matplotlib's file-only backend (``MPLBACKEND=Agg``): tests need no display.
"""
import os
import sys

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

# The trace-statistics cache of a test run lives in a folder of its own, removed at exit: tests neither
# read a user's cache nor fill it. A folder the caller chose is kept.
if "BITSIM_CACHE_DIR" not in os.environ:
    import atexit
    import shutil
    import tempfile

    _cache = tempfile.mkdtemp(prefix="bitsim-test-cache-")
    os.environ["BITSIM_CACHE_DIR"] = _cache
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)


@pytest.fixture(autouse=True)
def _close_figures():
    """Close every pyplot figure a test left open, so figures do not pile up across a worker's tests."""
    yield
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")
