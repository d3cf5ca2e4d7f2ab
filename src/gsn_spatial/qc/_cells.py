"""``gsn.qc.cell_metrics``: per-cell shape, count and marker metrics into a table's ``.obs``."""

from __future__ import annotations

from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
from spatialdata import SpatialData
from spatialdata.models import TableModel

from gsn_spatial import __version__, _sdata
from gsn_spatial._constants import Keys, run_keys
from gsn_spatial.core.metrics.cell_shape import shape_metrics
from gsn_spatial.core.metrics.expression import genes_per_cell, negative_marker_contamination
from gsn_spatial.qc._common import labels_array, microns_per_pixel, read_markers, table_for_labels
from gsn_spatial.qc._counts import _instance_key, counts_for_labels

UNS_KEY = "gsn_qc"


def _optional_points(sdata: SpatialData, points_key: str | None, labels_key: str) -> str | None:
    """``points_key`` resolved beside the labels, or ``None`` when it is omitted and there is no points element."""
    if points_key is None and not any(True for _ in sdata.points):
        return None
    return _sdata.resolve_key(sdata, "points", points_key, parameter="points_key", beside=labels_key)


def _summary(frame: pd.DataFrame) -> dict[str, dict[str, float]]:
    out = {}
    for col in frame.columns:
        v = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float)
        v = v[np.isfinite(v)]
        if len(v):
            out[col] = {"median": float(np.median(v)), "mean": float(v.mean()), "n": int(len(v))}
    return out


def cell_metrics(
    sdata: SpatialData,
    *,
    labels_key: str | None = None,
    table_key: str | None = None,
    points_key: str | None = None,
    gene_key: str | None = None,
    coordinate_system: str | None = None,
    pixel_size: float | None = None,
    positive_markers: Any = None,
    negative_markers: Any = None,
    table_key_added: str | None = None,
    inplace: bool = True,
    overwrite: bool = False,
) -> pd.DataFrame | None:
    """Per-cell QC metrics of a segmentation, written into its table's ``.obs`` (scanpy's column names).

    Columns (one row per cell; cells in the table but not in the labels get NaN):

    - ``area``: pixels; ``area_um2``: square microns, when the labels have a
      transformation to a micron coordinate system (``coordinate_system``, by
      default one named ``"microns"``, ``"um"``, ...);
    - ``perimeter``: pixels, the chain through the boundary pixels' centres
      (scikit-image's estimator);
    - ``elongation``: ``e_b / e_a``, eigenvalues of the covariance of the
      boundary pixels (1 round, towards 0 elongated);
    - ``convexity``: convex-hull perimeter / cell perimeter (1 convex);
    - ``total_counts``, ``n_genes_by_counts``: transcripts and genes detected;
    - with marker tables: ``marker_cell_type`` (the type whose positive
      markers hold the largest share of the cell's counts) and
      ``negative_marker_fraction`` (share of the counts that are negative
      markers of that type).

    Parameters
    ----------
    sdata
        SpatialData object.
    labels_key
        Labels element of the segmentation; may be omitted when there is one.
    table_key
        Table annotating ``labels_key`` whose ``.obs`` receives the columns
        and whose counts are used. Default: the table annotating the labels;
        if there is none, a new table ``table_key_added`` is built with
        counts of the transcripts of ``points_key`` under each cell.
    points_key, gene_key
        Transcripts (and gene column) for the counts of a new table.
    pixel_size
        Microns per pixel of the labels; default: from their transformation
        to a micron coordinate system (``coordinate_system``).
    coordinate_system
        Micron coordinate system for ``area_um2``.
    positive_markers, negative_markers
        Marker tables: a DataFrame of cell types x genes (0/1), a CSV path or
        ``{cell type: [genes]}`` (see ``../sc_references`` in the docs).
    table_key_added
        Name of the table built when the labels have none; default
        ``gsn.run_keys(labels_key).table``.
    inplace
        Write the columns (and ``.uns["gsn_qc"]["cell_metrics"]`` with the
        parameters and per-column median / mean); otherwise only return them.
    overwrite
        Allow replacing an existing ``table_key_added``.

    Returns
    -------
    The per-cell DataFrame when ``inplace=False``, else ``None``.

    Examples
    --------
    >>> import gsn_spatial as gsn
    >>> sdata = gsn.datasets.synthetic_tissue((128, 128), seed=2)
    >>> gsn.qc.cell_metrics(sdata, labels_key="cells")
    >>> obs = sdata.tables["cells_table"].obs
    >>> bool((obs["area_um2"] == obs["area"] * 0.25).all()), bool(obs["convexity"].between(0, 1).all())
    (True, True)
    """
    labels_key, labels = labels_array(sdata, labels_key)
    if table_key is not None:
        table_key = _sdata.resolve_key(sdata, "tables", table_key, parameter="table_key")
        if labels_key not in _regions(sdata.tables[table_key]):
            raise ValueError(f"Table {table_key!r} (`table_key`) does not annotate labels {labels_key!r}.")
    else:
        table_key = table_for_labels(sdata, labels_key)
    new_table = table_key is None
    if new_table:
        points_key = _optional_points(sdata, points_key, labels_key)
        table_key_added = table_key_added or run_keys(labels_key).table
        if inplace:
            _sdata.check_new_keys(sdata, {table_key_added: "tables"}, overwrite=overwrite)
    elif table_key_added is not None:
        raise ValueError(
            f"`table_key_added` is only used when labels {labels_key!r} have no table; it has {table_key!r}."
        )
    pos_types = neg_types = None

    shape = shape_metrics(labels)
    um = pixel_size or microns_per_pixel(sdata, labels_key, coordinate_system=coordinate_system)
    frame = pd.DataFrame(
        {
            "area": shape.area,
            "perimeter": shape.perimeter,
            "elongation": shape.elongation,
            "convexity": shape.convexity,
        },
        index=pd.Index(shape.cell_ids, name=Keys.CELL_ID),
    )
    if um is not None:
        frame.insert(1, "area_um2", shape.area * um * um)
    counts = None
    if not new_table or points_key is not None:
        # An existing table's own counts, else the transcripts under each cell.
        counts = counts_for_labels(
            sdata,
            labels_key,
            labels,
            points_key=points_key if new_table else None,
            gene_key=gene_key,
            table_key=table_key,
        )
        frame["total_counts"] = np.asarray(counts.counts.sum(axis=1)).ravel().astype(np.int64)
        frame["n_genes_by_counts"] = genes_per_cell(counts.counts)
    if positive_markers is not None or negative_markers is not None:
        if positive_markers is None or negative_markers is None:
            raise ValueError("Pass both `positive_markers` and `negative_markers`, or neither.")
        if counts is None:
            raise ValueError("Marker metrics need counts: pass `points_key=` or a `table_key=` with counts.")
        pos_types, pos = read_markers(positive_markers, counts.gene_names, parameter="positive_markers")
        neg_types, neg = read_markers(negative_markers, counts.gene_names, parameter="negative_markers")
        if pos_types != neg_types:
            raise ValueError("`positive_markers` and `negative_markers` must list the same cell types in order.")
        res = negative_marker_contamination(counts.counts, pos, neg)
        names = np.array([*pos_types, None], dtype=object)
        frame["marker_cell_type"] = pd.Categorical(names[res.cell_type], categories=pos_types)
        frame["negative_marker_fraction"] = res.contamination

    params = {
        "labels_key": labels_key,
        "table_key": table_key if not new_table else table_key_added,
        "points_key": points_key if new_table else None,
        "coordinate_system": coordinate_system,
        "microns_per_pixel": um,
        "counts_from": counts.source if counts is not None else None,
        "markers": pos_types,
    }
    if not inplace:
        return frame
    summary = _summary(frame.drop(columns=["marker_cell_type"], errors="ignore"))
    record = {"params": {k: v for k, v in params.items() if v is not None}, "summary": summary, "version": __version__}
    if new_table:
        table = _new_table(frame, counts, labels_key)
    else:
        table = sdata.tables[table_key].copy()
        inst = _instance_key(table)
        ids = table.obs[inst].to_numpy().astype(np.int64)
        for col in frame.columns:
            values = frame[col].reindex(ids)
            table.obs[col] = values.to_numpy() if not isinstance(values.dtype, pd.CategoricalDtype) else values.values
    uns = dict(table.uns.get(UNS_KEY, {}))
    uns["cell_metrics"] = record
    table.uns[UNS_KEY] = uns
    name = table_key_added if new_table else table_key
    _sdata.store_elements(sdata, {name: table}, overwrite=True if not new_table else overwrite)
    return None


def _regions(table: ad.AnnData) -> list[str]:
    region = table.uns.get("spatialdata_attrs", {}).get("region")
    return [region] if isinstance(region, str) else list(region or [])


def _new_table(frame: pd.DataFrame, counts: Any, labels_key: str) -> ad.AnnData:
    import scipy.sparse as sp

    ids = frame.index.to_numpy().astype(np.int64)
    obs = frame.reset_index()
    obs[Keys.REGION] = pd.Categorical([labels_key] * len(obs), categories=[labels_key])
    obs.index = pd.Index([str(i) for i in ids])
    if counts is not None:
        x, var = counts.counts, pd.DataFrame(index=pd.Index(counts.gene_names))
        spatial = counts.centroids
    else:
        x, var, spatial = sp.csr_matrix((len(ids), 0), dtype=np.int32), pd.DataFrame(index=pd.Index([])), None
    table = ad.AnnData(X=x, obs=obs, var=var)
    if spatial is not None:
        table.obsm["spatial"] = spatial
    return TableModel.parse(table, region=labels_key, region_key=Keys.REGION, instance_key=Keys.CELL_ID)
