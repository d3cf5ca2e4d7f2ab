"""A simulated tissue with known truth as a SpatialData object, imaged at any pixel size."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from spatialdata import SpatialData
from spatialdata.models import Image2DModel, Labels2DModel
from spatialdata.transformations import Identity, Scale, Sequence, Translation

from gsn_spatial import _sdata
from gsn_spatial.core.simulate.tissue import TissueParameters, simulate_tissue


def synthetic_tissue(
    shape: tuple[int, int] = (1024, 1024),
    seed: int = 0,
    *,
    pixel_size: float = 0.5,
    origin_um: tuple[float, float] = (1250.0, 830.0),
    cell_diameter_um: float = 14.0,
    density: float = 0.85,
    transcripts_per_cell: float = 80.0,
    background_fraction: float = 0.05,
    n_genes: int = 40,
    n_cell_types: int = 5,
    noise: float = 0.05,
    points_chunksize: int = 50_000,
    imaged_at: float | None = None,
    global_frame: str = "pixels",
    microns_system: bool = True,
) -> SpatialData:
    """A simulated tissue section whose truth is known by construction.

    Cells are irregular and touch like tissue; each holds an off-centre nucleus
    smaller than the cell; transcripts cover the whole cell with cell-type
    specific expression, plus ambient transcripts.

    Parameters
    ----------
    shape
        Image size ``(height, width)`` in pixels.
    seed
        Random seed; the same arguments give the same object.
    pixel_size
        Microns per pixel.
    origin_um
        Position ``(x, y)`` in microns of the image's top-left corner, so the
        points' coordinates are not the pixel grid's.
    cell_diameter_um
        Mean cell diameter in microns.
    density
        Fraction of lattice sites that hold a cell (lower: more gaps).
    transcripts_per_cell
        Mean transcripts of a cell of mean size.
    background_fraction
        Fraction of ambient transcripts.
    n_genes, n_cell_types
        Gene panel size and number of cell types.
    noise
        Image read noise relative to nucleus brightness.
    points_chunksize
        Rows per partition of the points' dask dataframe.
    imaged_at
        Re-image the tissue simulated at ``pixel_size`` at this many um per
        pixel: the image is resampled (anti-aliased), the truth labels by
        nearest neighbour, the transcripts stay where they are. The same
        tissue at another pixel size, for scale tests.
    global_frame
        ``"pixels"``: coordinate system ``"global"`` is the image's pixel
        grid and the points are scaled onto it; ``"microns"``: it is in
        micrometres, the points' own frame, and the rasters are scaled;
        ``"image"``: the points too are in the image's pixels, so nothing
        but the nuclei says the pixel size (unless ``microns_system``).
    microns_system
        Also add the coordinate system ``"microns"`` (which states the pixel
        size, as the ``gsn.io`` readers do); without it a tool must find the
        pixel size by itself.

    Returns
    -------
    SpatialData
        - images ``"dapi"``: ``(c, y, x)`` uint16, channel ``"DAPI"``;
        - points ``"transcripts"``: ``x``, ``y`` in microns (image pixels with
          ``global_frame="image"``), categorical
          ``gene`` (the ``feature_key``), truth ``cell_id`` (0 = ambient);
        - labels ``"cells"`` (whole-cell truth) and ``"nuclei"`` (nucleus truth,
          same ids).

        By default coordinate system ``"global"`` is the image's pixel grid
        (as in spatialdata-io's Xenium reader); the points map into it by a
        translation and a scale. Coordinate system ``"microns"`` holds the
        points as they are and the rasters scaled and translated.

    Examples
    --------
    >>> sdata = synthetic_tissue((128, 128), seed=1)
    >>> sorted(sdata.images), sorted(sdata.labels), sorted(sdata.points)
    (['dapi'], ['cells', 'nuclei'], ['transcripts'])
    """
    if pixel_size <= 0:
        raise ValueError(f"`pixel_size` must be positive, got {pixel_size}.")
    if imaged_at is not None and not imaged_at > 0:
        raise ValueError(f"`imaged_at` must be positive, got {imaged_at}.")
    if global_frame not in ("pixels", "microns", "image"):
        raise ValueError(f"`global_frame` must be 'pixels', 'microns' or 'image', got {global_frame!r}.")
    params = TissueParameters(
        cell_diameter_px=cell_diameter_um / pixel_size,
        density=density,
        n_genes=n_genes,
        n_cell_types=n_cell_types,
        transcripts_per_cell=transcripts_per_cell,
        background_fraction=background_fraction,
        noise=noise,
    )
    t = simulate_tissue(shape, params, seed=seed)
    xy_um = t.points_xy * pixel_size + np.array(origin_um)
    image_px, cells_px, nuclei_px = t.image, t.cells, t.nuclei
    if imaged_at is not None:
        image_px, cells_px, nuclei_px = _reimage(t, pixel_size / imaged_at)
        pixel_size = imaged_at
    ox, oy = origin_um
    pixels_to_um = Sequence([Scale([pixel_size, pixel_size], axes=("x", "y")), Translation([ox, oy], axes=("x", "y"))])
    um_to_pixels = Sequence(
        [Translation([-ox, -oy], axes=("x", "y")), Scale([1 / pixel_size, 1 / pixel_size], axes=("x", "y"))]
    )
    if global_frame == "pixels":
        raster_tf, points_tf = {"global": Identity()}, {"global": um_to_pixels}
    elif global_frame == "microns":
        raster_tf, points_tf = {"global": pixels_to_um}, {"global": Identity()}
    else:
        raster_tf, points_tf = {"global": Identity()}, {"global": Identity()}
    if microns_system:
        raster_tf["microns"] = pixels_to_um
        points_tf["microns"] = pixels_to_um if global_frame == "image" else Identity()
    # The points' own coordinates: micrometres, or the image's pixels with global_frame="image".
    xy_points = (xy_um - np.array(origin_um)) / pixel_size if global_frame == "image" else xy_um
    image = Image2DModel.parse(image_px[None], dims=("c", "y", "x"), c_coords=["DAPI"], transformations=raster_tf)
    cells = Labels2DModel.parse(cells_px, dims=("y", "x"), transformations=dict(raster_tf))
    nuclei = Labels2DModel.parse(nuclei_px, dims=("y", "x"), transformations=dict(raster_tf))
    frame = pd.DataFrame(
        {
            "x": xy_points[:, 0],
            "y": xy_points[:, 1],
            "gene": pd.Categorical.from_codes(t.gene, categories=t.gene_names),
            "cell_id": t.cell_id.astype(np.int64),
        }
    )
    points = _sdata.transcripts_element(frame, points_tf, chunksize=points_chunksize)
    return SpatialData(
        images={"dapi": image}, labels={"cells": cells, "nuclei": nuclei}, points={"transcripts": points}
    )


def _reimage(t: Any, zoom: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image (anti-aliased, linear) and truth labels (nearest) of a simulated tissue at ``zoom``."""
    from gsn_spatial.core.image.resample import nearest_window, resample_window, working_shape

    h, w = working_shape(t.image.shape, zoom)

    def reader(a: np.ndarray) -> Any:
        return lambda y0, y1, x0, x1: a[y0:y1, x0:x1]

    image = resample_window(reader(t.image), t.image.shape, (0, h, 0, w), zoom)
    image = np.clip(np.rint(image), 0, 65535).astype(np.uint16)
    cells = nearest_window(reader(t.cells), t.cells.shape, (0, h, 0, w), zoom)
    nuclei = nearest_window(reader(t.nuclei), t.nuclei.shape, (0, h, 0, w), zoom)
    return image, cells, nuclei
