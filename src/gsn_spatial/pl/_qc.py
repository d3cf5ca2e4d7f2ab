"""Plots of quality-control measures of one or several segmentations (``gsn.qc``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from spatialdata import SpatialData

from gsn_spatial.pl._common import check_keys, finish

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

    keys, names = check_keys(labels_keys, names)
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
    return finish(axes, show, save)


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

    keys, names = check_keys(labels_keys, names)
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
    return finish(ax, show, save)


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

    keys, names = check_keys(labels_keys, names)
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
    return finish(axes, show, save)


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

    from gsn_spatial.qc import correlation_reproducibility

    result = correlation_reproducibility(
        sdata, labels_key=labels_key, points_key=points_key, table_key=table_key, split=split, min_genes=min_genes,
        min_cell_fraction=min_cell_fraction, return_gene_pairs=True,
    )  # fmt: skip
    names, (ra, rb) = result["replicates"], result["gene_pairs"]
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
    return finish(ax, show, save)
