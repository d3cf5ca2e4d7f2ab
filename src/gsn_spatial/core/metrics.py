"""Segmentation-against-reference metrics on label arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment


def overlap_table(
    reference: np.ndarray, predicted: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sparse overlaps of two label images.

    Returns ``(ref_ids, pred_ids, intersection, iou)`` for every pair of a
    reference cell and a predicted cell that share at least one pixel.
    """
    ref = np.asarray(reference).ravel().astype(np.int64)
    pred = np.asarray(predicted).ravel().astype(np.int64)
    if ref.shape != pred.shape:
        raise ValueError(f"Label images differ in shape: {reference.shape} vs {predicted.shape}.")
    both = (ref > 0) & (pred > 0)
    pairs, inter = np.unique(np.stack([ref[both], pred[both]]), axis=1, return_counts=True)
    ref_area = np.bincount(ref)
    pred_area = np.bincount(pred)
    r, p = pairs if pairs.size else (np.zeros(0, np.int64), np.zeros(0, np.int64))
    union = ref_area[r] + pred_area[p] - inter
    return r, p, inter, inter / np.maximum(union, 1)


@dataclass(frozen=True)
class MatchScores:
    """Counts and scores of a one-to-one matching at an IoU threshold."""

    threshold: float
    n_reference: int
    n_predicted: int
    true_positives: int
    mean_matched_iou: float

    @property
    def precision(self) -> float:
        return self.true_positives / self.n_predicted if self.n_predicted else 0.0

    @property
    def recall(self) -> float:
        return self.true_positives / self.n_reference if self.n_reference else 0.0

    @property
    def f1(self) -> float:
        denom = self.n_reference + self.n_predicted
        return 2 * self.true_positives / denom if denom else 1.0


def match_scores(reference: np.ndarray, predicted: np.ndarray, *, threshold: float = 0.5) -> MatchScores:
    """One-to-one matching of cells at IoU >= ``threshold`` and its F1.

    Above IoU 0.5 a cell can overlap at most one partner that much, so matches
    are unique; at or below 0.5 a cell may have several candidates, and the
    Hungarian algorithm picks the matching with the most total IoU.

    Examples
    --------
    >>> a = np.zeros((4, 4), int); a[:2] = 1; a[2:] = 2
    >>> match_scores(a, a).f1
    1.0
    """
    ref_ids = np.unique(reference)
    pred_ids = np.unique(predicted)
    n_ref = int((ref_ids > 0).sum())
    n_pred = int((pred_ids > 0).sum())
    r, p, _, iou = overlap_table(reference, predicted)
    ok = iou >= threshold
    r, p, iou = r[ok], p[ok], iou[ok]
    ambiguous = len(np.unique(r)) < len(r) or len(np.unique(p)) < len(p)
    if ambiguous:
        ru, ri = np.unique(r, return_inverse=True)
        pu, pi = np.unique(p, return_inverse=True)
        cost = np.zeros((len(ru), len(pu)))
        cost[ri, pi] = -iou
        rows, cols = linear_sum_assignment(cost)
        matched = -cost[rows, cols]
        iou = matched[matched > 0]
    tp = len(iou)
    return MatchScores(threshold, n_ref, n_pred, tp, float(iou.mean()) if tp else 0.0)


def mean_best_iou(previous: np.ndarray, new: np.ndarray) -> float:
    """Eq. 16: for each cell of ``previous``, its best IoU with any cell of ``new``; the mean.

    The paper's stopping rule for recursive training compares consecutive
    rounds' labels with it. Cells of ``previous`` that overlap nothing count 0.

    Examples
    --------
    >>> a = np.zeros((4, 4), int); a[:2] = 1; a[2:] = 2
    >>> b = a.copy(); b[2:, :2] = 0  # cell 2 loses half its pixels
    >>> mean_best_iou(a, b)
    0.75
    """
    ids = np.unique(previous)
    ids = ids[ids > 0]
    if len(ids) == 0:
        return 1.0 if not np.any(new) else 0.0
    r, _, _, iou = overlap_table(previous, new)
    best = np.zeros(int(ids.max()) + 1)
    np.maximum.at(best, r, iou)
    return float(best[ids].mean())
