"""Scores of a segmentation against a reference segmentation (the truth or another method)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from spatialdata import SpatialData

from gsn_spatial import _sdata
from gsn_spatial.core.metrics.matching import match_scores, panoptic_quality, split_merge, transcript_agreement
from gsn_spatial.qc._common import cells_of_points, labels_array, points_on_grid, reference_array


def _pair(sdata: SpatialData, labels_key: str, reference_key: str) -> tuple[np.ndarray, np.ndarray]:
    labels_key, pred = labels_array(sdata, labels_key, parameter="labels_key")
    return pred, reference_array(sdata, reference_key, labels_key, pred.shape)


def match_reference(
    sdata: SpatialData, *, labels_key: str, reference_key: str, iou_threshold: float = 0.5
) -> dict[str, float]:
    """Match the cells of ``labels_key`` one-to-one with those of ``reference_key`` at IoU >= ``iou_threshold``.

    Both labels elements must share a pixel grid; ``reference_key`` may also name a shapes element of cell polygons
    or circles (a vendor's boundaries), drawn onto the grid of ``labels_key`` through the transformations.

    Returns
    -------
    dict
        ``f1``, ``precision``, ``recall``, ``mean_matched_iou``, ``n_predicted``,
        ``n_reference``, ``true_positives``, ``iou_threshold``.

    Examples
    --------
    >>> import gsn_spatial as gsn
    >>> sdata = gsn.datasets.synthetic_tissue((128, 128), seed=2)
    >>> gsn.qc.match_reference(sdata, labels_key="cells", reference_key="cells")["f1"]
    1.0
    """
    pred, ref = _pair(sdata, labels_key, reference_key)  # resolves both keys, with errors that name them
    s = match_scores(ref, pred, threshold=iou_threshold)
    return {
        "f1": s.f1,
        "precision": s.precision,
        "recall": s.recall,
        "mean_matched_iou": s.mean_matched_iou,
        "n_predicted": s.n_predicted,
        "n_reference": s.n_reference,
        "true_positives": s.true_positives,
        "iou_threshold": iou_threshold,
    }


def _check_thresholds(iou_thresholds: Sequence[float]) -> tuple[float, ...]:
    ts = tuple(float(t) for t in iou_thresholds)
    if not ts or any(not 0 < t <= 1 for t in ts):
        raise ValueError(f"`iou_thresholds` must be numbers in (0, 1], got {iou_thresholds}.")
    return ts


def reference_scores(
    reference: np.ndarray,
    predicted: np.ndarray,
    *,
    iou_thresholds: Sequence[float] = (0.5, 0.75),
    min_overlap: float = 0.5,
    points_xy: np.ndarray | None = None,
) -> dict[str, float]:
    """All reference metrics of two label arrays (and, with ``points_xy`` in pixels, transcript agreement)."""
    out: dict[str, float] = {}
    for t in _check_thresholds(iou_thresholds):
        s = match_scores(reference, predicted, threshold=t)
        tag = f"iou{round(t * 100):d}"
        out[f"f1_{tag}"] = s.f1
        out[f"precision_{tag}"] = s.precision
        out[f"recall_{tag}"] = s.recall
    s5 = match_scores(reference, predicted, threshold=0.5)
    out["mean_matched_iou"] = s5.mean_matched_iou
    out["panoptic_quality"] = panoptic_quality(reference, predicted, threshold=0.5)
    sm = split_merge(reference, predicted, min_overlap=min_overlap)
    out["n_split"] = sm.n_split
    out["n_merged"] = sm.n_merged
    if points_xy is not None:
        agree = transcript_agreement(cells_of_points(reference, points_xy), cells_of_points(predicted, points_xy))
        out["tx_fraction_same"] = agree.fraction_same
        out["tx_ari"] = agree.ari
    return out


def reference_metrics(
    sdata: SpatialData,
    *,
    labels_key: str,
    reference_key: str,
    points_key: str | None = None,
    iou_thresholds: Sequence[float] = (0.5, 0.75),
    min_overlap: float = 0.5,
) -> dict[str, float]:
    """Scores of ``labels_key`` against ``reference_key`` (the truth, or another segmentation).

    - ``f1_iouNN``, ``precision_iouNN``, ``recall_iouNN``: one-to-one matching
      of cells at IoU >= each of ``iou_thresholds`` (NN = threshold x 100);
    - ``mean_matched_iou``: mean IoU of the pairs matched at 0.5;
    - ``panoptic_quality``: ``SQ x DQ`` at IoU 0.5 (mean matched IoU x F1);
    - ``n_split``: reference cells holding at least two predicted cells with
      ``min_overlap`` of their area inside; ``n_merged``: predicted cells
      holding at least two reference cells likewise;
    - with transcripts (``points_key``, or the only points element):
      ``tx_fraction_same``, the fraction of transcripts that both leave
      outside cells or that both put in cells paired by mutual majority, and
      ``tx_ari``, the adjusted Rand index over transcripts both put in cells.

    Both labels must share a pixel grid; ``reference_key`` may also name a shapes element of cell polygons or
    circles, drawn onto the grid of ``labels_key``.

    Examples
    --------
    >>> import gsn_spatial as gsn
    >>> sdata = gsn.datasets.synthetic_tissue((128, 128), seed=2)
    >>> m = gsn.qc.reference_metrics(sdata, labels_key="nuclei", reference_key="cells")
    >>> m["recall_iou50"] < 0.5, m["n_split"], m["n_merged"]
    (True, 0, 0)
    """
    pred, ref = _pair(sdata, labels_key, reference_key)
    xy = None
    if points_key is not None or any(True for _ in sdata.points):
        points_key = _sdata.resolve_key(sdata, "points", points_key, parameter="points_key", beside=labels_key)
        xy = points_on_grid(sdata, points_key, labels_key).xy_pixels
    return reference_scores(ref, pred, iou_thresholds=iou_thresholds, min_overlap=min_overlap, points_xy=xy)
