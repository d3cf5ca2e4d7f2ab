"""Does the default call find the pixel size, and segment as well, at any pixel size?

Usage::

    python benchmarks/pixel_size.py [--size-um 384] [--seeds 501 502] [--frames pixels microns image]

Tissues simulated at 0.5 um/px with fresh seeds (never used for training) are
re-imaged at 0.125, 0.25, 0.5 and 1.0 um/px (``synthetic_tissue(imaged_at=)``:
the same cells, the image resampled), in three layouts of the global frame:
``pixels`` (points, in micrometres, scaled onto the image), ``microns`` (image
scaled) and ``image`` (the points in image pixels too). No coordinate system is
named in microns, so ``gsn.tl.segment(sdata)`` with no scale argument has to
find the pixel size: in the first two the points' transformations imply it if
the points are in micrometres, and it is taken where it agrees with the
nuclei's estimate; in ``image`` only the nuclei tell it. The table gives the pixel
size found, its error, the mean matched IoU (Eq. 16: each true cell's best IoU
with a found cell) and its difference from the same tissue at 0.5 um/px, and
the seconds per call.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import gsn_spatial as gsn
from gsn_spatial.core.metrics.matching import mean_best_iou

PIXEL_SIZES = (0.125, 0.25, 0.5, 1.0)


def run(seed: int, pixel_size: float, frame: str, size_um: float, model: str | None) -> dict:
    side = round(size_um / 0.5)
    sdata = gsn.datasets.synthetic_tissue(
        (side, side), seed=seed, imaged_at=pixel_size, global_frame=frame, microns_system=False
    )
    t0 = time.perf_counter()
    gsn.tl.segment(sdata, model=model)
    seconds = time.perf_counter() - t0
    params = sdata.tables["gsn_table"].uns["gsn"]["params"]
    truth = np.asarray(sdata.labels["cells"].data)
    found = np.asarray(sdata.labels["gsn_labels"].data)
    return {
        "found": float(params["pixel_size"]),
        "source": params["pixel_size_source"],
        "iou": mean_best_iou(truth, found),
        "seconds": seconds,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size-um", type=float, default=384.0, help="tissue side in um (default 384: 768 px at 0.5)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[501, 502])
    ap.add_argument("--model", default=None)
    ap.add_argument(
        "--frames", nargs="+", default=["pixels", "microns", "image"],
        help="synthetic_tissue(global_frame=): 'image' stores the transcripts in image pixels (no unit cue)",
    )  # fmt: skip
    args = ap.parse_args()
    print("| seed | global frame | um/px | found | error | source | mean matched IoU | vs 0.5 um/px | s |")
    print("|---|---|--:|--:|--:|---|--:|--:|--:|")
    worst_err, worst_diff = 0.0, 0.0
    for seed in args.seeds:
        for frame in args.frames:
            rows = {p: run(seed, p, frame, args.size_um, args.model) for p in PIXEL_SIZES}
            ref = rows[0.5]["iou"]
            for p, r in rows.items():
                err = r["found"] / p - 1
                worst_err, worst_diff = max(worst_err, abs(err)), max(worst_diff, ref - r["iou"])
                source = r["source"].split(" (")[0]
                print(
                    f"| {seed} | {frame} | {p} | {r['found']:.4f} | {100 * err:+.1f} % | {source} | {r['iou']:.3f} | "
                    f"{r['iou'] - ref:+.3f} | {r['seconds']:.1f} |"
                )
    print(f"\nworst pixel-size error {100 * worst_err:.1f} %; largest IoU drop from 0.5 um/px {worst_diff:.3f}")


if __name__ == "__main__":
    main()
