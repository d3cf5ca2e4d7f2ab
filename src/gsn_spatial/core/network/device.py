"""Choosing the torch device and precision."""

from __future__ import annotations

import torch


def cpu_supports_bf16() -> bool:
    """Whether this CPU runs bfloat16 matrix work natively (AMX or AVX-512 bf16).

    Read from ``/proc/cpuinfo`` (Linux); elsewhere assume no, so the default
    stays full precision.
    """
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"amx_bf16", "avx512_bf16"})
    except OSError:
        pass
    return False


def resolve_device(device: str | torch.device, *, cpu_bf16: bool = False) -> tuple[torch.device, torch.dtype | None]:
    """The device to run on and the autocast dtype (``None`` = full precision).

    ``"auto"`` picks CUDA when present, else the CPU. Asking for a device that
    is not there raises instead of silently falling back.

    Examples
    --------
    >>> resolve_device("cpu")
    (device(type='cpu'), None)
    """
    if isinstance(device, str) and device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"`device`={device!r} is not a torch device (use 'auto', 'cpu' or 'cuda').") from err
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"`device`={device!r} was requested but no CUDA GPU is available; use 'cpu' or 'auto'.")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"`device`={device!r}: only {torch.cuda.device_count()} CUDA device(s) present.")
        return dev, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if dev.type != "cpu":
        raise ValueError(f"`device`={device!r} is not supported; use 'auto', 'cpu' or 'cuda'.")
    return dev, torch.bfloat16 if cpu_bf16 and cpu_supports_bf16() else None
