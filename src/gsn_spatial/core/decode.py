"""Cells from the network's maps (the paper's Eq. 4).

Centres are the local maxima of the centre map at or above
``centre_threshold`` (one per peak, at least ``min_distance`` pixels apart).
Every pixel whose confidence is at or above ``confidence_threshold`` goes to
the centre nearest to ``p + V(p)``. Pixels whose vote lands farther than
``max_vote_distance`` from every centre stay background (Eq. 4 has no such
limit; without it a stray foreground blob far from any centre would join
whichever cell happens to be nearest). Cells smaller than ``min_area`` pixels
are dropped.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree
from skimage.feature import peak_local_max


def find_centres(centre_map: np.ndarray, *, threshold: float = 0.5, min_distance: int = 3) -> np.ndarray:
    """``(k, 2)`` integer ``(row, col)`` of the peaks of ``centre_map`` >= ``threshold``."""
    return peak_local_max(
        np.asarray(centre_map, dtype=np.float32),
        min_distance=min_distance,
        threshold_abs=threshold,
        exclude_border=False,
    )


def assign_pixels(
    confidence: np.ndarray,
    offset: np.ndarray,
    centres: np.ndarray,
    *,
    confidence_threshold: float = 0.5,
    max_vote_distance: float = np.inf,
) -> np.ndarray:
    """Index + 1 of the centre each foreground pixel votes for; 0 = background."""
    h, w = confidence.shape
    out = np.zeros((h, w), dtype=np.int64)
    if len(centres) == 0:
        return out
    fg_r, fg_c = np.nonzero(confidence >= confidence_threshold)
    if len(fg_r) == 0:
        return out
    votes = np.stack([fg_r + offset[0, fg_r, fg_c], fg_c + offset[1, fg_r, fg_c]], axis=1)
    dist, nearest = cKDTree(centres).query(votes, distance_upper_bound=max_vote_distance, workers=-1)
    ok = np.isfinite(dist)
    out[fg_r[ok], fg_c[ok]] = nearest[ok] + 1
    return out


def decode_cells(
    maps: np.ndarray,
    *,
    confidence_threshold: float = 0.5,
    centre_threshold: float = 0.5,
    min_distance: int = 3,
    max_vote_distance: float = 10.0,
    min_area: int = 10,
) -> tuple[np.ndarray, np.ndarray]:
    """Instance labels from ``maps`` = ``(4, h, w)``: confidence, centre, dy, dx.

    Returns
    -------
    labels
        ``(h, w)`` int64, ids ``1..k`` numbered in the order of the centres
        (row-major), 0 = background.
    centres
        ``(k, 2)`` ``(row, col)`` of each kept cell's centre, row ``i`` for id ``i + 1``.

    Examples
    --------
    >>> from gsn_spatial.core.targets import make_targets
    >>> lab = np.zeros((32, 32), int); lab[2:12, 2:12] = 1; lab[2:12, 12:22] = 2
    >>> out, c = decode_cells(make_targets(lab), min_area=1)
    >>> bool((out == lab).all()), len(c)
    (True, 2)
    """
    confidence, centre_map, offset = maps[0], maps[1], maps[2:4]
    centres = find_centres(centre_map, threshold=centre_threshold, min_distance=min_distance)
    votes = assign_pixels(
        confidence,
        offset,
        centres,
        confidence_threshold=confidence_threshold,
        max_vote_distance=max_vote_distance,
    )
    if len(centres) == 0:
        return votes, np.zeros((0, 2), dtype=np.int64)
    area = np.bincount(votes.ravel(), minlength=len(centres) + 1)
    keep = area >= max(int(min_area), 1)
    keep[0] = False
    remap = np.zeros(len(area), dtype=np.int64)
    remap[keep] = np.arange(1, int(keep.sum()) + 1)
    return remap[votes], centres[keep[1:]]
