"""Before a run: do the transcripts sit on the image's nuclei? A warning where a transformation looks wrong."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from gsn_spatial._constants import Defaults
from gsn_spatial.core.metrics.alignment import misalignment, rna_image_alignment
from gsn_spatial.core.slide.steps import densest_core
from gsn_spatial.core.slide.workdir import WorkDir
from gsn_spatial.models import InputSpec

logger = logging.getLogger(__name__)


def check_alignment(
    work: WorkDir, image: Any, spec: InputSpec, params: dict[str, Any], genes: np.ndarray | None, **keys: str
) -> None:
    """Warn where the transcripts do not sit on the nuclei (an offset, a flipped axis); the figures go in ``params``.

    A wrong transformation gives a run without error and with poor cells; this says so before the run. Measured on
    the middle of the densest block's core (``segment``'s whole-slide path).
    """
    (y0, y1, x0, x1), xy = densest_core(work, genes=genes)
    # The middle of the core, at most ALIGNMENT_WINDOW_UM across: 0.18 s of an 8.3 s run with the whole 1024 px core.
    side = round(Defaults.ALIGNMENT_WINDOW_UM / spec.pixel_size)
    h, w = min(y1 - y0, side), min(x1 - x0, side)
    oy, ox = (y1 - y0 - h) // 2, (x1 - x0 - w) // 2
    xy = xy[(xy[:, 0] >= ox) & (xy[:, 0] < ox + w) & (xy[:, 1] >= oy) & (xy[:, 1] < oy + h)] - (ox, oy)
    _check_window(lambda: image(y0 + oy, y0 + oy + h, x0 + ox, x0 + ox + w), xy, (h, w), spec, params, **keys)


def check_alignment_in_memory(
    image: np.ndarray, xy: np.ndarray, spec: InputSpec, params: dict[str, Any], **keys: str
) -> None:
    """:func:`check_alignment` for a working-scale image and transcripts held whole (``train``'s path).

    Measured on the window of at most ``ALIGNMENT_WINDOW_UM`` across that holds the most transcripts, on a grid of
    such windows.
    """
    side = round(Defaults.ALIGNMENT_WINDOW_UM / spec.pixel_size)
    h, w = min(image.shape[0], side), min(image.shape[1], side)
    rows, cols = -(-image.shape[0] // h), -(-image.shape[1] // w)
    r = np.clip((xy[:, 1] // h).astype(np.int64), 0, rows - 1)
    c = np.clip((xy[:, 0] // w).astype(np.int64), 0, cols - 1)
    best = int(np.argmax(np.bincount(r * cols + c, minlength=rows * cols))) if len(xy) else 0
    y0, x0 = min((best // cols) * h, image.shape[0] - h), min((best % cols) * w, image.shape[1] - w)
    xy = xy[(xy[:, 0] >= x0) & (xy[:, 0] < x0 + w) & (xy[:, 1] >= y0) & (xy[:, 1] < y0 + h)] - (x0, y0)
    _check_window(lambda: image[y0 : y0 + h, x0 : x0 + w], xy, (h, w), spec, params, **keys)


def _check_window(
    read: Any, xy: np.ndarray, shape: tuple[int, int], spec: InputSpec, params: dict[str, Any], **keys: str
) -> None:
    h, w = shape
    reach = min(round(Defaults.ALIGNMENT_REACH_UM / spec.pixel_size), min(h, w) // 4)
    if len(xy) < Defaults.ALIGNMENT_MIN_TRANSCRIPTS or reach < 8:
        return
    found = rna_image_alignment(read(), xy, sigma=Defaults.ALIGNMENT_SIGMA_UM / spec.pixel_size, max_shift=reach)
    dx, dy = (spec.pixel_size * d for d in found.offset)
    params["rna_image_alignment"] = {"offset_um": [dx, dy], "correlation": found.correlation, "at_zero": found.at_zero}
    problem = misalignment(
        found, pixel_size=spec.pixel_size, min_offset_um=Defaults.ALIGNMENT_MIN_OFFSET_UM,
        min_correlation=Defaults.ALIGNMENT_MIN_CORRELATION, max_ratio=Defaults.ALIGNMENT_MAX_RATIO,
    )  # fmt: skip
    if problem:
        logger.warning(
            "Points %r and image %r: %s. Check their transformations (an offset, a flipped axis) and that both are of "
            "one section.", keys["points_key"], keys["image_key"], problem,
        )  # fmt: skip
