"""Train the shipped ``xenium_breast`` model on the Xenium breast crop from the vendor's assignment.

Usage (the documented small CPU configuration)::

    python scripts/train_xenium_model.py --data ../shared/data/xenium_breast_crop \\
        --out src/gsn_spatial/models/weights/xenium_breast_v2.pt

Steps: read the crop (DAPI 0.2125 um/px, transcripts in microns), rasterise the vendor's
transcript-to-cell assignment (nuclei expanded by up to 15 um) into noisy initial labels on the
image's grid, and run ``gsn.tl.train`` starting from the shipped ``synthetic`` model at the crop's
own pixel size (``train`` works at the model's 0.5 um/px by itself). There is no ground truth
for this crop: the script prints agreement with the
vendor (transcript-level adjusted Rand index over transcripts that both assign) and simple counts,
for the vendor labels, the synthetic model and the trained model.
"""

from __future__ import annotations

import argparse
import logging
import platform
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import adjusted_rand_score

import gsn_spatial as gsn

PIXEL_UM = 0.2125


def agreement(sdata, assignment_key: str) -> dict[str, float]:
    tx = sdata.points[assignment_key].compute()
    vendor = sdata.points["transcripts"].compute()["vendor_cell_id"].to_numpy()
    ours = tx["cell_id"].to_numpy()
    both = (vendor > 0) & (ours > 0)
    per_cell = np.bincount(ours[ours > 0])
    per_cell = per_cell[per_cell > 0]
    return {
        "cells": int(len(per_cell)),
        "assigned": float((ours > 0).mean()),
        "median_tx_per_cell": float(np.median(per_cell)) if len(per_cell) else 0.0,
        "ari_vs_vendor": float(adjusted_rand_score(vendor[both], ours[both])) if both.any() else 0.0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data/xenium_breast_crop"))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--steps-per-epoch", type=int, default=25)
    ap.add_argument("--level-set-image", default="rna", choices=["rna", "confidence", "mask"])
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    t0 = time.perf_counter()
    sdata = gsn.io.read_xenium_crop(args.data)
    # Each pixel takes the vendor cell of its nearest assigned transcript within 1.25 um.
    gsn.pp.labels_from_assignment(
        sdata,
        cell_id_key="vendor_cell_id",
        image_key="morphology_mip",
        max_distance=1.25 / PIXEL_UM,
        labels_key_added="vendor",
    )
    model = gsn.tl.train(
        sdata,
        labels_key="vendor",
        image_key="morphology_mip",
        model="synthetic",
        max_rounds=args.rounds,
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        patch_size=128,
        batch_size=8,
        level_set_image=args.level_set_image,
        name="xenium_breast",
    )
    train_seconds = time.perf_counter() - t0
    rows = {}
    for name, m in (("synthetic model", "synthetic"), ("trained model", model)):
        key = name.split()[0]
        gsn.tl.segment(
            sdata,
            image_key="morphology_mip",
            model=m,
            labels_key_added=f"{key}_labels",
            table_key_added=f"{key}_table",
            assignment_key_added=f"{key}_tx",
        )
        rows[name] = agreement(sdata, f"{key}_tx")
    # The vendor labels, assigned the same way, for reference.
    from gsn_spatial._sdata import points_to_pixels
    from gsn_spatial.core.assign.counts import lookup_cells

    tx = sdata.points["transcripts"].compute()
    m = points_to_pixels(sdata, "transcripts", "vendor")
    xy = tx[["x", "y"]].to_numpy() @ m[:2, :2].T + m[:2, 2]
    vendor_raster = lookup_cells(sdata.labels["vendor"].values, xy)
    vendor = tx["vendor_cell_id"].to_numpy()
    both = (vendor > 0) & (vendor_raster > 0)
    rows["vendor labels (rasterised)"] = {
        "cells": int(len(np.unique(vendor_raster[vendor_raster > 0]))),
        "assigned": float((vendor_raster > 0).mean()),
        "median_tx_per_cell": float(np.median(np.bincount(vendor_raster)[1:][np.bincount(vendor_raster)[1:] > 0])),
        "ari_vs_vendor": float(adjusted_rand_score(vendor[both], vendor_raster[both])),
    }
    print(f"\ntraining: {train_seconds:.0f} s on {platform.machine()} with {torch.get_num_threads()} threads")
    for rec in model.meta["history"]:
        print(
            f"  round {rec['round']}: train loss {rec['train_loss']:.3f}, val loss {rec['val_loss']}, "
            f"cells {rec['n_cells_in']} -> {rec['n_cells_out']}, IoU to previous {rec['iou_to_previous']:.3f}, "
            f"{rec['seconds']:.0f} s"
        )
    print("\nsegmentation                 cells  assigned  median tx/cell  ARI vs vendor")
    for name, r in rows.items():
        print(
            f"{name:27s}  {r['cells']:5d}  {r['assigned']:8.3f}  {r['median_tx_per_cell']:14.0f}  "
            f"{r['ari_vs_vendor']:13.3f}"
        )
    model.meta.update(
        {
            "trained_on": "Xenium FFPE human breast rep. 1 crop (10x Genomics, CC BY 4.0), 1200 x 2400 px at "
            "0.2125 um/px (trained at the model's 0.5 um/px); initial labels: vendor transcript assignment "
            "rasterised",
            "scores": rows,
            "train_seconds": round(train_seconds),
        }
    )
    model.save(args.out)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
