"""How much of a slide's signal the cells hold: cell calling, capture by image intensity, transcripts assigned.

Positions are ``(n, 2)`` pixel ``(x, y)`` arrays on the label image's grid;
pixel ``(row, col)`` covers ``[col, col + 1) x [row, row + 1)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from gsn_spatial.core.assign.counts import lookup_cells
from gsn_spatial.core.metrics.cell_shape import _check_labels, boundary_mask


def _check_xy(points_xy: np.ndarray) -> np.ndarray:
    xy = np.asarray(points_xy, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"`points_xy` must have shape (n, 2), got {xy.shape}.")
    return xy


def _in_image(xy: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    h, w = shape
    return (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)


@dataclass(frozen=True)
class CellCalling:
    """Cell calling at each ``delta``: ``n_inside / n_outside[delta]``."""

    deltas: tuple[float, ...]
    n_inside: int
    n_outside: tuple[int, ...]

    @property
    def ratio(self) -> dict[float, float]:
        return {d: (self.n_inside / n if n else float("inf")) for d, n in zip(self.deltas, self.n_outside, strict=True)}


def distance_to_boundary(labels: np.ndarray, points_xy: np.ndarray, *, max_distance: float = np.inf) -> np.ndarray:
    """Euclidean distance (pixels) from each point to the centre of the nearest cell-boundary pixel.

    Boundary pixels are those of :func:`~gsn_spatial.core.metrics.cell_shape.boundary_mask`;
    distances beyond ``max_distance`` (and all distances when there are no
    cells) are ``inf``.

    Examples
    --------
    >>> lab = np.zeros((30, 30), int); lab[10:20, 10:20] = 1
    >>> distance_to_boundary(lab, np.array([[25.5, 15.5], [15.5, 21.5]])).tolist()
    [6.0, 2.0]
    """
    lab = _check_labels(labels)
    xy = _check_xy(points_xy)
    rows, cols = np.nonzero(boundary_mask(lab))
    if len(rows) == 0 or len(xy) == 0:
        return np.full(len(xy), np.inf)
    tree = cKDTree(np.stack([cols + 0.5, rows + 0.5], axis=1))
    dist, _ = tree.query(xy, distance_upper_bound=max_distance)
    return dist


def cell_calling(labels: np.ndarray, points_xy: np.ndarray, *, deltas: Sequence[float] = (3, 5, 7)) -> CellCalling:
    """Cell calling (Methods, "Cell calling"): ``|g_in| / |g_out|`` for each ``delta``.

    ``g_in`` are the transcripts inside cells; ``g_out`` those outside cells
    whose distance to the nearest cell-boundary pixel (:func:`distance_to_boundary`)
    is at most ``delta`` pixels. Transcripts outside the image are ignored.
    Higher means a segmentation recruits more of the RNA near its cells.

    Examples
    --------
    >>> lab = np.zeros((30, 30), int); lab[10:20, 10:20] = 1
    >>> xy = np.array([[12.5, 12.5], [15.5, 15.5], [21.5, 15.5], [25.5, 15.5]])  # in, in, 2 px, 6 px outside
    >>> cell_calling(lab, xy, deltas=(3, 7)).ratio
    {3: 2.0, 7: 1.0}
    """
    lab = _check_labels(labels)
    xy = _check_xy(points_xy)
    deltas = tuple(deltas)
    if not deltas or any(not np.isfinite(d) or d < 0 for d in deltas):
        raise ValueError(f"`deltas` must be non-negative finite numbers, got {deltas}.")
    xy = xy[_in_image(xy, lab.shape)]
    inside = lookup_cells(lab, xy) > 0
    dist = distance_to_boundary(lab, xy[~inside], max_distance=max(deltas) + 1e-9)
    return CellCalling(deltas, int(inside.sum()), tuple(int((dist <= d).sum()) for d in deltas))


def intensity_bins(image: np.ndarray, bins: int | Sequence[float] = 10) -> np.ndarray:
    """Bin edges over the image's intensities: ``bins`` equal-width bins from min to max, or the given edges."""
    if np.ndim(bins) == 0:
        n = int(bins)  # type: ignore[arg-type]
        if n < 1:
            raise ValueError(f"`bins` must be >= 1, got {bins}.")
        lo, hi = float(np.min(image)), float(np.max(image))
        return np.linspace(lo, hi if hi > lo else lo + 1.0, n + 1)
    edges = np.asarray(bins, dtype=float)
    if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError("`bins` edges must be a strictly increasing sequence of at least 2 values.")
    return edges


def _bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each value; the last bin is closed on the right, values outside the edges get -1."""
    idx = np.searchsorted(edges, values, side="right") - 1
    idx[values == edges[-1]] = len(edges) - 2
    idx[(values < edges[0]) | (values > edges[-1])] = -1
    return idx


@dataclass(frozen=True)
class IntensityCapture:
    """Fraction inside cells per intensity bin (NaN where a bin is empty) and the bins' totals."""

    edges: np.ndarray
    fraction_inside: np.ndarray
    n_total: np.ndarray


def _capture(values: np.ndarray, inside: np.ndarray, edges: np.ndarray) -> IntensityCapture:
    idx = _bin_index(values, edges)
    ok = idx >= 0
    n_bins = len(edges) - 1
    total = np.bincount(idx[ok], minlength=n_bins)
    hit = np.bincount(idx[ok], weights=inside[ok].astype(float), minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(total > 0, hit / np.maximum(total, 1), np.nan)
    return IntensityCapture(edges, frac, total)


def pixels_in_cells_by_intensity(
    image: np.ndarray, labels: np.ndarray, *, bins: int | Sequence[float] = 10
) -> IntensityCapture:
    """Proportion of pixels inside cells for pixels of each intensity bin (Fig. 2d).

    Examples
    --------
    >>> img = np.zeros((4, 4)); img[:, 2:] = 10
    >>> lab = np.zeros((4, 4), int); lab[:2, 2:] = 1
    >>> pixels_in_cells_by_intensity(img, lab, bins=2).fraction_inside.tolist()
    [0.0, 0.5]
    """
    img = np.asarray(image)
    lab = _check_labels(labels)
    if img.shape != lab.shape:
        raise ValueError(f"`image` {img.shape} and `labels` {lab.shape} differ in shape.")
    return _capture(img.ravel(), lab.ravel() > 0, intensity_bins(img, bins))


def transcripts_in_cells_by_intensity(
    image: np.ndarray, labels: np.ndarray, points_xy: np.ndarray, *, bins: int | Sequence[float] = 10
) -> IntensityCapture:
    """Proportion of transcripts inside cells by the intensity of the pixel under them (Fig. 2e).

    Transcripts outside the image are ignored.

    Examples
    --------
    >>> img = np.zeros((4, 4)); img[:, 2:] = 10
    >>> lab = np.zeros((4, 4), int); lab[:2, 2:] = 1
    >>> xy = np.array([[0.5, 0.5], [2.5, 0.5], [2.5, 3.5], [3.5, 1.5]])
    >>> transcripts_in_cells_by_intensity(img, lab, xy, bins=2).fraction_inside.tolist()
    [0.0, 0.6666666666666666]
    """
    img = np.asarray(image)
    lab = _check_labels(labels)
    if img.shape != lab.shape:
        raise ValueError(f"`image` {img.shape} and `labels` {lab.shape} differ in shape.")
    xy = _check_xy(points_xy)
    xy = xy[_in_image(xy, lab.shape)]
    col = np.floor(xy[:, 0]).astype(np.int64)
    row = np.floor(xy[:, 1]).astype(np.int64)
    return _capture(img[row, col].astype(float), lab[row, col] > 0, intensity_bins(img, bins))


def fraction_assigned(cell_of_point: np.ndarray) -> float:
    """Fraction of transcripts given to a cell (id > 0).

    Examples
    --------
    >>> fraction_assigned(np.array([0, 3, 3, 0]))
    0.5
    """
    c = np.asarray(cell_of_point)
    return float((c > 0).mean()) if len(c) else float("nan")
