"""Labels from a per-transcript cell assignment (a vendor's cells as noisy initial labels)."""

from __future__ import annotations

import numpy as np
from spatialdata import SpatialData
from spatialdata.models import Labels2DModel
from spatialdata.transformations import get_transformation

from gsn_spatial import _sdata


def labels_from_assignment(
    sdata: SpatialData,
    *,
    cell_id_key: str,
    points_key: str | None = None,
    image_key: str | None = None,
    max_distance: float = 5.0,
    labels_key_added: str = "assignment_labels",
    overwrite: bool = False,
) -> None:
    """Rasterise a per-transcript cell assignment (e.g. a vendor's) into a labels element.

    Each pixel takes the cell of its nearest assigned transcript within
    ``max_distance`` pixels (image grid); each cell keeps its largest piece
    with holes filled. Useful as noisy initial labels for
    :func:`gsn_spatial.tl.train`.

    Parameters
    ----------
    cell_id_key
        Integer column of the points holding the cell id (0 or negative = unassigned).
    max_distance
        Reach of each transcript, in image pixels.
    labels_key_added
        Labels element written (uint32, image's grid and transformations).

    Examples
    --------
    >>> import gsn_spatial as gsn
    >>> sdata = gsn.datasets.synthetic_tissue((128, 128), seed=0)
    >>> gsn.pp.labels_from_assignment(sdata, cell_id_key="cell_id", max_distance=3)
    >>> int(sdata.labels["assignment_labels"].max()) > 0
    True
    """
    from gsn_spatial.core.assign.counts import rasterise_assignment

    image_key = _sdata.resolve_key(sdata, "images", image_key, parameter="image_key")
    points_key = _sdata.resolve_key(sdata, "points", points_key, parameter="points_key", beside=image_key)
    _sdata.check_new_keys(sdata, {labels_key_added: "labels"}, overwrite=overwrite)
    points_el = sdata.points[points_key]
    if cell_id_key not in points_el.columns:
        raise KeyError(f"Points {points_key!r} have no column {cell_id_key!r}; columns: {list(points_el.columns)}.")
    frame = points_el[["x", "y", cell_id_key]].compute()
    ids = frame[cell_id_key].to_numpy()
    if not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"Column {cell_id_key!r} must hold integer cell ids, got dtype {ids.dtype}.")
    m = _sdata.points_to_pixels(sdata, points_key, image_key)
    xy = frame[["x", "y"]].to_numpy(dtype=np.float64) @ m[:2, :2].T + m[:2, 2]
    plane = _sdata.scale0(sdata.images[image_key])
    shape = (int(plane.sizes["y"]), int(plane.sizes["x"]))
    labels = rasterise_assignment(xy, np.where(ids > 0, ids, 0), shape, max_distance=max_distance)
    element = Labels2DModel.parse(
        labels.astype(np.uint32),
        dims=("y", "x"),
        transformations=dict(get_transformation(sdata.images[image_key], get_all=True)),
    )
    _sdata.store_elements(sdata, {labels_key_added: element}, overwrite=overwrite)
