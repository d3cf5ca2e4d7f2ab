"""Xenium Explorer export of a gsn run, through sopa's writer (``gsn_spatial[sopa]``)."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
from spatialdata import SpatialData
from spatialdata.models import TableModel

from gsn_spatial._constants import Keys, run_keys

logger = logging.getLogger(__name__)


def write_explorer(
    sdata: SpatialData,
    path: str | Path,
    *,
    labels_key: str = Keys.LABELS,
    pixel_size: float | None = None,
    **kwargs,
) -> Path:
    """Write one gsn run as a Xenium Explorer folder (``experiment.xenium`` and its zarr files).

    The run's image, boundaries, transcripts and table are handed to
    ``sopa.io.explorer.write`` unchanged, in a view whose table annotates the
    boundaries (the Explorer reads cells from shapes; a gsn table annotates
    the labels by default, with the same ``cell_id``). Nothing is added to
    ``sdata`` or its store.

    Parameters
    ----------
    sdata
        SpatialData object holding a ``gsn.tl.segment`` run.
    path
        Folder to write (created).
    labels_key
        The run's labels key; its table and boundaries are named from it
        (:func:`gsn_spatial.run_keys`).
    pixel_size
        Microns per image pixel for the Explorer's scale bar; default: the
        pixel size the run used (``uns["gsn"]["params"]["pixel_size"]``).
    **kwargs
        Passed to ``sopa.io.explorer.write`` (``mode``, ``polygon_max_vertices``, ...).

    Returns
    -------
    The folder written; open ``<path>/experiment.xenium`` in Xenium Explorer.

    Examples
    --------
    >>> import gsn_spatial as gsn                                   # doctest: +SKIP
    >>> gsn.tl.segment(sdata)                                       # doctest: +SKIP
    >>> gsn.io.write_explorer(sdata, "explorer")                    # doctest: +SKIP
    """
    try:
        from sopa.io.explorer import write
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("write_explorer needs sopa: pip install 'gsn_spatial[sopa]'.") from err
    if not isinstance(sdata, SpatialData):
        raise TypeError(f"`sdata` must be a SpatialData object, got {type(sdata).__name__}.")
    keys = run_keys(labels_key)
    if keys.table not in sdata.tables:
        raise KeyError(f"No table {keys.table!r} of the run {labels_key!r}; run gsn.tl.segment first.")
    table = sdata.tables[keys.table]
    run = table.uns.get(Keys.UNS, {})
    boundaries = run.get("keys", {}).get("boundaries") or keys.boundaries
    if boundaries not in sdata.shapes:
        raise KeyError(f"No boundaries {boundaries!r} of the run {labels_key!r} (a run with no cells has none).")
    params = run.get("params", {})
    image_key, points_key = params.get("image_key"), params.get("points_key")
    if image_key not in sdata.images or points_key not in sdata.points:
        raise KeyError(f"The run's image {image_key!r} or points {points_key!r} are no longer in `sdata`.")
    pixel_size = float(pixel_size or params.get("pixel_size") or 0.2125)
    shapes = sdata.shapes[boundaries]
    if Keys.CELL_ID in shapes.columns and not shapes.index.equals(pd.Index(shapes[Keys.CELL_ID])):
        # Re-indexed by another tool (sopa.aggregate gives the shapes it aggregates its own ids): back to gsn's.
        shapes = shapes.set_index(pd.Index(shapes[Keys.CELL_ID].to_numpy()))
    has_polygon = table.obs[Keys.CELL_ID].isin(shapes.index).to_numpy()
    if not has_polygon.all():
        # sopa.aggregate's filters (a dim stain, few transcripts) drop cells' polygons from the boundaries.
        logger.warning(
            "%d of the %d cells of %r have no polygon in %r (dropped by another tool, such as sopa.aggregate's "
            "filters); the Explorer folder leaves them out.",
            int((~has_polygon).sum()), len(has_polygon), keys.table, boundaries,
        )  # fmt: skip
    view_table = table[has_polygon].copy()
    view_table.obs[Keys.REGION] = boundaries
    view_table.obs[Keys.REGION] = view_table.obs[Keys.REGION].astype("category")
    del view_table.uns[TableModel.ATTRS_KEY]
    view_table = TableModel.parse(view_table, region=boundaries, region_key=Keys.REGION, instance_key=Keys.CELL_ID)
    view = SpatialData(
        images={image_key: sdata.images[image_key]},
        shapes={boundaries: shapes},
        points={points_key: sdata.points[points_key]},
        tables={"table": view_table},
    )
    path = Path(path)
    write(
        str(path),
        view,
        table_key="table",
        image_key=image_key,
        shapes_key=boundaries,
        points_key=points_key,
        gene_column=params.get("gene_key"),
        pixel_size=pixel_size,
        **kwargs,
    )
    return path
