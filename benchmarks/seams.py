"""Tile seams and block seams: how many cells change with the tiling and with the block grid.

``gsn.tl.segment`` should give the same cells however the image is cut. Two
comparisons, on synthetic tissues of about 1024 px with different seeds and cell sizes:

- ``tiles256``: 256 px tiles (``tile_size=256``, ``tile_overlap`` as given)
  against one network pass over the whole image (``tile_size=None``);
- ``blocks512``: 512 px blocks (``block_halo`` as given), one pass per block
  window, against one 1536 px block (the whole image in one window).

Printed per run: the fraction of the cells of A with a cell of B at
IoU >= 0.9 and the reverse, the seconds of A, and the network's work: pixels
fed to the network (padding included) per output pixel, from the same
window and tile geometry as ``segment`` uses.

``--context`` first measures how far the network looks (the reason for the
defaults): the largest change of the maps in a 512 px core seen with
``halo`` pixels of context against the whole 1024 px image, in float32, and
the radius around an output pixel holding a given share of the gradient of
its outputs with respect to the input::

    python benchmarks/seams.py                       # package defaults
    python benchmarks/seams.py --context --overlaps 32 112 160 --halos 64 96 128
"""

from __future__ import annotations

import argparse
import contextlib
import time

import numpy as np
import spatialdata as sd
import torch

import gsn_spatial as gsn
from gsn_spatial._constants import Defaults
from gsn_spatial.core.metrics.matching import overlap_table
from gsn_spatial.core.network.tiling import predict_maps, tile_starts
from gsn_spatial.core.network.unet import GeneSegNet
from gsn_spatial.core.slide import blocks as blocks
from gsn_spatial.core.slide.blocks import BlockGrid

TISSUES = [  # (seed, cell diameter in microns, shape): small and large cells; the last, of a shape that is not a
    # multiple of the network's input multiple, has block windows that are not square at the image's edges
    (101, 10.0, (1024, 1024)),
    (202, 20.0, (1024, 1024)),
    (303, 14.0, (1000, 1100)),
]
M = GeneSegNet.INPUT_MULTIPLE


def matched(a: np.ndarray, b: np.ndarray, threshold: float = 0.9) -> float:
    """Fraction of the cells of ``a`` with a cell of ``b`` at IoU >= ``threshold``."""
    ia, _, _, iou = overlap_table(a, b)
    n_a = len(np.unique(a[a > 0]))
    return len(np.unique(ia[iou >= threshold])) / max(n_a, 1)


def network_work(shape: tuple[int, int], block_size: int, halo: int, tile: int | None, overlap: int) -> float:
    """Pixels the network sees per image pixel, for ``segment``'s windows and tiles (padding included)."""
    grid = BlockGrid(shape, block_size, halo)
    seen = 0
    for b in range(grid.n_blocks):
        y0, y1, x0, x1 = grid.window(b)
        ph, pw = -(-(y1 - y0) // M) * M, -(-(x1 - x0) // M) * M
        if tile is None:
            seen += ph * pw
        else:  # segment_window's tiles: no larger than the window along each axis
            th, tw = min(ph, tile), min(pw, tile)
            ny = len(tile_starts(ph, th, min(overlap, th - 1), align=M))
            nx = len(tile_starts(pw, tw, min(overlap, tw - 1), align=M))
            seen += ny * nx * th * tw
    return seen / (shape[0] * shape[1])


@contextlib.contextmanager
def captured_inputs():
    """The ``[image, rna]`` arrays ``segment`` feeds the network, window by window."""
    seen, real = [], blocks.predict_maps

    def capture(network, inputs, **kwargs):
        seen.append(inputs.copy())
        return real(network, inputs, **kwargs)

    blocks.predict_maps = capture
    try:
        yield seen
    finally:
        blocks.predict_maps = real


def context_profile(model, seed: int, diameter: float) -> None:
    """How the maps of a core change with the context around it, and the gradient's reach."""
    tissue = gsn.datasets.synthetic_tissue((1024, 1024), seed=seed, cell_diameter_um=diameter)
    with captured_inputs() as seen:
        run(tissue, model, block_size=1536)
    x, net = seen[0], model.network
    full = predict_maps(net, x, tile_size=None)
    c0, c1 = 256, 768
    cells = []
    for halo in (32, 64, 96, 128, 160):
        m = predict_maps(net, x[:, c0 - halo : c1 + halo, c0 - halo : c1 + halo], tile_size=None)
        d = np.abs(m[:, halo:-halo, halo:-halo] - full[:, c0:c1, c0:c1]).reshape(4, -1).max(axis=1)
        cells.append(f"{halo}: {d[0]:.4f} / {d[1]:.4f} / {d[2:].max():.3f}")
    print(
        f"  {diameter:g} um cells, max |core - whole image| (confidence / centre / offset px) by halo: "
        + ", ".join(cells)
    )
    crop = torch.from_numpy(np.ascontiguousarray(x[:, 384:640, 384:640]))[None].requires_grad_(True)
    net.float().eval()
    out = net(crop)
    target = out["confidence"][0, 128, 128] + out["centre"][0, 128, 128] + out["offset"][0, :, 128, 128].sum()
    grad = torch.autograd.grad(target, crop)[0][0].abs().sum(0).numpy().ravel()
    r = np.hypot(*np.mgrid[-128:128, -128:128]).ravel()
    order = np.argsort(r)
    share = np.cumsum(grad[order]) / grad.sum()
    radii = ", ".join(f"{q:.1%}: {r[order][np.searchsorted(share, q)]:.0f} px" for q in (0.5, 0.9, 0.99, 0.999))
    print(f"  {diameter:g} um cells, radius holding a share of |d output / d input|: {radii}")


def run(tissue: sd.SpatialData, model, **kwargs) -> tuple[np.ndarray, float]:
    """Labels of one ``segment`` run on a fresh copy of ``tissue``, and its seconds."""
    s = sd.SpatialData(images=dict(tissue.images), points=dict(tissue.points))
    t = time.perf_counter()
    gsn.tl.segment(s, model=model, **kwargs)
    return np.asarray(s.labels["gsn_labels"].values), time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--overlaps", type=int, nargs="+", default=[Defaults.TILE_OVERLAP])
    parser.add_argument("--halos", type=int, nargs="+", default=[Defaults.BLOCK_HALO])
    parser.add_argument("--tissues", type=int, default=len(TISSUES), help="how many of the tissues to run")
    parser.add_argument("--model", default=None, help="model name or file; default: the shipped default")
    parser.add_argument("--context", action="store_true", help="first measure how far the network looks")
    args = parser.parse_args()
    model = gsn.models.load(args.model) if args.model else gsn.models.load()
    if args.context:
        print("context the network uses (float32):")
        for seed, diameter, _ in TISSUES[:2]:
            context_profile(model, seed, diameter)
    big = 1536
    print(f"model {args.model or 'default'} ({model.meta.get('created', '')}), gsn_spatial {gsn.__version__}")
    print(
        f"{'tissue':<15} {'comparison':<21} {'setting':<12} {'A in B':>7} {'B in A':>7} {'cells':>6} "
        f"{'s A':>6} {'s B':>6} {'work A':>7} {'work B':>7}"
    )
    for seed, diameter, shape in TISSUES[: args.tissues]:
        tissue = gsn.datasets.synthetic_tissue(shape, seed=seed, cell_diameter_um=diameter)
        name = f"{shape[0]}x{shape[1]} {diameter:g}um"
        one, t_one = run(tissue, model, block_size=big)
        n = len(np.unique(one[one > 0]))
        w_one = network_work(shape, big, Defaults.BLOCK_HALO, None, 0)
        rows = []
        for overlap in args.overlaps:
            tiled, t = run(tissue, model, block_size=big, tile_size=256, tile_overlap=overlap)
            w = network_work(shape, big, Defaults.BLOCK_HALO, 256, overlap)
            rows.append(("tiles256 vs one-pass", f"overlap {overlap}", tiled, t, w))
        for halo in args.halos:
            small, t = run(tissue, model, block_size=512, block_halo=halo)
            rows.append((f"blocks512 vs {big}", f"halo {halo}", small, t, network_work(shape, 512, halo, None, 0)))
        for comparison, setting, a, t, w in rows:
            print(
                f"{name:<15} {comparison:<21} {setting:<12} {matched(a, one):7.4f} {matched(one, a):7.4f} {n:6d} "
                f"{t:6.1f} {t_one:6.1f} {w:7.2f} {w_one:7.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
