"""RNA location map (the paper's Eq. 5), computed per window.

``G(p) = min(sum_l exp(-|p - g_l|^2 / (2 sigma^2)), 1)`` evaluated at pixel
centres. Pixel ``(row, col)`` covers ``[col, col + 1) x [row, row + 1)``, so its
centre is ``(col + 0.5, row + 0.5)``.

Two ways to compute it (``method``):

- ``"exact"``: each Gaussian is separable, so the map of a window is
  ``Gy.T @ Gx`` with sparse ``Gy`` (points x rows) and ``Gx`` (points x
  columns) holding only the ``2 * ceil(truncate * sigma) + 1`` non-zero taps
  of every point. Memory is O(points * taps + window), never
  O(points * window) as in the authors' code.
- ``"binned"``: transcripts are counted per pixel and the count image is
  correlated with the same (unnormalised) 1-D taps along each axis. This is
  the exact sum for transcripts at pixel centres; elsewhere each transcript
  moves by at most half a pixel to its pixel's centre, which on average acts
  like a Gaussian of ``sqrt(sigma^2 + 1/12)`` (2 % wider at sigma 1.5). It
  is about 9x faster on a block window at 0.1 transcripts per pixel
  (``benchmarks/levers.py``) and its cost does not grow with the transcript
  density.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
from scipy import ndimage
from scipy.spatial import cKDTree

DENSITY_MODES = ("sum", "max")
DENSITY_METHODS = ("exact", "binned")
RNA_NORMS = ("clip", "density")


def check_density_options(sigma: float, mode: str, method: str) -> None:
    """Raise ``ValueError`` for an RNA map that cannot be computed (callers that compute lazily check first)."""
    if sigma <= 0:
        raise ValueError(f"`sigma` must be positive, got {sigma}.")
    if mode not in DENSITY_MODES:
        raise ValueError(f"`mode` must be one of {DENSITY_MODES}, got {mode!r}.")
    if method not in DENSITY_METHODS:
        raise ValueError(f"`method` must be one of {DENSITY_METHODS}, got {method!r}.")
    if method == "binned" and mode != "sum":
        raise ValueError('`method="binned"` computes the `mode="sum"` map only.')


def density_halo(sigma: float, truncate: float = 4.0) -> int:
    """Pixels around a window whose points still reach into it."""
    return int(math.ceil(truncate * sigma)) + 1


def _taps(coord: np.ndarray, n: int, sigma: float, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows, pixel indices and weights of the 1-D Gaussian taps of each point."""
    base = np.floor(coord).astype(np.int64)
    offsets = np.arange(-radius, radius + 1)
    pix = base[:, None] + offsets[None, :]
    weight = np.exp(-(((pix + 0.5) - coord[:, None]) ** 2) / (2.0 * sigma * sigma))
    valid = (pix >= 0) & (pix < n)
    rows = np.broadcast_to(np.arange(len(coord))[:, None], pix.shape)
    return rows[valid], pix[valid], weight[valid]


def rna_density_window(
    points_xy: np.ndarray,
    shape: tuple[int, int],
    *,
    origin: tuple[float, float] = (0.0, 0.0),
    sigma: float = 7.0,
    mode: str = "sum",
    method: str = "exact",
    truncate: float = 4.0,
    level: float | np.ndarray = 1.0,
) -> np.ndarray:
    """RNA location map of one window.

    Parameters
    ----------
    points_xy
        ``(n, 2)`` transcript positions ``(x, y)`` in pixel coordinates of the
        full image. Points outside the window plus its halo are ignored, so
        callers may pass a superset.
    shape
        ``(height, width)`` of the window.
    origin
        ``(x0, y0)`` pixel coordinate of the window's top-left corner.
    sigma
        Gaussian standard deviation in pixels (the paper uses 7).
    mode
        ``"sum"``: the paper's Eq. 5, sum of Gaussians clipped at 1.
        ``"max"``: pixel-wise maximum, what the authors' code computed.
    method
        ``"exact"`` or ``"binned"`` (transcripts counted per pixel, then one
        separable Gaussian filter; ``"sum"`` mode only). See the module notes.
    truncate
        Each Gaussian is cut at ``truncate * sigma`` pixels (``exp(-8)`` for 4).
    level
        The map is ``min(G / level, 1)``: 1 is Eq. 5; a per-slide level from
        :func:`density_normalisation` makes the input independent of how many
        transcripts per um^2 the platform detects. An array of the window's
        shape gives each pixel its own level (:mod:`~gsn_spatial.core.rna.local`).

    Returns
    -------
    numpy.ndarray
        ``float32`` map in ``[0, 1]`` of the given shape.

    Examples
    --------
    >>> g = rna_density_window(np.array([[5.5, 5.5]]), (11, 11), sigma=2.0)
    >>> float(g[5, 5])
    1.0
    """
    check_density_options(sigma, mode, method)
    if not np.all(np.asarray(level) > 0):
        raise ValueError(f"`level` must be positive, got {level}.")
    h, w = int(shape[0]), int(shape[1])
    xy = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    x = xy[:, 0] - origin[0]
    y = xy[:, 1] - origin[1]
    radius = int(math.ceil(truncate * sigma))
    keep = (x > -radius - 1) & (x < w + radius + 1) & (y > -radius - 1) & (y < h + radius + 1)
    x, y = x[keep], y[keep]
    if len(x) == 0 or h == 0 or w == 0:
        return np.zeros((h, w), dtype=np.float32)
    if method == "binned":
        return _binned_sum(x, y, (h, w), sigma, radius, level)
    if mode == "max":
        tree = cKDTree(np.stack([x, y], axis=1))
        cols, rows = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
        dist, _ = tree.query(np.stack([cols.ravel(), rows.ravel()], axis=1), distance_upper_bound=radius)
        out = np.exp(-(dist**2) / (2.0 * sigma * sigma))  # inf -> 0
        return np.minimum(out.reshape(h, w) / level, 1.0).astype(np.float32)
    n = len(x)
    ri, rp, rw = _taps(y, h, sigma, radius)
    ci, cp, cw = _taps(x, w, sigma, radius)
    gy = sp.csr_matrix((rw, (rp, ri)), shape=(h, n))
    gx = sp.csr_matrix((cw, (ci, cp)), shape=(n, w))
    dense = (gy @ gx).toarray()
    return np.minimum(dense / level, 1.0).astype(np.float32)


def _binned_sum(
    x: np.ndarray, y: np.ndarray, shape: tuple[int, int], sigma: float, radius: int, level: float | np.ndarray = 1.0
) -> np.ndarray:
    """Eq. 5 from per-pixel counts (``x``, ``y`` relative to the window, within its reach)."""
    h, w = shape
    # Count on the window plus a ``radius`` margin, so that transcripts just outside reach in.
    ph, pw = h + 2 * radius, w + 2 * radius
    col = np.floor(x).astype(np.int64) + radius
    row = np.floor(y).astype(np.int64) + radius
    ok = (col >= 0) & (col < pw) & (row >= 0) & (row < ph)
    counts = np.bincount(row[ok] * pw + col[ok], minlength=ph * pw).reshape(ph, pw).astype(np.float32)
    # The taps of the exact method (peak 1, not normalised): identical for transcripts at pixel centres.
    taps = np.exp(-(np.arange(-radius, radius + 1, dtype=np.float64) ** 2) / (2.0 * sigma * sigma))
    out = ndimage.correlate1d(counts, taps.astype(np.float32), axis=0, mode="constant")
    out = ndimage.correlate1d(out, taps.astype(np.float32), axis=1, mode="constant")
    return np.minimum(out[radius : radius + h, radius : radius + w] / np.asarray(level, dtype=np.float32), 1.0)


def transcript_density(points_xy: np.ndarray, *, bin_size: float, shape: tuple[int, int] | None = None) -> float:
    """Transcripts per pixel^2 where the tissue is: robust to empty slide areas and to ambient transcripts.

    Transcripts are counted on square bins of ``bin_size`` pixels (about a cell
    across); the density is the 75th percentile of the counts of non-empty bins
    divided by the bin area. Empty background does not lower it (its bins are
    empty) and sparse ambient transcripts fill bins far below the tissue's.
    ``shape`` limits the count to the image ``(height, width)``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> xy = rng.random((20000, 2)) * 100  # 2 per pixel^2 on a 100 x 100 area
    >>> round(transcript_density(xy, bin_size=10, shape=(1000, 1000)), 1)
    2.1
    """
    if bin_size <= 0:
        raise ValueError(f"`bin_size` must be positive, got {bin_size}.")
    xy = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    if shape is not None:
        inside = (xy[:, 0] >= 0) & (xy[:, 0] < shape[1]) & (xy[:, 1] >= 0) & (xy[:, 1] < shape[0])
        xy = xy[inside]
    if len(xy) == 0:
        return 0.0
    keys = np.floor(xy / bin_size).astype(np.int64)
    keys -= keys.min(axis=0)
    # One integer per bin: a 1-D unique is many times faster than np.unique(axis=0)'s row sort.
    _, counts = np.unique(keys[:, 1] * (int(keys[:, 0].max()) + 1) + keys[:, 0], return_counts=True)
    return float(np.percentile(counts, 75)) / bin_size**2


MIN_LEVEL_DENSITY_UM2 = 0.05  # transcripts per um^2: half the sparsest the shipped models were trained on


def density_level(density: float, sigma: float) -> float:
    """Level of the density-normalised RNA map: twice the map's expectation in tissue of ``density``.

    ``density`` is the tissue's transcripts per pixel^2
    (:func:`transcript_density`) and ``sigma`` the Gaussian's width in the
    same pixels. Dividing the sum of Gaussians by ``2 d 2 pi sigma^2`` makes
    tissue read about 0.5 at any density and saturates only twice-denser
    spots, so a 10x change in transcripts per um^2 gives maps of the same
    level (``benchmarks/rna_normalisation.py``).

    Examples
    --------
    >>> round(density_level(0.25, 3.0), 2)
    28.27
    """
    if sigma <= 0:
        raise ValueError(f"`sigma` must be positive, got {sigma}.")
    return 2.0 * max(float(density), 1e-6) * 2.0 * math.pi * sigma * sigma


def rna_map_settings(
    points_xy: np.ndarray,
    shape: tuple[int, int],
    *,
    pixel_size: float,
    sigma_um: float,
    norm: str,
    bin_um: float = 10.0,
) -> tuple[float, float, float]:
    """``(sigma, level, transcripts per um^2)`` of the RNA map of one slide, ``sigma`` in its pixels.

    ``points_xy`` are transcripts (a sample of the slide's suffices) in
    pixels of size ``pixel_size`` um, ``shape`` the slide's ``(height,
    width)``. ``norm="density"`` sets the level from the tissue's density
    (:func:`density_level`); ``"clip"`` keeps Eq. 5's level 1.

    Examples
    --------
    >>> xy = np.random.default_rng(0).random((10000, 2)) * 200  # 1 per um^2 at 0.5 um/px
    >>> sigma, level, per_um2 = rna_map_settings(xy, (200, 200), pixel_size=0.5, sigma_um=1.5, norm="density")
    >>> sigma, round(per_um2, 1), round(level, 1)
    (3.0, 1.1, 30.6)
    """
    if norm not in RNA_NORMS:
        raise ValueError(f"`rna_norm` must be one of {RNA_NORMS}, got {norm!r}.")
    sigma = sigma_um / pixel_size
    density = transcript_density(points_xy, bin_size=bin_um / pixel_size, shape=shape)
    # The level never falls below that of MIN_LEVEL_DENSITY_UM2: on a nearly empty slide a lone transcript
    # would otherwise read as a whole cell's worth of RNA.
    floor = MIN_LEVEL_DENSITY_UM2 * pixel_size**2
    level = density_level(max(density, floor), sigma) if norm == "density" else 1.0
    return sigma, level, density / pixel_size**2
