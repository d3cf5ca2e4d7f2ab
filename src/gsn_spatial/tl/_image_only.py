"""``segment`` on an object with a nucleus stain and no transcripts: cells from the image alone.

The default model was trained with images whose RNA map is empty (the DSB 2018 nuclei of many microscopes),
where a cell is its nucleus, so it segments a stain alone (held-out DSB images: F1@0.5 0.865, docs/models.md).
The run is the usual one, on a view of the object that holds the image and an empty points element; its labels,
boundaries and table (cells x no genes) are then stored in the object, all or nothing.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import dask.dataframe as dd
import numpy as np
import pandas as pd
from spatialdata import SpatialData
from spatialdata.models import PointsModel
from spatialdata.transformations import get_transformation

from gsn_spatial import _sdata
from gsn_spatial._constants import Keys, run_keys

logger = logging.getLogger(__name__)

#: Key of the empty points element of an image-only run (never stored; ``binned_check`` lets it be empty).
IMAGE_ONLY_POINTS = "gsn_no_transcripts"


def empty_points_on(image: Any) -> dd.DataFrame:
    """A points element with no rows, in the image's coordinate systems (so that it composes with it)."""
    frame = pd.DataFrame({"x": np.zeros(0), "y": np.zeros(0), "gene": pd.Categorical([], categories=["none"])})
    return PointsModel.parse(
        dd.from_pandas(frame, npartitions=1), coordinates={"x": "x", "y": "y"}, feature_key="gene",
        transformations=dict(get_transformation(image, get_all=True)),
    )  # fmt: skip


def image_only_when_no_points(segment: Callable[..., None]) -> Callable[..., None]:
    """Run ``segment`` from the image alone where the object has no points element and none is named."""

    @functools.wraps(segment)
    def wrapper(sdata: SpatialData, **kwargs: Any) -> None:
        if isinstance(sdata, SpatialData) and kwargs.get("points_key") is None and not sdata.points:
            return _segment_image_only(segment, sdata, **kwargs)
        return segment(sdata, **kwargs)

    return wrapper


def _segment_image_only(segment: Callable[..., None], sdata: SpatialData, **kwargs: Any) -> None:
    from gsn_spatial.tl._inputs import resolve_model

    image_key = _sdata.resolve_key(sdata, "images", kwargs.pop("image_key", None), parameter="image_key")
    keys = run_keys(kwargs.get("labels_key_added") or Keys.LABELS)
    table_key = kwargs.get("table_key_added") or keys.table
    outputs = {keys.labels: "labels", table_key: "tables", keys.boundaries: "shapes"}
    overwrite = bool(kwargs.pop("overwrite", False))
    _sdata.check_new_keys(sdata, outputs, overwrite=overwrite)
    logger.warning(
        "No points element: segmenting image %r from the stain alone (cells as the model draws them without RNA, "
        "about their nuclei); the table has no genes.", image_key,
    )  # fmt: skip
    kwargs["model"] = model = resolve_model(kwargs.get("model"))  # resolved (and loaded) once, here
    if kwargs.get("confidence_threshold") is None:
        # The model's single threshold, chosen on validation data that includes image-only DSB images; its table by
        # transcript density would read an empty map as the sparsest tissue.
        kwargs["confidence_threshold"] = model.decode_options().get("confidence_threshold")
    view = SpatialData(
        images={image_key: sdata.images[image_key]}, points={IMAGE_ONLY_POINTS: empty_points_on(sdata[image_key])}
    )
    kwargs.update(image_key=image_key, points_key=IMAGE_ONLY_POINTS, assignment="mask", gene_key=None)
    segment(view, **kwargs)
    table = view.tables[table_key][:, :0].copy()  # no genes (the empty points' placeholder category goes)
    view.tables[table_key] = table
    gsn = table.uns["gsn"]
    gsn["params"].update(points_key=None, gene_key=None, image_only=True, assignment_key=None)
    gsn["keys"].pop("assignment", None)
    elements = {name: view[name] for name in outputs}
    _sdata.store_elements(sdata, elements, overwrite=overwrite)
