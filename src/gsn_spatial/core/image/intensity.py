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
    sample = _strided_sample(image, max_samples)
    if sample.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(sample, percentiles)
    return float(lo), float(hi)


def _strided_sample(image: np.ndarray, max_samples: int) -> np.ndarray:
    """The finite pixels of every ``step``-th row and column of ``image``, at most about ``max_samples`` of them."""
    step = max(1, int(np.ceil(np.sqrt(np.prod(image.shape) / max_samples))))
    sample = np.asarray(image[::step, ::step], dtype=np.float64)
    return sample[np.isfinite(sample)]


#: Where the median pixel lies this far or more up the 1st-99.5th percentile range, and at half the full scale or
#: more, the ground is bright: a brightfield image (H&E), not a fluorescence stain. Measured 2026-12-07 (the first
#: figure): the blue channel of CosMx's CellComposite 0.06, of spatialdata's blobs 0.12, of sopa's synthetic H&E
#: image 0.45 (median 206 of 255); of the 541 DSB fluorescence images one reaches 0.5, a nearly empty field (median 3
#: of 255) that the full-scale condition keeps apart, and the others are under 0.29.
BRIGHT_GROUND = 0.35


def bright_ground(image: np.ndarray, max_samples: int = 1_000_000) -> bool:
    """Whether ``image`` (any array-like, dask too) is mostly bright, as a brightfield image is.

    Full scale is the dtype's maximum for integers, else 1 for images within [0, 1], else their 99.5th percentile.

    Examples
    --------
    >>> dark = np.zeros((64, 64)); dark[20:30, 20:30] = 1.0  # a nucleus on a dark ground
    >>> bright_ground(dark), bright_ground(1.0 - dark)
    (False, True)
    """
    sample = _strided_sample(image, max_samples)
    if sample.size == 0:
        return False
    lo, mid, hi = np.percentile(sample, (1.0, 50.0, 99.5))
    integer = np.issubdtype(image.dtype, np.integer)
    full = float(np.iinfo(image.dtype).max) if integer else (1.0 if hi <= 1.0 else hi)
    return bool(hi > lo and (mid - lo) / (hi - lo) >= BRIGHT_GROUND and mid >= 0.5 * full)


def normalise_intensity(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map ``low -> 0`` and ``high -> 1``, clipped to ``[0, 1]``, as float32."""
    scale = 1.0 / (high - low) if high > low else 0.0
    return np.clip((np.asarray(image, dtype=np.float32) - low) * scale, 0.0, 1.0)


def fill_non_finite(image: np.ndarray) -> np.ndarray:
    """``image`` with NaN and infinite pixels set to its smallest finite value (0 if it has none).

    Float images mark pixels with no data so (the padding of a stitched or
    registered mosaic, masked detector pixels); the network, the resampling
    and the size estimate would spread them, so they are read as background.
    Applied to one chunk at a time, the fill is that chunk's own background.
    A new array is returned where anything is filled; the input is never changed.

    Examples
    --------
    >>> fill_non_finite(np.array([[np.nan, 2.0], [5.0, np.inf]])).tolist()
    [[2.0, 2.0], [5.0, 2.0]]
    """
    image = np.asarray(image)
    if image.dtype.kind != "f":
        return image
    finite = np.isfinite(image)
    if finite.all():
        return image
    return np.where(finite, image, image[finite].min() if finite.any() else 0).astype(image.dtype, copy=False)
