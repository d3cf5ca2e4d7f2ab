import numpy as np

from gsn_spatial.core.assign.counts import count_matrix, lookup_cells
from gsn_spatial.core.metrics.matching import match_scores


def test_match_scores_split_and_shift():
    ref = np.zeros((20, 20), int)
    ref[0:10, 0:10] = 1
    ref[10:20, 10:20] = 2
    pred = np.zeros_like(ref)
    pred[0:10, 0:5] = 1  # half of cell 1: IoU 0.5
    pred[0:10, 5:10] = 2
    pred[10:20, 11:20] = 3  # IoU 0.9
    s = match_scores(ref, pred, threshold=0.5)
    assert (s.n_reference, s.n_predicted, s.true_positives) == (2, 3, 2)
    assert abs(s.f1 - 0.8) < 1e-12
    s75 = match_scores(ref, pred, threshold=0.75)
    assert s75.true_positives == 1 and abs(s75.mean_matched_iou - 0.9) < 1e-12
    assert match_scores(ref, np.zeros_like(ref)).f1 == 0.0


def test_match_scores_hungarian_below_half():
    ref = np.zeros((10, 30), int)
    ref[:, 0:10] = 1
    ref[:, 10:20] = 2
    pred = np.zeros_like(ref)
    pred[:, 5:25] = 1  # IoU 1/3 with 1 and 1/3 with 2: matched once only
    s = match_scores(ref, pred, threshold=0.3)
    assert s.true_positives == 1


def test_lookup_and_counts_agree():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 6, size=(30, 40))
    xy = rng.uniform(-5, 45, size=(500, 2))
    genes = rng.integers(0, 7, 500)
    cells = lookup_cells(labels, xy)
    outside = (xy[:, 0] < 0) | (xy[:, 0] >= 40) | (xy[:, 1] < 0) | (xy[:, 1] >= 30)
    assert (cells[outside] == 0).all()
    inside = ~outside
    assert (cells[inside] == labels[np.floor(xy[inside, 1]).astype(int), np.floor(xy[inside, 0]).astype(int)]).all()
    ids = np.arange(1, 6)
    m = count_matrix(cells, genes, ids, 7)
    assert m.shape == (5, 7) and m.sum() == (cells > 0).sum()
    for i, cid in enumerate(ids):
        assert m[i].sum() == (cells == cid).sum()
        assert m[i, 3] == ((cells == cid) & (genes == 3)).sum()
