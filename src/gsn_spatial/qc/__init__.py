"""Quality control: scores of a segmentation against a reference."""

from __future__ import annotations

import numpy as np
from spatialdata import SpatialData

from gsn_spatial import _sdata
from gsn_spatial.core.metrics import match_scores


def match_reference(
    sdata: SpatialData, *, labels_key: str, reference_key: str, iou_threshold: float = 0.5
) -> dict[str, float]:
    """Match the cells of ``labels_key`` one-to-one with those of ``reference_key`` at IoU >= ``iou_threshold``.

    Both labels elements must share a pixel grid.

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
    for key, param in ((labels_key, "labels_key"), (reference_key, "reference_key")):
        _sdata.resolve_key(sdata, "labels", key, parameter=param)
    pred = np.asarray(_sdata.scale0(sdata.labels[labels_key]).data)
    ref = np.asarray(_sdata.scale0(sdata.labels[reference_key]).data)
    if pred.shape != ref.shape:
        raise ValueError(f"Labels {labels_key!r} {pred.shape} and {reference_key!r} {ref.shape} differ in shape.")
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


__all__ = ["match_reference"]
