"""Cell x gene counts of a labels element, from its table or from the transcripts under it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from spatialdata import SpatialData

from gsn_spatial import _sdata
from gsn_spatial._constants import Keys
from gsn_spatial.core.assign.counts import count_matrix
from gsn_spatial.core.metrics.cell_shape import cell_ids as present_ids
from gsn_spatial.qc._common import cells_of_points, points_on_grid, table_for_labels


@dataclass
class CellCounts:
    """Counts of the cells of one labels element; ``source`` says where they came from."""

    cell_ids: np.ndarray  # sorted
    counts: sp.csr_matrix  # cells x genes
    gene_names: list[str]
    centroids: np.ndarray  # (n, 2) pixel (x, y)
    source: str


def centroids(labels: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Centroids ``(x, y)`` (pixel centres, so ``col + 0.5``) of the cells ``ids``."""
    lab = np.asarray(labels).astype(np.int64)
    rows, cols = np.nonzero(lab)
    v = lab[rows, cols]
    n = np.bincount(v, minlength=int(lab.max(initial=0)) + 1).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        cx = np.bincount(v, cols + 0.5, len(n)) / n
        cy = np.bincount(v, rows + 0.5, len(n)) / n
    return np.stack([cx[ids], cy[ids]], axis=1) if len(ids) else np.zeros((0, 2))


def _instance_key(table) -> str:
    return table.uns.get("spatialdata_attrs", {}).get("instance_key", Keys.CELL_ID)


def counts_for_labels(
    sdata: SpatialData,
    labels_key: str,
    labels: np.ndarray,
    *,
    points_key: str | None,
    gene_key: str | None = None,
    table_key: str | None = None,
) -> CellCounts:
    """Counts per cell: from ``table_key`` when given, else from the points when there are some,
    else from a table annotating the labels. Rows follow the labels' sorted cell ids."""
    ids = present_ids(labels)
    cents = centroids(labels, ids)
    if table_key is None and points_key is None:
        table_key = table_for_labels(sdata, labels_key)
        if table_key is None:
            raise KeyError(
                f"Labels {labels_key!r} have no table and no points element was found; pass `points_key=` "
                "(transcripts) or `table_key=` (a table annotating the labels)."
            )
    if table_key is not None:
        table_key = _sdata.resolve_key(sdata, "tables", table_key, parameter="table_key")
        table = sdata.tables[table_key]
        inst = _instance_key(table)
        if inst not in table.obs:
            raise KeyError(f"Table {table_key!r} has no instance column {inst!r}.")
        rows = pd.Index(table.obs[inst].to_numpy().astype(np.int64))
        if not rows.is_unique:
            raise ValueError(f"Table {table_key!r} has repeated cell ids in {inst!r}.")
        pos = rows.get_indexer(ids)
        x = sp.csr_matrix(table.X) if table.X is not None else sp.csr_matrix((table.n_obs, 0))
        x = sp.vstack([x, sp.csr_matrix((1, x.shape[1]))]).tocsr()  # an all-zero row for ids missing from the table
        counts = x[np.where(pos >= 0, pos, x.shape[0] - 1)]
        return CellCounts(ids, counts.tocsr(), [str(g) for g in table.var_names], cents, f"table {table_key!r}")
    pts = points_on_grid(sdata, points_key, labels_key, gene_key=gene_key, with_genes=True)
    cell = cells_of_points(labels, pts.xy_pixels)
    counts = count_matrix(cell, pts.gene_codes, ids, len(pts.gene_names))
    return CellCounts(ids, counts, pts.gene_names, cents, f"points {points_key!r}")
