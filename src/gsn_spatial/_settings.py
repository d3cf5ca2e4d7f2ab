"""Package-wide settings (one object, as in scanpy and sopa)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass
class Settings:
    """Mutable settings; change them on ``gsn.settings``.

    Attributes
    ----------
    device
        Default device for the network: ``"auto"`` (CUDA when present, else CPU),
        ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    cpu_bf16
        Use bfloat16 autocast for inference on CPUs that support it natively
        (AMX / AVX-512 bf16); elsewhere inference is int8 or float32 (``cpu_int8``). Measured
        1.5-1.8x faster with F1 within 0.002 of float32
        (``benchmarks/precision.py``).
    cpu_int8
        On CPUs without native bfloat16 (or with ``cpu_bf16`` off), run the
        network of ``gsn.tl.segment`` in 8-bit integers where the model
        carries int8 calibration (the shipped ``generalist`` models do;
        :mod:`gsn_spatial.core.network.quantize`). Measured in docs/speed.md;
        off: float32, as before. Not combined with ``compile``.
    compile
        Compile the network with ``torch.compile`` in ``gsn.tl.segment``
        (the first window then waits for the compilation, 16-35 s on the
        2-core CPU; afterwards the network runs 1.2-1.5x faster there,
        ``benchmarks/speed.py``). Worth it for slides of more than a few
        hundred megapixels; off by default. Needs a C++ compiler on CPU.
    progress
        Show progress bars (``tqdm.auto``: widgets in notebooks, text in
        terminals). ``None`` (default): on where a person is watching (a
        Jupyter kernel, or stderr is a terminal), off in CI (``CI`` set)
        and when output goes to a file or pipe.
    work_dir
        Where whole-slide runs keep their intermediate files (binned
        transcripts, per-block results); default: the system's temporary
        directory. On a ``dask.distributed`` cluster of several machines it
        must be a directory all workers share. A run's files are removed when
        it succeeds and kept when it fails, so that ``recover=True`` can resume
        it.
    reuse_memory
        Let the network's passes reuse the memory that earlier passes freed
        (glibc's heap; elsewhere no effect) instead of page-faulting fresh
        pages for every activation. On the 2-core AVX2 host the default
        segment ran 1.4x faster (``benchmarks/stage_times.py``, docs/speed.md)
        and its peak memory rose by about 1 GB on 17 and 67 MP slides alike
        (``benchmarks/scale.py``, docs/scale.md). Turn off for many workers
        on a machine short of memory.
    write_threads
        Threads that compute and write the outputs of the whole-slide tools
        (labels, transcript assignment) into a store when no
        ``dask.distributed`` client is active. Each thread holds one
        partition of the transcripts while it writes it (0.23 GB for
        partitions of 1.3 M transcripts, ``benchmarks/scale.py``), so more
        threads write faster but raise peak memory by that much each.
        ``None``: dask's default, one per core. With a client the cluster's
        workers write.
    """

    device: str = "auto"
    cpu_bf16: bool = True
    cpu_int8: bool = True
    compile: bool = False
    progress: bool | None = None
    work_dir: str | None = None
    reuse_memory: bool = True
    write_threads: int | None = 1

    def __setattr__(self, name: str, value: object) -> None:
        if name == "write_threads" and value is not None:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"`write_threads` must be a positive integer or None, got {value!r}.")
        super().__setattr__(name, value)


settings = Settings()


def someone_watching() -> bool:
    """Whether progress bars help: a notebook or terminal session, and not CI."""
    import os
    import sys

    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        return False
    if "ipykernel" in sys.modules:
        try:
            from IPython import get_ipython

            if get_ipython() is not None and type(get_ipython()).__name__ == "ZMQInteractiveShell":
                return True
        except ImportError:  # pragma: no cover
            pass
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def progress_bar(desc: str) -> Callable[[Iterable], Iterable] | None:
    """A tqdm wrapper for loops when progress bars are on (see ``Settings.progress``), else ``None``."""
    show = settings.progress if settings.progress is not None else someone_watching()
    if not show:
        return None
    from tqdm.auto import tqdm

    return lambda iterable: tqdm(iterable, desc=desc, leave=False)
