"""The image with cell boundaries and the transcripts inside and outside cells."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from spatialdata import SpatialData

from gsn_spatial import _sdata
from gsn_spatial.pl._common import INSIDE_COLOUR, OUTSIDE_COLOUR, finish

#: Default bounds on what one figure draws: pixels of the image window (a stride keeps it below) and transcripts.
MAX_PIXELS = 4_000_000
MAX_POINTS = 200_000


def segmentation_overlay(
    sdata: SpatialData,
    *,
    labels_key: str,
    image_key: str | None = None,
    image_channel: int | str | None = None,
    points_key: str | None = None,
    reference_key: str | None = None,
    window: tuple[int, int, int, int] | None = None,
    ax: Any = None,
    point_size: float = 0.5,
    colour_by_cell: bool = True,
    max_pixels: int = MAX_PIXELS,
    max_points: int = MAX_POINTS,
    title: str | None = None,
    show: bool | None = None,
    save: str | Path | None = None,
) -> Any:
    """Draw the image, the cell boundaries of ``labels_key`` and the transcripts.

    Labels and points are placed on the image by composing their transformations, so labels on another grid
    (``segment(labels_grid="working")``) are drawn where they belong. A whole slide is drawn at a stride that keeps
    the window under ``max_pixels`` (the boundaries then those of the strided labels), with at most ``max_points``
    transcripts drawn at random (a fixed seed), so memory stays bounded; pass ``window`` for full detail.

    Parameters
    ----------
    labels_key
        Labels element whose boundaries are drawn (red, as in the paper's Fig. 2a).
    image_key, image_channel
        Image (may be omitted when there is one) and its channel.
    points_key
        Transcripts; drawn when given or when the object has exactly one
        points element.
    reference_key
        Optional second labels element drawn in cyan (e.g. the truth).
    window
        ``(y0, y1, x0, x1)`` pixel window of the image to zoom to; default the whole image.
    ax
        Matplotlib axes; a new figure is made when omitted.
    colour_by_cell
        Transcripts inside cells of ``labels_key`` light blue, outside
        yellow; otherwise all magenta.
    max_pixels, max_points
        Bounds on the image pixels and transcripts drawn (above).
    show, save
        Show the figure (``plt.show()``); save it to this path.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import gsn_spatial as gsn
    >>> sdata = gsn.datasets.synthetic_tissue((128, 128), seed=2)
    >>> ax = gsn.pl.segmentation_overlay(sdata, labels_key="cells", window=(0, 64, 0, 64))
    >>> len(set(map(tuple, ax.collections[0].get_facecolors().round(3))))  # inside and outside colours
    2
    """
    import matplotlib.pyplot as plt
    from skimage.segmentation import find_boundaries

    from gsn_spatial.core.assign.counts import lookup_cells

    if max_pixels < 1 or max_points < 0:
        raise ValueError(f"`max_pixels` must be >= 1 and `max_points` >= 0, got {max_pixels} and {max_points}.")
    image_key = _sdata.resolve_key(sdata, "images", image_key, parameter="image_key")
    plane = _sdata.select_channel(_sdata.scale0(sdata.images[image_key]), image_channel, image_key=image_key)
    h, w = int(plane.sizes["y"]), int(plane.sizes["x"])
    if window is not None:
        if len(window) != 4:
            raise ValueError(f"`window` must be (y0, y1, x0, x1), got {window!r}.")
        y0, y1, x0, x1 = (int(v) for v in window)
        y0, x0 = max(y0, 0), max(x0, 0)
        y1, x1 = min(y1, h), min(x1, w)
        if y1 <= y0 or x1 <= x0:
            raise ValueError(f"`window` {window!r} holds no pixel of the {h} x {w} image.")
    else:
        y0, y1, x0, x1 = 0, h, 0, w
    step = max(1, math.ceil(math.sqrt((y1 - y0) * (x1 - x0) / max_pixels)))
    img = np.asarray(plane.data[y0:y1:step, x0:x1:step], dtype=np.float32)
    lo, hi = np.percentile(img, [1, 99.5])
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 8 * (y1 - y0) / max(x1 - x0, 1)))
    ax.imshow(np.clip((img - lo) / max(hi - lo, 1e-9), 0, 1), cmap="gray", extent=(x0, x1, y1, y0))
    # The image pixels drawn (centres), in image pixel coordinates.
    rows = np.arange(y0, y1, step) + 0.5
    cols = np.arange(x0, x1, step) + 0.5
    main = None
    for key, colour, param in (
        (reference_key, (0.0, 0.9, 1.0), "reference_key"),
        (labels_key, (1.0, 0.15, 0.1), "labels_key"),
    ):
        if key is None:
            continue
        _sdata.resolve_key(sdata, "labels", key, parameter=param)
        lab = _labels_at(sdata, key, image_key, rows, cols)
        if key == labels_key:
            main = lab
        edge = find_boundaries(lab, mode="inner")
        rgba = np.zeros((*edge.shape, 4), dtype=np.float32)
        rgba[edge] = (*colour, 1.0)
        ax.imshow(rgba, extent=(x0, x1, y1, y0), interpolation="nearest")
    if points_key is not None or len(sdata.points) == 1:
        points_key = _sdata.resolve_key(sdata, "points", points_key, parameter="points_key", beside=image_key)
        xy = _points_in_window(sdata, points_key, image_key, (y0, y1, x0, x1), max_points)
        if colour_by_cell and main is not None:
            inside = lookup_cells(main, (xy - np.array([x0, y0])) / step) > 0
            colours = np.where(inside, INSIDE_COLOUR, OUTSIDE_COLOUR)  # one collection, coloured per point
            ax.scatter(xy[:, 0], xy[:, 1], s=point_size, c=colours, linewidths=0, alpha=0.9)
        else:
            ax.scatter(xy[:, 0], xy[:, 1], s=point_size, c="magenta", linewidths=0, alpha=0.7)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y1, y0)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return finish(ax, show, save)


def _labels_at(sdata: SpatialData, labels_key: str, image_key: str, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The labels under the image pixel centres ``rows`` x ``cols`` (nearest), through the transformations."""
    data = _sdata.scale0(sdata.labels[labels_key]).data
    m = _sdata.element_to_pixels(sdata, image_key, labels_key, kind="image")
    if abs(m[0, 1]) > 1e-9 or abs(m[1, 0]) > 1e-9:
        raise ValueError(f"Labels {labels_key!r} are rotated against image {image_key!r}; draw them on their own grid.")
    r = np.floor(m[1, 1] * rows + m[1, 2]).astype(np.int64)
    c = np.floor(m[0, 0] * cols + m[0, 2]).astype(np.int64)
    out = np.zeros((len(rows), len(cols)), dtype=np.int64)
    r_in, c_in = (r >= 0) & (r < data.shape[0]), (c >= 0) & (c < data.shape[1])
    if r_in.any() and c_in.any():
        # Only the sampled rows, then columns: a dask array computes them chunk by chunk, never the whole labels.
        out[np.ix_(r_in, c_in)] = np.asarray(data[r[r_in]][:, c[c_in]])
    return out


def _points_in_window(
    sdata: SpatialData, points_key: str, image_key: str, window: tuple[int, int, int, int], max_points: int
) -> np.ndarray:
    """Image-pixel ``(x, y)`` of the transcripts in ``window``, partition by partition, at most ``max_points``."""
    y0, y1, x0, x1 = window
    m = _sdata.points_to_pixels(sdata, points_key, image_key)

    def in_window(part: pd.DataFrame) -> pd.DataFrame:
        xy = part[["x", "y"]].to_numpy(dtype=float) @ m[:2, :2].T + m[:2, 2]
        keep = (xy[:, 0] >= x0) & (xy[:, 0] < x1) & (xy[:, 1] >= y0) & (xy[:, 1] < y1)
        return pd.DataFrame({"x": xy[keep, 0], "y": xy[keep, 1]})

    frame = sdata.points[points_key][["x", "y"]].map_partitions(in_window, meta={"x": float, "y": float}).compute()
    xy = frame.to_numpy(dtype=float)
    if len(xy) > max_points:
        xy = xy[np.sort(np.random.default_rng(0).choice(len(xy), max_points, replace=False))]
    return xy
