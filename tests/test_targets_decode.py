import numpy as np
import pytest

from gsn_spatial.core.decode import decode_cells
from gsn_spatial.core.metrics import match_scores
from gsn_spatial.core.simulate import simulate_tissue
from gsn_spatial.core.targets import cell_centres, make_targets
from gsn_spatial.core.training import dihedral


def test_targets_of_hand_made_mask():
    lab = np.zeros((10, 12), dtype=np.int32)
    lab[1:4, 1:6] = 3  # rows 1..3, cols 1..5 -> median (2, 3)
    lab[6:9, 8:11] = 9  # median (7, 9)
    t = make_targets(lab, centre_sigma=1.0)
    assert t.shape == (4, 10, 12)
    np.testing.assert_array_equal(t[0], lab > 0)
    assert t[1][2, 3] == 1.0 and t[1][7, 9] == 1.0
    assert t[1][0, 11] < 1e-3
    # Offsets point from each pixel to its centre, zero outside cells.
    assert (t[2][1, 1], t[3][1, 1]) == (1.0, 2.0)
    assert (t[2][8, 10], t[3][8, 10]) == (-1.0, -1.0)
    assert np.all(t[2:][:, lab == 0] == 0)
    rows, cols = np.indices(lab.shape)
    assert np.allclose((rows + t[2])[lab == 9], 7) and np.allclose((cols + t[3])[lab == 9], 9)


def test_centres_are_medians():
    lab = np.zeros((5, 9), int)
    lab[0, 0:9] = 1
    lab[1:5, 0] = 1  # an L shape of 13 px: rows 0 x9, 1..4; cols 0 x5, 1..8
    ids, c = cell_centres(lab)
    assert ids.tolist() == [1] and c.tolist() == [[0.0, 2.0]]


def test_targets_reject_float_labels():
    with pytest.raises(TypeError):
        make_targets(np.zeros((4, 4), dtype=float))


def test_decoding_perfect_maps_recovers_tissue():
    t = simulate_tissue((192, 192), seed=4)
    labels, centres = decode_cells(make_targets(t.cells), min_area=1)
    s = match_scores(t.cells, labels, threshold=0.5)
    assert s.f1 > 0.97 and s.mean_matched_iou > 0.95


def test_decoding_thresholds():
    lab = np.zeros((32, 32), int)
    lab[4:14, 4:14] = 1
    maps = make_targets(lab)
    maps[1] *= 0.4  # no centre reaches 0.5 -> no cell
    assert decode_cells(maps)[0].max() == 0
    maps = make_targets(lab)
    maps[0] = 0.3  # nothing confident -> no cell
    assert decode_cells(maps)[0].max() == 0


@pytest.mark.parametrize("k", range(8))
def test_dihedral_keeps_offsets_pointing_at_centres(k):
    lab = np.zeros((16, 16), int)
    lab[2:7, 3:12] = 1
    lab[9:15, 1:6] = 2
    x = np.stack([lab.astype(np.float32), np.zeros_like(lab, np.float32)])
    xt, tt = dihedral(x, make_targets(lab), k)
    new_lab = xt[0].round().astype(int)
    rows, cols = np.indices(new_lab.shape)
    for cid in (1, 2):
        m = tt[0] > 0.5
        m &= np.isin(np.arange(new_lab.size).reshape(new_lab.shape), np.flatnonzero(new_lab.ravel() == cid))
        vy, vx = rows[m] + tt[2][m], cols[m] + tt[3][m]
        assert np.ptp(vy) == 0 and np.ptp(vx) == 0  # every pixel votes for one point
        assert new_lab[int(vy[0]), int(vx[0])] == cid
