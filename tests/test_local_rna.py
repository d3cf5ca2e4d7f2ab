"""The RNA map's level and the confidence threshold following the local transcript density (core.rna.local)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import gsn_spatial as gsn
from gsn_spatial.core.rna.density import rna_density_window
from gsn_spatial.core.rna.local import LocalDensity, density_ratio_window, reference_density, threshold_for_density

ROOT = Path(__file__).resolve().parents[1]


def poisson_points(rng: np.random.Generator, density_px2: float, x_range: tuple[float, float], height: float):
    """Uniform points (x, y) at ``density_px2`` per px^2 over ``x_range`` x ``[0, height)``."""
    n = rng.poisson(density_px2 * (x_range[1] - x_range[0]) * height)
    return np.stack([rng.uniform(*x_range, n), rng.uniform(0, height, n)], axis=1)


# 0.5 um/px working scale: 10 um bins are 20 px, 40 um of smoothing 4 bins (segment's defaults).
LOCAL = LocalDensity(bin_px=20.0, sigma_bins=4.0)


def test_ratio_is_the_same_in_every_window_that_covers_a_pixel():
    # Blocks compute it from their own windows: it must agree where windows overlap, or seams would move.
    rng = np.random.default_rng(0)
    xy = np.concatenate([poisson_points(rng, 0.025, (0, 500), 1000), poisson_points(rng, 0.25, (500, 1000), 1000)])
    local = LocalDensity(20.0, 4.0, reference=reference_density(xy, (1000, 1000), LOCAL))
    a = density_ratio_window(xy, (400, 400), local, origin=(300, 200))  # x 300-700, y 200-600
    b = density_ratio_window(xy, (500, 300), local, origin=(450, 350))  # x 450-750, y 350-850
    np.testing.assert_allclose(a[150:400, 150:400], b[0:250, 0:250], rtol=1e-6)


@pytest.mark.parametrize("per_um2", [0.1, 0.5, 2.0])
def test_an_even_density_keeps_the_slide_level(per_um2):
    # 0.5 um/px: per_um2 / 4 per px^2. Measured: 95 % of pixels within 0.90-1.03 at 0.1 per um^2 (0.96-1.01 at 2).
    rng = np.random.default_rng(1)
    xy = poisson_points(rng, per_um2 / 4, (0, 800), 800)
    local = LocalDensity(20.0, 4.0, reference=reference_density(xy, (800, 800), LOCAL))
    ratio = density_ratio_window(xy, (800, 800), local)[100:-100, 100:-100]
    low, high = np.percentile(ratio, [2.5, 97.5])
    assert 0.85 <= low and high <= 1.1, (low, high)


def test_sparse_tissue_beside_dense_tissue_gets_its_own_level():
    rng = np.random.default_rng(2)
    xy = np.concatenate([poisson_points(rng, 0.025, (0, 600), 600), poisson_points(rng, 0.25, (600, 1200), 600)])
    local = LocalDensity(20.0, 4.0, reference=reference_density(xy, (600, 1200), LOCAL))
    ratio = density_ratio_window(xy, (600, 1200), local)
    assert 0.08 <= np.median(ratio[:, 100:450]) <= 0.13
    assert 0.9 <= np.median(ratio[:, 750:1100]) <= 1.1


def test_stray_transcripts_on_bare_glass_stay_below_tissue():
    # 0.01 per um^2 of stray transcripts beside tissue at 1 per um^2: the ratio stops at its lower bound.
    rng = np.random.default_rng(3)
    xy = np.concatenate([poisson_points(rng, 0.0025, (0, 600), 600), poisson_points(rng, 0.25, (600, 1200), 600)])
    local = LocalDensity(20.0, 4.0, reference=reference_density(xy, (600, 1200), LOCAL), min_ratio=0.1)
    ratio = density_ratio_window(xy, (600, 1200), local)
    assert ratio.min() == pytest.approx(0.1)
    assert np.median(ratio[:, :400]) == pytest.approx(0.1)


def test_level_map_divides_the_rna_map_pixel_by_pixel():
    xy = np.array([[10.5, 10.5], [30.5, 10.5]])
    level = np.full((21, 41), 4.0, np.float32)
    level[:, 20:] = 2.0
    rna = rna_density_window(xy, (21, 41), sigma=2.0, method="binned", level=level)
    assert rna[10, 10] == pytest.approx(0.25) and rna[10, 30] == pytest.approx(0.5)


def test_threshold_per_density_matches_the_models_scalar_rule():
    table = [[0.105, 0.3], [0.305, 0.5], [1.01, 0.5]]
    d = np.array([0.0, 0.05, 0.105, 0.2, 0.305, 3.0])
    expected = [gsn.models.confidence_for_density(table, float(v)) for v in d]
    np.testing.assert_allclose(threshold_for_density(table, d), expected)


def test_rejects_bad_settings():
    with pytest.raises(ValueError, match="LocalDensity"):
        LocalDensity(bin_px=0.0, sigma_bins=4.0)
    with pytest.raises(ValueError, match="max_ratio"):
        LocalDensity(bin_px=20.0, sigma_bins=4.0, max_ratio=0.5)


@pytest.fixture(scope="module")
def mixed_density():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import mixed_density

    return mixed_density


def test_segment_reads_sparse_tissue_beside_dense_tissue(mixed_density):
    # Second simulator, 160 um, seed 0, left half 0.1 and right half 1 transcript per um^2, 0.5 um/px. Measured
    # left / right mean matched IoU: local 0.530 / 0.728, slide 0.258 / 0.732 (transcript accuracy 0.752 / 0.861
    # against 0.398 / 0.863).
    scores = {}
    for norm in ("local", "slide"):
        sdata, truth = mixed_density.mixed_density_tissue(0, 0.5, (0.1, 1.0), size_um=160.0)
        scores[norm] = mixed_density.score_halves(sdata, truth, 0.5, rna_normalisation=norm)
        params = sdata.tables["gsn_table"].uns["gsn"]["params"]
        assert params["rna_normalisation"] == norm
        assert ("rna_local" in params) == (norm == "local")
    (left, right), (slide_left, slide_right) = scores["local"], scores["slide"]
    assert left["iou"] >= slide_left["iou"] + 0.15 and left["tx"] >= slide_left["tx"] + 0.2
    assert right["iou"] >= slide_right["iou"] - 0.02 and right["tx"] >= slide_right["tx"] - 0.02
