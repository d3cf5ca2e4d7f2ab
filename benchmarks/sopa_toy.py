"""The default call on sopa's toy dataset (``sopa.io.toy_dataset``): a simulator from another project, never
trained on.

Usage::

    python benchmarks/sopa_toy.py [--seeds 0 1 2] [--pixel-sizes 0.1 0.2] [--model generalist]

sopa's toy is what scverse users meet first: 400 round cells on a jittered grid of a 2048 px image, each cell
its own nucleus (a blurred disc of 25 px radius in the DAPI channel, 5 um across at the default 0.1 um/px), 100
transcripts per cell spread as a Gaussian of half the radius around its centre, points in micrometres under an
affine to the image, and an H&E image beside the stained one. The truth is sopa's ``cells`` polygons, rasterised;
a transcript's true cell is sopa's own assignment (inside its polygon, else none). ``--pixel-sizes`` sets the
toy's ``pixel_size`` (the same image, its cells then 5 or 10 um across).

Scores: F1 at IoU 0.5, mean matched IoU (each true cell's best IoU), transcript accuracy
(``transcript_agreement``), cells found, against watershed nuclei grown by 0-8 um (the best of each).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from skimage.draw import polygon
from spatialdata.models import Labels2DModel

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generalist import EXPANSIONS_UM, _assigned  # noqa: E402

import gsn_spatial as gsn  # noqa: E402
from gsn_spatial.core.metrics.matching import match_scores, mean_best_iou, transcript_agreement  # noqa: E402


def toy(seed: int, pixel_size: float):
    """sopa's toy dataset and its cells rasterised on the image's grid (ids = sopa's ``cell_id`` of transcripts)."""
    import sopa

    sdata = sopa.io.toy_dataset(seed=seed, pixel_size=pixel_size)
    shape = sdata.images["image"].shape[1:]
    truth = np.zeros(shape, np.int32)
    for i, cell in enumerate(sdata.shapes["cells"].geometry, 1):  # polygons in image pixels (identity)
        x, y = np.asarray(cell.exterior.coords).T
        rows, cols = polygon(y, x, shape)
        truth[rows, cols] = i
    return sdata, truth


def score(seed: int, pixel_size: float, model) -> dict:
    sdata, truth = toy(seed, pixel_size)
    true_tx = sdata.points["transcripts"]["cell_id"].compute().to_numpy()
    t0 = time.perf_counter()
    gsn.tl.segment(sdata, model=model)
    seconds = time.perf_counter() - t0
    found = np.asarray(sdata.labels["gsn_labels"].data)
    out = {
        "found_px": float(sdata.tables["gsn_table"].uns["gsn"]["params"]["pixel_size"]),
        "f1": match_scores(truth, found, threshold=0.5).f1,
        "iou": mean_best_iou(truth, found),
        "tx": transcript_agreement(
            true_tx, sdata.points["gsn_transcripts"]["cell_id"].compute().to_numpy()
        ).fraction_same,
        "cells": int(len(np.unique(found)) - 1),
        "true_cells": int(truth.max()),
        "seconds": seconds,
    }
    sdata["truth"] = Labels2DModel.parse(truth, dims=("y", "x"))
    gsn.tl.watershed_nuclei(sdata, image_key="image", image_channel="DAPI", labels_key_added="ws")
    best = {"f1": 0.0, "iou": 0.0, "tx": 0.0}
    for d in EXPANSIONS_UM:
        key = f"grown_{d:g}"
        gsn.tl.expand_nuclei(sdata, labels_key="ws", distance_um=d, pixel_size=pixel_size, labels_key_added=key)
        grown = np.asarray(sdata.labels[key].data)
        best["f1"] = max(best["f1"], match_scores(truth, grown, threshold=0.5).f1)
        best["iou"] = max(best["iou"], mean_best_iou(truth, grown))
        tx = _assigned(sdata, key, "expression", pixel_size)
        best["tx"] = max(best["tx"], transcript_agreement(true_tx, tx).fraction_same)
    out.update({f"exp_{k}": v for k, v in best.items()})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--pixel-sizes", type=float, nargs="+", default=[0.1, 0.2])
    ap.add_argument("--model", default=None)
    args = ap.parse_args()
    print("| um/px | seed | found um/px | F1@0.5 | best expansion F1 | IoU | best expansion IoU | tx accuracy "
          "| best expansion tx | cells (true) | s |")  # fmt: skip
    print("|---" * 11 + "|")
    for px in args.pixel_sizes:
        for seed in args.seeds:
            r = score(seed, px, args.model)
            print(
                f"| {px:g} | {seed} | {r['found_px']:.3f} | {r['f1']:.3f} | {r['exp_f1']:.3f} | {r['iou']:.3f} "
                f"| {r['exp_iou']:.3f} | {r['tx']:.3f} | {r['exp_tx']:.3f} | {r['cells']} ({r['true_cells']}) "
                f"| {r['seconds']:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
