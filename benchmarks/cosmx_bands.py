"""The default call against watershed nuclei grown by 15 px on each part of the CosMx FOV 2 crop.

Usage::

    python benchmarks/cosmx_bands.py

Issue 15 asks, on the held-out columns (``heldout.COSMX_HELDOUT_COLS``, 21 vendor cells), for a mean matched IoU
against the vendor's membrane-stain cells of at least watershed nuclei grown by 15 px + 0.03. This prints the same
comparison on the training columns (part of the generalist's training data), on the guard band between them and
the held-out part (never trained on), on the held-out columns, and on the whole FOV, each cut from the crop by
``spatialdata.bounding_box_query`` and segmented as a slide of its own (image channel DAPI, mask assignment): how
much of the held-out gap is the part rather than the method. The whole FOV's run is also scored part by part (each
vendor cell by the part holding its centroid), so that no cell is cut by a part's edge.
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

import numpy as np
import spatialdata as sd
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))

import generalist  # noqa: E402
import heldout  # noqa: E402

import gsn_spatial as gsn  # noqa: E402
from gsn_spatial.core.metrics.matching import overlap_table  # noqa: E402

GROWN_PX = 15


def best_iou_per_cell(reference: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Each reference cell's best IoU with a predicted cell (0 if none): the terms of ``mean_best_iou``."""
    ids = np.unique(reference)
    ids = ids[ids > 0]
    r, _, _, iou = overlap_table(reference, predicted)
    best = np.zeros(int(ids.max()) + 1)
    np.maximum.at(best, r, iou)
    return best[ids]


def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    warnings.filterwarnings("ignore", message=".*points.*element.*")  # bounding_box_query's note on points
    full = gsn.io.read_cosmx_crop(heldout.DATA / "cosmx_lung_fov2")
    cs = generalist._pixel_system(full, "composite")
    stop = heldout.COSMX_HELDOUT_COLS[0] - round(heldout.GUARD_UM / heldout.COSMX_PIXEL_SIZE)
    parts = {
        "training columns": (0, stop),
        "guard band (never trained on)": (stop, heldout.COSMX_HELDOUT_COLS[0]),
        "held-out columns": heldout.COSMX_HELDOUT_COLS,
        "whole FOV": (0, heldout.COSMX_HELDOUT_COLS[1]),
    }
    print(
        f"| part | columns | vendor cells | cells found | mean matched IoU | nuclei + {GROWN_PX} px "
        "| difference (s.e., paired by vendor cell) |"
    )
    print("|---|---|--:|--:|--:|--:|--:|")
    for name, (a, b) in parts.items():
        part = sd.bounding_box_query(
            full, axes=("x", "y"), min_coordinate=[a, 0], max_coordinate=[b, 648],
            target_coordinate_system=cs, filter_table=False,
        )  # fmt: skip
        gsn.tl.segment(part, image_channel="DAPI", assignment="mask")
        gsn.tl.watershed_nuclei(part, image_channel="DAPI", labels_key_added="nuclei_ws")
        gsn.tl.expand_nuclei(
            part, labels_key="nuclei_ws", distance_um=GROWN_PX * heldout.COSMX_PIXEL_SIZE, labels_key_added="grown"
        )
        vendor = np.asarray(part.labels["cell_labels"].data)
        found = np.asarray(part.labels["gsn_labels"].data)
        ours = best_iou_per_cell(vendor, found)
        grown = best_iou_per_cell(vendor, np.asarray(part.labels["grown"].data))
        diff = ours - grown
        se = diff.std(ddof=1) / np.sqrt(len(diff))
        print(
            f"| {name} | {a}-{b} | {len(ours)} | {len(np.unique(found)) - 1} | {ours.mean():.3f} | {grown.mean():.3f} "
            f"| {diff.mean():+.3f} ({se:.3f}) |"
        )
        if name == "whole FOV":
            # The same run scored part by part: each vendor cell of the whole FOV by the part holding its centroid,
            # with the context of the whole FOV around it (no cell cut by a part's edge).
            cells = np.unique(vendor)[1:]
            cols = np.array(ndimage.center_of_mass(np.ones_like(vendor), vendor, cells))[:, 1] + a
            for part, (lo, hi) in parts.items():
                if part == "whole FOV":
                    continue
                sel = (cols >= lo) & (cols < hi)
                d = diff[sel]
                print(
                    f"| {part}, scored on the whole FOV's run | {lo}-{hi} | {sel.sum()} | | {ours[sel].mean():.3f} "
                    f"| {grown[sel].mean():.3f} | {d.mean():+.3f} ({d.std(ddof=1) / np.sqrt(sel.sum()):.3f}) |"
                )


if __name__ == "__main__":
    main()
