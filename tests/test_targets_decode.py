import numpy as np
import pytest

from gsn_spatial.core.decode.cells import decode_cells
from gsn_spatial.core.metrics.matching import match_scores
from gsn_spatial.core.simulate.tissue import simulate_tissue
from gsn_spatial.core.train.targets import cell_centres, make_targets


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


def _sample(lab):
    from gsn_spatial.core.train.fit import TrainingSample

    x = np.stack([lab.astype(np.float32), np.zeros_like(lab, np.float32)])
    return TrainingSample(x, lab)


def test_warp_quarter_turn_matches_rot90():
    """A 90-degree warp equals np.rot90 of the unwarped patch, offsets rotated with it."""
    from gsn_spatial.core.train.fit import warp_patch

    t = simulate_tissue((160, 160), seed=9)
    s = _sample(t.cells.astype(np.int64))
    centre = (79.5, 79.5)
    x0, t0 = warp_patch(s, centre, 96)
    x1, t1 = warp_patch(s, centre, 96, angle=np.pi / 2)
    lab0, lab1 = x0[0].round(), x1[0].round()
    for k in (1, 3):  # the rotation direction is a convention; one of the two must match exactly
        if np.array_equal(np.rot90(lab0, k), lab1):
            break
    else:
        raise AssertionError("warped labels are not a quarter turn of the original")
    np.testing.assert_array_equal(np.rot90(t0[0], k), t1[0])
    # Rotating the field: new (dy, dx) is the old vector turned by the same quarter turn.
    dy0, dx0 = np.rot90(t0[2], k), np.rot90(t0[3], k)
    want = (dx0, -dy0) if k == 3 else (-dx0, dy0)
    np.testing.assert_allclose(t1[2], want[0], atol=1e-4)
    np.testing.assert_allclose(t1[3], want[1], atol=1e-4)


@pytest.mark.parametrize("seed", range(4))
def test_random_augmentation_keeps_offsets_on_own_cell(seed):
    """After any scale / rotation / flip, p + V(p) stays inside p's own (warped) cell."""
    from gsn_spatial.core.train.fit import sample_batch

    t = simulate_tissue((200, 200), seed=seed)
    x, tt = sample_batch([_sample(t.cells.astype(np.int64))], np.random.default_rng(seed), 2, 96)
    for lab_f, tgt in zip(x[:, 0].numpy(), tt.numpy(), strict=True):
        lab = lab_f.round().astype(int)
        rows, cols = np.indices(lab.shape)
        inside = tgt[0] > 0.5
        vy = np.round(rows + tgt[2]).astype(int)[inside]
        vx = np.round(cols + tgt[3]).astype(int)[inside]
        ok = (vy >= 0) & (vy < lab.shape[0]) & (vx >= 0) & (vx < lab.shape[1])
        # Centres of cells cut by the patch border may lie outside the patch; those inside must hit the cell.
        hit = lab[vy[ok], vx[ok]] == lab[inside][ok]
        assert ok.mean() > 0.6 and hit.mean() > 0.99


@pytest.mark.parametrize("min_distance", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("seed", [0, 1])
def test_find_centres_equals_scikit_image(min_distance, seed):
    # find_centres replaces skimage's peak_local_max (k-d tree spacing) by a compiled pass: same peaks, same order,
    # on smooth maps with many close peaks, plateaus of equal values (quantised) and values at the threshold.
    from scipy import ndimage
    from skimage.feature import peak_local_max

    from gsn_spatial.core.decode.cells import find_centres

    rng = np.random.default_rng(seed)
    for sigma, levels in ((1.5, None), (3.0, 20), (0.0, 4)):
        m = rng.random((181, 203)).astype(np.float32)
        m = ndimage.gaussian_filter(m, sigma) if sigma else m
        m = (m - m.min()) / (m.max() - m.min())
        if levels:
            m = np.round(m * levels) / levels
        m = m.astype(np.float32)
        for threshold in (0.0, 0.5, float(np.median(m))):
            ours = find_centres(m, threshold=threshold, min_distance=min_distance)
            ref = peak_local_max(m, min_distance=min_distance, threshold_abs=threshold, exclude_border=False)
            assert len(ref) > 0 or threshold > 0
            np.testing.assert_array_equal(ours, ref)
    assert find_centres(np.full((8, 8), 0.7, np.float32), threshold=0.1).shape == (0, 2)
