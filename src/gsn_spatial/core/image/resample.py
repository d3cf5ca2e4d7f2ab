"""Bringing images to the model's working scale and labels back, window by window (array level).

An input image at ``p`` um per pixel is seen by the network at the model's
working scale ``q`` um per pixel: ``zoom = p / q`` working pixels per input
pixel. Pixel centres are aligned, so working pixel ``i`` (centre ``i + 0.5``)
sits at input coordinate ``(i + 0.5) / zoom``, whatever window it is read in.
Each window is computed from the input pixels around it alone, which is what
lets a slide of any size be resampled lazily, block by block, with the same
result as resampling it whole (``tests/test_resample.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy import ndimage

ZOOM_TOLERANCE = 1e-6  # zooms closer to 1 than this are no resampling at all


def working_shape(shape: tuple[int, int], zoom: float) -> tuple[int, int]:
    """Shape of an image of ``shape`` pixels at ``zoom`` (same physical extent, rounded).

    Examples
    --------
    >>> working_shape((1200, 2400), 0.425)
    (510, 1020)
    """
    if not zoom > 0:
        raise ValueError(f"`zoom` must be positive, got {zoom}.")
    return max(1, round(shape[0] * zoom)), max(1, round(shape[1] * zoom))


def is_identity(zoom: float) -> bool:
    return abs(zoom - 1.0) < ZOOM_TOLERANCE


def antialias_sigma(zoom: float) -> float:
    """Gaussian sigma (input pixels) applied before shrinking by ``zoom`` < 1, as scikit-image's ``rescale``."""
    return max(0.0, (1.0 / zoom - 1.0) / 2.0)


def resample_window(
    read: Callable[[int, int, int, int], np.ndarray],
    input_shape: tuple[int, int],
    window: tuple[int, int, int, int],
    zoom: float,
) -> np.ndarray:
    """Working-scale window ``(y0, y1, x0, x1)`` of an input image read by ``read(y0, y1, x0, x1)``.

    Linear interpolation at the working pixels' centres, after a Gaussian
    anti-aliasing filter when shrinking; edges repeat the border pixel.
    Returns float32.

    Examples
    --------
    >>> img = np.arange(16.0).reshape(4, 4)
    >>> read = lambda y0, y1, x0, x1: img[y0:y1, x0:x1]
    >>> resample_window(read, img.shape, (0, 8, 0, 8), 2.0).shape
    (8, 8)
    >>> bool(np.allclose(resample_window(read, img.shape, (0, 4, 0, 4), 1.0), img))
    True
    """
    y0, y1, x0, x1 = window
    h, w = input_shape
    sigma = antialias_sigma(zoom)
    pad = int(math.ceil(4 * sigma)) + 2
    rows = (np.arange(y0, y1) + 0.5) / zoom - 0.5
    cols = (np.arange(x0, x1) + 0.5) / zoom - 0.5
    ry0 = max(0, int(math.floor(rows[0])) - pad) if len(rows) else 0
    ry1 = min(h, int(math.ceil(rows[-1])) + pad + 1) if len(rows) else 0
    rx0 = max(0, int(math.floor(cols[0])) - pad) if len(cols) else 0
    rx1 = min(w, int(math.ceil(cols[-1])) + pad + 1) if len(cols) else 0
    if ry1 <= ry0 or rx1 <= rx0:
        return np.zeros((y1 - y0, x1 - x0), dtype=np.float32)
    src = np.asarray(read(ry0, ry1, rx0, rx1), dtype=np.float32)
    if sigma > 0:
        # The filter sees ``pad`` real pixels beyond the window wherever the image has them, so windows agree
        # with a whole-image resampling away from the image's own edges.
        src = ndimage.gaussian_filter(src, sigma, mode="nearest", truncate=4.0)
    rr = np.clip(rows - ry0, 0, ry1 - ry0 - 1)
    cc = np.clip(cols - rx0, 0, rx1 - rx0 - 1)
    # Separable linear interpolation: two 1-D passes, cheaper than map_coordinates on a full grid.
    out = interp_axis(src, rr, axis=0)
    return interp_axis(out, cc, axis=1)


def interp_axis(a: np.ndarray, coords: np.ndarray, axis: int) -> np.ndarray:
    """``a`` sampled linearly at fractional ``coords`` (in ``[0, n - 1]``) along ``axis`` (2-D ``a``)."""
    lo = np.floor(coords).astype(np.int64)
    hi = np.minimum(lo + 1, a.shape[axis] - 1)
    t = (coords - lo).astype(np.float32)
    shape = [1, 1]
    shape[axis] = len(coords)
    t = t.reshape(shape)
    return np.take(a, lo, axis=axis) * (1 - t) + np.take(a, hi, axis=axis) * t


def nearest_window(
    read: Callable[[int, int, int, int], np.ndarray],
    source_shape: tuple[int, int],
    window: tuple[int, int, int, int],
    zoom: float,
) -> np.ndarray:
    """Window ``(y0, y1, x0, x1)`` of labels at ``zoom`` times the resolution of the source labels.

    Each output pixel takes the source pixel under its centre (no new ids,
    no blending). Used to bring working-scale labels to the input's grid
    (``zoom`` = input pixels per working pixel).

    Examples
    --------
    >>> lab = np.array([[1, 2], [3, 4]])
    >>> nearest_window(lambda y0, y1, x0, x1: lab[y0:y1, x0:x1], lab.shape, (0, 4, 0, 4), 2.0)
    array([[1, 1, 2, 2],
           [1, 1, 2, 2],
           [3, 3, 4, 4],
           [3, 3, 4, 4]])
    """
    y0, y1, x0, x1 = window
    rows = np.clip(np.floor((np.arange(y0, y1) + 0.5) / zoom).astype(np.int64), 0, source_shape[0] - 1)
    cols = np.clip(np.floor((np.arange(x0, x1) + 0.5) / zoom).astype(np.int64), 0, source_shape[1] - 1)
    if not len(rows) or not len(cols):
        return np.zeros((y1 - y0, x1 - x0), dtype=np.uint32)
    src = np.asarray(read(int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1))
    return src[np.ix_(rows - rows[0], cols - cols[0])]
