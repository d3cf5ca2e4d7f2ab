"""Splitting touching nuclei while keeping long ones whole (gsn_spatial.core.image.split)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from gsn_spatial.core.image.split import split_touching


def n_pieces(mask: np.ndarray) -> int:
    labels, _ = split_touching(mask.astype(np.int32), 1)
    return len(np.unique(labels)) - 1


def jagged_ellipse(a: float, b: float, angle: float, seed: int) -> np.ndarray:
    """One ellipse with semi-axes ``a``, ``b`` and a rough outline (a thresholded stain is never smooth)."""
    rng = np.random.default_rng(seed)
    n = int(2 * a + 12)
    yy, xx = np.mgrid[:n, :n] - n / 2
    u = xx * np.cos(angle) + yy * np.sin(angle)
    v = -xx * np.sin(angle) + yy * np.cos(angle)
    noise = ndi.gaussian_filter(rng.normal(0, 1, (n, n)), 1.0)
    mask = (u / a) ** 2 + (v / b) ** 2 <= 1 + 0.12 * noise / noise.std()
    labels, _ = ndi.label(mask)
    return labels == np.argmax(np.bincount(labels.ravel())[1:]) + 1  # the ellipse, without stray specks


def test_long_nuclei_stay_whole():
    # 12 ellipses of aspect 2-5, 12 px wide, rough outlines. Measured: 13 pieces (one 5:1 ellipse cut in two);
    # the watershed alone, before the merge of pieces with neither neck nor notch: 20.
    pieces = [
        n_pieces(jagged_ellipse(6.0 * aspect, 6.0, 0.3 + seed, seed)) for aspect in (2, 3, 4, 5) for seed in range(3)
    ]
    assert sum(pieces) <= 14, pieces
    assert all(p >= 1 for p in pieces)


@pytest.mark.parametrize(("radius", "gap"), [(10, 16), (12, 20), (8, 15), (10, 18)])
def test_touching_discs_stay_apart(radius, gap):
    # A disc of radius 10 and one of `radius`, centres `gap` px apart: a neck between them.
    yy, xx = np.mgrid[:60, :90]
    mask = ((yy - 30) ** 2 + (xx - 25) ** 2 <= 100) | ((yy - 30) ** 2 + (xx - 25 - gap) ** 2 <= radius**2)
    assert n_pieces(mask) == 2


def test_no_objects():
    labels, typical = split_touching(np.zeros((16, 16), np.int32), 0)
    assert typical == 0.0 and not labels.any()
