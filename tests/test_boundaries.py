"""Cell boundaries: rings traced in compiled code must be marching squares' rings."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from scipy import ndimage as ndi
from skimage.measure import find_contours

from gsn_spatial.core.decode.boundaries import cell_polygons, cell_ring


def find_contours_ring(mask: np.ndarray) -> np.ndarray:
    """The reference: skimage's 0.5 iso-line of the largest piece, in the pixel-edge frame of cell_ring."""
    contours = find_contours(np.pad(mask, 1).astype(np.float32), 0.5)
    areas = [abs(np.dot(c[:-1, 0], c[1:, 1]) - np.dot(c[1:, 0], c[:-1, 1])) for c in contours]
    ring = contours[int(np.argmax(areas))]
    return np.column_stack([ring[:, 1] - 0.5, ring[:, 0] - 0.5])


@pytest.mark.parametrize("seed", range(4))
def test_rings_are_marching_squares_rings(seed):
    rng = np.random.default_rng(seed)
    for i in range(300):
        # Blobs with holes, several pieces and pixels touching only at a corner.
        noise = rng.random((int(rng.integers(3, 16)), int(rng.integers(3, 16))))
        mask = ndi.binary_opening(noise < 0.6) if i % 2 else noise < rng.uniform(0.3, 0.7)
        if not mask.any():
            continue
        ring, reference = cell_ring(mask), find_contours_ring(mask)
        assert np.array_equal(ring[0], ring[-1])
        assert len(ring) == len(reference)
        a, b = shapely.Polygon(ring), shapely.Polygon(reference)
        assert a.is_valid and a.symmetric_difference(b).area < 1e-9
        # The same vertices, whatever the start and the direction.
        assert set(map(tuple, ring.tolist())) == set(map(tuple, reference.tolist()))


def test_ring_of_the_largest_piece_without_its_hole():
    mask = np.zeros((12, 12), bool)
    mask[1:8, 1:8] = True
    mask[3:6, 3:6] = False  # a hole: not part of the ring
    mask[9:11, 9:11] = True  # a smaller piece
    mask[8, 8] = True  # touches the square at a corner only: a piece of its own
    polygon = shapely.Polygon(cell_ring(mask, origin=(100.0, 200.0)))
    assert polygon.bounds == (201.0, 101.0, 208.0, 108.0)
    # 7 x 7 pixels with their four corners cut by 1/8 px each.
    assert polygon.area == pytest.approx(49 - 4 / 8)


def test_cell_polygons_cover_each_cell():
    rng = np.random.default_rng(3)
    labels = np.zeros((300, 300), np.uint32)
    for k, (y, x) in enumerate(rng.integers(10, 280, size=(40, 2)), start=1):
        labels[y : y + int(rng.integers(4, 15)), x : x + int(rng.integers(4, 15))] = k
    ids = np.unique(labels)[1:]
    centroids = np.array(ndi.center_of_mass(labels > 0, labels, ids)) + 0.5
    polygons = cell_polygons(lambda y0, y1, x0, x1: labels[y0:y1, x0:x1], labels.shape, ids, centroids, window=128)
    for cell, polygon in zip(ids, polygons, strict=True):
        assert polygon.geom_type == "Polygon" and polygon.is_valid
        rows, cols = np.nonzero(labels == cell)
        inside = shapely.contains_xy(polygon, cols + 0.5, rows + 0.5)
        assert inside.mean() > 0.9, cell


def test_cell_polygons_do_not_depend_on_the_window():
    # Polygons are built window by window (so memory holds one window's rings); any window size, a cell drawn
    # by a window's halo or read again around itself, and a cell with no pixel left give the same polygons.
    from gsn_spatial.datasets import synthetic_tissue

    sdata = synthetic_tissue((400, 400), seed=4)
    labels = np.asarray(sdata.labels["cells"].data).astype(np.uint32)
    ids = np.unique(labels)[1:]
    centroids = np.array(ndi.center_of_mass(labels > 0, labels, ids)) + 0.5
    ids = np.append(ids, ids.max() + 1)  # a cell of the table with no pixel: the pixel at its centroid
    centroids = np.vstack([centroids, [[7.2, 9.9]]])
    read = lambda y0, y1, x0, x1: labels[y0:y1, x0:x1]  # noqa: E731
    whole = cell_polygons(read, labels.shape, ids, centroids, window=4096)
    for window in (64, 150):
        tiled = cell_polygons(read, labels.shape, ids, centroids, window=window)
        assert all(shapely.equals_exact(a, b, tolerance=0) for a, b in zip(whole, tiled, strict=True)), window
    assert whole[-1].equals(shapely.box(9, 7, 10, 8))


@pytest.mark.parametrize("shape", ["thin diagonal", "L"])
def test_large_non_convex_cells_get_their_own_outline(shape):
    # A thin diagonal cell across the slide: the corner of its box in its centroid's window is more than a halo from
    # any of its pixels (the read around it found none and raised IndexError). An L: its centroid lies outside it,
    # beyond a halo, so its centroid's window has none of its pixels (it became a one-pixel square).
    labels = np.zeros((1536, 1536), np.uint32)
    rows, cols = np.mgrid[0:1536, 0:1536]
    if shape == "thin diagonal":
        labels[np.abs(rows + cols - 1281) <= 2] = 1
    else:
        labels[:, 900:906] = 1
        labels[1530:, :906] = 1
    labels[100:140, 100:140] = 2
    ids = np.array([1, 2])
    centroids = np.array(ndi.center_of_mass(labels > 0, labels, ids)) + 0.5
    read = lambda y0, y1, x0, x1: labels[y0:y1, x0:x1]  # noqa: E731
    polygons = cell_polygons(read, labels.shape, ids, centroids, window=256, tolerance=0)
    for cell, polygon in zip(ids, polygons, strict=True):
        rows_in, cols_in = np.nonzero(labels == cell)
        assert shapely.contains_xy(polygon, cols_in + 0.5, rows_in + 0.5).mean() > 0.99, cell
        assert abs(polygon.area - len(rows_in)) < 0.01 * len(rows_in), cell
