"""Plotting, scanpy style: every function returns its axes and takes ``show=`` and ``save=``.

- :func:`segmentation_overlay`: image, cell boundaries, transcripts inside and outside cells;
- :func:`metric_distributions`: per-cell metrics of several segmentations side by side;
- :func:`cell_calling_curve`: cell calling over the distance ``delta``;
- :func:`intensity_capture`: pixels and transcripts inside cells by image intensity (paper, Fig. 2d-e);
- :func:`correlation_scatter`: gene-gene correlations of two replicate regions against each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from spatialdata import SpatialData

from gsn_spatial import _sdata

#: Colours of the paper's Fig. 2a: light blue for transcripts inside cells, yellow for those outside.
INSIDE_COLOUR = "#7fd4ff"
OUTSIDE_COLOUR = "#ffd400"


def _finish(ax: Any, show: bool | None, save: str | Path | None) -> Any:
    import matplotlib.pyplot as plt

    fig = np.ravel(ax)[0].figure
    if save is not None:
        fig.savefig(save, dpi=150, bbox_inches="tight")
    if show:
        plt.show()
    return ax


def _check_keys(labels_keys: Any, names: Any = None) -> tuple[list[str], list[str]]:
    """The labels keys and their display names (default: the keys), validated."""
    if isinstance(labels_keys, str) or not isinstance(labels_keys, (list, tuple)) or not labels_keys:
        raise TypeError("`labels_keys` must be a non-empty list of labels keys.")
    keys = list(labels_keys)
    names = list(names) if names is not None else keys
    if len(names) != len(keys):
        raise ValueError(f"`names` must have one entry per labels key ({len(keys)}), got {len(names)}.")
    return keys, names


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

    from gsn_spatial.core.assign import lookup_cells

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
        points_key = _sdata.resolve_key(sdata, "points", points_key, parameter="points_key")
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
    return _finish(ax, show, save)


_METRIC_LABELS = {
    "area": "area (pixels)",
    "area_um2": "area (um$^2$)",
    "elongation": "elongation",
    "convexity": "convexity",
    "total_counts": "transcripts per cell",
    "n_genes_by_counts": "genes per cell",
    "perimeter": "perimeter (pixels)",
    "negative_marker_fraction": "negative-marker fraction",
}


def metric_distributions(
    sdata: SpatialData,
    *,
    labels_keys: list[str],
    metrics: Sequence[str] = ("area", "elongation", "convexity", "n_genes_by_counts"),
    points_key: str | None = None,
    names: Sequence[str] | None = None,
    axes: Any = None,
    show: bool | None = None,
    save: str | Path | None = None,
) -> Any:
    """Violin plots of per-cell metrics (:func:`gsn_spatial.qc.cell_metrics`), one panel per metric,
    one violin per segmentation (the paper's Fig. 2f-i).

    Nothing is written to ``sdata``. ``names`` relabels the segmentations.

    Returns
    -------
    numpy array of matplotlib axes, one per metric.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import gsn_spatial as gsn
    >>> sdata = gsn.datasets.synthetic_tissue((128, 128), seed=2)
    >>> axes = gsn.pl.metric_distributions(sdata, labels_keys=["cells", "nuclei"], metrics=["area", "convexity"])
    >>> axes.shape
    (2,)
    """
    import matplotlib.pyplot as plt

    from gsn_spatial.qc import cell_metrics

    keys, names = _check_keys(labels_keys, names)
    if isinstance(metrics, str) or not metrics:
        raise TypeError("`metrics` must be a non-empty list of column names.")
    frames = [cell_metrics(sdata, labels_key=k, points_key=points_key, inplace=False) for k in keys]
    for m in metrics:
        if not all(m in f.columns for f in frames):
            available = sorted(set.intersection(*(set(f.columns) for f in frames)))
            raise KeyError(f"Metric {m!r} (`metrics`) is not available for all segmentations; available: {available}.")
    if axes is None:
        _, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.6), squeeze=False)
    axes = np.ravel(axes)
    if len(axes) != len(metrics):
        raise ValueError(f"`axes` must hold one axes per metric ({len(metrics)}), got {len(axes)}.")
    for ax, m in zip(axes, metrics, strict=True):
        data = [f[m].to_numpy(dtype=float) for f in frames]
        data = [d[np.isfinite(d)] for d in data]
        pos = [i for i, d in enumerate(data) if len(d)]
        if pos:
            parts = ax.violinplot([data[i] for i in pos], positions=pos, showmedians=True, widths=0.8)
            for body in parts["bodies"]:
                body.set_alpha(0.6)
        ax.set_xticks(range(len(keys)))
        ax.set_xticklabels(names, rotation=30, ha="right")
        ax.set_title(_METRIC_LABELS.get(m, m))
    axes[0].figure.tight_layout()
    return _finish(axes, show, save)


def cell_calling_curve(
    sdata: SpatialData,
    *,
    labels_keys: list[str],
    points_key: str | None = None,
    deltas: Sequence[float] = tuple(range(1, 11)),
    names: Sequence[str] | None = None,
    ax: Any = None,
    show: bool | None = None,
    save: str | Path | None = None,
) -> Any:
    """Cell calling (:func:`gsn_spatial.qc.cell_calling`) over the distance ``delta``, one line per segmentation.

    The paper reports ``delta`` = 3, 5 and 7 (marked with dotted lines).

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import gsn_spatial as gsn
    >>> sdata = gsn.datasets.synthetic_tissue((128, 128), seed=2)
    >>> ax = gsn.pl.cell_calling_curve(sdata, labels_keys=["cells", "nuclei"], deltas=[2, 4])
    >>> len(ax.get_lines()) >= 2
    True
    """
    import matplotlib.pyplot as plt

    from gsn_spatial.qc import cell_calling

    keys, names = _check_keys(labels_keys, names)
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.6))
    for key, name in zip(keys, names, strict=True):
        cc = cell_calling(sdata, labels_key=key, points_key=points_key, deltas=deltas)
        ax.plot(cc.index.to_numpy(dtype=float), cc["cell_calling"].to_numpy(), marker="o", ms=3, label=name)
    for d in (3, 5, 7):
        ax.axvline(d, color="0.8", ls=":", lw=1, zorder=0)
    ax.set_xlabel("delta (pixels)")
    ax.set_ylabel("cell calling |g_in| / |g_out|")
    ax.set_yscale("log")
    ax.legend(frameon=False, fontsize=8)
    return _finish(ax, show, save)


def intensity_capture(
    sdata: SpatialData,
    *,
    labels_keys: list[str],
    image_key: str | None = None,
    image_channel: int | str | None = None,
    points_key: str | None = None,
    bins: int | Sequence[float] = 10,
    names: Sequence[str] | None = None,
    axes: Any = None,
    show: bool | None = None,
    save: str | Path | None = None,
) -> Any:
    """Proportion of pixels (left) and transcripts (right) inside cells by image intensity (paper, Fig. 2d-e).

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import gsn_spatial as gsn
    >>> sdata = gsn.datasets.synthetic_tissue((128, 128), seed=2)
    >>> axes = gsn.pl.intensity_capture(sdata, labels_keys=["cells"], bins=5)
    >>> axes.shape
    (2,)
    """
    import matplotlib.pyplot as plt

    from gsn_spatial.qc import intensity_capture as capture

    keys, names = _check_keys(labels_keys, names)
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(9, 3.6), squeeze=False)
    axes = np.ravel(axes)
    for key, name in zip(keys, names, strict=True):
        df = capture(
            sdata, labels_key=key, image_key=image_key, image_channel=image_channel, points_key=points_key, bins=bins
        )
        mid = ((df["low"] + df["high"]) / 2).to_numpy()
        axes[0].plot(mid, df["fraction_pixels_in_cells"], marker="o", ms=3, label=name)
        if "fraction_transcripts_in_cells" in df:
            axes[1].plot(mid, df["fraction_transcripts_in_cells"], marker="o", ms=3, label=name)
    axes[0].set_title("pixels inside cells")
    axes[1].set_title("transcripts inside cells")
    for ax in axes:
        ax.set_xlabel("pixel intensity")
        ax.set_ylim(-0.02, 1.02)
    axes[0].set_ylabel("proportion inside cells")
    axes[1].legend(frameon=False, fontsize=8)
    axes[0].figure.tight_layout()
    return _finish(axes, show, save)


def correlation_scatter(
    sdata: SpatialData,
    *,
    labels_key: str,
    points_key: str | None = None,
    table_key: str | None = None,
    split: str = "x",
    min_genes: int = 5,
    min_cell_fraction: float = 0.05,
    ax: Any = None,
    point_size: float = 4.0,
    title: str | None = None,
    show: bool | None = None,
    save: str | Path | None = None,
) -> Any:
    """Gene-gene correlations in one half of the slide against the other (paper, Fig. 2j).

    One dot per pair of genes kept in both halves (the paper's filters, see
    :func:`gsn_spatial.qc.correlation_reproducibility`); the title gives their
    Pearson correlation, the reproducibility.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import gsn_spatial as gsn
    >>> sdata = gsn.datasets.synthetic_tissue((256, 256), seed=2)
    >>> ax = gsn.pl.correlation_scatter(sdata, labels_key="cells")
    >>> ax.get_title().startswith("cells")
    True
    """
    import matplotlib.pyplot as plt

    from gsn_spatial.core.qcmetrics import gene_correlation, shared_gene_pairs
    from gsn_spatial.qc._slide import _counts, replicate_counts

    counts = _counts(sdata, labels_key, points_key, table_key, None)
    names, reps = replicate_counts(counts, split=split)
    a, b = (gene_correlation(r, min_genes=min_genes, min_cell_fraction=min_cell_fraction) for r in reps)
    _, ra, rb = shared_gene_pairs(a, b)
    r = float(np.corrcoef(ra, rb)[0, 1]) if len(ra) > 1 and ra.std() > 0 and rb.std() > 0 else float("nan")
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    ax.scatter(ra, rb, s=point_size, alpha=0.6, linewidths=0)
    ax.plot([-1, 1], [-1, 1], color="0.6", lw=1, ls="--")
    ax.set_xlim(-1, 1)
    ax.set_ylim(-1, 1)
    ax.set_aspect("equal")
    ax.set_xlabel(f"gene-gene correlation, {names[0]} half")
    ax.set_ylabel(f"gene-gene correlation, {names[1]} half")
    ax.set_title(title or f"{labels_key}: reproducibility r = {r:.3f} ({len(ra)} gene pairs)")
    return _finish(ax, show, save)


__all__ = [
    "cell_calling_curve",
    "correlation_scatter",
    "intensity_capture",
    "metric_distributions",
    "segmentation_overlay",
]
