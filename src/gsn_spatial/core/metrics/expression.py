"""What the cells' counts say: genes per cell, gene-gene correlation reproducibility, and marker-based
purity (MECR, negative-marker contamination). Counts are cells x genes matrices (dense or scipy sparse).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


def _as_csr(counts: np.ndarray | sp.spmatrix) -> sp.csr_matrix:
    m = sp.csr_matrix(counts)
    if m.ndim != 2:
        raise ValueError("`counts` must be a 2-D cells x genes matrix.")
    return m


def genes_per_cell(counts: np.ndarray | sp.spmatrix) -> np.ndarray:
    """Genes detected (at least one count) in each cell (Fig. 2f).

    Examples
    --------
    >>> genes_per_cell(np.array([[0, 2, 1], [0, 0, 0]])).tolist()
    [2, 0]
    """
    m = _as_csr(counts)
    m.eliminate_zeros()
    return np.diff(m.indptr).astype(np.int64)


def gene_correlation(
    counts: np.ndarray | sp.spmatrix, *, min_genes: int = 5, min_cell_fraction: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """Gene-gene Pearson correlations of normalised expression, with the paper's filters.

    Cells with positive expression in fewer than ``min_genes`` genes are
    dropped (the paper: 5 for hippocampus, 30 for NSCLC); each cell's counts
    are divided by its total; genes positive in fewer than
    ``min_cell_fraction`` of the kept cells are dropped; the Pearson
    correlation is taken for every pair of kept genes across cells.

    Returns
    -------
    ``(genes, corr)``: indices of the kept genes and their correlation matrix
    (NaN for a gene with constant expression).

    Examples
    --------
    >>> c = np.array([[1, 1, 8], [2, 2, 6], [3, 3, 4], [4, 4, 2]])  # g0 == g1, g2 = 10 - 2 g0
    >>> genes, r = gene_correlation(c, min_genes=3)
    >>> genes.tolist(), np.round(r, 12).tolist()
    ([0, 1, 2], [[1.0, 1.0, -1.0], [1.0, 1.0, -1.0], [-1.0, -1.0, 1.0]])
    """
    if min_genes < 0 or not 0 <= min_cell_fraction <= 1:
        raise ValueError("`min_genes` must be >= 0 and `min_cell_fraction` in [0, 1].")
    m = _as_csr(counts).astype(np.float64)
    keep_cells = genes_per_cell(m) >= min_genes
    m = m[keep_cells]
    totals = np.asarray(m.sum(axis=1)).ravel()
    m = sp.diags(1.0 / np.where(totals > 0, totals, 1.0)) @ m
    n_cells = m.shape[0]
    positive = np.asarray((m > 0).sum(axis=0)).ravel()
    genes = np.flatnonzero((positive >= min_cell_fraction * n_cells) & (positive > 0))
    if n_cells < 2 or len(genes) == 0:
        return genes, np.full((len(genes), len(genes)), np.nan)
    x = m[:, genes].toarray()
    x -= x.mean(axis=0)
    sd = np.sqrt((x * x).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = (x.T @ x) / np.outer(sd, sd)
    corr[:, sd == 0] = np.nan
    corr[sd == 0, :] = np.nan
    return genes, corr


def correlation_reproducibility(
    replicates: Sequence[np.ndarray | sp.spmatrix],
    *,
    min_genes: int = 5,
    min_cell_fraction: float = 0.05,
) -> tuple[float, np.ndarray]:
    """Reproducibility of gene-gene correlations across replicates (Methods).

    For each pair of replicates (count matrices over the same genes), the
    Pearson correlation between their gene-gene correlations over all pairs
    of genes kept (by :func:`gene_correlation`) in both; the reproducibility
    is the median over pairs of replicates (with two replicates, that one
    correlation).

    Returns
    -------
    ``(reproducibility, per_pair)``: the median, and one value per pair of replicates.

    Examples
    --------
    >>> a = np.array([[1, 1, 8], [2, 2, 6], [3, 3, 4], [4, 4, 2]])   # gene pairs (01, 02, 12): +1, -1, -1
    >>> b = a[:, [0, 2, 1]]                                          # gene pairs (01, 02, 12): -1, +1, -1
    >>> round(correlation_reproducibility([a, b], min_genes=3)[0], 12)
    -0.5
    """
    if len(replicates) < 2:
        raise ValueError(f"Need at least two replicates, got {len(replicates)}.")
    n_genes = {_as_csr(r).shape[1] for r in replicates}
    if len(n_genes) != 1:
        raise ValueError(f"Replicates must share their genes (columns); got {sorted(n_genes)} genes.")
    results = [gene_correlation(r, min_genes=min_genes, min_cell_fraction=min_cell_fraction) for r in replicates]
    per_pair = []
    for i in range(len(results)):
        for j in range(i + 1, len(results)):
            per_pair.append(_pair_reproducibility(results[i], results[j]))
    per_pair_arr = np.asarray(per_pair, dtype=float)
    finite = per_pair_arr[np.isfinite(per_pair_arr)]
    return (float(np.median(finite)) if len(finite) else float("nan")), per_pair_arr


def shared_gene_pairs(
    a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gene-gene correlations of two replicates over the gene pairs both kept: ``(pairs, r_a, r_b)``."""
    (ga, ca), (gb, cb) = a, b
    shared = np.intersect1d(ga, gb)
    ia = np.searchsorted(ga, shared)
    ib = np.searchsorted(gb, shared)
    iu, ju = np.triu_indices(len(shared), k=1)
    ra = ca[ia[iu], ia[ju]]
    rb = cb[ib[iu], ib[ju]]
    ok = np.isfinite(ra) & np.isfinite(rb)
    return np.stack([shared[iu][ok], shared[ju][ok]], axis=1), ra[ok], rb[ok]


def _pair_reproducibility(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float:
    _, ra, rb = shared_gene_pairs(a, b)
    if len(ra) < 2 or ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def _check_markers(markers: np.ndarray, n_genes: int, name: str) -> np.ndarray:
    mk = np.asarray(markers)
    if mk.ndim != 2 or mk.shape[1] != n_genes:
        raise ValueError(f"`{name}` must be a (cell types x {n_genes} genes) matrix, got shape {mk.shape}.")
    return mk.astype(bool)


def exclusive_marker_pairs(positive: np.ndarray) -> np.ndarray:
    """Gene pairs ``(g1 < g2)`` where g1 marks a type that g2 does not, and g2 one that g1 does not.

    ``positive`` is a boolean cell types x genes marker matrix. Genes that mark
    the same set of types are never paired.

    Examples
    --------
    >>> exclusive_marker_pairs(np.array([[1, 1, 0], [0, 0, 1]], bool)).tolist()
    [[0, 2], [1, 2]]
    """
    pos = np.asarray(positive, dtype=bool)
    marker_genes = np.flatnonzero(pos.any(axis=0))
    cols = pos[:, marker_genes].astype(np.int64)
    shared = cols.T @ cols  # types both mark
    count = cols.sum(axis=0)
    # g1 marks a type g2 does not, and vice versa: neither's type set contains the other's.
    exclusive = (shared < count[:, None]) & (shared < count[None, :])
    i, j = np.nonzero(np.triu(exclusive, k=1))
    return np.stack([marker_genes[i], marker_genes[j]], axis=1).astype(np.int64)


def mecr(counts: np.ndarray | sp.spmatrix, positive: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Mutually exclusive co-expression rate (Hartman & Satija 2024); lower is better.

    For each pair of marker genes of different cell types
    (:func:`exclusive_marker_pairs`), ``P(g1 and g2) / P(g1 or g2)`` over
    cells, a gene being expressed in a cell when it has at least one count
    there; pairs expressed in no cell are skipped. The MECR is the mean over
    pairs.

    Returns
    -------
    ``(mecr, pairs, rate)``: the mean, the gene pairs used and each pair's rate.

    Examples
    --------
    >>> c = np.array([[3, 0], [0, 2], [1, 1], [0, 0]])  # A only, B only, both, neither
    >>> round(mecr(c, np.array([[1, 0], [0, 1]]))[0], 12)
    0.333333333333
    """
    m = _as_csr(counts)
    pos = _check_markers(positive, m.shape[1], "positive")
    pairs = exclusive_marker_pairs(pos)
    if len(pairs) == 0:
        return float("nan"), pairs, np.zeros(0)
    genes = np.unique(pairs)
    expressed = (m[:, genes] > 0).astype(np.int64)
    both = (expressed.T @ expressed).toarray()
    n = np.asarray(expressed.sum(axis=0)).ravel()
    gi = np.searchsorted(genes, pairs[:, 0])
    gj = np.searchsorted(genes, pairs[:, 1])
    inter = both[gi, gj]
    union = n[gi] + n[gj] - inter
    ok = union > 0
    rate = inter[ok] / union[ok]
    return (float(rate.mean()) if len(rate) else float("nan")), pairs[ok], rate


@dataclass(frozen=True)
class Contamination:
    """Per cell: the cell type (index into the marker tables, -1 = untyped) and the contamination."""

    cell_type: np.ndarray
    contamination: np.ndarray

    @property
    def mean(self) -> float:
        ok = self.cell_type >= 0
        return float(self.contamination[ok].mean()) if ok.any() else float("nan")


def negative_marker_contamination(
    counts: np.ndarray | sp.spmatrix,
    positive: np.ndarray,
    negative: np.ndarray,
    *,
    cell_type: np.ndarray | None = None,
) -> Contamination:
    """Fraction of each cell's transcripts that are negative markers of its cell type; lower is better.

    Without ``cell_type``, each cell takes the type whose positive markers
    hold the largest share of its counts (first type on ties); cells with no
    positive-marker count, or no counts, stay untyped (-1, contamination NaN).
    ``positive`` and ``negative`` are boolean cell types x genes matrices.

    Examples
    --------
    >>> pos = np.array([[1, 0, 0], [0, 1, 0]]); neg = np.array([[0, 1, 0], [1, 0, 0]])
    >>> r = negative_marker_contamination(np.array([[8, 2, 0], [1, 3, 4], [0, 0, 5]]), pos, neg)
    >>> r.cell_type.tolist(), r.contamination.tolist()
    ([0, 1, -1], [0.2, 0.125, nan])
    """
    m = _as_csr(counts).astype(np.float64)
    pos = _check_markers(positive, m.shape[1], "positive")
    neg = _check_markers(negative, m.shape[1], "negative")
    if pos.shape[0] != neg.shape[0]:
        raise ValueError(f"`positive` ({pos.shape[0]} types) and `negative` ({neg.shape[0]}) differ in cell types.")
    totals = np.asarray(m.sum(axis=1)).ravel()
    if cell_type is None:
        score = np.asarray(m @ pos.T.astype(np.float64))
        types = np.argmax(score, axis=1)
        types[(score.max(axis=1, initial=0) <= 0) | (totals <= 0)] = -1
    else:
        types = np.asarray(cell_type, dtype=np.int64)
        if types.shape != (m.shape[0],) or types.max(initial=-1) >= pos.shape[0]:
            raise ValueError("`cell_type` must give one type index (or -1) per cell.")
        types = np.where(totals > 0, types, -1)
    neg_counts = np.asarray(m @ neg.T.astype(np.float64))
    rows = np.flatnonzero(types >= 0)
    out = np.full(m.shape[0], np.nan)
    out[rows] = neg_counts[rows, types[rows]] / totals[rows]
    return Contamination(types.astype(np.int64), out)
