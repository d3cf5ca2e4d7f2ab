"""The image with cell boundaries and the transcripts inside and outside cells."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from spatialdata import SpatialData

from gsn_spatial import _sdata
from gsn_spatial.pl._common import INSIDE_COLOUR, OUTSIDE_COLOUR, finish


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
    title: str | None = None,
    show: bool | None = None,
    save: str | Path | None = None,
) -> Any:
    """Draw the image, the cell boundaries of ``labels_key`` and the transcripts.

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
        ``(y0, y1, x0, x1)`` pixel window to zoom to; default the whole image.
    ax
        Matplotlib axes; a new figure is made when omitted.
    colour_by_cell
        Transcripts inside cells of ``labels_key`` light blue, outside
        yellow; otherwise all magenta.
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
    img = np.asarray(plane.data[y0:y1, x0:x1], dtype=np.float32)
    lo, hi = np.percentile(img, [1, 99.5])
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 8 * (y1 - y0) / max(x1 - x0, 1)))
    ax.imshow(np.clip((img - lo) / max(hi - lo, 1e-9), 0, 1), cmap="gray", extent=(x0, x1, y1, y0))
    main = None
    for key, colour, param in (
        (reference_key, (0.0, 0.9, 1.0), "reference_key"),
        (labels_key, (1.0, 0.15, 0.1), "labels_key"),
    ):
        if key is None:
            continue
        _sdata.resolve_key(sdata, "labels", key, parameter=param)
        full = _sdata.scale0(sdata.labels[key])
        if (int(full.sizes["y"]), int(full.sizes["x"])) != (h, w):
            raise ValueError(f"Labels {key!r} and image {image_key!r} differ in shape; they must share a grid.")
        lab = np.asarray(full.data[y0:y1, x0:x1])
        if key == labels_key:
            main = lab
        edge = find_boundaries(lab, mode="inner")
        rgba = np.zeros((*edge.shape, 4), dtype=np.float32)
        rgba[edge] = (*colour, 1.0)
        ax.imshow(rgba, extent=(x0, x1, y1, y0), interpolation="nearest")
    if points_key is not None or len(sdata.points) == 1:
        points_key = _sdata.resolve_key(sdata, "points", points_key, parameter="points_key", beside=image_key)
        m = _sdata.points_to_pixels(sdata, points_key, image_key)
        xy = sdata.points[points_key][["x", "y"]].compute().to_numpy(dtype=float) @ m[:2, :2].T + m[:2, 2]
        xy = xy[(xy[:, 0] >= x0) & (xy[:, 0] < x1) & (xy[:, 1] >= y0) & (xy[:, 1] < y1)]
        if colour_by_cell and main is not None:
            inside = lookup_cells(main, xy - np.array([x0, y0])) > 0
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
