"""Plotting: an overlay of image, cell boundaries and transcripts."""

from __future__ import annotations

from typing import Any

import numpy as np
from spatialdata import SpatialData

from gsn_spatial import _sdata


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
    title: str | None = None,
) -> Any:
    """Draw the image, the cell boundaries of ``labels_key`` and the transcripts.

    Parameters
    ----------
    labels_key
        Labels element whose boundaries are drawn (yellow).
    reference_key
        Optional second labels element drawn in cyan (e.g. the truth).
    window
        ``(y0, y1, x0, x1)`` pixel window to show; default the whole image.
    ax
        Matplotlib axes; a new figure is made when omitted.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import gsn_spatial as gsn
    >>> sdata = gsn.datasets.synthetic_tissue((128, 128), seed=2)
    >>> ax = gsn.pl.segmentation_overlay(sdata, labels_key="cells")
    """
    import matplotlib.pyplot as plt
    from skimage.segmentation import find_boundaries

    image_key = _sdata.resolve_key(sdata, "images", image_key, parameter="image_key")
    plane = _sdata.select_channel(_sdata.scale0(sdata.images[image_key]), image_channel, image_key=image_key)
    h, w = int(plane.sizes["y"]), int(plane.sizes["x"])
    y0, y1, x0, x1 = window or (0, h, 0, w)
    img = np.asarray(plane.data[y0:y1, x0:x1], dtype=np.float32)
    lo, hi = np.percentile(img, [1, 99.5])
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 8 * (y1 - y0) / max(x1 - x0, 1)))
    ax.imshow(np.clip((img - lo) / max(hi - lo, 1e-9), 0, 1), cmap="gray", extent=(x0, x1, y1, y0))
    for key, colour in ((reference_key, (0.0, 0.9, 1.0)), (labels_key, (1.0, 0.85, 0.0))):
        if key is None:
            continue
        _sdata.resolve_key(sdata, "labels", key, parameter="labels_key")
        lab = np.asarray(_sdata.scale0(sdata.labels[key]).data[y0:y1, x0:x1])
        edge = find_boundaries(lab, mode="inner")
        rgba = np.zeros((*edge.shape, 4), dtype=np.float32)
        rgba[edge] = (*colour, 1.0)
        ax.imshow(rgba, extent=(x0, x1, y1, y0), interpolation="nearest")
    if points_key is not None or len(sdata.points) == 1:
        points_key = _sdata.resolve_key(sdata, "points", points_key, parameter="points_key")
        m = _sdata.points_to_pixels(sdata, points_key, image_key)
        xy = sdata.points[points_key][["x", "y"]].compute().to_numpy(dtype=float) @ m[:2, :2].T + m[:2, 2]
        sel = (xy[:, 0] >= x0) & (xy[:, 0] < x1) & (xy[:, 1] >= y0) & (xy[:, 1] < y1)
        ax.scatter(xy[sel, 0], xy[sel, 1], s=point_size, c="magenta", linewidths=0, alpha=0.7)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y1, y0)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


__all__ = ["segmentation_overlay"]
