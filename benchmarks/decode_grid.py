"""The decoding grid of ``scripts/train_generalist_model.py`` over a wider range of confidence thresholds.

Usage::

    python benchmarks/decode_grid.py [--model generalist] [--confidences 0.3 0.4 0.5 0.6 0.7]

The shipped models' thresholds were chosen on the validation data (8 simulator validation tissues and 24
DSB validation images, ``validation_samples``) over confidence 0.5 and 0.6 only. This re-runs the same
grid and score ((F1@0.5 + mean matched IoU) / 2, each kind of data weighing the same) with more
confidence thresholds and prints the best setting for each, so a narrow search range shows. Nothing
held out is read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from train_generalist_model import decode_grid, validation_samples  # noqa: E402

import gsn_spatial as gsn  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="generalist")
    ap.add_argument("--confidences", type=float, nargs="+", default=[0.3, 0.4, 0.5, 0.6, 0.7])
    args = ap.parse_args()
    model = gsn.models.load(args.model)
    best, rows = decode_grid(model.network, validation_samples(model.input), tuple(args.confidences))
    print(f"\nmodel {args.model!r}, shipped: {model.meta.get('decode')}\nbest over the wider grid: {best}\n")
    print("| confidence | best score | centre | peak spacing | vote reach |")
    print("|--:|--:|--:|--:|--:|")
    for conf in args.confidences:
        row = max((r for r in rows if r["confidence_threshold"] == conf), key=lambda r: r["score"])
        print(f"| {conf} | {row['score']:.4f} | {row['centre_threshold']} | {row['min_distance']} | "
              f"{row['max_vote_distance']} |")  # fmt: skip


if __name__ == "__main__":
    main()
