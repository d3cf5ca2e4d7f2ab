"""Running a run's tasks: in this process or on an active dask.distributed client."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gsn_spatial.core.slide.workdir import WorkDir


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
