"""``gsn.tl.train`` on the real crops at their native resolution, from nuclei grown by 10 um.

Usage::

    python benchmarks/train_real_crops.py [--crops xenium cosmx] [--rounds 3] [--epochs 6] [--steps-per-epoch 30]

For each crop (``../shared/data``): watershed nuclei of the DAPI image (in microns through the crop's
micron coordinate system), grown by 10 um (``gsn.tl.expand_nuclei``), are the initial noisy labels;
``gsn.tl.train`` starts from the shipped default model at the crop's own pixel size (0.2125 um/px
Xenium, 0.18 um/px CosMx) with no manual resampling, and the trained model segments the crop.

- cell counts: initial labels, each round's labels, the trained model's cells;
- CosMx: mean matched IoU (Eq. 16: each vendor cell's best IoU) against the vendor's membrane-stain cells;
- Xenium: MECR (``gsn.qc.marker_purity`` with the crop's breast marker table) and the fraction of
  transcripts assigned, for the trained model and for the initial expansion grown by 5, 10 and 15 um, so the
  trained model can be compared with the expansion at matched coverage.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np

import gsn_spatial as gsn
from gsn_spatial.core.metrics.matching import mean_best_iou

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CROPS = {
    "xenium": ("xenium_breast_crop", gsn.io.read_xenium_crop, "morphology_mip", None),
    "cosmx": ("cosmx_lung_fov2", gsn.io.read_cosmx_crop, "composite", "DAPI"),
}


def assigned_and_mecr(sdata, labels_key: str, markers: Path) -> tuple[float, float]:
    frac = gsn.qc.fraction_assigned(sdata, labels_key=labels_key, points_key="transcripts")
    mecr = gsn.qc.marker_purity(sdata, labels_key=labels_key, positive_markers=markers, points_key="transcripts")
    return frac, float(mecr["mecr"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--crops", nargs="+", default=list(CROPS), choices=list(CROPS))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--steps-per-epoch", type=int, default=30)
    ap.add_argument("--model", default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    for name in args.crops:
        folder, reader, image_key, channel = CROPS[name]
        t0 = time.perf_counter()
        sdata = reader(DATA / folder)
        gsn.tl.watershed_nuclei(sdata, image_key=image_key, image_channel=channel, labels_key_added="ws_nuclei")
        for d in (5, 10, 15):
            gsn.tl.expand_nuclei(sdata, labels_key="ws_nuclei", distance_um=d, labels_key_added=f"grown_{d}um")
        init = np.asarray(sdata.labels["grown_10um"].data)
        model = gsn.tl.train(
            sdata, labels_key="grown_10um", image_key=image_key, image_channel=channel, model=args.model,
            max_rounds=args.rounds, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, patch_size=128,
            batch_size=8, name=f"{name}_bench",
        )  # fmt: skip
        gsn.tl.segment(sdata, image_key=image_key, image_channel=channel, model=model)
        out = np.asarray(sdata.labels["gsn_labels"].data)
        n_init, n_out = len(np.unique(init)) - 1, len(np.unique(out)) - 1
        hist = [(r["n_cells_in"], r["n_cells_out"], r["accepted"]) for r in model.meta["history"]]
        print(f"\n## {name}: {model.meta['params']['pixel_size']} um/px ({model.meta['params']['pixel_size_source']})")
        print(f"rounds (cells in, out, accepted): {hist}")
        print(f"initial cells {n_init}; trained model's cells {n_out} ({n_out / max(n_init, 1):.2f}x)")
        if name == "cosmx":
            vendor = np.asarray(sdata.labels["cell_labels"].data)
            print("| labels | mean matched IoU vs vendor |\n|---|--:|")
            for key in ("grown_5um", "grown_10um", "grown_15um", "gsn_labels"):
                print(f"| {key} | {mean_best_iou(vendor, np.asarray(sdata.labels[key].data)):.3f} |")
        else:
            markers = DATA / folder / "sc_references" / "sc_breast_markers_pos.csv"
            print("| labels | transcripts assigned | MECR |\n|---|--:|--:|")
            for key in ("grown_5um", "grown_10um", "grown_15um", "gsn_labels"):
                frac, mecr = assigned_and_mecr(sdata, key, markers)
                print(f"| {key} | {frac:.3f} | {mecr:.4f} |")
        print(f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
