"""One BLAS thread for the whole agent process.

NumPy's OpenBLAS starts a thread per core and keeps them spinning after each call. The agent runs
its own threads (one per inference worker, the event loop), so the tracker's small matrix products
on the event loop woke two BLAS threads that fought the inference workers for the same cores: on
vtest a tracker update took 19 ms instead of 0.7 ms, and the person detector 41 ms instead of 12
(bench/pipeline.py, docs/benchmarks.md#pipeline). The limit is process-wide and set once at start.
"""

from __future__ import annotations

from threadpoolctl import threadpool_limits


def limit_blas_threads(threads: int = 1) -> None:
    """Cap every BLAS library loaded in the process (OpenBLAS of NumPy, SciPy, OpenCV) at `threads`."""
    threadpool_limits(limits=threads, user_api="blas")
