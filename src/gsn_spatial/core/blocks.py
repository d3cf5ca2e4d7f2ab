"""Block-wise segmentation of a whole image with seam-exact stitching.

The image is cut into ``block_size`` cores. Each core is segmented together
with a ``halo`` of surrounding pixels (at least two cell diameters), and a cell
is kept only by the block whose core holds its centre, so every cell is
decoded once, from a window in which it is whole. Cell ids are given in block
order, so they are unique over the image without a per-block cap.

Transcripts are binned to blocks in one pass (a sort by block index); a window
gathers the points of its block and of the eight neighbours, which is all it
needs because ``halo + density halo <= block_size``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from gsn_spatial.core.decode import decode_cells
from gsn_spatial.core.density import density_halo, rna_density_window
from gsn_spatial.core.network import GeneSegNet
from gsn_spatial.core.tiling import predict_maps


@dataclass(frozen=True)
class Block:
    row: int
    col: int
    core: tuple[int, int, int, int]  # y0, y1, x0, x1
    window: tuple[int, int, int, int]


def iter_blocks(shape: tuple[int, int], block_size: int, halo: int) -> Iterator[Block]:
    h, w = shape
    for r, y0 in enumerate(range(0, h, block_size)):
        for c, x0 in enumerate(range(0, w, block_size)):
            y1, x1 = min(y0 + block_size, h), min(x0 + block_size, w)
            win = (max(0, y0 - halo), min(h, y1 + halo), max(0, x0 - halo), min(w, x1 + halo))
            yield Block(r, c, (y0, y1, x0, x1), win)


class PointBins:
    """Points sorted by the block that holds them, for neighbourhood look-ups."""

    def __init__(self, points_xy: np.ndarray, shape: tuple[int, int], block_size: int):
        self.block_size = block_size
        self.n_rows = -(-shape[0] // block_size)
        self.n_cols = -(-shape[1] // block_size)
        bc = np.clip(np.floor(points_xy[:, 0] / block_size), -1, self.n_cols).astype(np.int64) + 1
        br = np.clip(np.floor(points_xy[:, 1] / block_size), -1, self.n_rows).astype(np.int64) + 1
        # Padded grid (one ring of outside bins) so points just outside the image still count.
        key = br * (self.n_cols + 2) + bc
        self.order = np.argsort(key, kind="stable")
        self.bounds = np.searchsorted(key[self.order], np.arange((self.n_rows + 2) * (self.n_cols + 2) + 1))
        self.points_xy = points_xy

    def around(self, row: int, col: int) -> np.ndarray:
        """Points of block ``(row, col)`` and its eight neighbours."""
        idx = []
        for r in range(row, row + 3):  # padded indices row-1+1 .. row+1+1
            k0 = r * (self.n_cols + 2) + col
            idx.append(self.order[self.bounds[k0] : self.bounds[k0 + 3]])
        return self.points_xy[np.concatenate(idx)]


def segment_blocks(
    read_image: Callable[[int, int, int, int], np.ndarray],
    points_xy: np.ndarray,
    shape: tuple[int, int],
    network: GeneSegNet,
    *,
    rna_sigma: float,
    rna_mode: str = "sum",
    block_size: int = 1024,
    halo: int = 64,
    tile_size: int = 256,
    overlap: int = 32,
    batch_size: int = 8,
    device: torch.device | str = "cpu",
    autocast_dtype: torch.dtype | None = None,
    decode_kwargs: dict | None = None,
    progress: Callable[[Iterator], Iterator] | None = None,
) -> np.ndarray:
    """Labels ``(h, w)`` uint32 of the whole image.

    ``read_image(y0, y1, x0, x1)`` returns the normalised float32 image window.
    """
    if halo < 0 or halo > block_size:
        raise ValueError(f"`halo` must be in [0, block_size], got {halo} for block_size={block_size}.")
    if halo + density_halo(rna_sigma) > block_size:
        raise ValueError(
            f"`block_size`={block_size} is too small for halo {halo} plus the RNA map's reach "
            f"{density_halo(rna_sigma)} px; increase `block_size`."
        )
    decode_kwargs = decode_kwargs or {}
    labels = np.zeros(shape, dtype=np.uint32)
    bins = PointBins(points_xy, shape, block_size)
    next_id = 1
    blocks = list(iter_blocks(shape, block_size, halo))
    for block in progress(blocks) if progress else blocks:
        wy0, wy1, wx0, wx1 = block.window
        image = read_image(wy0, wy1, wx0, wx1)
        rna = rna_density_window(
            bins.around(block.row, block.col), (wy1 - wy0, wx1 - wx0), origin=(wx0, wy0), sigma=rna_sigma, mode=rna_mode
        )
        maps = predict_maps(
            network,
            np.stack([image, rna]),
            tile_size=tile_size,
            overlap=overlap,
            batch_size=batch_size,
            device=device,
            autocast_dtype=autocast_dtype,
        )
        cells, centres = decode_cells(maps, **decode_kwargs)
        if len(centres) == 0:
            continue
        cy, cx = centres[:, 0] + wy0, centres[:, 1] + wx0
        y0, y1, x0, x1 = block.core
        owned = (cy >= y0) & (cy < y1) & (cx >= x0) & (cx < x1)
        new_ids = np.zeros(len(centres) + 1, dtype=np.uint32)
        new_ids[1:][owned] = np.arange(next_id, next_id + int(owned.sum()), dtype=np.uint32)
        next_id += int(owned.sum())
        painted = new_ids[cells]
        target = labels[wy0:wy1, wx0:wx1]
        free = (target == 0) & (painted > 0)  # first owner wins where two blocks' cells touch
        target[free] = painted[free]
    return labels
