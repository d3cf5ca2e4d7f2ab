"""A large simulated slide written to a zarr store tile by tile, for scale and speed benchmarks."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from spatialdata import SpatialData
from spatialdata.models import Image2DModel, Labels2DModel, PointsModel
from spatialdata.transformations import Identity, Scale, Sequence, Translation

from gsn_spatial.core.simulate.tissue import TissueParameters, simulate_tissue


def write_synthetic_slide(
    path: str | Path,
    shape: tuple[int, int] = (16384, 16384),
    *,
    seed: int = 0,
    tile_size: int = 2048,
    pixel_size: float = 0.5,
    origin_um: tuple[float, float] = (1250.0, 830.0),
    transcripts_per_cell: float = 120.0,
    points_per_partition: int = 1_000_000,
    progress: bool = False,
) -> None:
    """Write a large synthetic slide to a SpatialData zarr store, tile by tile, in bounded memory.

    The slide is a mosaic of independently simulated ``tile_size`` tissues
    (:func:`gsn_spatial.core.simulate.tissue.simulate_tissue`), so cells are cut
    straight at tile seams; it is meant for scale and speed benchmarks, not
    for judging quality at the seams. Tiles go to temporary zarr arrays and
    parquet files next to ``path``; the store is then written from those
    lazily by SpatialData, one chunk or partition at a time. At the default
    ``transcripts_per_cell`` a 16k x 16k slide holds about 50 million
    transcripts.

    Parameters
    ----------
    path
        Zarr store to create (must not exist).
    shape
        Slide size ``(height, width)`` in pixels.
    seed
        Seed; tile ``i`` uses ``seed * 1_000_003 + i``.
    tile_size
        Side of the independently simulated tiles (and of the image chunks).
    pixel_size, origin_um
        Microns per pixel and the slide's top-left corner in microns.
    transcripts_per_cell
        Mean transcripts of a cell of mean size.
    points_per_partition
        About this many transcripts per partition of the points.

    Returns
    -------
    ``None``; the store holds image ``"dapi"``, labels ``"cells"`` (truth) and
    points ``"transcripts"`` laid out as in :func:`synthetic_tissue`.

    Examples
    --------
    >>> import tempfile, spatialdata as sd
    >>> path = tempfile.mkdtemp() + "/slide.zarr"
    >>> write_synthetic_slide(path, (256, 384), tile_size=128)
    >>> s = sd.read_zarr(path)
    >>> s.images["dapi"].shape, int(s.labels["cells"].max()) > 20
    ((1, 256, 384), True)
    """
    import dask.array as da
    import dask.dataframe as dd
    import zarr

    path = Path(path)
    if path.exists():
        raise ValueError(f"{str(path)!r} exists; `write_synthetic_slide` only creates new stores.")
    h, w = shape
    tmp = Path(tempfile.mkdtemp(prefix=path.name + ".", dir=path.parent))
    try:
        chunks = (min(tile_size, h), min(tile_size, w))
        image = zarr.create_array(tmp / "image.zarr", shape=shape, chunks=chunks, dtype="uint16", fill_value=0)
        cells = zarr.create_array(tmp / "cells.zarr", shape=shape, chunks=chunks, dtype="uint32", fill_value=0)
        (tmp / "points").mkdir()
        tiles = [(y0, x0) for y0 in range(0, h, tile_size) for x0 in range(0, w, tile_size)]
        next_id, buffer, n_buffered, part = 0, [], 0, 0
        genes = None

        def flush() -> None:
            nonlocal buffer, n_buffered, part
            if buffer:
                pd.concat(buffer, ignore_index=True).to_parquet(tmp / "points" / f"part.{part:06d}.parquet")
                part += 1
            buffer, n_buffered = [], 0

        iterator = tiles
        if progress:
            from tqdm.auto import tqdm

            iterator = tqdm(tiles, desc="simulate")
        for i, (y0, x0) in enumerate(iterator):
            th, tw = min(tile_size, h - y0), min(tile_size, w - x0)
            params = TissueParameters(cell_diameter_px=14.0 / pixel_size, transcripts_per_cell=transcripts_per_cell)
            t = simulate_tissue((th, tw), params, seed=seed * 1_000_003 + i)
            genes = t.gene_names
            image[y0 : y0 + th, x0 : x0 + tw] = t.image
            cells[y0 : y0 + th, x0 : x0 + tw] = np.where(t.cells > 0, t.cells + np.uint32(next_id), 0)
            xy_um = (t.points_xy + np.array([x0, y0])) * pixel_size + np.array(origin_um)
            cell_id = np.where(t.cell_id > 0, t.cell_id.astype(np.int64) + next_id, 0)
            next_id += int(t.cells.max())
            buffer.append(
                pd.DataFrame(
                    {
                        "x": xy_um[:, 0],
                        "y": xy_um[:, 1],
                        "gene": pd.Categorical.from_codes(t.gene, categories=t.gene_names),
                        "cell_id": cell_id,
                    }
                )
            )
            n_buffered += len(xy_um)
            if n_buffered >= points_per_partition:
                flush()
        flush()
        ox, oy = origin_um
        raster_tf = {
            "global": Identity(),
            "microns": Sequence(
                [Scale([pixel_size, pixel_size], axes=("x", "y")), Translation([ox, oy], axes=("x", "y"))]
            ),
        }
        um_to_pixels = Sequence(
            [Translation([-ox, -oy], axes=("x", "y")), Scale([1 / pixel_size, 1 / pixel_size], axes=("x", "y"))]
        )
        frame = dd.read_parquet(str(tmp / "points"))
        frame["gene"] = frame["gene"].astype(pd.CategoricalDtype(genes))
        sdata = SpatialData(
            images={
                "dapi": Image2DModel.parse(
                    da.from_zarr(image)[None], dims=("c", "y", "x"), c_coords=["DAPI"], transformations=raster_tf
                )
            },
            labels={
                "cells": Labels2DModel.parse(da.from_zarr(cells), dims=("y", "x"), transformations=dict(raster_tf))
            },
            points={
                "transcripts": PointsModel.parse(
                    frame,
                    coordinates={"x": "x", "y": "y"},
                    feature_key="gene",
                    transformations={"global": um_to_pixels, "microns": Identity()},
                )
            },
        )
        sdata.write(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
