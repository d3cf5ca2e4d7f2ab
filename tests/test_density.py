import numpy as np
import pytest

from gsn_spatial.core.rna.density import density_halo, rna_density_window


def brute_force(points, shape, sigma, mode="sum"):
    rows, cols = np.indices(shape)
    px, py = cols + 0.5, rows + 0.5
    g = np.exp(
        -((px[None] - points[:, 0, None, None]) ** 2 + (py[None] - points[:, 1, None, None]) ** 2) / (2 * sigma**2)
    )
    return np.minimum(g.sum(0), 1.0) if mode == "sum" else g.max(0)


@pytest.mark.parametrize("sigma", [1.0, 2.5, 7.0])
@pytest.mark.parametrize("n", [1, 5, 40])
def test_matches_brute_force_sum(sigma, n):
    rng = np.random.default_rng(int(sigma * 10) + n)
    pts = rng.uniform(-10, 50, size=(n, 2)) * np.array([1.0, 0.7])
    got = rna_density_window(pts, (30, 45), sigma=sigma)
    want = brute_force(pts, (30, 45), sigma)
    # Truncation at 4 sigma leaves at most exp(-8) per point.
    assert np.abs(got - want).max() <= n * np.exp(-8) + 1e-6


def test_unclipped_values_are_sums_below_one():
    # Two far-apart sparse points with sigma small: values never reach the clip.
    pts = np.array([[3.2, 4.7], [20.5, 10.1]])
    got = rna_density_window(pts, (16, 32), sigma=1.0)
    assert np.abs(got - brute_force(pts, (16, 32), 1.0)).max() <= 2 * np.exp(-8)
    assert 0.8 < got.max() <= 1.0


def test_max_mode_matches_brute_force():
    rng = np.random.default_rng(3)
    pts = rng.uniform(0, 40, size=(25, 2))
    got = rna_density_window(pts, (40, 40), sigma=3.0, mode="max")
    assert np.abs(got - brute_force(pts, (40, 40), 3.0, "max")).max() < 1e-5


def test_window_equals_crop_of_larger_map():
    rng = np.random.default_rng(4)
    pts = rng.uniform(0, 100, size=(300, 2))
    full = rna_density_window(pts, (100, 100), sigma=3.0)
    win = rna_density_window(pts, (30, 40), origin=(50, 20), sigma=3.0)
    np.testing.assert_allclose(win, full[20:50, 50:90], atol=1e-6)


def test_points_beyond_halo_are_ignored_and_empty_is_zero():
    far = np.array([[1000.0, 1000.0]])
    assert rna_density_window(far, (10, 10), sigma=2.0).max() == 0
    assert rna_density_window(np.zeros((0, 2)), (10, 10), sigma=2.0).shape == (10, 10)
    assert density_halo(2.0) == 9


def test_rejects_bad_parameters():
    with pytest.raises(ValueError, match="sigma"):
        rna_density_window(np.zeros((1, 2)), (4, 4), sigma=-1)
    with pytest.raises(ValueError, match="mode"):
        rna_density_window(np.zeros((1, 2)), (4, 4), mode="mean")


@pytest.mark.parametrize("sigma", [1.0, 1.5, 3.0])
def test_binned_equals_exact_at_pixel_centres(sigma):
    # Transcripts at pixel centres, including some outside the window that reach into it.
    rng = np.random.default_rng(7)
    pts = np.floor(rng.uniform(-12, 60, size=(300, 2))) + 0.5
    exact = rna_density_window(pts, (40, 50), origin=(3.0, -2.0), sigma=sigma, method="exact")
    binned = rna_density_window(pts, (40, 50), origin=(3.0, -2.0), sigma=sigma, method="binned")
    assert exact.max() > 0.5
    np.testing.assert_allclose(binned, exact, atol=1e-5)


def test_binned_moves_each_transcript_at_most_half_a_pixel():
    # One transcript off-centre: the binned map is the exact map of the transcript at its pixel's centre.
    pt = np.array([[10.9, 7.2]])
    binned = rna_density_window(pt, (20, 20), sigma=1.5, method="binned")
    at_centre = rna_density_window(np.array([[10.5, 7.5]]), (20, 20), sigma=1.5, method="exact")
    exact = rna_density_window(pt, (20, 20), sigma=1.5, method="exact")
    np.testing.assert_allclose(binned, at_centre, atol=1e-6)
    assert 0 < np.abs(binned - exact).max() < 0.25


def test_binned_rejects_max_mode_and_unknown_method():
    with pytest.raises(ValueError, match="binned"):
        rna_density_window(np.zeros((1, 2)), (4, 4), mode="max", method="binned")
    with pytest.raises(ValueError, match="method"):
        rna_density_window(np.zeros((1, 2)), (4, 4), method="nearest")
