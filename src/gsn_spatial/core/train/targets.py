"""Training targets from instance labels (the paper's Eqs. 10-12).

- confidence: 1 inside any cell (Eq. 10);
- centre: each cell's median pixel (Eq. 11). A single-pixel target trained
  with an L2 loss collapses to predicting zero everywhere, so, as in pose
  estimation and Panoptic-DeepLab, each centre is drawn as an unnormalised
  Gaussian of ``centre_sigma`` pixels (peak 1);
- offset: for every cell pixel, the vector to its cell's centre (Eq. 12).
  Eq. 12 writes ``p - o`` while Eq. 4 uses ``p + V(p)`` as the centre; we
  follow Eq. 4, so ``V(p) = o - p`` and the offsets point at the centre.
  Offsets are ``(dy, dx)`` in pixels, 0 outside cells.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def cell_centres(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ids and median-pixel centres ``(row, col)`` of every cell.

    Examples
    --------
    >>> lab = np.zeros((5, 5), int); lab[1:4, 0:3] = 7
    >>> ids, c = cell_centres(lab)
    >>> ids.tolist(), c.tolist()
    ([7], [[2.0, 1.0]])
    """
    ids = np.unique(labels)
    ids = ids[ids != 0]
    if len(ids) == 0:
        return ids, np.zeros((0, 2))
    rows, cols = np.indices(labels.shape)
    cy = ndi.median(rows, labels, ids)
    cx = ndi.median(cols, labels, ids)
    return ids, np.stack([np.asarray(cy, float), np.asarray(cx, float)], axis=1)


def centre_heatmap(centres: np.ndarray, shape: tuple[int, int], sigma: float = 2.0) -> np.ndarray:
    """Pixel-wise maximum of unnormalised Gaussians at ``centres`` (row, col)."""
    h, w = shape
    out = np.zeros(h * w, dtype=np.float32)
    if len(centres) == 0:
        return out.reshape(shape)
    r = int(np.ceil(3 * sigma))
    off = np.arange(-r, r + 1)
    cy = np.round(centres[:, 0]).astype(np.int64)
    cx = np.round(centres[:, 1]).astype(np.int64)
    yy = cy[:, None, None] + off[None, :, None]
    xx = cx[:, None, None] + off[None, None, :]
    val = np.exp(-((yy - centres[:, 0, None, None]) ** 2 + (xx - centres[:, 1, None, None]) ** 2) / (2 * sigma * sigma))
    valid = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
    flat = (yy * w + xx)[valid]
    np.maximum.at(out, flat, val[valid].astype(np.float32))
    return out.reshape(shape)


def make_targets(labels: np.ndarray, *, centre_sigma: float = 2.0) -> np.ndarray:
    """Targets ``(4, h, w)`` float32: confidence, centre heatmap, offset dy, offset dx.

    Examples
    --------
    >>> lab = np.zeros((8, 8), int); lab[2:5, 2:5] = 1
    >>> t = make_targets(lab)
    >>> t[0].sum(), t[1][3, 3], t[2][2, 2], t[3][2, 4]
    (np.float32(9.0), np.float32(1.0), np.float32(1.0), np.float32(-1.0))
    """
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"Labels must be integers, got dtype {labels.dtype}.")
    ids, centres = cell_centres(labels)
    out = np.zeros((4, *labels.shape), dtype=np.float32)
    out[0] = labels > 0
    out[1] = centre_heatmap(centres, labels.shape, centre_sigma)
    if len(ids):
        lookup = np.zeros((int(labels.max()) + 1, 2), dtype=np.float32)
        lookup[ids] = centres
        rows, cols = np.indices(labels.shape)
        inside = labels > 0
        out[2][inside] = lookup[labels[inside], 0] - rows[inside]
        out[3][inside] = lookup[labels[inside], 1] - cols[inside]
    return out
