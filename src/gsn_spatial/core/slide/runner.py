"""Running a run's tasks: in this process or on an active dask.distributed client, and keeping memory flat."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gsn_spatial.core.slide.workdir import WorkDir


def release_free_memory() -> None:
    """Give the C heap's free pages back to the operating system (glibc's ``malloc_trim``; elsewhere nothing).

    glibc keeps the memory of freed arrays for reuse, spread over the arenas
    of torch's threads, and windows of different sizes fragment it. In sampled
    268 MP runs (``benchmarks/scale.py``) what the process held rose from 0.80
    to 1.00 GB over the segment step without a trim, and stayed at
    0.85-0.90 GB between all 256 blocks with one after each block; the trim
    and the page faults after it cost about 3 % of a block's time.
    dask.distributed documents the same remedy for workers whose memory is
    not released.
    """
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


@functools.cache
def _libc() -> Any:
    """glibc, or ``None`` where ``malloc_trim`` is missing (macOS, musl)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") else None


def active_client() -> Any | None:
    """The active ``distributed.Client``, or ``None`` (one is never created here)."""
    try:
        from distributed import default_client
    except ImportError:  # pragma: no cover - distributed is a dependency of dask[distributed] only
        return None
    try:
        return default_client()
    except ValueError:
        return None


def run_tasks(
    fn: Callable[..., Any],
    work: WorkDir,
    items: Iterable[int],
    *args: Any,
    client: Any | None = None,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> list[Any]:
    """``[fn(work, item, *args) for item in items]``, here or on a ``distributed`` ``client``.

    On a cluster, large shared ``args`` should already be futures
    (``client.scatter(..., broadcast=True)``); results come back in ``items`` order.
    """
    items = list(items)
    if client is None:
        return [fn(work, item, *args) for item in (progress(items) if progress else items)]
    from distributed import as_completed

    futures = [client.submit(fn, work, item, *args, pure=False) for item in items]
    done = as_completed(futures)
    for _ in progress(done) if progress else done:
        pass
    return client.gather(futures)
