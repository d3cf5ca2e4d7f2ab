"""Segmentation quality across transcript densities (0.2x to 5x the simulator's default).

Usage::

    python benchmarks/density.py [--models synthetic_v1 synthetic] [--seeds 701 702 703] [--size 768] [--oracle]

Fresh seeds, never used for training; the simulator's default is 80 transcripts per 14 um cell
(about 0.5 per um^2). The table gives whole-cell F1 at IoU 0.5 and 0.75 against the truth, mean over
the seeds, at 0.2x, 1x and 5x, and the largest drop of F1@0.75 from the default density.

``--oracle`` adds what the data allow at best by a simple rule that no method has: the true nuclei and every
cell's own transcripts (a perfect assignment), each pixel given to the nearest of them within a reach of
2, 3 or 4 um (the best reach per density is printed). It shows how much of the drop at low density is in
the data rather than in the model.
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy import ndimage as ndi

import gsn_spatial as gsn
from gsn_spatial.core.metrics.matching import match_scores
from gsn_spatial.core.simulate.tissue import TissueParameters, simulate_tissue

FACTORS = (0.2, 1.0, 5.0)


def oracle_labels(nuclei: np.ndarray, points_xy: np.ndarray, cell_id: np.ndarray, reach_px: float) -> np.ndarray:
    """Each pixel within ``reach_px`` of a true nucleus pixel or a cell's own transcript, given to the nearest."""
    evidence = nuclei.astype(np.int64)
    own = cell_id > 0
    col, row = np.floor(points_xy[own]).astype(np.int64).T
    inside = (row >= 0) & (row < nuclei.shape[0]) & (col >= 0) & (col < nuclei.shape[1])
    evidence[row[inside], col[inside]] = cell_id[own][inside]
    distance, (iy, ix) = ndi.distance_transform_edt(evidence == 0, return_indices=True)
    return np.where(distance <= reach_px, evidence[iy, ix], 0)


def oracle_row(seeds: list[int], size: int) -> str:
    """F1@0.5 / F1@0.75 of :func:`oracle_labels` at each density, best reach of 4, 6 or 8 px (0.5 um/px)."""
    scores = {}
    for f in FACTORS:
        by_reach = {}
        for seed in seeds:
            t = simulate_tissue((size, size), TissueParameters(transcripts_per_cell=80 * f), seed=seed)
            for reach in (4, 6, 8):
                found = oracle_labels(t.nuclei, t.points_xy, t.cell_id, reach)
                by_reach.setdefault(reach, []).append(
                    (match_scores(t.cells, found).f1, match_scores(t.cells, found, threshold=0.75).f1)
                )
        reach, best = max(((r, np.mean(v, axis=0)) for r, v in by_reach.items()), key=lambda rv: rv[1][1])
        scores[f] = (best, reach)
    drop = max(scores[1.0][0][1] - scores[f][0][1] for f in FACTORS)
    cells = " | ".join(f"{a:.3f} / {b:.3f} ({r / 2:g} um)" for (a, b), r in (scores[f] for f in FACTORS))
    return f"| oracle: true nuclei + perfectly assigned transcripts (reach) | {cells} | {drop:.3f} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["synthetic_v1", "synthetic"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[701, 702, 703])
    ap.add_argument("--size", type=int, default=768)
    ap.add_argument("--oracle", action="store_true", help="add the oracle's row (see above)")
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
    if args.oracle:
        print(oracle_row(args.seeds, args.size))


if __name__ == "__main__":
    main()
