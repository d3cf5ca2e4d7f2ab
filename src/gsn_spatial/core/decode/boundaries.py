"""Cell boundaries: one polygon per cell of a labels array, window by window.

Pixel ``(r, c)`` spans ``[c, c + 1) x [r, r + 1)``, so a polygon's coordinates
are in the labels' own pixel frame and the labels' transformations apply to
it unchanged. ``spatialdata.to_polygons`` is not used: it returns a
MultiPolygon for every cell split in pieces and a ``label`` column that
doubles the index, which sopa rejects; here each cell is one Polygon (its
largest piece, holes filled).
"""

from __future__ import annotations

from collections.abc import Callable

import numba
import numpy as np
import shapely
from scipy import ndimage

#: Labels pixels read around a window at first; a cell touching the edge of its window is read again, larger.
WINDOW_HALO = 128


def cell_ring(mask: np.ndarray, *, origin: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """The outer ring ``(n, 2)`` of ``(x, y)`` around the largest piece of a boolean mask.

    The ring is the 0.5 iso-line of the mask, as marching squares draws it
    (``skimage.measure.find_contours(mask, 0.5)``): one vertex at the middle of
    each pixel edge between the piece and the outside, pieces 4-connected. The
    largest piece is the one whose outer ring encloses the most area, so holes
    play no part (the polygon of the ring has none). ``origin`` is the
    ``(row, col)`` of ``mask[0, 0]`` in the labels' grid.

    Examples
    --------
    >>> import numpy as np
    >>> mask = np.zeros((6, 6), bool); mask[1:3, 1:4] = True; mask[4, 4] = True
    >>> ring = cell_ring(mask)
    >>> ring.min(axis=0).tolist(), ring.max(axis=0).tolist()
    ([1.0, 1.0], [4.0, 3.0])
    """
    ring = _outer_ring(np.ascontiguousarray(mask, dtype=np.bool_))
    ring[:, 0] += origin[1]
    ring[:, 1] += origin[0]
    return ring


# The two kernels below follow the pixel edges of a piece in compiled code: the rings are the same as
# find_contours' (same vertices, checked on random masks in tests/test_boundaries.py) at 0.12 s instead of
# 1.14 s for the 6223 cells of a 2048 px simulated tissue (2026-12-06, 2-core AVX2 host), where assembling
# find_contours' segments in Python was most of the time of the boundaries element.


@numba.njit(cache=True)
def _is_inside(mask: np.ndarray, y: int, x: int) -> bool:
    return 0 <= y < mask.shape[0] and 0 <= x < mask.shape[1] and mask[y, x]


@numba.njit(cache=True)
def _trace_piece(mask: np.ndarray, r0: int, c0: int) -> np.ndarray:
    """Closed ring of edge midpoints around the piece whose first pixel (raster order) is ``(r0, c0)``.

    Walks from pixel corner to pixel corner with the piece on the right, starting east along the top
    edge of its first pixel. At a corner where two piece pixels touch only diagonally it turns towards
    the piece first, so pieces are 4-connected (marching squares' default for a binary image).
    """
    out = np.empty((2 * (mask.shape[0] + 1) * (mask.shape[1] + 1) + 1, 2))
    n, y, x, d = 0, r0, c0, 0  # d: 0 east, 1 south, 2 west, 3 north (y down)
    while True:
        dy = (0, 1, 0, -1)[d]
        dx = (1, 0, -1, 0)[d]
        out[n, 0] = x + 0.5 * dx
        out[n, 1] = y + 0.5 * dy
        n += 1
        y += dy
        x += dx
        # The two pixels ahead of the corner, on the left and on the right of the direction of travel.
        if d == 0:
            left, right = _is_inside(mask, y - 1, x), _is_inside(mask, y, x)
        elif d == 1:
            left, right = _is_inside(mask, y, x), _is_inside(mask, y, x - 1)
        elif d == 2:
            left, right = _is_inside(mask, y, x - 1), _is_inside(mask, y - 1, x - 1)
        else:
            left, right = _is_inside(mask, y - 1, x - 1), _is_inside(mask, y - 1, x)
        if not right:
            d = (d + 1) % 4
        elif left:
            d = (d + 3) % 4
        if y == r0 and x == c0 and d == 0:
            break
    out[n] = out[0]
    return out[: n + 1].copy()


@numba.njit(cache=True)
def _outer_ring(mask: np.ndarray) -> np.ndarray:
    """Ring of the piece (4-connected) whose ring encloses the most area; every piece found by a flood fill."""
    h, w = mask.shape
    seen = np.zeros((h, w), np.bool_)
    stack = np.empty(h * w, np.int64)
    best, best_area = np.empty((0, 2)), -1.0
    for r in range(h):
        for c in range(w):
            if not mask[r, c] or seen[r, c]:
                continue
            # (r, c) is the first pixel of a new piece: mark the piece, then trace it from there.
            seen[r, c] = True
            stack[0], top = r * w + c, 1
            while top:
                top -= 1
                y, x = divmod(stack[top], w)
                for yy, xx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                    if 0 <= yy < h and 0 <= xx < w and mask[yy, xx] and not seen[yy, xx]:
                        seen[yy, xx] = True
                        stack[top] = yy * w + xx
                        top += 1
            ring = _trace_piece(mask, r, c)
            area = 0.0
            for i in range(len(ring) - 1):
                area += ring[i, 0] * ring[i + 1, 1] - ring[i + 1, 0] * ring[i, 1]
            if abs(area) > best_area:
                best, best_area = ring, abs(area)
    return best


def polygons_from_rings(rings: list[np.ndarray], *, tolerance: float = 0.25) -> np.ndarray:
    """Polygons from outer rings, simplified by ``tolerance`` (Douglas-Peucker, pixels), all at once.

    Shapely's vectorised functions do the work, and the simplification is
    plain Douglas-Peucker: a lone ring has no topology to keep but its own
    validity, which is checked after. On the 6223 cells of a 2048 px
    simulated tissue this took 1.7-2.1 s against 4.2-4.6 s with one shapely
    call per cell and topology-preserving simplification, with identical
    polygons (2026-12-06, 2-core AVX2 host). A ring that simplifies to an
    invalid polygon keeps the largest part of its valid form; one that
    vanishes (a mask of one or two pixels) becomes its bounding box.

    Examples
    --------
    >>> import numpy as np
    >>> square = np.array([[0, 0], [4, 0], [4, 3], [0, 3], [0, 0]], float)
    >>> [round(p.area) for p in polygons_from_rings([square, square + 10])]
    [12, 12]
    """
    if not rings:
        return np.empty(0, dtype=object)
    coords = np.concatenate(rings)
    offsets = np.cumsum([0] + [len(r) for r in rings])
    polygons = shapely.from_ragged_array(shapely.GeometryType.POLYGON, coords, (offsets, np.arange(len(rings) + 1)))
    if tolerance > 0:
        polygons = shapely.simplify(polygons, tolerance, preserve_topology=False)
    for i in np.flatnonzero(~shapely.is_valid(polygons) | shapely.is_empty(polygons)):
        polygon = _largest_polygon(shapely.make_valid(polygons[i]))
        polygons[i] = (
            polygon if polygon is not None and not polygon.is_empty else shapely.box(*rings[i].min(0), *rings[i].max(0))
        )
    return polygons


def _largest_polygon(geometry):
    parts = [g for g in getattr(geometry, "geoms", [geometry]) if isinstance(g, shapely.Polygon) and not g.is_empty]
    return max(parts, key=lambda g: g.area) if parts else None


def cell_polygons(
    read: Callable[[int, int, int, int], np.ndarray],
    shape: tuple[int, int],
    cell_ids: np.ndarray,
    centroids_yx: np.ndarray,
    *,
    window: int = 2048,
    tolerance: float = 0.25,
) -> list:
    """One Polygon per cell of a labels raster read window by window.

    ``read(y0, y1, x0, x1)`` returns that window of the labels (a numpy
    array), so a whole slide never has to be in memory. Each cell is drawn by
    the window holding its centroid (``centroids_yx`` in pixels of the labels'
    grid, pixel centres at ``+ 0.5``), from that window with a halo; a cell
    reaching the halo's edge is read again around its own bounding box. The
    rings of each window become simplified polygons before the next window is
    read, so memory holds one window's full-resolution rings at a time: at
    402 k cells (a 268 MP slide) the rings of all cells at once, with their
    concatenation and unsimplified polygons, took the process from 1.2 to
    4.0 GB (``benchmarks/scale.py``, 2026-12-06).

    Returns the polygons in the order of ``cell_ids``.

    Examples
    --------
    >>> import numpy as np
    >>> labels = np.zeros((40, 40), np.uint32); labels[5:15, 5:15] = 1; labels[20:30, 22:36] = 2
    >>> read = lambda y0, y1, x0, x1: labels[y0:y1, x0:x1]
    >>> polys = cell_polygons(read, labels.shape, np.array([1, 2]), np.array([[10.0, 10.0], [25.0, 29.0]]))
    >>> [p.geom_type for p in polys], [round(p.area) for p in polys]
    (['Polygon', 'Polygon'], [100, 140])
    """
    h, w = shape
    cell_ids = np.asarray(cell_ids)
    index = {int(c): i for i, c in enumerate(cell_ids)}
    polygons = np.empty(len(cell_ids), dtype=object)
    owner = np.floor(np.asarray(centroids_yx, dtype=float).reshape(-1, 2) / window).astype(np.int64)
    # Cells grouped by owning window in one pass (a scan of every cell per window is cells x windows).
    groups: dict[tuple[int, int], set[int]] = {}
    for c, (a, b) in zip(cell_ids.tolist(), owner.tolist(), strict=True):
        groups.setdefault((a, b), set()).add(int(c))
    for (by, bx), wanted in sorted(groups.items()):
        y0, x0 = max(0, by * window - WINDOW_HALO), max(0, bx * window - WINDOW_HALO)
        y1, x1 = min(h, (by + 1) * window + WINDOW_HALO), min(w, (bx + 1) * window + WINDOW_HALO)
        block = np.asarray(read(y0, y1, x0, x1))
        drawn, rings = [], []
        for label, sl in enumerate(ndimage.find_objects(block), start=1):
            if sl is None or label not in wanted:
                continue
            touches = (sl[0].start == 0 and y0 > 0) or (sl[0].stop == block.shape[0] and y1 < h)
            touches |= (sl[1].start == 0 and x0 > 0) or (sl[1].stop == block.shape[1] and x1 < w)
            if touches:
                # Seeded at one of its own pixels: its bounding box's corner may be far from any (an L-shaped cell).
                r, c = np.argwhere(block[sl] == label)[0]
                rings.append(_ring_of_large_cell(read, shape, label, (y0 + sl[0].start + r, x0 + sl[1].start + c)))
            else:
                rings.append(cell_ring(block[sl] == label, origin=(y0 + sl[0].start, x0 + sl[1].start)))
            drawn.append(index[label])
        if drawn:
            polygons[drawn] = polygons_from_rings(rings, tolerance=tolerance)
    # A cell not in the window of its centroid: a large non-convex one whose centroid lies outside it, more than a
    # halo from its pixels (looked for within twice the halo), or one with no pixel left on this grid (labels
    # resampled to a coarser image: the pixel at its centroid, so that every row of the table has its polygon).
    missing = [i for i in range(len(cell_ids)) if polygons[i] is None]
    if missing:
        rc = np.clip(np.floor(np.asarray(centroids_yx, dtype=float).reshape(-1, 2)[missing]), 0, np.array(shape) - 1)
        rings = []
        for i, (r, c) in zip(missing, rc.astype(int), strict=True):
            seed = _pixel_near(read, shape, int(cell_ids[i]), (r, c))
            if seed is None:
                rings.append(np.array([[c, r], [c + 1, r], [c + 1, r + 1], [c, r + 1], [c, r]], float))
            else:
                rings.append(_ring_of_large_cell(read, shape, int(cell_ids[i]), seed))
        polygons[missing] = polygons_from_rings(rings, tolerance=tolerance)
    return list(polygons)


def _pixel_near(read, shape, label: int, centre: tuple[int, int]) -> tuple[int, int] | None:
    """A pixel of cell ``label`` within twice the window halo of ``centre``, or ``None``."""
    reach = 2 * WINDOW_HALO
    y0, x0 = max(0, centre[0] - reach), max(0, centre[1] - reach)
    found = np.argwhere(
        np.asarray(read(y0, min(shape[0], centre[0] + reach), x0, min(shape[1], centre[1] + reach))) == label
    )
    return (y0 + int(found[0, 0]), x0 + int(found[0, 1])) if len(found) else None


def _ring_of_large_cell(read, shape, label: int, start: tuple[int, int]) -> np.ndarray:
    """A cell larger than a window's halo: read around it (``start`` one of its pixels), growing the window until
    it fits."""
    h, w = shape
    reach = 2 * WINDOW_HALO
    while True:
        y0, x0 = max(0, start[0] - reach), max(0, start[1] - reach)
        y1, x1 = min(h, start[0] + reach), min(w, start[1] + reach)
        block = np.asarray(read(y0, y1, x0, x1)) == label
        rows, cols = np.nonzero(block.any(axis=1))[0], np.nonzero(block.any(axis=0))[0]
        fits = (rows[0] > 0 or y0 == 0) and (rows[-1] < block.shape[0] - 1 or y1 == h)
        fits &= (cols[0] > 0 or x0 == 0) and (cols[-1] < block.shape[1] - 1 or x1 == w)
        if fits:
            sl = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
            return cell_ring(block[sl], origin=(y0 + rows[0], x0 + cols[0]))
        reach *= 2
