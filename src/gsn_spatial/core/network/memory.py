"""Memory of the C heap around the network's passes (glibc; a no-op elsewhere)."""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any

# glibc's mallopt parameters (malloc.h) and their documented defaults, restored on the outermost exits.
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
DEFAULT_TRIM_THRESHOLD, DEFAULT_MMAP_MAX = 128 * 1024, 65536
KEEP_TRIM_THRESHOLD = 2**31 - 1  # bytes (mallopt takes an int): free memory at the heap's top is not given back

_lock = threading.Lock()
_depth = {"keep": 0, "heap": 0}


@contextlib.contextmanager
def _nested(kind: str, enter: Callable[[Any], None], leave: Callable[[Any], None]) -> Iterator[None]:
    """``enter(libc)`` on the outermost entry of ``kind``, ``leave(libc)`` on its outermost exit (thread-safe)."""
    libc = _libc()
    if libc is None:
        yield
        return
    with _lock:
        if _depth[kind] == 0:
            enter(libc)
        _depth[kind] += 1
    try:
        yield
    finally:
        with _lock:
            _depth[kind] -= 1
            if _depth[kind] == 0:
                leave(libc)


def keep_freed_memory() -> contextlib.AbstractContextManager[None]:
    """Within the block, the C heap keeps its free memory for reuse; it is given back (``malloc_trim``) on exit.

    The trim on exit keeps what a long run holds flat: without trims, what a
    268 MP run held rose from 0.80 to 1.00 GB over the segment step
    (``benchmarks/scale.py``, docs/scale.md). Re-entrant: only the outermost
    exit restores glibc's default trim threshold and trims. A no-op without glibc.
    """

    def enter(libc: Any) -> None:
        libc.mallopt(M_TRIM_THRESHOLD, KEEP_TRIM_THRESHOLD)

    def leave(libc: Any) -> None:
        libc.mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD)
        libc.malloc_trim(0)

    return _nested("keep", enter, leave)


def network_allocations() -> contextlib.AbstractContextManager[None]:
    """Within the block, large allocations come from the C heap, where :func:`keep_freed_memory` keeps them.

    glibc serves an allocation above its mmap threshold (32 MiB at most) with a
    fresh ``mmap`` and unmaps it on free, so every full-resolution activation
    of the network (95 MB for 16 channels of a 1216 px window, float32)
    page-faults anew and the kernel zeroes each page: a third of a pass on the
    2-core AVX2 host. With no mmaps during the network's passes and the heap
    kept between them (the effect of jemalloc or tcmalloc, which Intel advises
    for PyTorch on CPUs, or of ``GLIBC_TUNABLES=glibc.malloc.mmap_max=0``),
    later passes reuse the earlier ones' pages. Kept to the passes, where the
    large allocations repeat: taking the rest of a block (maps, labels) from
    the heap as well measured the same (``benchmarks/scale.py`` at 17 MP:
    2.60 GB and 38 s against 2.66 GB and 43 s, one run each), so nothing is
    gained by widening it. Measured in docs/speed.md and docs/scale.md. A
    side effect of any mallopt call: glibc's mmap threshold stops adapting and
    keeps its value of the moment. A no-op without glibc.
    """

    def enter(libc: Any) -> None:
        libc.mallopt(M_MMAP_MAX, 0)

    def leave(libc: Any) -> None:
        libc.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)

    return _nested("heap", enter, leave)


@functools.cache
def _libc() -> Any:
    """glibc, or ``None`` where ``malloc_trim`` or ``mallopt`` is missing (macOS, musl)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None
