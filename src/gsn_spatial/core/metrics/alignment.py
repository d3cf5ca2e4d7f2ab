"""Do the transcripts sit on the nuclei? The offset between an RNA count map and a nucleus stain.

Transcripts gather in cells, around their nuclei, so the two maps, each smoothed, correlate best where they
are aligned. A wrong transformation (an offset, a flipped axis, another section's image) moves that peak or
removes it, while the segmentation itself runs without complaint. Positions are ``(n, 2)`` pixel ``(x, y)``
arrays on the image window's grid; pixel ``(row, col)`` covers ``[col, col + 1) x [row, row + 1)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from gsn_spatial.core.rna.density import rna_density_window


@dataclass(frozen=True)
class Alignment:
    """``offset``: ``(dx, dy)`` pixels by which the transcripts lie from the nuclei where the maps correlate best
    (``correlation``, Pearson's over the window); ``at_zero``: their correlation as given."""

    offset: tuple[int, int]
    correlation: float
    at_zero: float


def _standardised(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64) - a.mean()
    return a / (a.std() + 1e-12)


def rna_image_alignment(image: np.ndarray, points_xy: np.ndarray, *, sigma: float, max_shift: int) -> Alignment:
    """The shift (within ``max_shift`` pixels each way) at which the transcripts' counts best match ``image``.

    Both maps are smoothed by a Gaussian of ``sigma`` pixels and standardised; their cross-correlation is taken
    by FFT (circular: keep ``max_shift`` well under the window's size).

    Examples
    --------
    >>> yy, xx = np.mgrid[:128, :128]
    >>> image = ((yy - 64) ** 2 + (xx - 40) ** 2 < 36).astype(float)  # one nucleus at x = 40, y = 64
    >>> rows, cols = np.nonzero(image)
    >>> xy = np.c_[cols + 10.5, rows + 0.5]  # a transcript 10 px to the right of each of its pixels
    >>> rna_image_alignment(image, xy, sigma=2, max_shift=20).offset
    (10, 0)
    """
    h, w = image.shape
    xy = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    # The RNA map's own binned sum of Gaussians; a level of the transcript count keeps it below its clip at 1.
    rna = rna_density_window(xy, (h, w), sigma=sigma, method="binned", level=max(len(xy), 1))
    a, b = _standardised(ndi.gaussian_filter(image.astype(np.float64), sigma)), _standardised(rna)
    # corr[dy, dx] = mean of a(y + dy, x + dx) * b(y, x), centred by fftshift
    corr = np.fft.fftshift(np.fft.irfft2(np.fft.rfft2(a) * np.conj(np.fft.rfft2(b)), s=(h, w))) / (h * w)
    cy, cx = h // 2, w // 2
    near = corr[cy - max_shift : cy + max_shift + 1, cx - max_shift : cx + max_shift + 1]
    dy, dx = np.unravel_index(int(np.argmax(near)), near.shape)
    # The nuclei at (y + dy, x + dx) match transcripts at (y, x): the transcripts lie (-dx, -dy) from them.
    return Alignment((max_shift - int(dx), max_shift - int(dy)), float(near.max()), float(corr[cy, cx]))


def misalignment(
    alignment: Alignment, *, pixel_size: float, min_offset_um: float, min_correlation: float, max_ratio: float
) -> str | None:
    """What looks wrong with ``alignment`` (of maps with ``pixel_size`` um per pixel), in words, or ``None``.

    Reported: no offset within reach correlates by ``min_correlation``; or the best offset is at least
    ``min_offset_um`` and the correlation as given is at most ``max_ratio`` of its.

    Examples
    --------
    >>> found = Alignment((20, 0), 0.6, 0.1)
    >>> print(misalignment(found, pixel_size=0.5, min_offset_um=3, min_correlation=0.2, max_ratio=0.8))
    the transcripts lie (+10, +0) um in (x, y) from the nuclei they match best (10 um away; ...
    """
    dx, dy = (pixel_size * d for d in alignment.offset)
    if alignment.correlation < min_correlation:
        return (
            "the transcripts do not follow the nucleus stain at any offset within reach (best correlation "
            f"{alignment.correlation:.2f})"
        )
    if np.hypot(dx, dy) >= min_offset_um and alignment.at_zero <= max_ratio * alignment.correlation:
        return (
            f"the transcripts lie ({dx:+.3g}, {dy:+.3g}) um in (x, y) from the nuclei they match best "
            f"({np.hypot(dx, dy):.3g} um away; correlation {alignment.correlation:.2f} there, "
            f"{alignment.at_zero:.2f} as placed)"
        )
    return None
