"""Slides whose transcript density changes from one region to the next: sparse tissue beside dense tissue.

Usage::

    python benchmarks/mixed_density.py [--seeds 0 1] [--pairs 0.1,1 0.3,2] [--pixel-sizes 0.5]
        [--size-um 240] [--tissue default] [--normalisations local slide] [--model generalist]

The second simulator's tissue (``benchmarks/foreign_tissue.py``, never trained on) with the transcripts of the
left half drawn at one density and those of the right half at another (per um^2 of cell area; ambient
transcripts 10 % of each half's own), as tumour beside stroma or tissue beside necrosis. Each pair is also
run with both halves at the low and at the high density, so each half has a reference: the same cells at an
even density. Scores per half (a 10 um strip along the boundary left out): mean matched IoU (each true cell's
best IoU) and transcript accuracy, for ``gsn.tl.segment(rna_normalisation=...)`` with each normalisation.
Points in micrometres, the image with a Scale (the pixel size is read, not estimated).
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
    names = [f"g{k:03d}" for k in range(ft.N_GENES)]
    df = pd.DataFrame({"x": x, "y": y, "gene": pd.Categorical.from_codes(gene, categories=names), "true_cell": cell})
    points = PointsModel.parse(
        dd.from_pandas(df, npartitions=2), coordinates={"x": "x", "y": "y"}, transformations={"global": Identity()}
    )
    img = Image2DModel.parse(
        image[None], dims=("c", "y", "x"), c_coords=["DAPI"],
        transformations={"global": Scale([pixel_size, pixel_size], axes=("x", "y"))},
    )  # fmt: skip
    return SpatialData(images={"stain": img}, points={"transcripts": points}), labels


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
    args = ap.parse_args()
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


if __name__ == "__main__":
    main()
