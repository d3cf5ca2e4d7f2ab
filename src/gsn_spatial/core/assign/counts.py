"""Transcripts to cells, and the cell x gene count matrix (array level)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def lookup_cells(labels: np.ndarray, points_xy: np.ndarray) -> np.ndarray:
    """Label under each point (``(n, 2)`` pixel ``(x, y)``); 0 outside the image.

    Pixel ``(row, col)`` covers ``[col, col + 1) x [row, row + 1)``.

    Examples
    --------
    >>> lab = np.array([[0, 1], [2, 2]])
    >>> lookup_cells(lab, np.array([[1.5, 0.2], [0.9, 1.9], [2.0, 0.0]])).tolist()
    [1, 2, 0]
    """
    h, w = labels.shape
    col = np.floor(points_xy[:, 0])
    row = np.floor(points_xy[:, 1])
    inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
    out = np.zeros(len(points_xy), dtype=labels.dtype)
    out[inside] = labels[row[inside].astype(np.int64), col[inside].astype(np.int64)]
    return out


def count_matrix(
    cell_of_point: np.ndarray, gene_of_point: np.ndarray, cell_ids: np.ndarray, n_genes: int
) -> sp.csr_matrix:
    """``len(cell_ids) x n_genes`` CSR counts; points with cell 0 or no gene (code -1) are not counted.

    ``cell_ids`` must be sorted; every non-zero ``cell_of_point`` must be in it.

    Examples
    --------
    >>> count_matrix(np.array([3, 3, 0, 5]), np.array([1, 1, 0, 0]), np.array([3, 5, 9]), 2).toarray().tolist()
    [[0, 2], [1, 0], [0, 0]]
    """
    assigned = (cell_of_point > 0) & (gene_of_point >= 0)
    rows = np.searchsorted(cell_ids, cell_of_point[assigned])
    if len(rows) and (rows.max() >= len(cell_ids) or not np.array_equal(cell_ids[rows], cell_of_point[assigned])):
        raise ValueError("A point is assigned to a cell id that is not in `cell_ids`.")
    counts = sp.coo_matrix(
        (np.ones(len(rows), dtype=np.int32), (rows, gene_of_point[assigned])),
        shape=(len(cell_ids), n_genes),
    ).tocsr()
    counts.sum_duplicates()
    return counts


def rasterise_assignment(
    points_xy: np.ndarray, cell_of_point: np.ndarray, shape: tuple[int, int], *, max_distance: float = 5.0
) -> np.ndarray:
    """Labels from a per-transcript assignment: each pixel takes the cell of its nearest assigned
    transcript within ``max_distance`` pixels; holes are filled and each cell keeps its largest piece.

    Turns a vendor's transcript-to-cell table into an (approximate) label image, e.g. as the
    noisy initial labels for training.

    Examples
    --------
    >>> xy = np.array([[2.5, 2.5], [3.5, 2.5], [12.5, 12.5]])
    >>> lab = rasterise_assignment(xy, np.array([4, 4, 9]), (16, 16), max_distance=2)
    >>> sorted(np.unique(lab).tolist()), int(lab[2, 3]), int(lab[12, 12])
    ([0, 4, 9], 4, 9)
    """
    from scipy import ndimage as ndi
    from scipy.spatial import cKDTree
    from skimage.measure import label as connected_label

    h, w = shape
    keep = cell_of_point > 0
    out = np.zeros(shape, dtype=np.int64)
    if not keep.any():
        return out
    tree = cKDTree(points_xy[keep])
    rows, cols = np.mgrid[0:h, 0:w]
    dist, idx = tree.query(
        np.stack([cols.ravel() + 0.5, rows.ravel() + 0.5], axis=1), distance_upper_bound=max_distance
    )
    ok = np.isfinite(dist)
    flat = np.zeros(h * w, dtype=np.int64)
    flat[ok] = cell_of_point[keep][idx[ok]]
    out = flat.reshape(shape)
    # One piece per cell, holes filled.
    pieces = connected_label(out, background=0, connectivity=1)
    sizes = np.bincount(pieces.ravel())
    owner = np.zeros(len(sizes), dtype=np.int64)
    owner[pieces.ravel()] = out.ravel()
    best = {}
    for p in np.argsort(-sizes):
        if p and owner[p] not in best:
            best[owner[p]] = p
    keep_piece = np.zeros(len(sizes), dtype=bool)
    keep_piece[list(best.values())] = True
    out = np.where(keep_piece[pieces], out, 0)
    for cid, sl in enumerate(ndi.find_objects(out), start=1):
        if sl is None:
            continue
        filled = ndi.binary_fill_holes(out[sl] == cid)
        region = out[sl]
        region[filled & (region == 0)] = cid
    return out
