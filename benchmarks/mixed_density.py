"""Slides whose transcript density changes from one region to the next: sparse tissue beside dense tissue.

Usage::

    python benchmarks/mixed_density.py [--seeds 0 1] [--pairs 0.1,1 0.3,2] [--pixel-sizes 0.5]
        [--size-um 240] [--tissue default] [--normalisations local slide] [--model generalist]
    python benchmarks/mixed_density.py --glass 0.01 0.05 --pairs 0.5,2   # stray transcripts on bare glass

The second simulator's tissue (``benchmarks/foreign_tissue.py``, never trained on) with the transcripts of the
left half drawn at one density and those of the right half at another (per um^2 of cell area; ambient
transcripts 10 % of each half's own), as tumour beside stroma or tissue beside necrosis. Each pair is also
run with both halves at the low and at the high density, so each half has a reference: the same cells at an
even density. Scores per half (a 10 um strip along the boundary left out): mean matched IoU (each true cell's
best IoU) and transcript accuracy, for ``gsn.tl.segment(rna_normalisation=...)`` with each normalisation.
Points in micrometres, the image with a Scale (the pixel size is read, not estimated).

``--glass``: the tissue on the left half only, the right half bare glass (the camera's background, no nuclei)
with stray transcripts at random; it counts the cells found wholly on the glass, which a local level must not
create by reading the stray transcripts as sparse tissue.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import dask.dataframe as dd
import numpy as np
import pandas as pd
from spatialdata import SpatialData
from spatialdata.models import Image2DModel, PointsModel
from spatialdata.transformations import Identity, Scale

sys.path.insert(0, str(Path(__file__).resolve().parent))

import foreign_tissue as ft  # noqa: E402

import gsn_spatial as gsn  # noqa: E402
from gsn_spatial.core.metrics.matching import mean_best_iou, transcript_agreement  # noqa: E402

STRIP_UM = 10.0


def mixed_density_tissue(
    seed: int, pixel_size: float, densities: tuple[float, float], size_um: float = 240.0, tissue: str = "default"
):
    """A SpatialData object whose left half has ``densities[0]`` transcripts per um^2 and right half
    ``densities[1]``, and the truth cells on the image's grid."""
    stretch = ft._stretch(tissue, seed)
    cells = ft._cells(np.random.default_rng(seed), size_um, tissue, stretch)
    image, labels = ft._render(cells, size_um, pixel_size, np.random.default_rng(seed + 1), stretch)
    parts = []
    for side, (density, stream) in enumerate(zip(densities, (2, 12), strict=True)):
        x, y, gene, cell = ft._transcripts(
            cells, labels, pixel_size, density, np.random.default_rng(seed + stream), stretch
        )
        keep = (x < size_um / 2) if side == 0 else (x >= size_um / 2)
        parts.append((x[keep], y[keep], gene[keep], cell[keep]))
    x, y, gene, cell = (np.concatenate(v) for v in zip(*parts, strict=True))
    return _sdata(image, x, y, gene, cell, pixel_size), labels


def tissue_beside_glass(seed: int, pixel_size: float, density: float, stray: float, size_um: float = 240.0):
    """The same tissue on the left half only; the right half bare glass (camera background, no nuclei) with
    ``stray`` transcripts per um^2 at random, of random genes. Returns the SpatialData object and the truth."""
    stretch = ft._stretch("default", seed)
    cells = ft._cells(np.random.default_rng(seed), size_um, "default", stretch)
    image, labels = ft._render(cells, size_um, pixel_size, np.random.default_rng(seed + 1), stretch)
    n = labels.shape[1]
    mid, rng = n // 2, np.random.default_rng(seed + 5)
    rows = np.arange(n)[:, None] / n
    glass = rng.poisson(40.0 * (1 + 0.5 * rows) * np.ones((1, n))) + rng.normal(100, 4, (n, n))  # _render's background
    image = np.where(np.arange(n)[None, :] < mid, image, np.clip(glass, 0, 65535)).astype(np.uint16)
    labels = np.where(np.arange(n)[None, :] < mid, labels, 0)
    x, y, gene, cell = ft._transcripts(cells, labels, pixel_size, density, np.random.default_rng(seed + 2), stretch)
    keep = x < size_um / 2
    m = rng.poisson(stray * size_um / 2 * size_um)
    x = np.concatenate([x[keep], rng.uniform(size_um / 2, size_um, m)])
    y = np.concatenate([y[keep], rng.uniform(0, size_um, m)])
    gene = np.concatenate([gene[keep], rng.integers(0, ft.N_GENES, m)])
    cell = np.concatenate([cell[keep], np.zeros(m, dtype=cell.dtype)])
    return _sdata(image, x, y, gene, cell, pixel_size), labels


def _sdata(image: np.ndarray, x, y, gene, cell, pixel_size: float) -> SpatialData:
    names = [f"g{k:03d}" for k in range(ft.N_GENES)]
    df = pd.DataFrame({"x": x, "y": y, "gene": pd.Categorical.from_codes(gene, categories=names), "true_cell": cell})
    points = PointsModel.parse(
        dd.from_pandas(df, npartitions=2), coordinates={"x": "x", "y": "y"}, transformations={"global": Identity()}
    )
    img = Image2DModel.parse(
        image[None], dims=("c", "y", "x"), c_coords=["DAPI"],
        transformations={"global": Scale([pixel_size, pixel_size], axes=("x", "y"))},
    )  # fmt: skip
    return SpatialData(images={"stain": img}, points={"transcripts": points})


def cells_on_glass(sdata: SpatialData) -> int:
    """Cells found wholly in the right half (bare glass in :func:`tissue_beside_glass`)."""
    found = np.asarray(sdata.labels["gsn_labels"].data)
    mid = found.shape[1] // 2
    ids = np.setdiff1d(np.unique(found[:, mid:]), np.unique(found[:, :mid]))
    return int(np.count_nonzero(ids))


def score_halves(sdata: SpatialData, truth: np.ndarray, pixel_size: float, **segment_kwargs) -> list[dict]:
    """Mean matched IoU and transcript accuracy of the default call on each half (boundary strip left out)."""
    gsn.tl.segment(sdata, **segment_kwargs)
    found = np.asarray(sdata.labels["gsn_labels"].data)
    tx = sdata.points["gsn_transcripts"].compute()
    true_tx = sdata.points["transcripts"]["true_cell"].compute().to_numpy()
    x_um = sdata.points["transcripts"]["x"].compute().to_numpy()
    n = truth.shape[1]
    mid, strip = n // 2, int(round(STRIP_UM / 2 / pixel_size))
    out = []
    for cols, in_half in (
        (slice(0, mid - strip), x_um < (mid - strip) * pixel_size),
        (slice(mid + strip, n), x_um >= (mid + strip) * pixel_size),
    ):
        agreement = transcript_agreement(true_tx[in_half], tx["cell_id"].to_numpy()[in_half])
        out.append({"iou": mean_best_iou(truth[:, cols], found[:, cols]), "tx": agreement.fraction_same})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--pairs", nargs="+", default=["0.1,1", "0.3,2"], help="low,high transcripts per um^2")
    ap.add_argument("--pixel-sizes", type=float, nargs="+", default=[0.5])
    ap.add_argument("--size-um", type=float, default=240.0)
    ap.add_argument("--tissue", default="default", choices=sorted(ft.TISSUES))
    ap.add_argument("--normalisations", nargs="+", default=["local", "slide"], choices=["local", "slide"])
    ap.add_argument("--model", default=None)
    ap.add_argument("--glass", nargs="*", type=float, default=None, help="stray transcripts per um^2 on bare glass "
                    "beside tissue at each pair's densities: count the false cells on the glass instead")  # fmt: skip
    args = ap.parse_args()
    if args.glass is not None:
        glass(args)
        return
    print("| um/px | pair (/um^2) | seed | slide | rna_normalisation | left IoU | right IoU | left tx | right tx |")
    print("|---" * 9 + "|")
    for px in args.pixel_sizes:
        for pair in args.pairs:
            low, high = (float(v) for v in pair.split(","))
            for seed in args.seeds:
                for name, dens in (("mixed", (low, high)), ("even low", (low, low)), ("even high", (high, high))):
                    for norm in args.normalisations:
                        sdata, truth = mixed_density_tissue(seed, px, dens, args.size_um, args.tissue)
                        left, right = score_halves(sdata, truth, px, model=args.model, rna_normalisation=norm)
                        print(
                            f"| {px:g} | {low:g} / {high:g} | {seed} | {name} | {norm} | {left['iou']:.3f} "
                            f"| {right['iou']:.3f} | {left['tx']:.3f} | {right['tx']:.3f} |",
                            flush=True,
                        )


def glass(args: argparse.Namespace) -> None:
    """The ``--glass`` table: tissue on the left half, stray transcripts on bare glass on the right."""
    print(
        "| um/px | tissue (/um^2) | stray on glass (/um^2) | seed | rna_normalisation | tissue IoU | cells on glass |"
    )
    print("|---" * 7 + "|")
    densities = sorted({float(v) for pair in args.pairs for v in pair.split(",")})
    for px in args.pixel_sizes:
        for density in densities:
            for stray in args.glass or [0.01, 0.05]:
                for seed in args.seeds:
                    for norm in args.normalisations:
                        sdata, truth = tissue_beside_glass(seed, px, density, stray, args.size_um)
                        gsn.tl.segment(sdata, model=args.model, rna_normalisation=norm)
                        found = np.asarray(sdata.labels["gsn_labels"].data)
                        left = slice(0, truth.shape[1] // 2 - int(round(STRIP_UM / 2 / px)))
                        iou = mean_best_iou(truth[:, left], found[:, left])
                        row = f"| {px:g} | {density:g} | {stray:g} | {seed} | {norm} | {iou:.3f}"
                        print(f"{row} | {cells_on_glass(sdata)} |", flush=True)


if __name__ == "__main__":
    main()
