"""What the expression-aware assignment pass costs end to end, against the mask assignment.

Usage::

    python benchmarks/assignment_cost.py [--side 2048] [--repeats 2]

Alternating runs of ``gsn.tl.segment(assignment="mask" | "expression")`` on one simulated tissue
(seed 2026, 0.5 um/px stated, so no size estimate); prints a table of wall times.
"""

from __future__ import annotations

import argparse
import logging
import time

import spatialdata as sd

import gsn_spatial as gsn


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--side", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    base = gsn.datasets.synthetic_tissue((args.side, args.side), seed=2026)
    n_tx = len(base.points["transcripts"])
    print(f"{args.side} x {args.side} px, {n_tx / 1e6:.2f} M transcripts")
    print("| run | assignment | s | MP/s | cells |\n|---|---|--:|--:|--:|")
    for rep in range(args.repeats):
        for assignment in ("mask", "expression"):
            s = sd.SpatialData(images=dict(base.images), points=dict(base.points))
            t0 = time.perf_counter()
            gsn.tl.segment(s, assignment=assignment, pixel_size=0.5)
            dt = time.perf_counter() - t0
            mp = args.side**2 / dt / 1e6
            print(f"| {rep + 1} | {assignment} | {dt:.1f} | {mp:.2f} | {s.tables['gsn_table'].n_obs} |")


if __name__ == "__main__":
    main()
