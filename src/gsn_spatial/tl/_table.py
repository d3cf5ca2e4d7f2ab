"""The cell x gene table of a run: counts, positions in the global frame and the run's parameters."""

from __future__ import annotations

from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
from spatialdata.models import TableModel

from gsn_spatial import __version__, _sdata
from gsn_spatial._constants import Keys


def build_table(
    cell_ids: np.ndarray,
    area: np.ndarray,
    centroid_yx: np.ndarray,
    counts: sp.csr_matrix,
    gene_names: list[str],
    *,
    region: str,
    params: dict[str, Any],
    area_um2: np.ndarray | None = None,
    labels_element: Any = None,
    keys: dict[str, str] | None = None,
    apart: dict[str, np.ndarray] | None = None,
) -> ad.AnnData:
    """Cell x gene AnnData annotating ``region``: one row per cell id (sorted, ids present in the labels).

    ``centroid_yx`` and ``area`` are in pixels of the labels' grid, centroids
    as pixel-centre coordinates (a pixel ``(r, c)`` spans ``[c, c + 1) x
    [r, r + 1)``). ``obsm["spatial_pixels"]`` holds them as ``(x, y)``;
    ``obsm["spatial"]`` and ``obs["area"]`` are in the global coordinate
    system of ``labels_element`` (see :func:`gsn_spatial._sdata.global_frame`),
    or in pixels when no element is given. ``apart`` maps ``obs`` columns to
    the genes counted there instead of in ``X`` (control probes, low-quality calls).
    """
    counted_apart = {
        col: np.asarray(counts[:, m].sum(axis=1)).ravel().astype(np.int64) for col, m in (apart or {}).items()
    }
    if apart:
        keep = ~np.logical_or.reduce(list(apart.values()))
        counts = counts[:, keep].tocsr()
        gene_names = [g for g, k in zip(gene_names, keep, strict=True) if k]
    total = np.asarray(counts.sum(axis=1)).ravel().astype(np.int64)
    xy_pixels = np.asarray(centroid_yx, dtype=float).reshape(-1, 2)[:, ::-1].copy()
    area_pixels = np.asarray(area, dtype=float)
    spatial = {"coordinate_system": None, "units": "pixels of the labels' grid"}
    xy, area_global, xy_um = xy_pixels, area_pixels, None
    if labels_element is not None:
        frame = _sdata.global_frame(labels_element)
        xy = frame.apply(xy_pixels)
        area_global = area_pixels * frame.area_scale
        spatial = {"coordinate_system": frame.name, "units": frame.units}
        microns = _sdata.micron_frame(labels_element)
        if microns is not None and frame.units != "um":
            xy_um = microns.apply(xy_pixels)
            spatial["microns_coordinate_system"] = microns.name
    obs = pd.DataFrame(
        {
            Keys.CELL_ID: cell_ids.astype(np.int64),
            Keys.REGION: pd.Categorical([region] * len(cell_ids), categories=[region]),
            "n_transcripts": total,
            **counted_apart,
            "area": area_global,
            "area_pixels": np.rint(area_pixels).astype(np.int64),
            **({"area_um2": np.asarray(area_um2, dtype=float)} if area_um2 is not None else {}),
        },
        index=pd.Index([str(i) for i in cell_ids]),
    )
    table = ad.AnnData(X=counts, obs=obs, var=pd.DataFrame(index=pd.Index(gene_names)))
    table.obsm["spatial"] = xy
    table.obsm["spatial_pixels"] = xy_pixels
    if xy_um is not None:
        table.obsm["spatial_um"] = xy_um
    table.uns[Keys.UNS] = {"params": params, "version": __version__, "spatial": spatial, "keys": keys or {}}
    if not len(cell_ids):
        # SpatialData cannot validate a table that annotates a region with no rows, so an empty result is a
        # valid table that annotates nothing; uns["gsn"]["params"] still names the labels it belongs to.
        return TableModel.parse(table)
    return TableModel.parse(table, region=region, region_key=Keys.REGION, instance_key=Keys.CELL_ID)
