"""Nucleus diameter from a nucleus-stain image, without a network (array level).

The estimate is the median over nuclei of the equivalent diameter
``sqrt(4 * area / pi)`` in pixels, the quantity a segmentation model's scale is
set from (Cellpose's "diameter"). It is found by a classical segmentation that
needs no size prior:

1. The image is scaled to ``[0, 1]`` by its 1st and 99.9th percentiles and
   smoothed a little (Gaussian, 1 px), so dtype and intensity range do not matter.
2. A low global threshold (Li's minimum cross entropy) finds every candidate
   object, dim nuclei included; each candidate is then thresholded again by
   Otsu's method on its own neighbourhood. A global Otsu threshold alone is
   set by the brightest nuclei and keeps only the cores of dim ones.
3. Candidates whose mean intensity does not stand out of the background by
   several noise standard deviations are dropped, so pure noise finds nothing;
   the bar is up to 2x lower for objects much larger than the smoothing kernel,
   whose mean averages the noise down (photon-starved stains). The noise is
   measured where the image is not clipped (a background clipped to zero has
   none to measure).
4. Touching nuclei are split by a watershed of the distance transform, with
   seeds at least half a typical nucleus apart; the typical size is the median
   diameter of the largest disk inside each connected object, which a clump of
   nuclei does not inflate. Pieces with neither a neck nor a notch between them
   are merged back, so long nuclei stay whole (:mod:`~gsn_spatial.core.image.split`).
5. Fragments under 40 % of that size are dropped and the median equivalent
   diameter is multiplied by a calibration constant (fitted on the training
   split of the DSB 2018 data set, ``benchmarks/size_estimate.py --calibrate``).
6. If that median is under 14 px, steps 1-5 run again with proportionally less
   smoothing, which would otherwise merge and inflate small nuclei. If it is
   under 4 px (no nucleus at the package's coarsest 1 um/px), the objects are
   specks of noise: the estimate is made again without objects under two
   smoothing kernels.
7. If the median object, or the largest one (cut by a window edge or not), is
   over half the image side, it is background (bright out-of-focus tissue under
   the nuclei), not nuclei: steps 1-5 run on white top-hats of ever smaller
   footprints until the objects found fit well inside the footprint; if none
   does, objects over half the side are left out all the same.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import threshold_li, threshold_otsu
from skimage.transform import resize

from gsn_spatial.core.image.split import split_touching

__all__ = ["estimate_nucleus_diameter"]

_SMOOTH_SIGMA = 1.0  # px; removes shot noise from nuclei of 14 px and more
_MIN_SMOOTH_SIGMA = 0.4  # px; the least smoothing, for nuclei of ~6 px or less
_DIAMETER_PER_SIGMA = 14.0  # nuclei under this many px across get sigma = diameter / this
_LOCAL_LEVEL = 0.8  # fraction of the way from local background to local Otsu threshold
_LOCAL_MARGIN = 0.25  # neighbourhood margin around a candidate, as a fraction of its extent
_LEVELS = 512  # grey levels of the per-object Otsu histograms
_MIN_CANDIDATE_AREA = 4  # px; smaller candidates cannot be nuclei and only cost time
_MIN_CONTRAST_SNR = 4.0  # candidate mean over background, in noise standard deviations
# A large object's mean is surer than one pixel's: the bar falls with sqrt(area / pooling area), at most
# _MAX_CONTRAST_POOLING-fold. The pooling area is 4x the smoothing kernel's (4 pi sigma^2, sigma taken as at least
# 1 px: about 50 px), so fragments of the noise (about one kernel) get no relief. Chosen on degraded DSB training images
# (benchmarks/size_estimate.py --perturb dim dimmer clip): photon-starved stains were read as no nuclei.
_CONTRAST_POOLING_KERNELS = 4.0
_MAX_CONTRAST_POOLING = 2.0
_MAX_DIAMETER_FRACTION = 0.5  # objects larger than this fraction of the image side are background, not nuclei
_MIN_FOOTPRINT = 8.0  # px; the smallest top-hat tried against background
_MIN_DIAMETER = 0.4  # objects under this fraction of the typical diameter are fragments
# No nucleus in the package's range is smaller (4 um at 1 um/px, the coarsest pixel it is made for): a median under
# it means the objects found are specks of noise (a dim stain over a background clipped to zero), and the estimate is
# made again without objects under two smoothing kernels (2 x 4 pi sigma^2 px at sigma = 1 px), the size of such
# specks. Found on two held-out DSB images (estimates of 2.6 and 2.8 px for nuclei of 42 and 20 px); no training or
# validation image comes under the bound, so none changes.
MIN_NUCLEUS_PX = 4.0
SPECK_AREA = 2.0 * 4.0 * np.pi * _SMOOTH_SIGMA**2
# Median of truth / raw estimate over the DSB 2018 training split (benchmarks/size_estimate.py --calibrate).
_CALIBRATION = 0.944

_NO_NUCLEI = (
    "no nuclei found in the image (empty, constant or noise only?); "
    "pass the nucleus diameter or pixel_size= explicitly instead of estimating it"
)


def _normalise(image: np.ndarray) -> np.ndarray:
    """Scale ``image`` to ``[0, 1]`` by its 1st and 99.9th percentiles (float32)."""
    x = np.asarray(image, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {x.shape}")
    finite = np.isfinite(x)
    if not finite.all():
        # NaN / inf pixels (masked regions) carry no signal; put them at the background.
        x = np.where(finite, x, np.nanmin(np.where(finite, x, np.nan)) if finite.any() else 0)
    lo, hi = np.percentile(_sample(x), [1.0, 99.9])
    if not hi > lo:
        raise ValueError(_NO_NUCLEI)
    return np.clip((x - lo) / (hi - lo), 0.0, 1.0)


def _sample(x: np.ndarray) -> np.ndarray:
    """Every other row and column of a large image: the same quantiles at a quarter of the cost."""
    return x[::2, ::2] if x.size > 2**16 else x


def _noise_std(x: np.ndarray) -> float:
    """Robust standard deviation of pixel noise: MAD of horizontal differences."""
    # Differences cancel the smooth signal; the median ignores the few that cross edges.
    rows = x[::2] if x.size > 2**16 else x
    d = np.diff(rows, axis=1)
    # Pairs with a pixel at the clipping floor or ceiling carry no noise (a background clipped to zero
    # gives a MAD of 0, and then every speck would stand out); leave them out where enough remain.
    unclipped = (rows[:, 1:] > 0.0) & (rows[:, :-1] > 0.0) & (rows[:, 1:] < 1.0) & (rows[:, :-1] < 1.0)
    if unclipped.sum() >= 0.05 * d.size:
        d = d[unclipped]
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2.0))


def _otsu_levels(counts: np.ndarray) -> np.ndarray:
    """Otsu's threshold of each row of a stack of histograms: the last bin of the lower class."""
    bins = np.arange(counts.shape[1], dtype=np.float64)
    w0 = np.cumsum(counts, axis=1, dtype=np.float64)[:, :-1]
    m0 = np.cumsum(counts * bins, axis=1)[:, :-1]
    total = counts.sum(axis=1, keepdims=True, dtype=np.float64)
    mean_total = (counts * bins).sum(axis=1, keepdims=True)
    # Between-class variance up to a constant factor; empty classes score 0.
    denom = w0 * (total - w0)
    between = np.divide((mean_total * w0 - total * m0) ** 2, denom, out=np.zeros_like(denom), where=denom > 0)
    return np.argmax(between, axis=1)


def _local_otsu(xs: np.ndarray, candidates: np.ndarray, t_low: float) -> np.ndarray:
    """Threshold each candidate object by Otsu's method on its own neighbourhood.

    The neighbourhood is the candidate's bounding box grown by ``_LOCAL_MARGIN`` of its
    extent; its pixels outside the candidate are counted at the background level, which
    lets one ``bincount`` build all the histograms at once.
    """
    n = int(candidates.max())
    if n == 0:
        return np.zeros(xs.shape, dtype=bool)
    levels = np.minimum((xs * _LEVELS).astype(np.int64), _LEVELS - 1)
    inside = candidates > 0
    counts = np.bincount(candidates[inside] * _LEVELS + levels[inside], minlength=(n + 1) * _LEVELS)
    counts = counts.reshape(n + 1, _LEVELS)
    background = min(int(np.median(_sample(xs)[_sample(~inside)]) * _LEVELS), _LEVELS - 1)
    counts[:, background] += np.maximum(0, _box_areas(candidates, xs.shape) - counts.sum(axis=1))
    otsu = _otsu_levels(counts) + 0.5
    level = np.maximum((background + _LOCAL_LEVEL * (otsu - background)) / _LEVELS, t_low)
    level[0] = np.inf
    return xs > level[candidates]


def _box_areas(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Area of each label's bounding box grown by ``_LOCAL_MARGIN`` of its extent (index 0: 0)."""
    h, w = shape
    areas = np.zeros(int(labels.max()) + 1, dtype=np.int64)
    for i, (ys, xs) in enumerate(ndi.find_objects(labels), start=1):
        m = int(max(2, _LOCAL_MARGIN * max(ys.stop - ys.start, xs.stop - xs.start)))
        areas[i] = (min(h, ys.stop + m) - max(0, ys.start - m)) * (min(w, xs.stop + m) - max(0, xs.start - m))
    return areas


def _foreground(x: np.ndarray, sigma: float = _SMOOTH_SIGMA) -> tuple[np.ndarray, int]:
    """Nucleus objects of a normalised image (labels, count): low global threshold, then per-object Otsu."""
    xs = ndi.gaussian_filter(x, sigma)
    if not xs.max() > xs.min():
        return np.zeros(x.shape, dtype=np.int32), 0
    # Every other pixel gives the same global thresholds in a quarter of the time.
    sample = _sample(xs)
    t_low = min(threshold_li(sample), threshold_otsu(sample))
    cand, n = ndi.label(xs > t_low)
    big = np.bincount(cand.ravel(), minlength=n + 1) >= _MIN_CANDIDATE_AREA
    big[0] = False
    mask = _fill_holes(_local_otsu(xs, _relabel(cand, big), t_low))
    return _drop_faint(x, mask, xs <= t_low, sigma)


def _relabel(labels: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Labels with only those flagged in ``keep`` (indexed by label), renumbered ``1..k``."""
    new = np.cumsum(keep).astype(np.int32)
    new[~keep] = 0
    return new[labels]


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill the holes of a mask: background components that do not touch the border."""
    # Labelling the background is several times faster than ndimage.binary_fill_holes' iterated dilation.
    holes, n = ndi.label(~mask)
    if n == 0:
        return mask
    outside = np.zeros(n + 1, dtype=bool)
    outside[np.concatenate([holes[0], holes[-1], holes[:, 0], holes[:, -1]])] = True
    outside[0] = True
    return ~outside[holes] | mask


def _drop_faint(x: np.ndarray, mask: np.ndarray, background: np.ndarray, sigma: float) -> tuple[np.ndarray, int]:
    """Objects of ``mask`` whose mean exceeds the background by ``_MIN_CONTRAST_SNR`` noise sigmas (fewer for
    objects larger than a few smoothing kernels ``sigma``, whose mean averages the noise down)."""
    lab, n = ndi.label(mask)
    if n == 0 or not background.any():
        return lab, n
    bg = float(np.median(_sample(x)[_sample(background)]))
    area = np.bincount(lab.ravel(), minlength=n + 1)[1:]
    mean = np.bincount(lab.ravel(), weights=x.ravel(), minlength=n + 1)[1:] / area
    pooling = np.sqrt(area / (_CONTRAST_POOLING_KERNELS * 4.0 * np.pi * max(sigma, 1.0) ** 2))
    level = _MIN_CONTRAST_SNR * _noise_std(x) / np.clip(pooling, 1.0, _MAX_CONTRAST_POOLING)
    keep = np.concatenate([[False], mean - bg > level])
    return _relabel(lab, keep), int(keep.sum())


def _edge_ids(labels: np.ndarray, edges: tuple[bool, bool, bool, bool]) -> np.ndarray:
    """Labels touching the chosen edges (top, bottom, left, right)."""
    strips = [s for s, use in zip((labels[0], labels[-1], labels[:, 0], labels[:, -1]), edges, strict=True) if use]
    return np.unique(np.concatenate(strips)) if strips else np.zeros(0, dtype=labels.dtype)


def _nucleus_diameters(
    image: np.ndarray,
    drop_edges: tuple[bool, bool, bool, bool] = (False,) * 4,
    sigma: float = _SMOOTH_SIGMA,
    min_area: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Uncalibrated equivalent diameters of the nuclei found in ``image``, their weights (empty if none), and
    the largest object's equivalent diameter, those cut by a dropped edge included.

    Objects touching an edge flagged in ``drop_edges`` are left out (a window's
    inner edges cut nuclei that are whole in the image), which keeps a large
    nucleus less often than a small one: along an axis whose two edges are both
    dropped, a nucleus ``b`` px long is whole in ``L - b + 1`` of the ``L``
    positions. The weight ``L / (L - b + 1)`` per such axis (Miles-Lantuejoul)
    restores the whole image's size distribution; along an axis with an image
    border, the nuclei cut by it are kept, so no weight is needed there.
    Objects under ``min_area`` px are left out too.
    """
    labels, typical = split_touching(*_foreground(_normalise(image), sigma))
    if typical == 0.0:
        return np.zeros(0), np.zeros(0), 0.0
    area = np.bincount(labels.ravel()).astype(np.float64)
    area[0] = 0.0
    largest = float(np.sqrt(4.0 * area.max() / np.pi))
    area[_edge_ids(labels, drop_edges)] = 0.0
    weight = np.ones_like(area)
    full_axes = [(axis, labels.shape[axis]) for axis in (0, 1) if drop_edges[2 * axis] and drop_edges[2 * axis + 1]]
    if full_axes:
        for i, box in enumerate(ndi.find_objects(labels), start=1):
            if box is None or area[i] == 0.0:
                continue
            for axis, length in full_axes:
                extent = box[axis].stop - box[axis].start
                weight[i] *= length / max(1.0, length - extent + 1.0)
    diameters = np.sqrt(4.0 * area / np.pi)
    kept = (area > 0) & (diameters >= _MIN_DIAMETER * typical) & (area >= min_area)
    return diameters[kept], weight[kept], largest


def _remove_background(x: np.ndarray, footprint: float) -> np.ndarray:
    """White top-hat of a normalised image ``x``: what stands out of a grey opening ``footprint`` px across."""
    # The opening on a grid coarse enough for a disk of about 16 px: the background is smooth on this
    # scale, and at full resolution a 64 px disk took 2.2 s on a 512 px window (2-core host), growing
    # with the disk's area.
    step = max(1, int(footprint // 16))
    radius = max(1.0, footprint / step / 2.0)
    r = int(radius)
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    background = ndi.grey_opening(x[::step, ::step], footprint=(yy**2 + xx**2) <= radius**2)
    if step > 1:
        background = resize(background, x.shape, order=1, mode="edge", anti_aliasing=False)
    return np.clip(x - background, 0.0, None)


def _robust_diameters(
    image: np.ndarray,
    drop_edges: tuple[bool, bool, bool, bool] = (False,) * 4,
    sigma: float = _SMOOTH_SIGMA,
    min_area: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_nucleus_diameters`, with the background removed where the objects are too large to be nuclei.

    Bright out-of-focus tissue under the nuclei (an embryo, a thick section) is one object with them, far
    larger than a nucleus. Where the median object, or the largest (cut by a window edge or not), is over
    ``_MAX_DIAMETER_FRACTION`` of the image side, white top-hats from half the side down, by steps of
    ``sqrt(2)``, remove ever finer background; the first whose objects are at most half its footprint across
    (so whole objects are kept, and the background is gone) gives the nuclei.
    """
    d, w, largest = _nucleus_diameters(image, drop_edges, sigma, min_area)
    side = min(image.shape[:2])
    limit = _MAX_DIAMETER_FRACTION * side
    # In a window, the background object usually reaches an inner edge and is dropped with the nuclei
    # merged into it, so the largest object counts too, those cut by an edge included.
    if largest <= limit and (not d.size or np.median(d) <= limit):
        return d, w
    x = _normalise(image)
    footprint = side / 2.0
    while footprint >= _MIN_FOOTPRINT:
        dt, wt, _ = _nucleus_diameters(_remove_background(x, footprint), drop_edges, sigma, min_area)
        if dt.size and np.median(dt) <= footprint / 2.0:
            return dt, wt
        footprint /= np.sqrt(2.0)
    # No footprint separated the nuclei from the background: an object over the limit is still not a nucleus.
    small = d <= limit
    return d[small], w[small]


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """The value at which the cumulative weight of the sorted ``values`` reaches half the total."""
    order = np.argsort(values)
    cum = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cum, 0.5 * cum[-1])])


def _smoothing_for(diameter: float) -> float:
    """Smoothing for nuclei of about ``diameter`` px: the default, or less for small nuclei."""
    # 1 px of blur merges touching nuclei under ~13 px across and inflates them; scale it down with the size.
    sigma = min(_SMOOTH_SIGMA, max(_MIN_SMOOTH_SIGMA, diameter / _DIAMETER_PER_SIGMA))
    return sigma if sigma < 0.9 * _SMOOTH_SIGMA else _SMOOTH_SIGMA


def estimate_nucleus_diameter(image: np.ndarray) -> float:
    """Median nucleus diameter of a nucleus-stain image, in pixels.

    The diameter of a nucleus is its equivalent diameter ``sqrt(4 * area / pi)``;
    nuclei cut by the image border count with their visible area, as in hand
    annotations. No deep learning: a threshold-and-watershed segmentation (see
    the module docstring) whose result is calibrated on hand-annotated nuclei.

    Parameters
    ----------
    image
        2-D nucleus stain (DAPI, Hoechst): bright nuclei on a dark background.
        Any dtype and intensity range.

    Returns
    -------
    float
        The median equivalent diameter in pixels.

    Raises
    ------
    ValueError
        If no nuclei can be found (empty, constant or pure-noise image); pass the
        size explicitly (``pixel_size=``) then.

    Examples
    --------
    >>> import numpy as np
    >>> yy, xx = np.mgrid[:128, :128]
    >>> image = np.zeros((128, 128))
    >>> for cy, cx in [(30, 30), (30, 90), (90, 30), (90, 90)]:
    ...     image[(yy - cy) ** 2 + (xx - cx) ** 2 <= 10**2] = 1.0
    >>> round(estimate_nucleus_diameter(image) / 20, 1)
    1.0
    """
    estimate = _estimate(image, 0.0)
    if estimate < MIN_NUCLEUS_PX:  # specks of noise, not nuclei: once more without them
        estimate = _estimate(image, SPECK_AREA)
    return estimate


def _estimate(image: np.ndarray, min_area: float) -> float:
    """Steps 1-7 of the module docstring, objects under ``min_area`` px left out."""
    diameters = _robust_diameters(image, min_area=min_area)[0]
    if diameters.size == 0:
        raise ValueError(_NO_NUCLEI)
    sigma = _smoothing_for(float(np.median(diameters)))
    if sigma != _SMOOTH_SIGMA:
        diameters = _robust_diameters(image, sigma=sigma, min_area=min_area)[0]
    return float(_CALIBRATION * np.median(diameters))
