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
    """``len(cell_ids) x n_genes`` CSR counts; points with cell 0 are not counted.

    ``cell_ids`` must be sorted; every non-zero ``cell_of_point`` must be in it.

    Examples
    --------
    >>> count_matrix(np.array([3, 3, 0, 5]), np.array([1, 1, 0, 0]), np.array([3, 5, 9]), 2).toarray().tolist()
    [[0, 2], [1, 0], [0, 0]]
    """
    assigned = cell_of_point > 0
    rows = np.searchsorted(cell_ids, cell_of_point[assigned])
    if len(rows) and (rows.max() >= len(cell_ids) or not np.array_equal(cell_ids[rows], cell_of_point[assigned])):
        raise ValueError("A point is assigned to a cell id that is not in `cell_ids`.")
    counts = sp.coo_matrix(
        (np.ones(len(rows), dtype=np.int32), (rows, gene_of_point[assigned])),
        shape=(len(cell_ids), n_genes),
    ).tocsr()
    counts.sum_duplicates()
    return counts
