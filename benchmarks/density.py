"""Segmentation quality across transcript densities (0.2x to 5x the simulator's default).

Usage::

    python benchmarks/density.py [--models synthetic_v1 synthetic] [--seeds 701 702 703] [--size 768]

Fresh seeds, never used for training; the simulator's default is 80 transcripts per 14 um cell
(about 0.5 per um^2). The table gives whole-cell F1 at IoU 0.5 and 0.75 against the truth, mean over
the seeds, at 0.2x, 1x and 5x, and the largest drop of F1@0.75 from the default density.
"""

from __future__ import annotations

import argparse

import numpy as np

import gsn_spatial as gsn
from gsn_spatial.core.metrics.matching import match_scores

FACTORS = (0.2, 1.0, 5.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["synthetic_v1", "synthetic"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[701, 702, 703])
    ap.add_argument("--size", type=int, default=768)
    args = ap.parse_args()
    print("| model | " + " | ".join(f"{f}x F1@0.5 / F1@0.75" for f in FACTORS) + " | largest F1@0.75 drop |")
    print("|---|" + "--:|" * (len(FACTORS) + 1))
    for name in args.models:
        scores = {}
        for f in FACTORS:
            per_seed = []
            for seed in args.seeds:
                sdata = gsn.datasets.synthetic_tissue((args.size, args.size), seed=seed, transcripts_per_cell=80 * f)
                gsn.tl.segment(sdata, model=name)
                truth, found = np.asarray(sdata.labels["cells"].data), np.asarray(sdata.labels["gsn_labels"].data)
                per_seed.append((match_scores(truth, found).f1, match_scores(truth, found, threshold=0.75).f1))
            scores[f] = np.mean(per_seed, axis=0)
        drop = max(scores[1.0][1] - scores[f][1] for f in FACTORS)
        cells = " | ".join(f"{a:.3f} / {b:.3f}" for a, b in (scores[f] for f in FACTORS))
        print(f"| {name} | {cells} | {drop:.3f} |")


if __name__ == "__main__":
    main()
