"""GPU benchmark of the kernels (not a test: needs CUDA).

``harness`` holds the timing helpers (medians with their spread, the one CUDA-graph rotation
loop), the measurement log and the output writers; one module per topic checks and times
(``floors``, ``gemm``, ``quant``, ``sparse``, ``attention``, ``block``, ``energy``); ``driver`` runs
them in one call (``bitsim bench-kernels``, ``benchmarks/bench_kernels.py``).  Nothing in
``kernels/`` outside this package imports it.
"""
