"""The RNA map's level, and the confidence threshold, following the local transcript density (array level).

The density-normalised RNA map divides the sum of Gaussians by a level set from the tissue's transcript
density (:func:`~gsn_spatial.core.rna.density.density_level`), so that tissue reads about 0.5 at any
density. One level per slide fails where a slide's density varies: beside tissue with 1 transcript per um^2,
a region with 0.1 read a tenth as bright as the networks were trained to see, and its cells were lost (the
second simulator, left half at 0.1 and right half at 1 transcript per um^2: mean matched IoU 0.30-0.32 on
the sparse half, 0.66 on a slide sparse throughout). Tumour beside stroma, or tissue beside necrosis, differ
that much.

So the level is scaled, per pixel, by the local density over the slide's reference density:

- transcripts are counted on bins of ``bin_px`` (about a cell) laid on the slide's own grid, so every
  window computes the same values where windows overlap;
- the local density is the Gaussian-weighted mean count of the occupied bins within about ``sigma_bins``
  (a normalised convolution: empty background neither lowers it nor spreads into it);
- the reference is the 75th percentile of that local density over a sample of the slide's occupied bins
  (the slide-level density statistic is a 75th percentile too), so a slide of even density keeps its level
  to within the noise of the local mean, and the denser part of a mixed slide keeps the slide's level;
- the ratio is bounded (``min_ratio``, ``max_ratio``): stray transcripts on bare glass must not read as
  tissue.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from gsn_spatial.core.image.resample import interp_axis

__all__ = ["LocalDensity", "density_ratio_window", "reference_density", "threshold_for_density"]


@dataclass(frozen=True)
class LocalDensity:
    """How the local density is measured, in pixels of the map's grid.

    Parameters
    ----------
    bin_px
        Side of the counting bins (pixels).
    sigma_bins
        Width of the Gaussian weight, in bins.
    reference
        The slide's reference density (mean transcripts per occupied bin), from :func:`reference_density`.
    min_ratio, max_ratio
        Bounds of the ratio of local to reference density.
    """

    bin_px: float
    sigma_bins: float
    reference: float = 1.0
    min_ratio: float = 0.1
    max_ratio: float = 10.0

    def __post_init__(self) -> None:
        if not (self.bin_px > 0 and self.sigma_bins > 0 and self.reference > 0 and 0 < self.min_ratio <= 1):
            raise ValueError(
                f"LocalDensity needs positive bin_px, sigma_bins and reference and min_ratio in (0, 1], got {self}."
            )
        if not self.max_ratio >= 1:
            raise ValueError(f"LocalDensity needs max_ratio >= 1, got {self.max_ratio}.")

    @property
    def reach_bins(self) -> int:
        """Bins on each side that the Gaussian weight reaches (3 sigma)."""
        return int(math.ceil(3.0 * self.sigma_bins))


def _local_mean_counts(points_xy: np.ndarray, box: tuple[int, int, int, int], local: LocalDensity):
    """Mean count per occupied bin around each bin of the slide grid that covers ``box`` (y0, y1, x0, x1 in
    pixels); returns it, the bins' occupancy and the first bin's (row, col) on the slide grid."""
    y0, y1, x0, x1 = box
    r, b = local.reach_bins, local.bin_px
    # The box's bins, one more on each side (interpolation reads them), and the weight's reach around those.
    by0, by1 = math.floor(y0 / b) - r - 1, math.ceil(y1 / b) + r + 1
    bx0, bx1 = math.floor(x0 / b) - r - 1, math.ceil(x1 / b) + r + 1
    h, w = by1 - by0, bx1 - bx0
    xy = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    col = np.floor(xy[:, 0] / b).astype(np.int64) - bx0
    row = np.floor(xy[:, 1] / b).astype(np.int64) - by0
    ok = (col >= 0) & (col < w) & (row >= 0) & (row < h)
    counts = np.bincount(row[ok] * w + col[ok], minlength=h * w).reshape(h, w).astype(np.float64)
    occupied = (counts > 0).astype(np.float64)
    # Zero outside the array: bins past the reach are never needed for the bins that are read.
    kw = {"sigma": local.sigma_bins, "mode": "constant", "truncate": r / local.sigma_bins}
    weight = ndimage.gaussian_filter(occupied, **kw)
    mean = ndimage.gaussian_filter(counts, **kw) / np.maximum(weight, 1e-12)
    return np.where(weight > 1e-6, mean, 0.0), occupied, (by0, bx0)


def reference_density(points_xy: np.ndarray, shape: tuple[int, int], local: LocalDensity) -> float:
    """The slide's reference: 75th percentile of the local mean count over the occupied bins of ``points_xy``
    (a sample of the slide's transcripts, in pixels; ``shape`` is the slide's ``(height, width)``).

    Examples
    --------
    >>> xy = np.random.default_rng(0).random((20000, 2)) * 200  # 0.5 per px^2
    >>> round(reference_density(xy, (200, 200), LocalDensity(bin_px=10, sigma_bins=2)) / 50, 1)
    1.0
    """
    xy = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < shape[1]) & (xy[:, 1] >= 0) & (xy[:, 1] < shape[0])
    if not inside.any():
        return 0.0
    mean, occupied, _ = _local_mean_counts(xy[inside], (0, int(shape[0]), 0, int(shape[1])), local)
    return float(np.percentile(mean[occupied > 0], 75))


def density_ratio_window(
    points_xy: np.ndarray, shape: tuple[int, int], local: LocalDensity, *, origin: tuple[float, float] = (0.0, 0.0)
) -> np.ndarray:
    """Local over reference density at each pixel of a window, bounded (float32, ``shape``).

    ``points_xy`` are the transcripts in pixels of the whole slide, at least those within
    ``(local.reach_bins + 2) * local.bin_px`` pixels of the window; ``origin`` is the window's ``(x0, y0)``.
    Bin values are interpolated linearly between bin centres, so the map is smooth and the same in every
    window that covers a pixel.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> xy = np.concatenate([rng.random((4000, 2)) * [100, 200], rng.random((40000, 2)) * [100, 200] + [100, 0]])
    >>> ratio = density_ratio_window(xy, (200, 200), LocalDensity(10, 2, reference=200.0))
    >>> round(float(ratio[100, 20]), 1), round(float(ratio[100, 180]), 1)  # sparse left, dense right
    (0.1, 1.0)
    """
    h, w = int(shape[0]), int(shape[1])
    x0, y0 = origin
    box = (math.floor(y0), math.ceil(y0 + h), math.floor(x0), math.ceil(x0 + w))
    mean, _, (by0, bx0) = _local_mean_counts(points_xy, box, local)
    ratio = np.clip(mean / local.reference, local.min_ratio, local.max_ratio)
    # Pixel centres in bin coordinates (bin k's centre at k + 0.5).
    rows = (np.arange(h) + y0 + 0.5) / local.bin_px - by0 - 0.5
    cols = (np.arange(w) + x0 + 0.5) / local.bin_px - bx0 - 0.5
    # Separable linear interpolation; the bins read are inside the array (one spare bin each side).
    ratio = interp_axis(interp_axis(ratio, rows, 0), cols, 1)
    return ratio.astype(np.float32)


def threshold_for_density(table: list | tuple, per_um2: np.ndarray | float) -> np.ndarray:
    """A decoding threshold for each transcript density (per um^2), from a model's table of
    ``(transcripts per um^2, threshold)`` pairs: linear in log density between them, the end values beyond.

    Examples
    --------
    >>> threshold_for_density([[0.1, 0.4], [1.0, 0.6]], np.array([0.05, 0.316, 3.0])).round(3).tolist()
    [0.4, 0.5, 0.6]
    """
    d, t = np.asarray(sorted(table), dtype=float).T
    return np.interp(np.log(np.maximum(np.asarray(per_um2, dtype=float), 1e-12)), np.log(d), t)
