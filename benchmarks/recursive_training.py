"""Recursive training from noisy labels on a simulated tissue (the paper's Algorithm 1).

Usage::

    python benchmarks/recursive_training.py [--rounds 3] [--epochs 10] [--steps-per-epoch 50]
                                            [--level-set-image rna|confidence|mask] [--warm-start] [--no-keep-missed]

The training tissue's initial labels are wrong the way real ones are: nuclei only (too small),
10 % of cells merged with a neighbour, 10 % split. Training starts from a randomly initialised
network (never from the shipped model, which has seen true cells). The script prints, per round,
whole-cell F1 at IoU 0.5 and 0.75 against the truth of (a) that round's training labels and
(b) the model of that round segmenting a held-out tissue, plus the round's IoU to the previous
labels (Eq. 16) and time.
"""

from __future__ import annotations

import argparse
import logging
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from spatialdata.models import Labels2DModel
from spatialdata.transformations import get_transformation

import gsn_spatial as gsn
from gsn_spatial.core.metrics.matching import match_scores
from gsn_spatial.core.network.unet import NetworkConfig
from gsn_spatial.core.simulate.tissue import noisy_labels
from gsn_spatial.models import GeneSegModel, InputSpec


def f1s(truth: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    return match_scores(truth, labels, threshold=0.5).f1, match_scores(truth, labels, threshold=0.75).f1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--steps-per-epoch", type=int, default=50)
    ap.add_argument("--size", type=int, default=768)
    ap.add_argument("--level-set-image", default="rna", choices=["rna", "confidence", "mask"])
    ap.add_argument("--no-keep-missed", action="store_true", help="drop cells a round's prediction missed")
    ap.add_argument("--warm-start", action="store_true", help="start each round from the previous round's weights")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    sdata = gsn.datasets.synthetic_tissue((args.size, args.size), seed=31)
    truth = sdata.labels["cells"].values
    noisy = noisy_labels(truth, sdata.labels["nuclei"].values, seed=31)
    sdata["noisy"] = Labels2DModel.parse(
        noisy.astype(np.uint32), dims=("y", "x"), transformations=dict(get_transformation(sdata["dapi"], get_all=True))
    )
    heldout = gsn.datasets.synthetic_tissue((512, 512), seed=32)
    heldout_truth = heldout.labels["cells"].values

    torch.manual_seed(args.seed)
    start = GeneSegModel.new(NetworkConfig(widths=(16, 32, 64, 128, 128)), InputSpec(rna_sigma=1.5, rna_mode="sum"))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        model = gsn.tl.train(
            sdata,
            labels_key="noisy",
            model=start,
            max_rounds=args.rounds,
            epochs=args.epochs,
            steps_per_epoch=args.steps_per_epoch,
            patch_size=128,
            batch_size=8,
            iou_stop=0.93,
            warm_start=args.warm_start,
            keep_missed=not args.no_keep_missed,
            level_set_image=args.level_set_image,
            checkpoint_dir=tmp,
            seed=args.seed,
        )
        total = time.perf_counter() - t0
        rows = [("initial", *f1s(truth, noisy), float("nan"), float("nan"), float("nan"), float("nan"))]
        for rec in model.meta["history"]:
            r = rec["round"]
            labels_r = np.load(Path(tmp) / f"round_{r}_labels.npy")
            m = GeneSegModel.load(Path(tmp) / f"round_{r}.pt")
            key = f"gsn_r{r}"
            gsn.tl.segment(
                heldout,
                model=m,
                points_key="transcripts",
                labels_key_added=key,
                table_key_added=f"{key}_table",
                assignment_key_added=f"{key}_tx",
                device="cpu",
            )
            model_f1 = f1s(heldout_truth, heldout.labels[key].values)
            rows.append((f"round {r}", *f1s(truth, labels_r), *model_f1, rec["iou_to_previous"], rec["seconds"]))
    print(
        f"\nrecursive training: level set on {args.level_set_image!r}, "
        f"warm start {args.warm_start}, {args.epochs} epochs x {args.steps_per_epoch} steps per round, "
        f"{platform.machine()} {torch.get_num_threads()} threads, total {total:.0f} s\n"
    )
    print("round      labels F1@0.5  labels F1@0.75  model F1@0.5  model F1@0.75  IoU to prev  seconds")
    for name, l5, l75, m5, m75, iou, sec in rows:
        print(f"{name:9s}  {l5:13.3f}  {l75:14.3f}  {m5:12.3f}  {m75:13.3f}  {iou:11.3f}  {sec:7.0f}")


if __name__ == "__main__":
    main()
