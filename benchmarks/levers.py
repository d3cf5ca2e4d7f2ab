"""Each inference speed lever against what it replaced, on one 1088 px block window of the speed tissue.

``python benchmarks/levers.py`` prints one row per lever: the median time of the old and the new way
over alternating runs (alternating, so that the shared machine's drift hits both alike), the speed-up,
and whether the results agree. The numbers behind "What paid" in docs/speed.md.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial import cKDTree

import gsn_spatial as gsn
from gsn_spatial import _sdata
from gsn_spatial.core.decode.cells import assign_pixels, decode_cells, find_centres
from gsn_spatial.core.network import unet as net_module
from gsn_spatial.core.network.tiling import predict_maps
from gsn_spatial.core.rna.density import rna_density_window
from gsn_spatial.core.slide.blocks import label_stats

SIDE = 1088  # a block window at the image edge: 1024 px core + 64 px halo on one side


def alternate(old: Callable[[], object], new: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median seconds of ``old`` and ``new``, run alternately after one warm-up each."""
    old(), new()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, out in ((old, times[0]), (new, times[1])):
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
    return statistics.median(times[0]), statistics.median(times[1])


def tree_votes(confidence: np.ndarray, offset: np.ndarray, centres: np.ndarray, bound: float) -> np.ndarray:
    """The previous vote assignment: one k-d tree query per foreground pixel."""
    out = np.zeros(confidence.shape, dtype=np.int64)
    r, c = np.nonzero(confidence >= 0.5)
    votes = np.stack([r + offset[0, r, c], c + offset[1, r, c]], axis=1)
    d, i = cKDTree(centres).query(votes, distance_upper_bound=bound, workers=-1)
    out[r[np.isfinite(d)], c[np.isfinite(d)]] = i[np.isfinite(d)] + 1
    return out


def unique_stats(labels: np.ndarray) -> tuple[np.ndarray, ...]:
    """The previous label statistics: np.unique over the non-zero pixels."""
    flat = labels.ravel()
    nz = np.flatnonzero(flat)
    ids, inverse, area = np.unique(flat[nz], return_inverse=True, return_counts=True)
    rows, cols = np.divmod(nz, labels.shape[1])
    return ids, area, np.bincount(inverse, weights=rows + 0.5), np.bincount(inverse, weights=cols + 0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    torch.manual_seed(0)
    sdata = gsn.datasets.synthetic_tissue((SIDE, SIDE), seed=21)
    model = gsn.models.load("synthetic")
    spec = model.input
    m = _sdata.points_to_pixels(sdata, "transcripts", "dapi")
    xy = sdata.points["transcripts"][["x", "y"]].compute().to_numpy() @ m[:2, :2].T + m[:2, 2]
    image = np.asarray(sdata.images["dapi"].values[0], dtype=np.float32)
    lo, hi = np.percentile(image, spec.percentiles)
    image = np.clip((image - lo) / (hi - lo), 0, 1).astype(np.float32)
    rows = []

    def rna(method: str) -> np.ndarray:
        return rna_density_window(xy, (SIDE, SIDE), sigma=spec.rna_sigma, mode=spec.rna_mode, method=method)

    exact, binned = rna("exact"), rna("binned")
    t = alternate(lambda: rna("exact"), lambda: rna("binned"), args.repeats)
    rows.append(
        (
            "RNA map: sparse sum of Gaussians -> binned + separable filter",
            *t,
            f"max |diff| {np.abs(exact - binned).max():.2f}",
        )
    )

    autocast = torch.bfloat16 if gsn.settings.cpu_bf16 else None
    x = torch.from_numpy(np.stack([image, binned])[None]).contiguous(memory_format=torch.channels_last)
    network = model.network.eval().to(memory_format=torch.channels_last)

    def forward() -> torch.Tensor:
        with torch.inference_mode(), torch.autocast("cpu", dtype=autocast, enabled=autocast is not None):
            return network.predict(x)

    def swap(fn: Callable, attr: tuple[type, str]) -> Callable[[], torch.Tensor]:
        def run() -> torch.Tensor:
            current = getattr(*attr)
            setattr(*attr, fn)
            try:
                return forward()
            finally:
                setattr(*attr, current)

        return run

    def upsample_then_project(self, z, skip):
        z = self.project(F.interpolate(z, size=skip.shape[-2:], mode="bilinear", align_corners=False))
        return self.block2(self.block1(z, skip))

    t = alternate(swap(upsample_then_project, (net_module.DecoderScale, "forward")), forward, args.repeats)
    rows.append(("network: up-sample then project -> project then up-sample", *t, "same function"))

    maps = predict_maps(network, np.stack([image, binned]), tile_size=SIDE, overlap=0, autocast_dtype=autocast)
    centres = find_centres(maps[1])
    old, new = (
        tree_votes(maps[0], maps[2:4], centres, 10.0),
        assign_pixels(maps[0], maps[2:4], centres, max_vote_distance=10.0),
    )
    t = alternate(
        lambda: tree_votes(maps[0], maps[2:4], centres, 10.0),
        lambda: assign_pixels(maps[0], maps[2:4], centres, max_vote_distance=10.0),
        args.repeats,
    )
    rows.append(
        ("votes: a tree query each -> Voronoi test, tree for the rest", *t, f"identical: {np.array_equal(old, new)}")
    )

    labels = decode_cells(maps)[0].astype(np.uint32) + np.uint32(10_000)
    labels[labels == 10_000] = 0
    t = alternate(lambda: unique_stats(labels), lambda: label_stats(labels), args.repeats)
    same = np.array_equal(unique_stats(labels)[1], label_stats(labels)[1])
    rows.append(("label statistics: np.unique -> bincount over the id range", *t, f"identical areas: {same}"))

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {SIDE} x {SIDE} px window, "
          f"{len(xy) / 1e6:.2f} M transcripts, median of {args.repeats} alternating runs\n")  # fmt: skip
    print("| lever | before (ms) | after (ms) | speed-up | result |")
    print("|---|--:|--:|--:|---|")
    for name, before, after, check in rows:
        print(f"| {name} | {before * 1e3:.1f} | {after * 1e3:.1f} | {before / after:.2f}x | {check} |")


if __name__ == "__main__":
    main()
