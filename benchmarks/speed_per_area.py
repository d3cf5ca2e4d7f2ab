"""End-to-end speed per mm^2 of tissue for inputs at 0.1, 0.2125 and 0.5 um/px.

Usage::

    python benchmarks/speed_per_area.py [--side-um 512] [--seed 31] [--cellpose-mps 0.08]

One simulated tissue (``--side-um`` square, made at 0.5 um/px) is re-imaged at each pixel size
(``synthetic_tissue(imaged_at=)``) and segmented by ``gsn.tl.segment`` with its defaults (the pixel
size from the "microns" coordinate system); best of two runs after a warm-up. The network always
works at the model's 0.5 um/px, so the cost per mm^2 grows only by the resampling of the finer
image. Cellpose works on the input's pixels: ``--cellpose-mps`` is its eval rate on this machine from
``benchmarks/speed.py`` (docs/speed.md), and the ratio column is the Cellpose time for the same image
at that rate over ours.
"""

from __future__ import annotations

import argparse
import time

import gsn_spatial as gsn

PIXEL_SIZES = (0.1, 0.2125, 0.5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--side-um", type=float, default=512.0)
    ap.add_argument("--seed", type=int, default=31)
    ap.add_argument("--cellpose-mps", type=float, default=0.08)
    args = ap.parse_args()
    side = round(args.side_um / 0.5)
    area_mm2 = (side * 0.5 / 1000) ** 2
    print(f"tissue {args.side_um:g} x {args.side_um:g} um ({area_mm2:.3f} mm^2)")
    print("| um/px | image (MP) | cells | s | s per mm^2 | input MP/s | Cellpose s (at its rate) | ratio |")
    print("|--:|--:|--:|--:|--:|--:|--:|--:|")
    for p in PIXEL_SIZES:
        sdata = gsn.datasets.synthetic_tissue((side, side), seed=args.seed, imaged_at=p)
        mp = sdata.images["dapi"].shape[1] * sdata.images["dapi"].shape[2] / 1e6
        best = float("inf")
        for i in range(3):
            t0 = time.perf_counter()
            gsn.tl.segment(sdata, overwrite=True)
            if i:  # the first run is the warm-up
                best = min(best, time.perf_counter() - t0)
        cells = sdata.tables["gsn_table"].n_obs
        cellpose = mp / args.cellpose_mps
        print(
            f"| {p} | {mp:.1f} | {cells} | {best:.1f} | {best / area_mm2:.1f} | {mp / best:.2f} | {cellpose:.0f} | "
            f"{cellpose / best:.0f}x |"
        )


if __name__ == "__main__":
    main()
