"""Per-cell shape metrics on label arrays (the paper's area, elongation and convexity).

All functions take a 2-D integer label image (0 = background) and return one
value per cell id, vectorised over cells with ``numpy.bincount`` except the
convex hulls (one small ``scipy.spatial.ConvexHull`` per cell). Pixel
``(row, col)`` is the unit square whose centre is ``(col + 0.5, row + 0.5)``;
boundaries and hulls are taken through pixel centres, as in scikit-image.
The image edge counts as outside, so a cell cut by the edge has a boundary
there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import ConvexHull, QhullError

# scikit-image's perimeter weights (skimage.measure.perimeter, 4-neighbourhood): a border pixel's code is
# 1 + 2 * (border 4-neighbours) + 10 * (border diagonal neighbours); straight runs weigh 1, diagonal runs
# sqrt(2), and the pixel where a straight run turns into a diagonal one (1 + sqrt(2)) / 2.
_PERIMETER_WEIGHTS = np.zeros(50)
_PERIMETER_WEIGHTS[[5, 7, 15, 17, 25, 27]] = 1.0
_PERIMETER_WEIGHTS[[21, 33]] = np.sqrt(2.0)
_PERIMETER_WEIGHTS[[13, 23]] = (1.0 + np.sqrt(2.0)) / 2.0

#: Worst-case ratio of an 8-connected pixel chain's length to the length of the curve it digitises
#: (tangent at 22.5 degrees: cos - sin + sqrt(2) sin). Bounds the digitisation error of ``perimeter``.
CHAIN_LENGTH_FACTOR = float(np.cos(np.pi / 8) - np.sin(np.pi / 8) + np.sqrt(2.0) * np.sin(np.pi / 8))


def _check_labels(labels: np.ndarray) -> np.ndarray:
    lab = np.asarray(labels)
    if lab.ndim != 2:
        raise ValueError(f"`labels` must be a 2-D label image, got shape {lab.shape}.")
    if not np.issubdtype(lab.dtype, np.integer):
        raise TypeError(f"`labels` must have an integer dtype, got {lab.dtype}.")
    if lab.size and lab.min() < 0:
        raise ValueError("`labels` must not hold negative ids.")
    return lab.astype(np.int64, copy=False)


def cell_ids(labels: np.ndarray) -> np.ndarray:
    """Sorted ids of the cells present in ``labels`` (0 excluded).

    Examples
    --------
    >>> cell_ids(np.array([[0, 4], [2, 4]])).tolist()
    [2, 4]
    """
    lab = _check_labels(labels)
    present = np.flatnonzero(np.bincount(lab.ravel()))
    return present[present > 0]


def boundary_mask(labels: np.ndarray) -> np.ndarray:
    """Pixels of a cell with a 4-neighbour that is not the same cell (the image edge counts as outside).

    Examples
    --------
    >>> lab = np.zeros((5, 5), int); lab[1:4, 1:4] = 1
    >>> boundary_mask(lab).sum()  # the 3 x 3 square minus its centre
    np.int64(8)
    """
    lab = _check_labels(labels)
    pad = np.pad(lab, 1)
    centre = pad[1:-1, 1:-1]
    differs = (
        (pad[:-2, 1:-1] != centre) | (pad[2:, 1:-1] != centre) | (pad[1:-1, :-2] != centre) | (pad[1:-1, 2:] != centre)
    )
    return differs & (centre > 0)


def perimeter(labels: np.ndarray) -> np.ndarray:
    """Perimeter (pixels) of every cell, indexed by id (length ``max id + 1``).

    The estimator of ``skimage.measure.perimeter`` (4-neighbourhood), computed
    for all cells at once: the length of the chain through the centres of the
    cell's boundary pixels, straight steps 1, diagonal steps sqrt(2). An
    ``n x n`` square has perimeter ``4 (n - 1)``.

    Examples
    --------
    >>> lab = np.zeros((12, 12), int); lab[1:11, 1:11] = 3
    >>> float(perimeter(lab)[3])
    36.0
    """
    lab = _check_labels(labels)
    border = np.where(boundary_mask(lab), lab, 0)
    pad = np.pad(border, 1)
    h, w = lab.shape
    code = np.ones(lab.shape, dtype=np.int64)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy == 0 and dx == 0:
                continue
            same = pad[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] == border
            code += np.where(same, 10 if dy and dx else 2, 0)
    on = border > 0
    weights = _PERIMETER_WEIGHTS[np.minimum(code[on], 49)]
    return np.bincount(border[on], weights=weights, minlength=int(lab.max(initial=0)) + 1)


def _boundary_points_by_cell(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boundary pixel centres ``(x, y)`` sorted by cell, with each cell's start offset."""
    lab = _check_labels(labels)
    rows, cols = np.nonzero(boundary_mask(lab))
    ids = lab[rows, cols]
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    xy = np.stack([cols[order] + 0.5, rows[order] + 0.5], axis=1)
    return ids, xy, lab


def elongation(labels: np.ndarray) -> np.ndarray:
    """Elongation ``e_b / e_a`` of every cell, indexed by id (Methods, "Cell elongation").

    ``e_a >= e_b`` are the eigenvalues of the (population, ddof = 0)
    covariance of the cell's boundary pixel centres: 1 for a disc or a
    square, ``(b / a)^2`` for the boundary of an ellipse with semi-axes
    ``a >= b`` sampled evenly in its angle parameter, and towards 0 for a
    line. A one-pixel cell (zero covariance) gets 1, as in the authors' code.
    Ids not present get NaN.

    Examples
    --------
    >>> lab = np.zeros((9, 9), int); lab[2:7, 2:7] = 1
    >>> float(elongation(lab)[1])
    1.0
    """
    ids, xy, lab = _boundary_points_by_cell(labels)
    n_ids = int(lab.max(initial=0)) + 1
    n = np.bincount(ids, minlength=n_ids).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = np.bincount(ids, xy[:, 0], n_ids) / n
        my = np.bincount(ids, xy[:, 1], n_ids) / n
        dx = xy[:, 0] - mx[ids]
        dy = xy[:, 1] - my[ids]
        sxx = np.bincount(ids, dx * dx, n_ids) / n
        syy = np.bincount(ids, dy * dy, n_ids) / n
        sxy = np.bincount(ids, dx * dy, n_ids) / n
        half_trace = (sxx + syy) / 2
        root = np.sqrt(((sxx - syy) / 2) ** 2 + sxy**2)
        e_a = half_trace + root
        e_b = np.maximum(half_trace - root, 0.0)
        out = np.where(e_a > 0, e_b / np.where(e_a > 0, e_a, 1.0), 1.0)
    out[n == 0] = np.nan
    return out


def convex_perimeter(labels: np.ndarray) -> np.ndarray:
    """Perimeter of the convex hull of each cell's pixel centres, indexed by id.

    Cells whose centres are collinear get twice the segment's length (the
    perimeter of the degenerate hull); one-pixel cells get 0. Ids not
    present get NaN.

    Examples
    --------
    >>> lab = np.zeros((12, 12), int); lab[1:11, 1:11] = 1
    >>> round(float(convex_perimeter(lab)[1]), 9)
    36.0
    """
    ids, xy, lab = _boundary_points_by_cell(labels)
    n_ids = int(lab.max(initial=0)) + 1
    out = np.full(n_ids, np.nan)
    if len(ids) == 0:
        return out
    uniq, starts = np.unique(ids, return_index=True)
    ends = np.append(starts[1:], len(ids))
    for cid, s, e in zip(uniq, starts, ends, strict=True):
        pts = xy[s:e]
        try:
            out[cid] = ConvexHull(pts).area if len(pts) >= 3 else np.nan
        except QhullError:
            out[cid] = np.nan
        if np.isnan(out[cid]):  # collinear or fewer than 3 points
            span = pts.max(axis=0) - pts.min(axis=0)
            out[cid] = 2.0 * float(np.hypot(*span))
    return out


def convexity(labels: np.ndarray) -> np.ndarray:
    """Convexity ``r_convex / r_cell`` of every cell, indexed by id (Methods, "Cell convexity").

    ``r_cell`` is :func:`perimeter` and ``r_convex`` :func:`convex_perimeter`,
    both through pixel centres, so a convex digital polygon such as a square
    scores exactly 1. Capped at 1 (as the authors' code clips it): the
    digital perimeter of a cell one or two pixels wide can be shorter than its
    hull's. Cells with zero perimeter (one pixel) and ids not present get NaN.

    Examples
    --------
    >>> lab = np.zeros((12, 12), int); lab[1:11, 1:11] = 1
    >>> float(convexity(lab)[1])
    1.0
    """
    per = perimeter(labels)
    hull = convex_perimeter(labels)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(per > 0, hull / np.where(per > 0, per, 1.0), np.nan)
    return np.minimum(out, 1.0)


@dataclass(frozen=True)
class ShapeMetrics:
    """Per-cell shape metrics, one entry per id in ``cell_ids``."""

    cell_ids: np.ndarray
    area: np.ndarray
    perimeter: np.ndarray
    convex_perimeter: np.ndarray
    elongation: np.ndarray
    convexity: np.ndarray


def shape_metrics(labels: np.ndarray) -> ShapeMetrics:
    """Area (pixels), perimeter, convex-hull perimeter, elongation and convexity of every cell.

    Examples
    --------
    >>> lab = np.zeros((12, 12), int); lab[1:11, 1:11] = 5; lab[0, 0] = 2
    >>> m = shape_metrics(lab)
    >>> m.cell_ids.tolist(), m.area.tolist(), m.convexity.tolist()
    ([2, 5], [1, 100], [nan, 1.0])
    """
    lab = _check_labels(labels)
    ids = cell_ids(lab)
    area = np.bincount(lab.ravel())
    per = perimeter(lab)
    hull = convex_perimeter(lab)
    with np.errstate(invalid="ignore", divide="ignore"):
        conv = np.minimum(np.where(per > 0, hull / np.where(per > 0, per, 1.0), np.nan), 1.0)
    return ShapeMetrics(
        cell_ids=ids,
        area=area[ids].astype(np.int64),
        perimeter=per[ids],
        convex_perimeter=hull[ids],
        elongation=elongation(lab)[ids],
        convexity=conv[ids],
    )
