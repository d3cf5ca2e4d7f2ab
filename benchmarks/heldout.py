"""Data splits and array loaders shared by the generalist model's training script, benchmark and tests.

What is held out, fixed here once so that nothing that trains or tunes can see it:

- DSB 2018 stage 1 (fluorescence): the ids in ``benchmarks/splits/dsb2018_heldout.txt`` (20 %, test).
  Of the other 80 %, every 8th id (sorted) is a validation set (decoding thresholds), the rest trains.
- Xenium breast crop: image columns ``XENIUM_HELDOUT_COLS`` (the right quarter) are test; training and
  validation see only the columns left of it, minus a guard band of the network's receptive field.
- CosMx FOV 2: image columns ``COSMX_HELDOUT_COLS`` (the right third) likewise.
- Simulator: seeds ``SIM_TRAIN_SEEDS`` train, ``SIM_VAL_SEEDS`` validate, ``SIM_TEST_SEEDS`` test.

Everything returned is a plain array at the crop's own pixel grid; points are ``(x, y)`` in that grid's pixel
coordinates (pixel ``(r, c)`` covers ``[c, c + 1) x [r, r + 1)``), built from the coordinate mappings verified
in each crop's README.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
DSB = DATA / "dsb2018_stage1_fluorescence"
DSB_HELDOUT = ROOT / "benchmarks" / "splits" / "dsb2018_heldout.txt"

XENIUM_PIXEL_SIZE = 0.2125
XENIUM_HELDOUT_COLS = (1800, 2400)
COSMX_PIXEL_SIZE = 0.18
COSMX_HELDOUT_COLS = (448, 672)
GUARD_UM = 25.0  # training stops this far left of a held-out region (more than the network's receptive field)

SIM_TRAIN_SEEDS = range(20_000, 20_400)
SIM_VAL_SEEDS = range(30_000, 30_100)  # 30_050-30_099 added on 2026-12-07 (thin-rimmed tissue)
SIM_TEST_SEEDS = range(40_000, 40_100)


def _read_ids(path: Path) -> list[str]:
    return sorted(s.strip() for s in path.read_text().splitlines() if s.strip() and not s.startswith("#"))


def dsb_split(split: str) -> list[str]:
    """Image ids of ``split``: ``"train"``, ``"val"`` (every 8th of the non-test ids) or ``"test"``."""
    test = _read_ids(DSB_HELDOUT)
    rest = sorted({p.stem for p in DSB.glob("*.npz")} - set(test))
    if split == "test":
        return test
    if split == "val":
        return rest[::8]
    if split == "train":
        return [r for i, r in enumerate(rest) if i % 8]
    raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")


def dsb_image(image_id: str) -> tuple[np.ndarray, np.ndarray]:
    """``(image uint8, labels uint16)`` of one DSB image."""
    with np.load(DSB / f"{image_id}.npz") as z:
        return z["image"], z["labels"]


@dataclass
class Crop:
    """A real crop as arrays: DAPI image, transcripts and the vendor's cells, on the image's own grid."""

    name: str
    image: np.ndarray  # (h, w) nucleus stain
    points_xy: np.ndarray  # (n, 2) float, pixel coordinates of ``image``
    gene: np.ndarray  # (n,) gene names
    vendor_cell: np.ndarray  # (n,) int, 0 = unassigned
    vendor_labels: np.ndarray  # (h, w) uint32 vendor cells (CosMx: the vendor's mask; Xenium: rasterised)
    pixel_size: float
    heldout_cols: tuple[int, int]

    def train_cols(self) -> tuple[int, int]:
        """Columns that training and validation may use (left of the held-out region, minus the guard band)."""
        return 0, self.heldout_cols[0] - int(round(GUARD_UM / self.pixel_size))


def rasterise_vendor_cells(points_xy: np.ndarray, cell: np.ndarray, shape: tuple[int, int], radius_px: float):
    """Vendor cells as a label image from their transcripts alone (Xenium ships no cell mask here).

    Each pixel takes the cell of its nearest transcript when that transcript is assigned and within
    ``radius_px``; each cell keeps its largest connected piece, holes filled. Xenium's cells are nuclei
    expanded up to 15 um (a Voronoi-like partition), which the nearest-transcript partition follows where
    transcripts are dense.
    """
    h, w = shape
    tree = cKDTree(points_xy)
    yy, xx = np.mgrid[0:h, 0:w]
    dist, idx = tree.query(np.stack([xx.ravel() + 0.5, yy.ravel() + 0.5], axis=1), workers=-1)
    lab = np.where(dist <= radius_px, cell[idx], 0).reshape(h, w).astype(np.int64)
    out = np.zeros((h, w), dtype=np.uint32)
    for i, sl in enumerate(ndi.find_objects(lab), start=1):
        if sl is None:
            continue
        m = lab[sl] == i
        pieces, n = ndi.label(m)
        if n > 1:
            m = pieces == (np.argmax(np.bincount(pieces.ravel())[1:]) + 1)
        m = ndi.binary_fill_holes(m)
        out[sl][m & (out[sl] == 0)] = i
    return out


def xenium_crop() -> Crop:
    import tifffile

    folder = DATA / "xenium_breast_crop"
    image = tifffile.imread(folder / "morphology_mip.tif")
    tx = pd.read_csv(folder / "transcripts.csv.gz", usecols=["cell_id", "feature_name", "x_location", "y_location"])
    xy = np.stack(
        [
            tx["x_location"].to_numpy() / XENIUM_PIXEL_SIZE - 5000,
            tx["y_location"].to_numpy() / XENIUM_PIXEL_SIZE - 1000,
        ],
        axis=1,
    )
    cid = tx["cell_id"].astype(str)
    codes, _ = pd.factorize(cid)
    vendor = np.where(cid.isin(["-1", "UNASSIGNED"]), 0, codes + 1).astype(np.int64)
    vendor = np.unique(vendor, return_inverse=True)[1].astype(np.int64)  # 0 stays 0, cells 1..n
    labels = rasterise_vendor_cells(xy, vendor, image.shape, radius_px=3.0 / XENIUM_PIXEL_SIZE)
    return Crop(
        "xenium", image, xy, tx["feature_name"].to_numpy(), vendor, labels, XENIUM_PIXEL_SIZE, XENIUM_HELDOUT_COLS
    )


def cosmx_crop() -> Crop:
    import tifffile
    from skimage.io import imread

    folder = DATA / "cosmx_lung_fov2"
    rgb = imread(folder / "CellComposite" / "CellComposite_F002.jpg")
    labels = np.rint(tifffile.imread(folder / "CellLabels" / "CellLabels_F002.tif")).astype(np.int64)
    ids = np.unique(labels)
    labels = np.searchsorted(ids, labels).astype(np.uint32)  # consecutive 1..n, 0 stays 0 (0 is in ids)
    tx = pd.read_csv(folder / "Lung12_tx_file.csv.gz")
    tx = tx[tx["fov"] == 2] if "fov" in tx else tx
    xy = np.stack([tx["x_local_px"].to_numpy() - 4800.0, 3648.0 - tx["y_local_px"].to_numpy()], axis=1)
    vendor = tx["cell_ID"].to_numpy().astype(np.int64)
    keep = ~tx["target"].str.startswith("NegPrb").to_numpy()
    return Crop(
        "cosmx",
        rgb[..., 2],
        xy[keep],
        tx["target"].to_numpy()[keep],
        vendor[keep],
        labels,
        COSMX_PIXEL_SIZE,
        COSMX_HELDOUT_COLS,
    )


def column_window(crop: Crop, cols: tuple[int, int]) -> Crop:
    """The part of ``crop`` in image columns ``[c0, c1)``; points shifted to the window's grid."""
    c0, c1 = cols
    sel = (crop.points_xy[:, 0] >= c0) & (crop.points_xy[:, 0] < c1)
    xy = crop.points_xy[sel] - np.array([c0, 0.0])
    return Crop(
        crop.name,
        crop.image[:, c0:c1],
        xy,
        crop.gene[sel],
        crop.vendor_cell[sel],
        crop.vendor_labels[:, c0:c1],
        crop.pixel_size,
        (crop.heldout_cols[0] - c0, crop.heldout_cols[1] - c0),
    )
