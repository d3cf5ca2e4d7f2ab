"""The default call on tissue from a second simulator, written apart from the package's own and never trained on.

Usage::

    python benchmarks/foreign_tissue.py [--seeds 0 1] [--pixel-sizes 0.1 0.2125 0.5 1.0]
        [--densities 0.1 0.5 2.0] [--frames microns image] [--size-um 160] [--model generalist]
        [--tissues default large-cells small-cells large-nuclei sparse elongated mixed anucleate grown-nuclei]

Every model of ``gsn_spatial`` was trained on ``core.simulate.tissue`` (a noisy weighted Voronoi of hexagonal
seeds, transcripts spread evenly over each cell); a score on it says little about tissue the models never saw.
This simulator draws its tissue another way, in micrometres, and renders it at each pixel size directly
(no resampling of one image):

- cell centres by dart throwing (random, a least distance, no lattice); each cell a star-shaped region
  ``|x - c| <= r(theta)`` with a random radius (5-11 um) and two random Fourier modes; a pixel covered by several
  cells goes to the one it is deepest in (smallest ``|x - c| / r(theta)``), so cells touch along curved borders and
  leave gaps;
- a nucleus per cell: a rotated ellipse, 35-55 % of the cell's radius, off-centre, inside the cell; a chromatin
  texture, brightness varying 1.5-fold between cells; a tenth of the nuclei dim (a quarter of the brightness);
- the stain: a 0.35 um Gaussian point-spread function, a camera offset and a slow illumination gradient, a faint
  cytoplasm, Poisson shot noise and read noise, uint16;
- transcripts at ``density`` per um^2 of cell area, a third of them in the nucleus, genes from 6 cell types of
  15 marker genes each among 120, and 10 % of the total as ambient transcripts anywhere, of any gene.

``--tissues`` adds tissues whose nuclei are not the models' reference size (6.41 um; the default tissue's are about
7-7.5 um): ``large-cells`` (radius 12-20 um, nuclei about 6-16 um across), ``small-cells`` (4-6.5 um, nuclei 3-8 um),
``large-nuclei`` (8-12 um, nuclei 9-17 um) and ``sparse`` (the default's cells with gaps between them).
``mixed`` puts cells of radius 4-20 um side by side (lymphocytes among tumour cells). ``elongated`` is
stroma-like: the default tissue stretched 3:1 (x1.73 along one direction, /1.73 across it, at an angle drawn per
seed), so cells of about 17-38 um by 6-13 um with nuclei elongated alike lie in one aligned bundle.
``anucleate`` is the default tissue with 30 % of its cells cut without their nucleus (it lies outside the section:
no stain, the cell's transcripts spread evenly over it), as in sections thinner than a cell; the table adds these
cells' mean best IoU, for the default call and for the best expansion. ``grown-nuclei`` draws the default tissue's
nuclei and then makes each cell its nucleus grown until it meets a neighbour, at most 6 um (what Xenium's and
sopa's expansion do): the rule of the baseline itself, which the baseline's 6 um expansion nearly reproduces.

Two frames: ``microns`` (points in um, the image with a Scale to them: the pixel size can be read from the
transformations) and ``image`` (points on the image's pixel grid, identity everywhere: the pixel size must be
estimated from the nuclei). Scores: mean matched IoU (each true cell's best IoU), transcript accuracy
(``transcript_agreement``: the fraction of transcripts in the cell they came from, or unassigned when ambient),
cells found, against watershed nuclei grown by 0-8 um at the true pixel size (the best of each score), with the
same expression pass as the default call.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import dask.dataframe as dd
import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from skimage.segmentation import expand_labels
from spatialdata import SpatialData
from spatialdata.models import Image2DModel, PointsModel
from spatialdata.transformations import Identity, Scale

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generalist import EXPANSIONS_UM, _assigned  # noqa: E402

import gsn_spatial as gsn  # noqa: E402
from gsn_spatial.core.metrics.matching import mean_best_iou, overlap_table, transcript_agreement  # noqa: E402

N_GENES, N_TYPES, N_MARKERS = 120, 6, 15
AMBIENT = 0.10
NUCLEAR_SHARE = 1.0 / 3.0


#: Tissue kinds: cell radius range (um), nucleus radius as a fraction of the cell's, least centre distance as a
#: fraction of the two radii (under 1: cells overlap and the deeper one takes the pixel; over 1: gaps between cells).
#: "default" has nuclei of about 7-7.5 um (the models' reference is 6.41 um); the others have nuclei of 4.5-10.5 um.
TISSUES = {
    "default": ((5.0, 11.0), (0.35, 0.55), 0.75),
    "large-cells": ((12.0, 20.0), (0.25, 0.40), 0.75),
    "small-cells": ((4.0, 6.5), (0.40, 0.60), 0.75),
    "large-nuclei": ((8.0, 12.0), (0.55, 0.70), 0.75),
    "sparse": ((5.0, 11.0), (0.35, 0.55), 1.3),
    "elongated": ((5.0, 11.0), (0.35, 0.55), 0.75),
    "mixed": ((4.0, 20.0), (0.30, 0.55), 0.75),
    "anucleate": ((5.0, 11.0), (0.35, 0.55), 0.75),
    "grown-nuclei": ((5.0, 11.0), (0.35, 0.55), 0.75),
}
#: Aspect ratio of the stretch that makes a tissue kind's cells elongated and aligned (1: none).
STRETCH = {"elongated": 3.0}
#: Share of the cells whose nucleus lies outside the imaged section (no stain, transcripts even over the cell).
ANUCLEATE = {"anucleate": 0.3}
#: Tissue kinds whose cells are their nuclei grown until they meet, at most this far (um).
GROWN_NUCLEI = {"grown-nuclei": 6.0}


def _stretch(tissue: str, seed: int) -> np.ndarray:
    """The 2 x 2 map from the round tissue's frame to the image's (um to um), area-preserving."""
    aspect = STRETCH.get(tissue, 1.0)
    if aspect == 1.0:
        return np.eye(2)
    angle = np.random.default_rng(seed + 3).uniform(0, np.pi)  # its own stream: the other draws stay as they were
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return rot @ np.diag([np.sqrt(aspect), 1 / np.sqrt(aspect)]) @ rot.T


def _cells(rng: np.random.Generator, size_um: float, tissue: str, stretch: np.ndarray) -> list[dict]:
    """Cell centres by dart throwing, each with its shape and nucleus (all in um, in the round tissue's frame:
    ``stretch`` maps it onto the image, which must be covered, 5 um beyond its edges)."""
    (r_low, r_high), (n_low, n_high), spacing = TISSUES[tissue]
    cells: list[dict] = []
    centres, radii = np.zeros((0, 2)), np.zeros(0)
    corners = np.linalg.solve(stretch, np.array([[0, 0], [0, size_um], [size_um, 0], [size_um, size_um]]).T).T
    low, high = corners.min(0) - 5, corners.max(0) + 5
    for _ in range(40 * int(np.prod(high - low - 10) / 150)):
        c = rng.uniform(low, high)
        r = rng.uniform(r_low, r_high)
        if centres.size and np.min(np.hypot(*(centres - c).T) - spacing * (r + radii)) < 0:
            continue
        centres, radii = np.vstack([centres, c]), np.append(radii, r)
        modes = [(rng.uniform(0, 0.15), rng.uniform(0, 2 * np.pi)), (rng.uniform(0, 0.1), rng.uniform(0, 2 * np.pi))]
        rn = rng.uniform(n_low, n_high) * r
        e = rng.uniform(1.0, 1.5)
        cells.append(
            {
                "c": c,
                "r": r,
                "modes": modes,
                "nucleus": (rn * e, rn / e, rng.uniform(0, np.pi), rng.uniform(-0.15, 0.15, 2) * r),
                "bright": rng.uniform(0.8, 1.2) * (0.25 if rng.random() < 0.1 else 1.0),
                "type": int(rng.integers(N_TYPES)),
            }
        )
    return cells


def _in_nucleus(cell: dict, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Whether offsets ``(dx, dy)`` (um) from the cell's centre fall in its nucleus ellipse."""
    a, b, angle, off = cell["nucleus"]
    u = (dx - off[0]) * np.cos(angle) + (dy - off[1]) * np.sin(angle)
    v = -(dx - off[0]) * np.sin(angle) + (dy - off[1]) * np.cos(angle)
    return (u / a) ** 2 + (v / b) ** 2 <= 1.0


def _render(
    cells: list[dict], size_um: float, pixel_size: float, rng: np.random.Generator, stretch: np.ndarray,
    grow_um: float | None = None,
):  # fmt: skip
    """The stain and the truth cells on a grid of ``pixel_size``; ``stretch`` maps the cells' frame onto it;
    with ``grow_um`` the cells are the nuclei grown until they meet, at most ``grow_um``."""
    n = int(round(size_um / pixel_size))
    unstretch = np.linalg.inv(stretch)
    elongation = float(np.linalg.norm(stretch, 2))
    depth = np.full((n, n), np.inf)
    labels = np.zeros((n, n), np.uint32)
    nuclei = np.zeros((n, n), np.uint32)
    bright = np.zeros((n, n), np.float32)
    for i, cell in enumerate(cells, start=1):
        reach, centre = 1.3 * cell["r"] * elongation, stretch @ cell["c"]
        (x0, y0), (x1, y1) = np.floor((centre - reach) / pixel_size), np.ceil((centre + reach) / pixel_size)
        x0, y0, x1, y1 = (int(np.clip(v, 0, n)) for v in (x0, y0, x1, y1))
        if x1 <= x0 or y1 <= y0:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1]
        dx, dy = _round_offsets(unstretch, (xx + 0.5) * pixel_size, (yy + 0.5) * pixel_size, cell["c"])
        theta = np.arctan2(dy, dx)
        radius = cell["r"] * (1 + sum(a * np.cos(k * theta - p) for k, (a, p) in enumerate(cell["modes"], start=2)))
        s = np.hypot(dx, dy) / radius
        win = (s <= 1.0) & (s < depth[y0:y1, x0:x1])
        depth[y0:y1, x0:x1][win] = s[win]
        labels[y0:y1, x0:x1][win] = i
        inside = _in_nucleus(cell, dx, dy)
        nuclei[y0:y1, x0:x1][inside] = i
        bright[y0:y1, x0:x1][inside] = 0.0 if cell.get("anucleate") else cell["bright"]
    nuclei[labels != nuclei] = 0  # a nucleus stays inside its own cell
    if grow_um is not None:
        labels = expand_labels(nuclei, grow_um / pixel_size)
    bright[nuclei == 0] = 0
    # Chromatin texture (0.6 um grain), the point-spread function, a faint cytoplasm, offset and gradient.
    grain = ndi.gaussian_filter(rng.standard_normal((n, n)), 0.6 / pixel_size)
    grain /= grain.std() + 1e-9
    signal = bright * (1 + 0.25 * grain) + 0.04 * (labels > 0)
    signal = ndi.gaussian_filter(signal, 0.35 / pixel_size)
    yy, xx = np.mgrid[0:n, 0:n] / n
    photons = 800.0 * (0.8 + 0.4 * xx) * signal + 40.0 * (1 + 0.5 * yy)
    # The grain can take the signal below 0 (not in the default tissue, where these are the same draws as before).
    image = rng.poisson(np.maximum(photons, 0)) + rng.normal(100, 4, (n, n))
    return np.clip(image, 0, 65535).astype(np.uint16), labels


def _round_offsets(unstretch: np.ndarray, x: np.ndarray, y: np.ndarray, centre: np.ndarray):
    """Offsets from ``centre`` in the round tissue's frame of image points ``(x, y)`` (um)."""
    return unstretch[0, 0] * x + unstretch[0, 1] * y - centre[0], unstretch[1, 0] * x + unstretch[1, 1] * y - centre[1]


def _transcripts(cells: list[dict], labels: np.ndarray, pixel_size: float, density: float, rng, stretch: np.ndarray):
    """Transcripts (x, y in um, gene, cell of origin) of the rendered cells and ambient ones."""
    n = labels.shape[0]
    size_um = n * pixel_size
    profile = rng.gamma(0.5, 1.0, (N_TYPES, N_GENES)) + 1e-3
    for t in range(N_TYPES):
        profile[t, rng.choice(N_GENES, N_MARKERS, replace=False)] += 20.0
    profile /= profile.sum(1, keepdims=True)
    unstretch = np.linalg.inv(stretch)
    flat = labels.ravel()
    order = np.argsort(flat, kind="stable")
    starts = np.searchsorted(flat[order], np.arange(len(cells) + 2))
    xs, ys, genes, ids = [], [], [], []
    for i, cell in enumerate(cells, start=1):
        pix = order[starts[i] : starts[i + 1]]
        if pix.size == 0:
            continue
        area = pix.size * pixel_size**2
        count = rng.poisson(density * area)
        # A third of the transcripts in the nucleus: pixels weighted so that the nucleus gets its share.
        cy, cx = np.divmod(pix, n)
        offsets = _round_offsets(unstretch, (cx + 0.5) * pixel_size, (cy + 0.5) * pixel_size, cell["c"])
        in_nucleus = _in_nucleus(cell, *offsets) & (not cell.get("anucleate"))
        k = in_nucleus.sum()
        w = np.where(in_nucleus, NUCLEAR_SHARE / max(k, 1), (1 - NUCLEAR_SHARE) / max(pix.size - k, 1))
        pick = rng.choice(pix.size, count, p=w / w.sum())
        xs.append((cx[pick] + rng.random(count)) * pixel_size)
        ys.append((cy[pick] + rng.random(count)) * pixel_size)
        genes.append(rng.choice(N_GENES, count, p=profile[cell["type"]]))
        ids.append(np.full(count, i))
    n_cellular = sum(len(g) for g in genes)
    n_ambient = rng.poisson(AMBIENT / (1 - AMBIENT) * n_cellular)
    xs.append(rng.uniform(0, size_um, n_ambient))
    ys.append(rng.uniform(0, size_um, n_ambient))
    genes.append(rng.integers(0, N_GENES, n_ambient))
    ids.append(np.zeros(n_ambient, int))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(genes), np.concatenate(ids)


def foreign_tissue(
    seed: int, pixel_size: float, density: float, frame: str, size_um: float = 160.0, tissue: str = "default"
):
    """A SpatialData object of this simulator, the truth cells on the image's grid, and the ids of those of them
    whose nucleus is outside the section (``anucleate`` tissue only)."""
    rng = np.random.default_rng(seed)
    stretch = _stretch(tissue, seed)
    cells = _cells(rng, size_um, tissue, stretch)
    share = ANUCLEATE.get(tissue, 0.0)
    if share:  # its own stream, so that every other draw stays as it was
        for cell, out in zip(cells, np.random.default_rng(seed + 4).random(len(cells)) < share, strict=True):
            cell["anucleate"] = bool(out)
    image, labels = _render(
        cells, size_um, pixel_size, np.random.default_rng(seed + 1), stretch, GROWN_NUCLEI.get(tissue)
    )
    x, y, gene, cell_id = _transcripts(cells, labels, pixel_size, density, np.random.default_rng(seed + 2), stretch)
    if frame == "microns":
        image_tf, points_unit = {"global": Scale([pixel_size, pixel_size], axes=("x", "y"))}, 1.0
    elif frame == "image":
        image_tf, points_unit = {"global": Identity()}, pixel_size
    else:
        raise ValueError(f"frame must be 'microns' or 'image', got {frame!r}")
    names = [f"g{k:03d}" for k in range(N_GENES)]
    df = pd.DataFrame(
        {
            "x": x / points_unit,
            "y": y / points_unit,
            "gene": pd.Categorical.from_codes(gene, categories=names),
            "true_cell": cell_id,
        }
    )
    points = PointsModel.parse(
        dd.from_pandas(df, npartitions=4), coordinates={"x": "x", "y": "y"}, transformations={"global": Identity()}
    )
    img = Image2DModel.parse(image[None], dims=("c", "y", "x"), c_coords=["DAPI"], transformations=image_tf)
    no_nucleus = np.flatnonzero([cell.get("anucleate", False) for cell in cells]) + 1
    return SpatialData(images={"stain": img}, points={"transcripts": points}), labels, no_nucleus


def score(
    seed: int, pixel_size: float, density: float, frame: str, size_um: float, model, tissue: str = "default"
) -> dict:
    """The default call's scores on one tissue, and the best of the nucleus expansions'."""
    sdata, truth, no_nucleus = foreign_tissue(seed, pixel_size, density, frame, size_um, tissue)
    no_nucleus = np.intersect1d(no_nucleus, truth)  # those on the image
    true_tx = sdata.points["transcripts"]["true_cell"].compute().to_numpy()
    t0 = time.perf_counter()
    gsn.tl.segment(sdata, model=model)
    seconds = time.perf_counter() - t0
    found = np.asarray(sdata.labels["gsn_labels"].data)
    found_tx = sdata.points["gsn_transcripts"]["cell_id"].compute().to_numpy()
    params = sdata.tables["gsn_table"].uns["gsn"]["params"]
    out = {
        "found_px": float(params["pixel_size"]),
        "iou": mean_best_iou(truth, found),
        "no_nucleus_iou": _mean_best_iou_of(truth, found, no_nucleus),
        "tx": transcript_agreement(true_tx, found_tx).fraction_same,
        "cells": int(len(np.unique(found)) - 1),
        "true_cells": int(len(np.unique(truth)) - 1),
        "seconds": seconds,
    }
    gsn.tl.watershed_nuclei(sdata, image_channel="DAPI", pixel_size=pixel_size, labels_key_added="ws")
    best_iou, best_tx, best_no_nucleus = 0.0, 0.0, 0.0
    for d in EXPANSIONS_UM:
        key = f"grown_{d:g}"
        gsn.tl.expand_nuclei(sdata, labels_key="ws", distance_um=d, pixel_size=pixel_size, labels_key_added=key)
        grown = np.asarray(sdata.labels[key].data)
        best_iou = max(best_iou, mean_best_iou(truth, grown))
        best_no_nucleus = max(best_no_nucleus, _mean_best_iou_of(truth, grown, no_nucleus))
        tx = _assigned(sdata, key, "expression", pixel_size)
        best_tx = max(best_tx, transcript_agreement(true_tx, tx).fraction_same)
    out["exp_iou"], out["exp_tx"], out["exp_no_nucleus_iou"] = best_iou, best_tx, best_no_nucleus
    return out


def _mean_best_iou_of(truth: np.ndarray, found: np.ndarray, ids: np.ndarray) -> float:
    """Mean over the truth cells ``ids`` of each one's best IoU with a found cell (NaN for no ids)."""
    if ids.size == 0:
        return float("nan")
    r, _, _, iou = overlap_table(truth, found)
    best = np.zeros(int(truth.max()) + 1)
    np.maximum.at(best, r, iou)
    return float(best[ids].mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--pixel-sizes", type=float, nargs="+", default=[0.1, 0.2125, 0.5, 1.0])
    ap.add_argument("--densities", type=float, nargs="+", default=[0.1, 0.5, 2.0])
    ap.add_argument("--frames", nargs="+", default=["microns", "image"])
    ap.add_argument("--size-um", type=float, default=160.0)
    ap.add_argument("--model", default=None)
    ap.add_argument("--tissues", nargs="+", default=["default"], choices=sorted(TISSUES))
    args = ap.parse_args()
    print("| tissue | frame | um/px | tx/um^2 | seed | found um/px | IoU | best expansion IoU | tx accuracy "
          "| best expansion tx | cells (true) | cells with no nucleus: IoU, best expansion | s |")  # fmt: skip
    print("|---" * 13 + "|")
    for tissue in args.tissues:
        for frame in args.frames:
            for px in args.pixel_sizes:
                for density in args.densities:
                    for seed in args.seeds:
                        r = score(seed, px, density, frame, args.size_um, args.model, tissue)
                        no_nucleus = (
                            "-" if np.isnan(r["no_nucleus_iou"])
                            else f"{r['no_nucleus_iou']:.3f}, {r['exp_no_nucleus_iou']:.3f}"
                        )  # fmt: skip
                        row = (
                            f"| {tissue} | {frame} | {px:g} | {density:g} | {seed} | {r['found_px']:.3f} "
                            f"| {r['iou']:.3f} | {r['exp_iou']:.3f} | {r['tx']:.3f} | {r['exp_tx']:.3f} "
                            f"| {r['cells']} ({r['true_cells']}) | {no_nucleus} | {r['seconds']:.1f} |"
                        )
                        print(row, flush=True)


if __name__ == "__main__":
    main()
