"""``gsn.tl.watershed_nuclei``: the image-only baseline as a labels element."""

from __future__ import annotations

import numpy as np
from spatialdata import SpatialData
from spatialdata.models import Labels2DModel
from spatialdata.transformations import get_transformation

from gsn_spatial import _sdata
from gsn_spatial.core.baseline import watershed_nuclei as _watershed


def watershed_nuclei(
    sdata: SpatialData,
    *,
    image_key: str | None = None,
    image_channel: int | str | None = None,
    expand: float = 0.0,
    labels_key_added: str = "watershed_nuclei",
    overwrite: bool = False,
) -> None:
    """Image-only baseline: nucleus watershed, optionally expanded by ``expand`` pixels.

    Writes ``sdata.labels[labels_key_added]`` (uint32, the image's grid and
    transformations). The whole image is loaded: meant for crops and
    comparisons, not whole slides.

    Examples
    --------
    >>> import gsn_spatial as gsn
    >>> sdata = gsn.datasets.synthetic_tissue((128, 128), seed=2)
    >>> gsn.tl.watershed_nuclei(sdata)
    >>> int(sdata.labels["watershed_nuclei"].max()) > 5
    True
    """
    image_key = _sdata.resolve_key(sdata, "images", image_key, parameter="image_key")
    if expand < 0:
        raise ValueError(f"`expand` must be >= 0, got {expand}.")
    _sdata.check_new_keys(sdata, {labels_key_added: "labels"}, overwrite=overwrite)
    image_el = sdata.images[image_key]
    plane = _sdata.select_channel(_sdata.scale0(image_el), image_channel, image_key=image_key)
    labels = _watershed(np.asarray(plane.data), expand=expand)
    element = Labels2DModel.parse(
        labels, dims=("y", "x"), transformations=dict(get_transformation(image_el, get_all=True))
    )
    _sdata.store_elements(sdata, {labels_key_added: element}, overwrite=overwrite)
