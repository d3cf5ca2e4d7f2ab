"""Does the peak spacing of decoding explain the CosMx gap? (training columns only, never the held-out part)

Usage::

    python benchmarks/decode_spacing.py

Segments the CosMx FOV 2 training columns (left of ``heldout.COSMX_HELDOUT_COLS`` less the guard band)
with the default model, its decoding settings overridden by a grid of peak spacings (working px) and
centre thresholds, and prints the cell count and the mean matched IoU against the vendor's cells.
"""

from __future__ import annotations

import copy
import logging
import sys
from pathlib import Path

import numpy as np
import spatialdata as sd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import generalist  # noqa: E402
import heldout  # noqa: E402

import gsn_spatial as gsn  # noqa: E402
from gsn_spatial.core.metrics.matching import mean_best_iou  # noqa: E402

SPACINGS_PX = (5, 8, 12, 16)
CENTRE_THRESHOLDS = (0.06, 0.2)


def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    full = gsn.io.read_cosmx_crop(heldout.DATA / "cosmx_lung_fov2")
    cs = generalist._pixel_system(full, "composite")
    stop = heldout.COSMX_HELDOUT_COLS[0] - round(heldout.GUARD_UM / 0.18)
    base = gsn.models.load()
    print(f"CosMx FOV 2 columns 0-{stop}, model {base.meta['name']} (decode {base.meta['decode']})")
    print("| peak spacing (working px) | centre threshold | cells | vendor cells | mean matched IoU |")
    print("|--:|--:|--:|--:|--:|")
    for spacing in SPACINGS_PX:
        for centre in CENTRE_THRESHOLDS:
            model = copy.deepcopy(base)
            model.meta["decode"] = {**model.meta["decode"], "min_distance": spacing, "centre_threshold": centre}
            part = sd.bounding_box_query(
                full, axes=("x", "y"), min_coordinate=[0, 0], max_coordinate=[stop, 648],
                target_coordinate_system=cs, filter_table=False,
            )  # fmt: skip
            gsn.tl.segment(part, image_channel="DAPI", model=model, assignment="mask")
            vendor = np.asarray(part.labels["cell_labels"].data)
            found = np.asarray(part.labels["gsn_labels"].data)
            n_found, n_vendor = len(np.unique(found)) - 1, len(np.unique(vendor)) - 1
            print(f"| {spacing} | {centre} | {n_found} | {n_vendor} | {mean_best_iou(vendor, found):.3f} |")


if __name__ == "__main__":
    main()
