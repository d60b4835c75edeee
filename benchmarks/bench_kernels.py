"""Check and time every Triton kernel of ``kernels/`` on a CUDA GPU (one call).

Usage: ``python benchmarks/bench_kernels.py [--configs] [--sections ...] [--out DIR]``
(same as ``bitsim bench-kernels``).  See ``kernels/bench/driver.py`` and ``docs/kernels.md``.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kernels.bench.driver import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
