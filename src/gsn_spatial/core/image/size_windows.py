"""Nucleus diameter of a large (lazy) image from a sample of windows (array level).

The windows' nuclei are found as in :mod:`gsn_spatial.core.image.size` and pooled; nuclei cut by a
window's inner edge are left out and the rest weighted so that leaving them out does not favour small
nuclei.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from gsn_spatial.core.image.size import (
    _CALIBRATION,
    _NO_NUCLEI,
    _SMOOTH_SIGMA,
    MIN_NUCLEUS_PX,
    SPECK_AREA,
    _robust_diameters,
    _smoothing_for,
    _weighted_median,
)

__all__ = ["estimate_nucleus_diameter_windows"]


def _grid_windows(shape: tuple[int, int], window: int) -> list[tuple[int, int, int, int]]:
    """Non-overlapping ``window`` x ``window`` tiles covering ``shape`` evenly (``y0, y1, x0, x1``)."""
    boxes = []
    h, w = shape
    ny, nx = max(1, h // window), max(1, w // window)
    # Spread the tiles over the whole image; the leftover margin is shared between the gaps.
    ys = np.linspace(0, max(0, h - window), ny).round().astype(int)
    xs = np.linspace(0, max(0, w - window), nx).round().astype(int)
    for y0 in ys:
        for x0 in xs:
            boxes.append((int(y0), int(min(h, y0 + window)), int(x0), int(min(w, x0 + window))))
    return boxes


def estimate_nucleus_diameter_windows(
    read_window: Callable[[int, int, int, int], np.ndarray],
    shape: tuple[int, int],
    *,
    window: int = 512,
    n_windows: int = 16,
    seed: int = 0,
) -> float:
    """Median nucleus diameter of a large (lazy) image from a few windows, in pixels.

    Windows of a regular grid are read in a random order until ``n_windows`` of
    them hold nuclei (at most ``3 * n_windows`` are read, so empty slide regions
    cost little); the nuclei of all of them are pooled and their median
    equivalent diameter is returned, calibrated as in
    :func:`~gsn_spatial.core.image.size.estimate_nucleus_diameter`. Nuclei cut by a window edge inside the
    image are left out, and the others weighted by how often a nucleus of their
    extent is whole in a window (so the left-out large nuclei do not bias the
    median down).

    Parameters
    ----------
    read_window
        ``read_window(y0, y1, x0, x1)`` returns the 2-D array ``image[y0:y1, x0:x1]``.
    shape
        ``(height, width)`` of the whole image.
    window
        Side of the square windows in pixels.
    n_windows
        Number of windows with nuclei to pool.
    seed
        Seed of the order in which windows are tried.

    Returns
    -------
    float
        As :func:`~gsn_spatial.core.image.size.estimate_nucleus_diameter`, over the pooled windows' nuclei;
        a ValueError where no window holds nuclei (pass ``pixel_size=`` then).

    Examples
    --------
    >>> import numpy as np
    >>> yy, xx = np.mgrid[:1024, :1024]
    >>> image = (((yy % 64) - 32) ** 2 + ((xx % 64) - 32) ** 2 <= 8**2).astype(np.uint8) * 200
    >>> d = estimate_nucleus_diameter_windows(lambda y0, y1, x0, x1: image[y0:y1, x0:x1], image.shape, window=256)
    >>> round(d / 16, 1)
    1.0
    """
    h, w = int(shape[0]), int(shape[1])
    boxes = _grid_windows((h, w), int(window))
    order = np.random.default_rng(seed).permutation(len(boxes))[: 3 * n_windows]
    estimate = _pooled(read_window, (h, w), [boxes[i] for i in order], n_windows, 0.0)
    if estimate < MIN_NUCLEUS_PX:  # specks of noise, not nuclei (core.image.size): once more without them
        estimate = _pooled(read_window, (h, w), [boxes[i] for i in order], n_windows, SPECK_AREA)
    return estimate


def _pooled(
    read_window: Callable[[int, int, int, int], np.ndarray],
    shape: tuple[int, int],
    boxes: list[tuple[int, int, int, int]],
    n_windows: int,
    min_area: float,
) -> float:
    """The calibrated weighted median over the nuclei of the first ``n_windows`` of ``boxes`` that hold some."""
    h, w = shape
    pooled, pooled_weights, used, sigma = [], [], 0, None
    for y0, y1, x0, x1 in boxes:
        edges = (y0 > 0, y1 < h, x0 > 0, x1 < w)
        try:
            tile = np.asarray(read_window(y0, y1, x0, x1))
            d, wt = _robust_diameters(tile, drop_edges=edges, sigma=sigma or _SMOOTH_SIGMA, min_area=min_area)
        except ValueError:  # constant window (outside the tissue)
            continue
        if d.size and sigma is None:
            # The first window with nuclei sets the smoothing of all of them (one extra pass at most).
            sigma = _smoothing_for(float(np.median(d)))
            if sigma != _SMOOTH_SIGMA:
                d, wt = _robust_diameters(tile, drop_edges=edges, sigma=sigma, min_area=min_area)
        if d.size:
            pooled.append(d)
            pooled_weights.append(wt)
            used += 1
            if used == n_windows:
                break
    if not pooled:
        raise ValueError(_NO_NUCLEI)
    # Weighted so that dropping the nuclei cut by inner window edges does not favour small nuclei.
    return _CALIBRATION * _weighted_median(np.concatenate(pooled), np.concatenate(pooled_weights))
