"""Shapes elements of cells (polygons, circles) drawn onto an image's pixel grid, as labels."""

from __future__ import annotations

import logging

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Point, Polygon
from skimage.draw import polygon as fill_polygon
from spatialdata import SpatialData

from gsn_spatial._sdata.frames import element_to_pixels

logger = logging.getLogger(__name__)

#: Segments per quarter circle when a circle (a ``radius`` column) is drawn as a polygon.
CIRCLE_SEGMENTS = 16


def shapes_to_labels(sdata: SpatialData, shapes_key: str, image_key: str, shape: tuple[int, int]) -> np.ndarray:
    """The cells of a shapes element as labels on the pixel grid of ``image_key`` (``shape`` its height and width).

    Vendors and sopa give cells as polygons (MERSCOPE's and sopa's boundaries, ``gsn_boundaries``) or circles (a
    ``radius`` column); ``gsn.tl.train`` needs labels. Each geometry is mapped onto the image's pixels by composing
    the two elements' transformations (:func:`~gsn_spatial._sdata.frames.element_to_pixels`: any affine, circles
    drawn as polygons so that they may become ellipses), and a pixel takes the cell whose outline holds its centre;
    holes stay empty. Cells are numbered 1, 2, ... in the element's row order; where two overlap, the later one
    takes the pixel. ``spatialdata.rasterize`` renders onto a box of a coordinate system, not onto an existing
    image's grid, hence this.

    Examples
    --------
    >>> import geopandas as gpd
    >>> from shapely.geometry import box
    >>> from spatialdata.models import Image2DModel, ShapesModel
    >>> img = Image2DModel.parse(np.zeros((1, 6, 8)), dims=("c", "y", "x"))
    >>> cells = ShapesModel.parse(gpd.GeoDataFrame(geometry=[box(1, 1, 4, 3)]))
    >>> shapes_to_labels(SpatialData(images={"img": img}, shapes={"cells": cells}), "cells", "img", (6, 8))[:4]
    array([[0, 0, 0, 0, 0, 0, 0, 0],
           [0, 1, 1, 1, 0, 0, 0, 0],
           [0, 1, 1, 1, 0, 0, 0, 0],
           [0, 0, 0, 0, 0, 0, 0, 0]], dtype=int32)
    """
    frame = sdata.shapes[shapes_key]
    m = element_to_pixels(sdata, shapes_key, image_key, kind="shapes")
    # Pixel (row, col) covers [col, col + 1) x [row, row + 1); skimage's polygon tests the point (row, col): shift
    # by half a pixel so that a pixel is in a cell when its centre is.
    to_grid = [m[0, 0], m[0, 1], m[1, 0], m[1, 1], m[0, 2] - 0.5, m[1, 2] - 0.5]
    radius = frame["radius"].to_numpy(dtype=float) if "radius" in frame.columns else None
    labels = np.zeros(shape, dtype=np.int32)
    skipped = 0
    for i, geometry in enumerate(frame.geometry, start=1):
        if geometry is None or geometry.is_empty:
            skipped += 1
            continue
        if isinstance(geometry, Point):
            if radius is None:
                skipped += 1
                continue
            geometry = geometry.buffer(radius[i - 1], quad_segs=CIRCLE_SEGMENTS)
        parts = geometry.geoms if isinstance(geometry, MultiPolygon) else [geometry]
        for part in parts:
            if not isinstance(part, Polygon):
                skipped += 1
                continue
            part = shapely.affinity.affine_transform(part, to_grid)
            x, y = np.asarray(part.exterior.coords).T
            rows, cols = fill_polygon(y, x, shape=shape)
            labels[rows, cols] = i
            for hole in part.interiors:
                hx, hy = np.asarray(hole.coords).T
                rows, cols = fill_polygon(hy, hx, shape=shape)
                inside = labels[rows, cols] == i
                labels[rows[inside], cols[inside]] = 0
    if skipped:
        logger.warning("Shapes %r: %d geometries are neither polygons nor circles, or empty; not drawn.", shapes_key,
                       skipped)  # fmt: skip
    return labels
