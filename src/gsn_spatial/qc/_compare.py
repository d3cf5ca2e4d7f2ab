"""``gsn.qc.compare``: several segmentations of one slide side by side, one row each."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from spatialdata import SpatialData

from gsn_spatial import _sdata
from gsn_spatial.core.assign.counts import count_matrix
from gsn_spatial.core.metrics import coverage
from gsn_spatial.core.metrics import expression as expression_metrics
from gsn_spatial.core.metrics.cell_shape import cell_ids as present_ids
from gsn_spatial.core.metrics.cell_shape import shape_metrics
from gsn_spatial.qc._common import (
    cells_of_points,
    labels_array,
    microns_per_pixel,
    points_on_grid,
    read_markers,
    reference_array,
)
from gsn_spatial.qc._counts import centroids
from gsn_spatial.qc._reference import _check_thresholds, reference_scores
from gsn_spatial.qc._slide import _image_plane


def _median(v: np.ndarray) -> float:
    v = np.asarray(v, dtype=float)
    v = v[np.isfinite(v)]
    return float(np.median(v)) if len(v) else float("nan")


def compare(
    sdata: SpatialData,
    *,
    labels_keys: list[str],
    reference_key: str | None = None,
    points_key: str | None = None,
    image_key: str | None = None,
    image_channel: int | str | None = None,
    gene_key: str | None = None,
    iou_thresholds: Sequence[float] = (0.5, 0.75),
    deltas: Sequence[float] = (3, 5, 7),
    positive_markers: Any = None,
    negative_markers: Any = None,
    min_genes: int = 5,
    min_cell_fraction: float = 0.05,
    coordinate_system: str | None = None,
    pixel_size: float | None = None,
    sort_by: str | None = None,
) -> pd.DataFrame:
    """One row per segmentation (index: the labels key), one column per metric.

    Columns, in groups (a group is left out when its input is missing):

    - always: ``n_cells``, ``median_area`` (pixels), ``median_area_um2``
      (with a micron transformation), ``median_elongation``,
      ``median_convexity`` (see :func:`cell_metrics`);
    - against ``reference_key`` (labels on the same grid, or a shapes element of cell polygons or circles drawn
      onto it): ``f1_iou50``, ``precision_iou50``,
      ``recall_iou50``, the same at the other ``iou_thresholds``,
      ``mean_matched_iou``, ``panoptic_quality``, ``n_split``, ``n_merged``,
      and with transcripts ``tx_fraction_same``, ``tx_ari``
      (see :func:`reference_metrics`);
    - with transcripts (``points_key``, or the only points element):
      ``fraction_assigned``, ``median_total_counts``,
      ``median_n_genes_by_counts``, ``cell_calling_<delta>`` for each of
      ``deltas``, ``correlation_reproducibility`` between the left and
      right halves of the slide (:func:`correlation_reproducibility`);
    - with ``positive_markers`` (and ``negative_markers``): ``mecr``
      (and ``negative_marker_contamination``; see :func:`marker_purity`);
    - with an image (``image_key``, or the only image element):
      ``stain_coverage``, the fraction of above-Otsu-threshold pixels
      (the stained nuclei) inside cells.

    With a reference the rows are sorted by ``f1_iou50`` (ties by
    ``panoptic_quality``) and ranked in a ``rank`` column; ``sort_by`` names
    another column to sort by (descending). All labels must share a pixel
    grid with the reference and the image.

    Examples
    --------
    >>> import gsn_spatial as gsn
    >>> sdata = gsn.datasets.synthetic_tissue((128, 128), seed=2)
    >>> gsn.tl.expand_nuclei(sdata, labels_key="nuclei", distance_um=2.0)
    >>> df = gsn.qc.compare(sdata, labels_keys=["nuclei", "expanded_nuclei"], reference_key="cells")
    >>> list(df.index), list(df["rank"])
    (['expanded_nuclei', 'nuclei'], [1, 2])
    """
    if isinstance(labels_keys, str) or not isinstance(labels_keys, (list, tuple)) or not labels_keys:
        raise TypeError("`labels_keys` must be a non-empty list of labels keys.")
    if len(set(labels_keys)) != len(labels_keys):
        raise ValueError(f"`labels_keys` has repeated keys: {labels_keys}.")
    thresholds = _check_thresholds(iou_thresholds)
    arrays = {key: labels_array(sdata, key, parameter="labels_keys")[1] for key in labels_keys}
    shape = next(iter(arrays.values())).shape
    for key, arr in arrays.items():
        if arr.shape != shape:
            raise ValueError(f"Labels {key!r} {arr.shape} and {labels_keys[0]!r} {shape} differ in shape.")
    ref = None
    if reference_key is not None:
        ref = reference_array(sdata, reference_key, labels_keys[0], shape)
    pts = None
    if points_key is not None or any(True for _ in sdata.points):
        points_key = _sdata.resolve_key(sdata, "points", points_key, parameter="points_key", beside=labels_keys[0])
        pts = points_on_grid(sdata, points_key, labels_keys[0], gene_key=gene_key, with_genes=True)
    img = None
    if image_key is not None or any(True for _ in sdata.images):
        image_key, img = _image_plane(sdata, image_key, image_channel, shape, labels_keys[0])
    pos = neg = None
    if positive_markers is not None:
        if pts is None:
            raise ValueError("Marker metrics need transcripts: pass `points_key=`.")
        types, pos = read_markers(positive_markers, pts.gene_names, parameter="positive_markers")
        if negative_markers is not None:
            neg_types, neg = read_markers(negative_markers, pts.gene_names, parameter="negative_markers")
            if neg_types != types:
                raise ValueError("`positive_markers` and `negative_markers` must list the same cell types in order.")
    elif negative_markers is not None:
        raise ValueError("`negative_markers` needs `positive_markers` (cells are typed by their positive markers).")
    stain = None
    if img is not None:
        from skimage.filters import threshold_otsu

        stain = img > threshold_otsu(img) if img.max() > img.min() else np.zeros(img.shape, bool)

    rows = {}
    for key, lab in arrays.items():
        row: dict[str, float] = {}
        shp = shape_metrics(lab)
        row["n_cells"] = len(shp.cell_ids)
        if ref is not None:
            xy = None
            if pts is not None:
                xy = _pixels(sdata, points_key, key, pts.xy)
            row.update(reference_scores(ref, lab, iou_thresholds=thresholds, points_xy=xy))
        row["median_area"] = _median(shp.area)
        um = pixel_size or microns_per_pixel(sdata, key, coordinate_system=coordinate_system)
        if um is not None:
            row["median_area_um2"] = _median(shp.area * um * um)
        row["median_elongation"] = _median(shp.elongation)
        row["median_convexity"] = _median(shp.convexity)
        if pts is not None:
            xy = _pixels(sdata, points_key, key, pts.xy)
            cell = cells_of_points(lab, xy)
            ids = present_ids(lab)
            counts = count_matrix(cell, pts.gene_codes, ids, len(pts.gene_names))
            row["fraction_assigned"] = coverage.fraction_assigned(cell)
            row["median_total_counts"] = _median(np.asarray(counts.sum(axis=1)).ravel())
            row["median_n_genes_by_counts"] = _median(expression_metrics.genes_per_cell(counts))
            cc = coverage.cell_calling(lab, xy, deltas=deltas)
            for d, v in cc.ratio.items():
                row[f"cell_calling_{d:g}"] = v
            first = centroids(lab, ids)[:, 0]
            half = first < np.median(first) if len(first) else np.zeros(0, bool)
            row["correlation_reproducibility"] = expression_metrics.correlation_reproducibility(
                [counts[half], counts[~half]], min_genes=min_genes, min_cell_fraction=min_cell_fraction
            )[0]
            if pos is not None:
                row["mecr"] = expression_metrics.mecr(counts, pos)[0]
                if neg is not None:
                    row["negative_marker_contamination"] = expression_metrics.negative_marker_contamination(
                        counts, pos, neg
                    ).mean
        if stain is not None:
            row["stain_coverage"] = float((lab[stain] > 0).mean()) if stain.any() else float("nan")
        rows[key] = row
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index.name = "labels_key"
    if sort_by is not None:
        if sort_by not in df.columns:
            raise KeyError(f"`sort_by`={sort_by!r} is not a column; columns: {list(df.columns)}.")
        df = df.sort_values(sort_by, ascending=False, kind="stable")
    elif ref is not None:
        df = df.sort_values(["f1_iou50", "panoptic_quality"], ascending=False, kind="stable")
    if sort_by is not None or ref is not None:
        df.insert(0, "rank", np.arange(1, len(df) + 1))
    df.attrs["gsn_qc"] = {
        "reference_key": reference_key,
        "points_key": points_key,
        "image_key": image_key,
        "iou_thresholds": list(thresholds),
        "deltas": list(deltas),
    }
    return df


def _pixels(sdata: SpatialData, points_key: str, grid_key: str, xy: np.ndarray) -> np.ndarray:
    m = _sdata.points_to_pixels(sdata, points_key, grid_key)
    return xy @ m[:2, :2].T + m[:2, 2]
