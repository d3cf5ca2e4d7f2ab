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


def panoptic_quality(reference: np.ndarray, predicted: np.ndarray, *, threshold: float = 0.5) -> float:
    """Panoptic quality ``PQ = SQ * DQ`` (Kirillov et al. 2019) of the one-to-one matching at ``threshold``.

    ``SQ`` is the mean IoU of the matched pairs and ``DQ = TP / (TP + FP / 2 + FN / 2)``
    the F1 of the matching, so ``PQ = sum(matched IoU) / (TP + FP / 2 + FN / 2)``.
    At the usual threshold 0.5 matches are unique.

    Examples
    --------
    >>> a = np.zeros((4, 4), int); a[:, :2] = 1; a[:, 2:] = 2
    >>> b = a.copy(); b[0, 1] = 2  # cell 1 loses one of its 8 pixels to cell 2
    >>> round(panoptic_quality(a, b), 12)  # (7/8 + 8/9) / 2
    0.881944444444
    """
    s = match_scores(reference, predicted, threshold=threshold)
    return s.f1 * s.mean_matched_iou


@dataclass(frozen=True)
class SplitMerge:
    """Reference cells split into several predicted cells, and predicted cells merging several reference cells."""

    n_split: int
    n_merged: int
    split_ids: np.ndarray
    merged_ids: np.ndarray


def split_merge(reference: np.ndarray, predicted: np.ndarray, *, min_overlap: float = 0.5) -> SplitMerge:
    """Count split and merge errors.

    A reference cell is *split* when at least two predicted cells each have at
    least ``min_overlap`` of their own area inside it. A predicted cell is a
    *merge* when at least two reference cells each have at least
    ``min_overlap`` of their own area inside it. ``split_ids`` are reference
    ids, ``merged_ids`` predicted ids.

    Examples
    --------
    >>> ref = np.zeros((4, 8), int); ref[:, :4] = 1; ref[:, 4:] = 2
    >>> pred = np.zeros((4, 8), int); pred[:, :2] = 1; pred[:, 2:4] = 2; pred[:, 4:] = 3
    >>> s = split_merge(ref, pred); s.n_split, s.split_ids.tolist(), s.n_merged
    (1, [1], 0)
    >>> split_merge(pred, ref).n_merged  # roles swapped: reference cell 1 of `ref` merges two
    1
    """
    if not 0 < min_overlap <= 1:
        raise ValueError(f"`min_overlap` must be in (0, 1], got {min_overlap}.")
    r, p, inter, _ = overlap_table(reference, predicted)
    ref_area = np.bincount(np.asarray(reference).ravel().astype(np.int64))
    pred_area = np.bincount(np.asarray(predicted).ravel().astype(np.int64))
    pred_inside = inter >= min_overlap * pred_area[p]
    ref_inside = inter >= min_overlap * ref_area[r]
    ru, rc = np.unique(r[pred_inside], return_counts=True)
    pu, pc = np.unique(p[ref_inside], return_counts=True)
    split_ids, merged_ids = ru[rc >= 2], pu[pc >= 2]
    return SplitMerge(len(split_ids), len(merged_ids), split_ids, merged_ids)


@dataclass(frozen=True)
class TranscriptAgreement:
    """Transcript-level agreement of two segmentations (see :func:`transcript_agreement`)."""

    fraction_same: float
    ari: float
    n_transcripts: int
    n_assigned_both: int


def transcript_agreement(reference_ids: np.ndarray, predicted_ids: np.ndarray) -> TranscriptAgreement:
    """Agreement of two transcript-to-cell assignments (0 = unassigned).

    Cells are paired one-to-one by mutual majority of transcripts: reference
    cell ``r`` and predicted cell ``p`` are paired when more than half of
    ``r``'s transcripts are in ``p`` and more than half of ``p``'s are in ``r``
    (each cell has at most one such partner). ``fraction_same`` is the
    fraction of all transcripts that both leave unassigned or that sit in a
    paired ``(r, p)``. ``ari`` is the adjusted Rand index
    (``sklearn.metrics.adjusted_rand_score``) of the two partitions over the
    transcripts both assign to a cell (NaN when fewer than two).

    Examples
    --------
    >>> ref = np.array([1, 1, 1, 2, 2, 0, 0])
    >>> pred = np.array([5, 5, 0, 7, 7, 0, 7])  # one transcript lost, one ambient one gained
    >>> a = transcript_agreement(ref, pred); round(a.fraction_same, 12), a.ari
    (0.714285714286, 1.0)
    """
    from sklearn.metrics import adjusted_rand_score

    ref = np.asarray(reference_ids).astype(np.int64).ravel()
    pred = np.asarray(predicted_ids).astype(np.int64).ravel()
    if ref.shape != pred.shape:
        raise ValueError(f"Assignments differ in length: {ref.shape[0]} vs {pred.shape[0]}.")
    n = len(ref)
    if n == 0:
        return TranscriptAgreement(float("nan"), float("nan"), 0, 0)
    both = (ref > 0) & (pred > 0)
    pairs, shared = np.unique(np.stack([ref[both], pred[both]]), axis=1, return_counts=True)
    n_ref = np.bincount(ref)
    n_pred = np.bincount(pred)
    if pairs.size:
        rr, pp = pairs
        paired = (2 * shared > n_ref[rr]) & (2 * shared > n_pred[pp])
        agree = int(shared[paired].sum())
    else:
        agree = 0
    agree += int(((ref == 0) & (pred == 0)).sum())
    n_both = int(both.sum())
    ari = float(adjusted_rand_score(ref[both], pred[both])) if n_both >= 2 else float("nan")
    return TranscriptAgreement(agree / n, ari, n, n_both)
