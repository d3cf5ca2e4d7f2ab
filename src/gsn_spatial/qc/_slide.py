"""Slide-level QC of one segmentation: cell calling, capture by intensity, transcripts assigned,
genes per cell, gene-gene correlation reproducibility and marker purity."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from spatialdata import SpatialData

from gsn_spatial import _sdata
from gsn_spatial.core.metrics import coverage
from gsn_spatial.core.metrics import expression as expression_metrics
from gsn_spatial.qc._common import cells_of_points, labels_array, points_on_grid, read_markers
from gsn_spatial.qc._counts import CellCounts, counts_for_labels


def _image_plane(
    sdata: SpatialData, image_key: str | None, image_channel: int | str | None, shape: tuple[int, int], labels_key: str
) -> tuple[str, np.ndarray]:
    image_key = _sdata.resolve_key(sdata, "images", image_key, parameter="image_key")
    plane = _sdata.select_channel(_sdata.scale0(sdata.images[image_key]), image_channel, image_key=image_key)
    img = np.asarray(plane.data)
    if img.shape != tuple(shape):
        raise ValueError(
            f"Image {image_key!r} {img.shape} and labels {labels_key!r} {tuple(shape)} differ in shape; "
            "they must share a pixel grid."
        )
    return image_key, img


def cell_calling(
    sdata: SpatialData,
    *,
    labels_key: str | None = None,
    points_key: str | None = None,
    deltas: Sequence[float] = (3, 5, 7),
) -> pd.DataFrame:
    """Cell calling (paper, Methods): transcripts inside cells over transcripts within ``delta`` pixels outside.

    ``g_in`` are the transcripts inside cells; ``g_out`` those outside whose
    distance to the centre of the nearest cell-boundary pixel is at most
    ``delta`` pixels (of the labels' grid). Higher is better: the
    segmentation recruits the RNA around its cells.

    Returns
    -------
    DataFrame indexed by ``delta`` with ``n_inside``, ``n_outside`` and ``cell_calling``.

    Examples
    --------
    >>> import gsn_spatial as gsn
    >>> sdata = gsn.datasets.synthetic_tissue((128, 128), seed=2)
    >>> cc = gsn.qc.cell_calling(sdata, labels_key="cells")
    >>> list(cc.index), bool((cc["cell_calling"].diff().dropna() < 0).all())
    ([3, 5, 7], True)
    """
    labels_key, labels = labels_array(sdata, labels_key)
    points_key = _sdata.resolve_key(sdata, "points", points_key, parameter="points_key", beside=labels_key)
    xy = points_on_grid(sdata, points_key, labels_key).xy_pixels
    res = coverage.cell_calling(labels, xy, deltas=deltas)
    return pd.DataFrame(
        {"n_inside": res.n_inside, "n_outside": list(res.n_outside), "cell_calling": list(res.ratio.values())},
        index=pd.Index(list(res.deltas), name="delta"),
    )


def intensity_capture(
    sdata: SpatialData,
    *,
    labels_key: str | None = None,
    image_key: str | None = None,
    image_channel: int | str | None = None,
    points_key: str | None = None,
    bins: int | Sequence[float] = 10,
) -> pd.DataFrame:
    """Proportion of pixels, and of transcripts, inside cells by image intensity (paper, Fig. 2d-e).

    ``bins`` equal-width intensity bins between the image's minimum and
    maximum (or explicit edges). Transcripts take the intensity of the pixel
    under them. With no points element (and no ``points_key``) only the
    pixel columns are filled.

    Returns
    -------
    DataFrame, one row per bin: ``low``, ``high``, ``n_pixels``,
    ``fraction_pixels_in_cells``, ``n_transcripts``, ``fraction_transcripts_in_cells``.

    Examples
    --------
    >>> import gsn_spatial as gsn
    >>> sdata = gsn.datasets.synthetic_tissue((128, 128), seed=2)
    >>> ic = gsn.qc.intensity_capture(sdata, labels_key="cells", bins=4)
    >>> len(ic), float(ic["fraction_pixels_in_cells"].iloc[-1])
    (4, 1.0)
    """
    labels_key, labels = labels_array(sdata, labels_key)
    image_key, img = _image_plane(sdata, image_key, image_channel, labels.shape, labels_key)
    pix = coverage.pixels_in_cells_by_intensity(img, labels, bins=bins)
    out = pd.DataFrame(
        {
            "low": pix.edges[:-1],
            "high": pix.edges[1:],
            "n_pixels": pix.n_total,
            "fraction_pixels_in_cells": pix.fraction_inside,
        }
    )
    if points_key is not None or any(True for _ in sdata.points):
        points_key = _sdata.resolve_key(sdata, "points", points_key, parameter="points_key", beside=labels_key)
        xy = points_on_grid(sdata, points_key, labels_key).xy_pixels
        tx = coverage.transcripts_in_cells_by_intensity(img, labels, xy, bins=pix.edges)
        out["n_transcripts"] = tx.n_total
        out["fraction_transcripts_in_cells"] = tx.fraction_inside
    out.index.name = "bin"
    return out


def fraction_assigned(sdata: SpatialData, *, labels_key: str | None = None, points_key: str | None = None) -> float:
    """Fraction of all transcripts that fall inside a cell of ``labels_key``.

    Examples
    --------
    >>> import gsn_spatial as gsn
    >>> sdata = gsn.datasets.synthetic_tissue((128, 128), seed=2)
    >>> 0.9 < gsn.qc.fraction_assigned(sdata, labels_key="cells") < 1.0  # the simulator's ambient 5 %
    True
    """
    labels_key, labels = labels_array(sdata, labels_key)
    points_key = _sdata.resolve_key(sdata, "points", points_key, parameter="points_key", beside=labels_key)
    xy = points_on_grid(sdata, points_key, labels_key).xy_pixels
    return coverage.fraction_assigned(cells_of_points(labels, xy))


def genes_per_cell(
    sdata: SpatialData,
    *,
    labels_key: str | None = None,
    points_key: str | None = None,
    table_key: str | None = None,
    gene_key: str | None = None,
) -> pd.Series:
    """Distribution of genes detected per cell (paper, Fig. 2f): number of cells with each gene count.

    A gene is detected in a cell when it has at least one transcript there.
    Counts come from ``table_key`` when given, else from the transcripts
    under each cell.

    Examples
    --------
    >>> import gsn_spatial as gsn
    >>> sdata = gsn.datasets.synthetic_tissue((128, 128), seed=2)
    >>> dist = gsn.qc.genes_per_cell(sdata, labels_key="cells")
    >>> int(dist.sum()) == int(sdata.labels["cells"].max())
    True
    """
    counts = _counts(sdata, labels_key, points_key, table_key, gene_key)
    n = expression_metrics.genes_per_cell(counts.counts)
    dist = pd.Series(np.bincount(n), name="n_cells")
    dist.index.name = "n_genes"
    return dist


def _counts(
    sdata: SpatialData,
    labels_key: str | None,
    points_key: str | None,
    table_key: str | None,
    gene_key: str | None,
) -> CellCounts:
    labels_key, labels = labels_array(sdata, labels_key)
    if table_key is None:
        points_key = _sdata.resolve_key(sdata, "points", points_key, parameter="points_key", beside=labels_key)
    return counts_for_labels(sdata, labels_key, labels, points_key=points_key, gene_key=gene_key, table_key=table_key)


def replicate_counts(
    counts: CellCounts, *, groups: Any = None, split: str = "x"
) -> tuple[list[str], list[sp.csr_matrix]]:
    """Split cells into replicates: by ``groups`` (one label per cell) or into two halves at the median ``split``."""
    if groups is None:
        if split not in ("x", "y"):
            raise ValueError(f"`split` must be 'x' or 'y', got {split!r}.")
        coord = counts.centroids[:, 0 if split == "x" else 1]
        first = coord < np.median(coord) if len(coord) else np.zeros(0, bool)
        names = ["left", "right"] if split == "x" else ["top", "bottom"]
        return names, [counts.counts[first], counts.counts[~first]]
    groups = np.asarray(groups)
    if len(groups) != len(counts.cell_ids):
        raise ValueError(f"`groups` must give one label per cell ({len(counts.cell_ids)}), got {len(groups)}.")
    names = [str(g) for g in pd.unique(groups)]
    return names, [counts.counts[groups.astype(str) == g] for g in names]


def correlation_reproducibility(
    sdata: SpatialData,
    *,
    labels_key: str | None = None,
    points_key: str | None = None,
    table_key: str | None = None,
    gene_key: str | None = None,
    groupby: str | None = None,
    split: str = "x",
    min_genes: int = 5,
    min_cell_fraction: float = 0.05,
    return_gene_pairs: bool = False,
) -> dict[str, Any]:
    """Gene-gene correlation reproducibility between replicate regions (paper, Methods).

    Cells are grouped into replicates by the table column ``groupby``
    (e.g. a section or sample column of ``table_key``), or, by default, the
    slide is cut in two halves at the median cell centroid along ``split``
    (``"x"``: left / right). Within each replicate: cells with fewer than
    ``min_genes`` detected genes are dropped, counts are divided by each
    cell's total, genes detected in fewer than ``min_cell_fraction`` of cells
    are dropped, and the Pearson correlation of every pair of genes is taken.
    The reproducibility is the Pearson correlation of those gene-gene
    correlations between two replicates, the median over pairs of replicates.

    Returns
    -------
    dict with ``reproducibility``, ``per_pair`` (one value per pair of
    replicates), ``replicates`` (names) and ``n_cells`` per replicate; with
    ``return_gene_pairs``, also ``gene_pairs``: the correlations of the gene
    pairs kept in both of the first two replicates, one array per replicate
    (what :func:`gsn_spatial.pl.correlation_scatter` plots).

    Examples
    --------
    >>> import gsn_spatial as gsn
    >>> sdata = gsn.datasets.synthetic_tissue((256, 256), seed=2)
    >>> r = gsn.qc.correlation_reproducibility(sdata, labels_key="cells")
    >>> r["replicates"], r["reproducibility"] > 0.5
    (['left', 'right'], True)
    """
    counts = _counts(sdata, labels_key, points_key, table_key, gene_key)
    groups = None
    if groupby is not None:
        if table_key is None:
            raise ValueError("`groupby` names a column of the table: pass `table_key=` as well.")
        table = sdata.tables[table_key]
        if groupby not in table.obs:
            raise KeyError(f"Table {table_key!r} has no obs column {groupby!r} (`groupby`).")
        from gsn_spatial.qc._counts import _instance_key

        col = table.obs.set_index(table.obs[_instance_key(table)].astype(np.int64))[groupby]
        groups = col.reindex(counts.cell_ids).astype(str).to_numpy()
    names, reps = replicate_counts(counts, groups=groups, split=split)
    value, per_pair = expression_metrics.correlation_reproducibility(
        reps, min_genes=min_genes, min_cell_fraction=min_cell_fraction
    )
    out = {
        "reproducibility": value,
        "per_pair": per_pair.tolist(),
        "replicates": names,
        "n_cells": [int(r.shape[0]) for r in reps],
    }
    if return_gene_pairs:
        a, b = (
            expression_metrics.gene_correlation(r, min_genes=min_genes, min_cell_fraction=min_cell_fraction)
            for r in reps[:2]
        )
        out["gene_pairs"] = expression_metrics.shared_gene_pairs(a, b)[1:]
    return out


def marker_purity(
    sdata: SpatialData,
    *,
    labels_key: str | None = None,
    positive_markers: Any,
    negative_markers: Any = None,
    points_key: str | None = None,
    table_key: str | None = None,
    gene_key: str | None = None,
) -> dict[str, float]:
    """MECR and negative-marker contamination of a segmentation; lower is better for both.

    - ``mecr``: mutually exclusive co-expression rate (Hartman & Satija 2024):
      over gene pairs that mark different cell types, the mean of
      ``P(both detected) / P(either detected)`` across cells.
    - ``negative_marker_contamination`` (with ``negative_markers``): each
      cell is typed by the positive markers holding the largest share of its
      counts; the mean over typed cells of the share of counts that are
      negative markers of its type. ``fraction_typed`` is the share of cells
      that could be typed.

    Marker tables are DataFrames of cell types x genes (0/1), CSV paths
    (as ``sc_breast_markers_pos.csv``) or ``{cell type: [genes]}``.

    Examples
    --------
    >>> import gsn_spatial as gsn
    >>> sdata = gsn.datasets.synthetic_tissue((128, 128), seed=2)
    >>> m = gsn.qc.marker_purity(sdata, labels_key="cells", positive_markers={"a": ["Gene00"], "b": ["Gene01"]})
    >>> 0 <= m["mecr"] <= 1
    True
    """
    counts = _counts(sdata, labels_key, points_key, table_key, gene_key)
    types, pos = read_markers(positive_markers, counts.gene_names, parameter="positive_markers")
    value, pairs, _ = expression_metrics.mecr(counts.counts, pos)
    out = {"mecr": value, "n_marker_pairs": int(len(pairs))}
    if negative_markers is not None:
        neg_types, neg = read_markers(negative_markers, counts.gene_names, parameter="negative_markers")
        if neg_types != types:
            raise ValueError("`positive_markers` and `negative_markers` must list the same cell types in order.")
        res = expression_metrics.negative_marker_contamination(counts.counts, pos, neg)
        out["negative_marker_contamination"] = res.mean
        out["fraction_typed"] = float((res.cell_type >= 0).mean()) if len(res.cell_type) else float("nan")
    return out
