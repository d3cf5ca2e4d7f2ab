"""Property-based invariants of assignment and the table (hypothesis), and determinism."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gsn_spatial.core.assign.counts import count_matrix, lookup_cells
from gsn_spatial.core.slide.blocks import BlockGrid
from gsn_spatial.core.slide.steps import assign_slide, cell_table_arrays, count_matrix_from_runs, partition_cells
from gsn_spatial.core.slide.workdir import WorkDir
from gsn_spatial.tl._table import build_table

label_images = arrays(np.uint32, st.tuples(st.integers(1, 12), st.integers(1, 12)), elements=st.integers(0, 6))


@st.composite
def scenes(draw):
    labels = draw(label_images)
    h, w = labels.shape
    n = draw(st.integers(0, 60))
    xy = draw(arrays(np.float64, (n, 2), elements=st.floats(-3, 15, allow_nan=False)))
    genes = draw(arrays(np.int32, (n,), elements=st.integers(0, 4)))
    return labels, xy, genes


class _Partitions:
    """Points split into ``n`` partitions, as a points element would be."""

    def __init__(self, xy, genes, n):
        self.parts = np.array_split(np.arange(len(xy)), n)
        self.xy, self.genes, self.n_partitions = xy, genes, n

    def __call__(self, p):
        return self.xy[self.parts[p]], self.genes[self.parts[p]]


def _assign_out_of_core(tmp, labels, xy, genes, block_size, n_partitions):
    work = WorkDir(tmp, BlockGrid(labels.shape, block_size, 0), n_partitions)
    source = _Partitions(xy, genes, n_partitions)
    lengths, edges = assign_slide(work, labels=lambda y0, y1, x0, x1: labels[y0:y1, x0:x1], points=source)
    cells = np.concatenate([partition_cells(work, p, n) for p, n in enumerate(lengths)])
    ids, area, centroids = cell_table_arrays(work)
    return cells, ids, area, centroids, count_matrix_from_runs(work, ids, edges, 5)


@settings(max_examples=60, deadline=None)
@given(scenes(), st.integers(1, 7), st.integers(1, 3))
def test_assignment_and_table_invariants(tmp_path_factory, scene, block_size, n_partitions):
    labels, xy, genes = scene
    cells, ids_oc, area, centroids, counts = _assign_out_of_core(
        tmp_path_factory.mktemp("work"), labels, xy, genes, block_size, n_partitions
    )
    # The out-of-core, blockwise assignment equals the direct look-up, whatever the blocks and partitions.
    np.testing.assert_array_equal(cells, lookup_cells(labels, xy))
    table = build_table(ids_oc, area, centroids, counts, [f"g{i}" for i in range(5)], region="lab", params={})
    # Every transcript gets at most one cell, and only a cell present under it (or 0).
    assert cells.shape == (len(xy),)
    h, w = labels.shape
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
    assert np.all(cells[~inside] == 0)
    ids = np.unique(labels)
    ids = ids[ids > 0]
    np.testing.assert_array_equal(area, [np.sum(labels == i) for i in ids])
    for (cy, cx), i in zip(centroids, ids, strict=True):
        rr, cc = np.nonzero(labels == i)
        np.testing.assert_allclose((cy, cx), (rr.mean() + 0.5, cc.mean() + 0.5))
    # Label ids and table rows correspond one to one.
    np.testing.assert_array_equal(table.obs["cell_id"].to_numpy(), ids)
    # Counts equal assigned transcripts per cell and gene.
    assert table.X.sum() == (cells > 0).sum()
    dense = table.X.toarray()
    for row, cid in enumerate(ids):
        want = np.bincount(genes[cells == cid], minlength=5)
        np.testing.assert_array_equal(dense[row], want)
    # No assigned id outside the table.
    assert set(np.unique(cells[cells > 0])) <= set(ids.tolist())


@settings(max_examples=30, deadline=None)
@given(label_images, st.integers(0, 5))
def test_count_matrix_totals_and_rejects_unknown_ids(labels, extra):
    import pytest

    cells = labels.ravel().astype(np.int64)
    ids = np.unique(cells[cells > 0])
    m = count_matrix(cells, np.zeros(len(cells), np.int32), ids, 1)
    assert m.sum() == (cells > 0).sum()
    if len(ids):
        with pytest.raises(ValueError, match="not in `cell_ids`"):
            count_matrix(cells, np.zeros(len(cells), np.int32), ids[ids != ids[extra % len(ids)]], 1)


def test_segment_is_deterministic(model):
    import gsn_spatial as gsn

    a = gsn.datasets.synthetic_tissue((256, 256), seed=12)
    b = gsn.datasets.synthetic_tissue((256, 256), seed=12)
    gsn.tl.segment(a, model=model)
    gsn.tl.segment(b, model=model)
    np.testing.assert_array_equal(a.labels["gsn_labels"].values, b.labels["gsn_labels"].values)
    assert (a.tables["gsn_table"].X != b.tables["gsn_table"].X).nnz == 0
