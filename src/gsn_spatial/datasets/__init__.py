"""Datasets: a synthetic tissue with known truth, as a SpatialData object."""

from __future__ import annotations

import numpy as np
import pandas as pd
from spatialdata import SpatialData
from spatialdata.models import Image2DModel, Labels2DModel, PointsModel
from spatialdata.transformations import Identity, Scale, Sequence, Translation

from gsn_spatial.core.simulate import simulate_tissue


def synthetic_tissue(
    shape: tuple[int, int] = (1024, 1024),
    seed: int = 0,
    *,
    pixel_size: float = 0.5,
    origin_um: tuple[float, float] = (1250.0, 830.0),
    cell_diameter_um: float = 14.0,
    density: float = 0.85,
    n_genes: int = 40,
    n_cell_types: int = 5,
    transcripts_per_cell: float = 80.0,
    background_fraction: float = 0.05,
    noise: float = 0.05,
    points_chunksize: int = 50_000,
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
    n_genes, n_cell_types
        Gene panel size and number of cell types.
    transcripts_per_cell
        Mean transcripts of a cell of mean size.
    background_fraction
        Fraction of ambient transcripts.
    noise
        Image read noise relative to nucleus brightness.
    points_chunksize
        Rows per partition of the points' dask dataframe.

    Returns
    -------
    SpatialData
        - images ``"dapi"``: ``(c, y, x)`` uint16, channel ``"DAPI"``;
        - points ``"transcripts"``: ``x``, ``y`` in microns, categorical
          ``gene`` (the ``feature_key``), truth ``cell_id`` (0 = ambient);
        - labels ``"cells"`` (whole-cell truth) and ``"nuclei"`` (nucleus truth,
          same ids).

        Coordinate system ``"global"`` is the image's pixel grid (as in
        spatialdata-io's Xenium reader); the points map into it by a
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
    t = simulate_tissue(
        shape,
        seed=seed,
        cell_diameter_px=cell_diameter_um / pixel_size,
        density=density,
        n_genes=n_genes,
        n_cell_types=n_cell_types,
        transcripts_per_cell=transcripts_per_cell,
        background_fraction=background_fraction,
        noise=noise,
    )
    ox, oy = origin_um
    pixels_to_um = Sequence([Scale([pixel_size, pixel_size], axes=("x", "y")), Translation([ox, oy], axes=("x", "y"))])
    um_to_pixels = Sequence(
        [Translation([-ox, -oy], axes=("x", "y")), Scale([1 / pixel_size, 1 / pixel_size], axes=("x", "y"))]
    )
    raster_tf = {"global": Identity(), "microns": pixels_to_um}
    image = Image2DModel.parse(t.image[None], dims=("c", "y", "x"), c_coords=["DAPI"], transformations=raster_tf)
    cells = Labels2DModel.parse(t.cells, dims=("y", "x"), transformations=dict(raster_tf))
    nuclei = Labels2DModel.parse(t.nuclei, dims=("y", "x"), transformations=dict(raster_tf))
    xy_um = t.points_xy * pixel_size + np.array([ox, oy])
    frame = pd.DataFrame(
        {
            "x": xy_um[:, 0],
            "y": xy_um[:, 1],
            "gene": pd.Categorical.from_codes(t.gene, categories=t.gene_names),
            "cell_id": t.cell_id.astype(np.int64),
        }
    )
    points = PointsModel.parse(
        frame,
        coordinates={"x": "x", "y": "y"},
        feature_key="gene",
        transformations={"global": um_to_pixels, "microns": Identity()},
        chunksize=points_chunksize,
    )
    return SpatialData(
        images={"dapi": image}, labels={"cells": cells, "nuclei": nuclei}, points={"transcripts": points}
    )


__all__ = ["synthetic_tissue"]
