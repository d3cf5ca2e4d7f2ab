"""Helpers shared by the QC functions: labels as arrays, microns per pixel, transcripts on a labels grid,
the table of a labels element, marker tables."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from spatialdata import SpatialData

from gsn_spatial import _sdata
from gsn_spatial._sdata import MICRON_SYSTEMS, microns_per_pixel, pixel_to_microns  # noqa: F401 - used by qc
from gsn_spatial.core.assign.counts import lookup_cells


def labels_array(sdata: SpatialData, key: str | None, *, parameter: str = "labels_key") -> tuple[str, np.ndarray]:
    """Resolve a labels key and load its full-resolution array."""
    key = _sdata.resolve_key(sdata, "labels", key, parameter=parameter)
    arr = np.asarray(_sdata.scale0(sdata.labels[key]).data)
    if arr.ndim != 2:
        raise ValueError(f"Labels {key!r} must be 2-D (y, x), got dims of shape {arr.shape}.")
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"Labels {key!r} must have an integer dtype, got {arr.dtype}.")
    return key, arr


def reference_array(sdata: SpatialData, reference_key: str, labels_key: str, shape: tuple[int, ...]) -> np.ndarray:
    """The reference cells on the grid of labels ``labels_key`` (of ``shape``).

    A labels element must share that grid; a shapes element of cell polygons or circles (a vendor's boundaries, as
    MERSCOPE's) is drawn onto it through the transformations (:func:`gsn_spatial._sdata.shapes_to_labels`).
    """
    if isinstance(reference_key, str) and reference_key in sdata.shapes:
        return _sdata.shapes_to_labels(sdata, reference_key, labels_key, tuple(shape))
    reference_key, ref = labels_array(sdata, reference_key, parameter="reference_key")
    if ref.shape != tuple(shape):
        raise ValueError(f"Reference {reference_key!r} {ref.shape} and labels {labels_key!r} {shape} differ in shape.")
    return ref


def points_on_grid(
    sdata: SpatialData, points_key: str, grid_key: str, *, gene_key: str | None = None, with_genes: bool = False
) -> _sdata.PointsInPixels:
    """Transcripts of ``points_key`` on the pixel grid of ``grid_key`` (an image or labels element)."""
    to_px = _sdata.points_to_pixels(sdata, points_key, grid_key)
    points = sdata.points[points_key]
    if with_genes:
        gene_key = _sdata.resolve_gene_key(points, gene_key, points_key=points_key)
        return _sdata.read_points(points, gene_key, to_px, points_key=points_key)
    xy = points[["x", "y"]].compute().to_numpy(dtype=np.float64)
    if not np.isfinite(xy).all():
        raise ValueError(f"Points {points_key!r} have NaN or infinite coordinates; drop those rows first.")
    pix = xy @ to_px[:2, :2].T + to_px[:2, 2]
    return _sdata.PointsInPixels(xy, pix, np.zeros(len(xy), np.int32), [])


def cells_of_points(labels: np.ndarray, xy_pixels: np.ndarray) -> np.ndarray:
    """Cell id under each transcript (0 outside cells or outside the image)."""
    return lookup_cells(labels, xy_pixels).astype(np.int64)


def table_for_labels(sdata: SpatialData, labels_key: str) -> str | None:
    """Key of the (first) table that annotates ``labels_key``, or ``None``."""
    for name, table in sdata.tables.items():
        attrs = table.uns.get("spatialdata_attrs", {})
        region = attrs.get("region")
        regions = [region] if isinstance(region, str) else list(region or [])
        if labels_key in regions:
            return name
    return None


def read_markers(markers: Any, gene_names: list[str], *, parameter: str) -> tuple[list[str], np.ndarray]:
    """A marker table as ``(cell type names, boolean types x genes matrix aligned to gene_names)``.

    ``markers`` is a DataFrame of cell types (rows) x genes (columns) with
    0/1 (or boolean) entries, as in the BIDCell / Xenium breast reference
    tables, a path to such a CSV (first column = cell type), or a mapping
    ``{cell type: [genes]}``. Genes absent from the panel are ignored.
    """
    if isinstance(markers, (str, Path)):
        path = Path(markers)
        if not path.exists():
            raise FileNotFoundError(f"`{parameter}`: no marker table at {str(path)!r}.")
        markers = pd.read_csv(path, index_col=0)
    if isinstance(markers, Mapping):
        types = [str(t) for t in markers]
        index = {g: i for i, g in enumerate(gene_names)}
        mat = np.zeros((len(types), len(gene_names)), dtype=bool)
        for row, genes in enumerate(markers.values()):
            if isinstance(genes, str):
                raise TypeError(f"`{parameter}`: each cell type must map to a list of genes, not a string.")
            for g in genes:
                if str(g) in index:
                    mat[row, index[str(g)]] = True
        return types, _nonempty(mat, parameter)
    if isinstance(markers, pd.DataFrame):
        numeric = markers.apply(pd.to_numeric, errors="coerce")
        if numeric.isna().any().any():
            raise ValueError(f"`{parameter}` must hold 0/1 entries (cell types x genes).")
        aligned = numeric.reindex(columns=gene_names, fill_value=0)
        return [str(t) for t in markers.index], _nonempty(aligned.to_numpy() > 0, parameter)
    raise TypeError(
        f"`{parameter}` must be a DataFrame (cell types x genes), a CSV path or a mapping of cell type to genes, "
        f"got {type(markers).__name__}."
    )


def _nonempty(mat: np.ndarray, parameter: str) -> np.ndarray:
    if not mat.any():
        raise ValueError(f"`{parameter}`: none of the marker genes is in the gene panel.")
    return mat
