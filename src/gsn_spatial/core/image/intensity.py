"""Image intensity normalisation to the network's ``[0, 1]`` input range.

The authors normalised every 256 x 256 window by its own percentiles, which
changes a nucleus's brightness with the window it falls in and can zero a
channel. Here the percentiles are estimated once per image (from a strided
sample, so the cost does not grow with the slide) and applied to every tile.
"""

from __future__ import annotations

import numpy as np

DEFAULT_PERCENTILES = (1.0, 99.5)


def sample_percentiles(
    image: np.ndarray, percentiles: tuple[float, float] = DEFAULT_PERCENTILES, max_samples: int = 4_000_000
) -> tuple[float, float]:
    """Low and high intensity percentiles of ``image`` (any array-like, dask too)."""
    shape = image.shape
    step = max(1, int(np.ceil(np.sqrt(np.prod(shape) / max_samples))))
    sample = np.asarray(image[::step, ::step], dtype=np.float64)
    if sample.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(sample, percentiles)
    return float(lo), float(hi)


def normalise_intensity(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map ``low -> 0`` and ``high -> 1``, clipped to ``[0, 1]``, as float32."""
    scale = 1.0 / (high - low) if high > low else 0.0
    return np.clip((np.asarray(image, dtype=np.float32) - low) * scale, 0.0, 1.0)
