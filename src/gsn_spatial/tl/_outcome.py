"""A last look at a finished run: a result that points to wrong inputs is said, not left for the user to find."""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)

#: Below this share of the image's transcripts in cells, a run most likely had a wrong input (pixel size, stain
#: channel, alignment). Shares measured with the default call (2026-12-08): the Xenium crop 0.984, CosMx FOV 2
#: 0.892, simulated tissue 0.937-0.988 (sparse tissue at 0.1 and 2 transcripts per um^2 included); the Xenium crop
#: with `pixel_size=2.125` (ten times its scale) 0.068. Issue 14 reported 0.009 on held-out Xenium rows read at the
#: wrong scale before the pixel size was found: the silent failure this check exists to make loud.
LOW_ASSIGNED_SHARE = 0.2
#: Fewer transcripts than this in the image say too little to judge by.
MIN_TRANSCRIPTS = 500


def check_assigned_share(params: dict[str, Any], n_in_cells: int, n_cells: int, *, points_key: str) -> None:
    """Record the share of the image's transcripts that fell in cells, and warn where it is implausibly low.

    ``params`` is the run's parameters (``uns["gsn"]["params"]``): it holds the transcripts inside the image
    (``transcripts_in_image``) and gains ``transcripts_in_cells`` and ``fraction_assigned``. The share is capped
    at 1: the expression pass may give an edge cell a transcript from just past the image's edge.

    Examples
    --------
    >>> p = {"transcripts_in_image": 1000, "pixel_size": 0.5, "pixel_size_source": "argument", "image_channel": "DAPI"}
    >>> check_assigned_share(p, 950, 40, points_key="transcripts"); p["fraction_assigned"]
    0.95
    """
    total = int(params.get("transcripts_in_image", 0))
    if total <= 0:
        return
    share = min(1.0, n_in_cells / total)
    params["transcripts_in_cells"] = int(n_in_cells)
    params["fraction_assigned"] = round(share, 4)
    if total < MIN_TRANSCRIPTS or share >= LOW_ASSIGNED_SHARE:
        return
    logger.warning(
        "Only %.1f%% of the %d transcripts of %r inside the image fall in the %d cells found. Unless the tissue "
        "covers little of the image, an input is likely wrong: the pixel size (%.4g um per image pixel, from %s; "
        "pass `pixel_size=`), the nucleus-stain channel (%r; pass `image_channel=`) or the alignment of points and "
        "image (their transformations).",
        100 * share, total, points_key, n_cells, params.get("pixel_size", float("nan")),
        params.get("pixel_size_source", "?"), params.get("image_channel"),
    )  # fmt: skip
