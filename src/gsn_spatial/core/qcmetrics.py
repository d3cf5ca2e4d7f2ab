"""Slide-level quality metrics on arrays: cell calling, capture by intensity, gene-gene
correlation reproducibility, and marker-based purity (MECR, negative-marker contamination).

Positions are ``(n, 2)`` pixel ``(x, y)`` arrays on the label image's grid;
pixel ``(row, col)`` covers ``[col, col + 1) x [row, row + 1)``. Counts are
cells x genes matrices (dense or scipy sparse).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.spatial import cKDTree

from gsn_spatial.core.assign import lookup_cells
from gsn_spatial.core.cellmetrics import _check_labels, boundary_mask


def _check_xy(points_xy: np.ndarray) -> np.ndarray:
    xy = np.asarray(points_xy, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"`points_xy` must have shape (n, 2), got {xy.shape}.")
    return xy


def _in_image(xy: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    h, w = shape
    return (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)


@dataclass(frozen=True)
class CellCalling:
    """Cell calling at each ``delta``: ``n_inside / n_outside[delta]``."""

    deltas: tuple[float, ...]
    n_inside: int
    n_outside: tuple[int, ...]

    @property
    def ratio(self) -> dict[float, float]:
        return {d: (self.n_inside / n if n else float("inf")) for d, n in zip(self.deltas, self.n_outside, strict=True)}


def distance_to_boundary(labels: np.ndarray, points_xy: np.ndarray, *, max_distance: float = np.inf) -> np.ndarray:
    """Euclidean distance (pixels) from each point to the centre of the nearest cell-boundary pixel.

    Boundary pixels are those of :func:`~gsn_spatial.core.cellmetrics.boundary_mask`;
    distances beyond ``max_distance`` (and all distances when there are no
    cells) are ``inf``.

    Examples
    --------
    >>> lab = np.zeros((30, 30), int); lab[10:20, 10:20] = 1
    >>> distance_to_boundary(lab, np.array([[25.5, 15.5], [15.5, 21.5]])).tolist()
    [6.0, 2.0]
    """
    lab = _check_labels(labels)
    xy = _check_xy(points_xy)
    rows, cols = np.nonzero(boundary_mask(lab))
    if len(rows) == 0 or len(xy) == 0:
        return np.full(len(xy), np.inf)
    tree = cKDTree(np.stack([cols + 0.5, rows + 0.5], axis=1))
    dist, _ = tree.query(xy, distance_upper_bound=max_distance)
    return dist


def cell_calling(labels: np.ndarray, points_xy: np.ndarray, *, deltas: Sequence[float] = (3, 5, 7)) -> CellCalling:
    """Cell calling (Methods, "Cell calling"): ``|g_in| / |g_out|`` for each ``delta``.

    ``g_in`` are the transcripts inside cells; ``g_out`` those outside cells
    whose distance to the nearest cell-boundary pixel (:func:`distance_to_boundary`)
    is at most ``delta`` pixels. Transcripts outside the image are ignored.
    Higher means a segmentation recruits more of the RNA near its cells.

    Examples
    --------
    >>> lab = np.zeros((30, 30), int); lab[10:20, 10:20] = 1
    >>> xy = np.array([[12.5, 12.5], [15.5, 15.5], [21.5, 15.5], [25.5, 15.5]])  # in, in, 2 px, 6 px outside
    >>> cell_calling(lab, xy, deltas=(3, 7)).ratio
    {3: 2.0, 7: 1.0}
    """
    lab = _check_labels(labels)
    xy = _check_xy(points_xy)
    deltas = tuple(deltas)
    if not deltas or any(not np.isfinite(d) or d < 0 for d in deltas):
        raise ValueError(f"`deltas` must be non-negative finite numbers, got {deltas}.")
    xy = xy[_in_image(xy, lab.shape)]
    inside = lookup_cells(lab, xy) > 0
    dist = distance_to_boundary(lab, xy[~inside], max_distance=max(deltas) + 1e-9)
    return CellCalling(deltas, int(inside.sum()), tuple(int((dist <= d).sum()) for d in deltas))


def intensity_bins(image: np.ndarray, bins: int | Sequence[float] = 10) -> np.ndarray:
    """Bin edges over the image's intensities: ``bins`` equal-width bins from min to max, or the given edges."""
    if np.ndim(bins) == 0:
        n = int(bins)  # type: ignore[arg-type]
        if n < 1:
            raise ValueError(f"`bins` must be >= 1, got {bins}.")
        lo, hi = float(np.min(image)), float(np.max(image))
        return np.linspace(lo, hi if hi > lo else lo + 1.0, n + 1)
    edges = np.asarray(bins, dtype=float)
    if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError("`bins` edges must be a strictly increasing sequence of at least 2 values.")
    return edges


def _bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each value; the last bin is closed on the right, values outside the edges get -1."""
    idx = np.searchsorted(edges, values, side="right") - 1
    idx[values == edges[-1]] = len(edges) - 2
    idx[(values < edges[0]) | (values > edges[-1])] = -1
    return idx


@dataclass(frozen=True)
class IntensityCapture:
    """Fraction inside cells per intensity bin (NaN where a bin is empty) and the bins' totals."""

    edges: np.ndarray
    fraction_inside: np.ndarray
    n_total: np.ndarray


def _capture(values: np.ndarray, inside: np.ndarray, edges: np.ndarray) -> IntensityCapture:
    idx = _bin_index(values, edges)
    ok = idx >= 0
    n_bins = len(edges) - 1
    total = np.bincount(idx[ok], minlength=n_bins)
    hit = np.bincount(idx[ok], weights=inside[ok].astype(float), minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(total > 0, hit / np.maximum(total, 1), np.nan)
    return IntensityCapture(edges, frac, total)


def pixels_in_cells_by_intensity(
    image: np.ndarray, labels: np.ndarray, *, bins: int | Sequence[float] = 10
) -> IntensityCapture:
    """Proportion of pixels inside cells for pixels of each intensity bin (Fig. 2d).

    Examples
    --------
    >>> img = np.zeros((4, 4)); img[:, 2:] = 10
    >>> lab = np.zeros((4, 4), int); lab[:2, 2:] = 1
    >>> pixels_in_cells_by_intensity(img, lab, bins=2).fraction_inside.tolist()
    [0.0, 0.5]
    """
    img = np.asarray(image)
    lab = _check_labels(labels)
    if img.shape != lab.shape:
        raise ValueError(f"`image` {img.shape} and `labels` {lab.shape} differ in shape.")
    return _capture(img.ravel(), lab.ravel() > 0, intensity_bins(img, bins))


def transcripts_in_cells_by_intensity(
    image: np.ndarray, labels: np.ndarray, points_xy: np.ndarray, *, bins: int | Sequence[float] = 10
) -> IntensityCapture:
    """Proportion of transcripts inside cells by the intensity of the pixel under them (Fig. 2e).

    Transcripts outside the image are ignored.

    Examples
    --------
    >>> img = np.zeros((4, 4)); img[:, 2:] = 10
    >>> lab = np.zeros((4, 4), int); lab[:2, 2:] = 1
    >>> xy = np.array([[0.5, 0.5], [2.5, 0.5], [2.5, 3.5], [3.5, 1.5]])
    >>> transcripts_in_cells_by_intensity(img, lab, xy, bins=2).fraction_inside.tolist()
    [0.0, 0.6666666666666666]
    """
    img = np.asarray(image)
    lab = _check_labels(labels)
    if img.shape != lab.shape:
        raise ValueError(f"`image` {img.shape} and `labels` {lab.shape} differ in shape.")
    xy = _check_xy(points_xy)
    xy = xy[_in_image(xy, lab.shape)]
    col = np.floor(xy[:, 0]).astype(np.int64)
    row = np.floor(xy[:, 1]).astype(np.int64)
    return _capture(img[row, col].astype(float), lab[row, col] > 0, intensity_bins(img, bins))


def fraction_assigned(cell_of_point: np.ndarray) -> float:
    """Fraction of transcripts given to a cell (id > 0).

    Examples
    --------
    >>> fraction_assigned(np.array([0, 3, 3, 0]))
    0.5
    """
    c = np.asarray(cell_of_point)
    return float((c > 0).mean()) if len(c) else float("nan")


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
