"""Building SpatialData objects from raw files: an image array plus a transcript table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from spatialdata import SpatialData
from spatialdata.models import Image2DModel, PointsModel
from spatialdata.transformations import Identity, Scale, Sequence, Translation


def from_image_and_transcripts(
    image: np.ndarray,
    transcripts: pd.DataFrame,
    *,
    x: str = "x",
    y: str = "y",
    gene: str = "gene",
    pixel_size: float = 1.0,
    offset_px: tuple[float, float] = (0.0, 0.0),
    extra_columns: list[str] | None = None,
    image_key: str = "image",
    points_key: str = "transcripts",
    channel_names: list[str] | None = None,
    points_chunksize: int = 500_000,
) -> SpatialData:
    """A SpatialData object from an image array and a transcript table, with correct transformations.

    The image defines coordinate system ``"global"`` (its pixel grid). The
    transcripts keep their own coordinates and map to the grid by
    ``pixel = coordinate / pixel_size + offset_px``: ``pixel_size`` is the
    transcripts' unit per pixel (microns per pixel for Xenium, 1 for tables
    already in pixels) and ``offset_px`` the ``(x, y)`` pixel shift. A
    ``"microns"`` system is added when ``pixel_size != 1``.

    Parameters
    ----------
    image
        ``(y, x)`` or ``(c, y, x)`` array.
    transcripts
        Table with coordinate and gene columns.
    x, y, gene
        Column names in ``transcripts``.
    extra_columns
        Further columns to keep on the points (e.g. a vendor cell id).

    Returns
    -------
    SpatialData
        Image ``image_key`` and points ``points_key`` (``x``, ``y``, categorical
        ``gene`` as ``feature_key``).

    Examples
    --------
    >>> img = np.zeros((10, 20), np.uint16)
    >>> tx = pd.DataFrame({"x_um": [1.0, 2.0], "y_um": [0.5, 1.0], "feature": ["A", "B"]})
    >>> s = from_image_and_transcripts(img, tx, x="x_um", y="y_um", gene="feature", pixel_size=0.5)
    >>> sorted(s.coordinate_systems)
    ['global', 'microns']
    """
    for col in (x, y, gene, *(extra_columns or [])):
        if col not in transcripts.columns:
            raise KeyError(f"Column {col!r} not in the transcript table; columns: {list(transcripts.columns)}.")
    if pixel_size <= 0:
        raise ValueError(f"`pixel_size` must be positive, got {pixel_size}.")
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"`image` must be (y, x) or (c, y, x), got shape {np.asarray(image).shape}.")
    ox, oy = offset_px
    to_pixels = Sequence(
        [Scale([1 / pixel_size, 1 / pixel_size], axes=("x", "y")), Translation([ox, oy], axes=("x", "y"))]
    )
    points_tf = {"global": to_pixels}
    image_tf = {"global": Identity()}
    if pixel_size != 1:
        points_tf["microns"] = Identity()
        image_tf["microns"] = Sequence(
            [Translation([-ox, -oy], axes=("x", "y")), Scale([pixel_size, pixel_size], axes=("x", "y"))]
        )
    names = list(channel_names) if channel_names is not None else [f"c{i}" for i in range(arr.shape[0])]
    if len(names) != arr.shape[0]:
        raise ValueError(f"{len(names)} channel names for {arr.shape[0]} channels.")
    img = Image2DModel.parse(arr, dims=("c", "y", "x"), c_coords=names, transformations=image_tf)
    frame = pd.DataFrame(
        {
            "x": transcripts[x].to_numpy(dtype=np.float64),
            "y": transcripts[y].to_numpy(dtype=np.float64),
            "gene": transcripts[gene].astype("category").to_numpy(),
        }
    )
    for col in extra_columns or []:
        frame[col] = transcripts[col].to_numpy()
    points = PointsModel.parse(
        frame,
        coordinates={"x": "x", "y": "y"},
        feature_key="gene",
        transformations=points_tf,
        chunksize=points_chunksize,
    )
    return SpatialData(images={image_key: img}, points={points_key: points})


def read_xenium_crop(folder: str | Path) -> SpatialData:
    """The Xenium breast crop of ``shared/data/xenium_breast_crop`` (DAPI + transcripts).

    Transcripts are in microns of the full slide; the verified mapping is
    ``col = x / 0.2125 - 5000``, ``row = y / 0.2125 - 1000``. The vendor's
    assignment is kept as the column ``vendor_cell_id`` (0 = unassigned),
    ``overlaps_nucleus`` too.
    """
    import tifffile

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"No Xenium crop folder at {str(folder)!r}.")
    image = tifffile.imread(folder / "morphology_mip.tif")
    tx = pd.read_csv(folder / "transcripts.csv.gz")
    codes, _ = pd.factorize(tx["cell_id"].astype(str))
    unassigned = tx["cell_id"].astype(str).isin(["-1", "UNASSIGNED"])
    tx["vendor_cell_id"] = np.where(unassigned, 0, codes + 1).astype(np.int64)
    return from_image_and_transcripts(
        image,
        tx,
        x="x_location",
        y="y_location",
        gene="feature_name",
        pixel_size=0.2125,
        offset_px=(-5000.0, -1000.0),
        extra_columns=["vendor_cell_id", "overlaps_nucleus"],
        image_key="morphology_mip",
        channel_names=["DAPI"],
    )


__all__ = ["from_image_and_transcripts", "read_xenium_crop"]
