"""``from_image_and_transcripts``: a SpatialData object from arrays and a transcript table."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from spatialdata import SpatialData
from spatialdata.models import Image2DModel, Labels2DModel
from spatialdata.transformations import Identity, Scale, Sequence, Translation

from gsn_spatial import _sdata
from gsn_spatial._constants import Keys


def _xy(values: tuple[float, float], name: str) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in values)
    except (TypeError, ValueError) as err:
        raise TypeError(f"`{name}` must be a pair of numbers (x, y), got {values!r}.") from err
    return a, b


def from_image_and_transcripts(
    image: np.ndarray | None,
    transcripts: pd.DataFrame,
    *,
    x: str = "x",
    y: str = "y",
    gene: str = "gene",
    pixel_size: float = 1.0,
    offset_px: tuple[float, float] = (0.0, 0.0),
    flip_x: bool = False,
    flip_y: bool = False,
    microns_per_pixel: float | None = None,
    extra_columns: list[str] | None = None,
    labels: Mapping[str, np.ndarray] | None = None,
    image_key: str = "image",
    points_key: str = "transcripts",
    channel_names: list[str] | None = None,
    points_chunksize: int = 500_000,
) -> SpatialData:
    """A SpatialData object from an image array and a transcript table, with correct transformations.

    The image's pixel grid is coordinate system ``"global"`` (as in
    spatialdata-io's readers). The transcripts keep their own coordinates and
    units and map to the grid by

    .. code-block:: text

        col = sx * x / pixel_size + offset_px[0]     sx = -1 if flip_x else 1
        row = sy * y / pixel_size + offset_px[1]     sy = -1 if flip_y else 1

    ``pixel_size`` is the size of one image pixel in the transcripts' unit
    (microns per pixel for Xenium or MERSCOPE tables in microns, 1 for tables
    in pixels such as CosMx's ``*_px`` columns). A transcript at ``(col, row)``
    lies in pixel ``(floor(row), floor(col))``, SpatialData's convention.

    A ``"microns"`` coordinate system is added when the physical pixel size is
    known: ``microns_per_pixel``, or ``pixel_size`` when that differs from 1
    (transcripts in microns). Flipped axes stay flipped there (it is the
    slide's frame), so the image appears mirrored in ``"microns"`` but not in
    ``"global"``.

    Parameters
    ----------
    image
        ``(y, x)`` or ``(c, y, x)`` array (the nucleus stain and any other
        channel), or ``None`` when there is no image (then ``labels`` gives
        the pixel grid).
    transcripts
        Table with coordinate and gene columns, one row per transcript.
    x, y, gene
        Column names in ``transcripts``.
    pixel_size
        Image pixel size in the transcripts' unit.
    offset_px
        ``(x, y)`` shift in pixels, added after scaling and flipping.
    flip_x, flip_y
        The transcripts' axis points the other way from the image's
        (CosMx's ``y_local_px`` points up, image rows point down).
    microns_per_pixel
        Physical size of an image pixel, for the ``"microns"`` system.
    extra_columns
        Further columns to keep on the points (a vendor cell id, a quality
        value).
    labels
        Labels arrays ``(y, x)`` on the image's grid, by element name (a vendor
        segmentation, a reference); ids are kept as they are.
    image_key, points_key
        Names of the image and points elements.
    channel_names
        Names of the image's channels; default ``c0``, ``c1``, ...
    points_chunksize
        Rows per partition of the points' dask dataframe.

    Returns
    -------
    SpatialData
        Image ``image_key`` (when given), labels, and points ``points_key``
        with columns ``x``, ``y`` (the table's coordinates, unchanged),
        categorical ``gene`` (the ``feature_key``) and ``extra_columns``.

    Examples
    --------
    Xenium-like transcripts in microns of the slide, 0.5 um pixels, the image's
    top-left corner at pixel (100, 40) of the slide:

    >>> img = np.zeros((10, 20), np.uint16)
    >>> tx = pd.DataFrame({"x_um": [51.0, 52.0], "y_um": [20.5, 21.0], "feature": ["A", "B"]})
    >>> s = from_image_and_transcripts(
    ...     img, tx, x="x_um", y="y_um", gene="feature", pixel_size=0.5, offset_px=(-100, -40)
    ... )
    >>> sorted(s.coordinate_systems)
    ['global', 'microns']

    CosMx-like transcripts in pixels with the y axis pointing up:

    >>> tx = pd.DataFrame({"x_px": [3.5], "y_px": [7.5], "target": ["A"]})
    >>> s = from_image_and_transcripts(img, tx, x="x_px", y="y_px", gene="target", flip_y=True, offset_px=(0, 10))
    >>> from spatialdata.transformations import get_transformation
    >>> get_transformation(s.points["transcripts"]).to_affine_matrix(("x", "y"), ("x", "y"))[1].tolist()
    [0.0, -1.0, 10.0]
    """
    if not isinstance(transcripts, pd.DataFrame):
        raise TypeError(f"`transcripts` must be a pandas DataFrame, got {type(transcripts).__name__}.")
    for col, param in ((x, "x"), (y, "y"), (gene, "gene"), *((c, "extra_columns") for c in extra_columns or [])):
        if col not in transcripts.columns:
            raise KeyError(
                f"Column {col!r} (`{param}`) not in the transcript table; columns: {list(transcripts.columns)}."
            )
    if not pixel_size > 0:
        raise ValueError(f"`pixel_size` must be positive, got {pixel_size}.")
    if microns_per_pixel is not None and not microns_per_pixel > 0:
        raise ValueError(f"`microns_per_pixel` must be positive, got {microns_per_pixel}.")
    ox, oy = _xy(offset_px, "offset_px")
    sx, sy = (-1.0 if flip_x else 1.0), (-1.0 if flip_y else 1.0)
    if microns_per_pixel is None and pixel_size != 1:
        microns_per_pixel = float(pixel_size)

    # Points -> pixels; pixels -> microns when the physical size is known.
    to_pixels = Sequence(
        [Scale([sx / pixel_size, sy / pixel_size], axes=("x", "y")), Translation([ox, oy], axes=("x", "y"))]
    )
    points_tf: dict = {"global": to_pixels}
    raster_tf: dict = {"global": Identity()}
    if microns_per_pixel is not None:
        per_unit = microns_per_pixel / pixel_size
        points_tf["microns"] = Identity() if per_unit == 1 else Scale([per_unit, per_unit], axes=("x", "y"))
        raster_tf["microns"] = Sequence(
            [
                Translation([-ox, -oy], axes=("x", "y")),
                Scale([sx * microns_per_pixel, sy * microns_per_pixel], axes=("x", "y")),
            ]
        )

    images = {}
    shape = None
    if image is not None:
        arr = np.asarray(image)
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3:
            raise ValueError(f"`image` must be (y, x) or (c, y, x), got shape {np.asarray(image).shape}.")
        names = list(channel_names) if channel_names is not None else [f"c{i}" for i in range(arr.shape[0])]
        if len(names) != arr.shape[0]:
            raise ValueError(f"{len(names)} `channel_names` for {arr.shape[0]} channels.")
        images[image_key] = Image2DModel.parse(
            arr, dims=("c", "y", "x"), c_coords=names, transformations=dict(raster_tf)
        )
        shape = arr.shape[1:]
    labels_elements = {}
    for name, lab in (labels or {}).items():
        lab = np.asarray(lab)
        if lab.ndim != 2 or not np.issubdtype(lab.dtype, np.integer):
            raise ValueError(f"Labels {name!r} must be a 2-D integer array, got {lab.dtype} {lab.shape}.")
        if shape is not None and lab.shape != shape:
            raise ValueError(f"Labels {name!r} {lab.shape} and the image {shape} differ in shape.")
        shape = lab.shape
        labels_elements[name] = Labels2DModel.parse(lab, dims=("y", "x"), transformations=dict(raster_tf))
    if shape is None:
        raise ValueError("Give an `image` or at least one array in `labels`: the pixel grid comes from them.")

    frame = pd.DataFrame(
        {
            "x": transcripts[x].to_numpy(dtype=np.float64),
            "y": transcripts[y].to_numpy(dtype=np.float64),
            "gene": transcripts[gene].astype(str).astype("category").to_numpy(),
        }
    )
    for col in extra_columns or []:
        frame[col] = transcripts[col].to_numpy()
    points = _sdata.transcripts_element(frame, points_tf, chunksize=points_chunksize)
    sdata = SpatialData(images=images, labels=labels_elements, points={points_key: points})
    # The elements' roles, as sopa's readers record them (sopa.aggregate and gsn_spatial then find them).
    roles = {"images": next(iter(images), None), "points": points_key}
    sdata.attrs.update({Keys.ROLE_ATTRS[kind]: key for kind, key in roles.items() if key is not None})
    return sdata
