"""Block-wise segmentation of a whole image with seam-exact stitching (array level).

The image is cut into a grid of ``block_size`` *cores*. Each core is segmented
from a *window*: the core plus a ``halo`` of surrounding pixels (keep it above
two cell diameters). A decoded cell is kept only by the block whose core holds
its centre, so every cell is decoded once, from a window in which it is whole,
and given a local id ``1..n_b``. Global ids are ``offset_b + local`` with
``offset`` the running sum of the blocks' cell counts in block order, so they
are unique over the slide without a per-block cap and do not depend on the
order in which blocks were processed.

Stitching is done per core: the final labels of a core are painted from the
windows of the (up to) nine blocks around it, in block order, each pixel taken
by the first block whose cell covers it. Every step reads and writes one core
or one window, which is what lets :mod:`gsn_spatial.core.slide.steps` run a slide of
any size in bounded memory and in any order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from gsn_spatial.core.decode.cells import decode_cells
from gsn_spatial.core.network.memory import keep_freed_memory
from gsn_spatial.core.network.tiling import predict_maps
from gsn_spatial.core.network.unet import GeneSegNet  # noqa: F401 (the doctests use it)
from gsn_spatial.core.rna.density import density_halo, rna_density_window
from gsn_spatial.core.rna.local import LocalDensity, density_ratio_window, threshold_for_density


@dataclass(frozen=True)
class BlockGrid:
    """Cores and windows of a ``shape`` image cut into ``block_size`` blocks.

    Blocks are numbered in raster order. Transcripts are binned on a grid
    padded by one ring of outside bins (keys :meth:`point_keys`), so points
    just outside the image still reach the RNA map of the edge windows.

    Examples
    --------
    >>> g = BlockGrid((300, 500), block_size=256, halo=16)
    >>> g.n_rows, g.n_cols, g.core(1), g.window(1)
    (2, 2, (0, 256, 256, 500), (0, 272, 240, 500))
    >>> g.neighbours(0)
    [0, 1, 2, 3]
    """

    shape: tuple[int, int]
    block_size: int
    halo: int

    def __post_init__(self) -> None:
        if self.block_size <= 0:
            raise ValueError(f"`block_size` must be positive, got {self.block_size}.")
        if not 0 <= self.halo <= self.block_size:
            raise ValueError(f"`halo` must be in [0, block_size={self.block_size}], got {self.halo}.")

    @property
    def n_rows(self) -> int:
        return -(-self.shape[0] // self.block_size)

    @property
    def n_cols(self) -> int:
        return -(-self.shape[1] // self.block_size)

    @property
    def n_blocks(self) -> int:
        return self.n_rows * self.n_cols

    @property
    def window_size(self) -> int:
        """Side of the largest window (array slots for window results have this size)."""
        return self.block_size + 2 * self.halo

    def row_col(self, block: int) -> tuple[int, int]:
        return divmod(int(block), self.n_cols)

    def core(self, block: int) -> tuple[int, int, int, int]:
        """``(y0, y1, x0, x1)`` of the core of ``block``."""
        r, c = self.row_col(block)
        y0, x0 = r * self.block_size, c * self.block_size
        return y0, min(y0 + self.block_size, self.shape[0]), x0, min(x0 + self.block_size, self.shape[1])

    def window(self, block: int) -> tuple[int, int, int, int]:
        """``(y0, y1, x0, x1)`` of the core of ``block`` plus its halo, clipped to the image."""
        y0, y1, x0, x1 = self.core(block)
        h, w = self.shape
        return max(0, y0 - self.halo), min(h, y1 + self.halo), max(0, x0 - self.halo), min(w, x1 + self.halo)

    def neighbours(self, block: int) -> list[int]:
        """``block`` and the blocks around it, in block order."""
        r, c = self.row_col(block)
        return [
            rr * self.n_cols + cc
            for rr in range(max(0, r - 1), min(self.n_rows, r + 2))
            for cc in range(max(0, c - 1), min(self.n_cols, c + 2))
        ]

    # --- transcript bins on the padded grid ------------------------------------
    @property
    def n_point_keys(self) -> int:
        return (self.n_rows + 2) * (self.n_cols + 2)

    def point_keys(self, xy_pixels: np.ndarray) -> np.ndarray:
        """Padded-grid bin of each point ``(x, y)`` in pixels; far-away points fall in the outer ring."""
        bc = np.clip(np.floor(xy_pixels[:, 0] / self.block_size), -1, self.n_cols).astype(np.int64) + 1
        br = np.clip(np.floor(xy_pixels[:, 1] / self.block_size), -1, self.n_rows).astype(np.int64) + 1
        return br * (self.n_cols + 2) + bc

    def core_key(self, block: int) -> int:
        """Bin of the points inside the core of ``block``."""
        r, c = self.row_col(block)
        return (r + 1) * (self.n_cols + 2) + (c + 1)

    def neighbourhood_key_ranges(self, block: int) -> list[tuple[int, int]]:
        """Bin ranges ``[k0, k1)`` (one per padded row) covering the bins around ``block``.

        All points a window needs are in them as long as ``halo`` plus the RNA
        map's reach is at most ``block_size``.
        """
        r, c = self.row_col(block)
        return [(rr * (self.n_cols + 2) + c, rr * (self.n_cols + 2) + c + 3) for rr in range(r, r + 3)]


class PointBins:
    """Points in memory sorted by block, for neighbourhood look-ups (``gsn.pp.rna_density``)."""

    def __init__(self, points_xy: np.ndarray, shape: tuple[int, int], block_size: int):
        self.grid = BlockGrid(shape, block_size, 0)
        key = self.grid.point_keys(points_xy)
        self.order = np.argsort(key, kind="stable")
        self.bounds = np.searchsorted(key[self.order], np.arange(self.grid.n_point_keys + 1))
        self.points_xy = points_xy

    def around(self, row: int, col: int) -> np.ndarray:
        """Points of block ``(row, col)`` and its eight neighbours."""
        block = row * self.grid.n_cols + col
        idx = [self.order[self.bounds[k0] : self.bounds[k1]] for k0, k1 in self.grid.neighbourhood_key_ranges(block)]
        return self.points_xy[np.concatenate(idx)]


def check_block_geometry(block_size: int, halo: int, rna_sigma: float) -> None:
    """Raise ``ValueError`` unless a window's transcripts all lie in the bins around its block."""
    if halo + density_halo(rna_sigma) > block_size:
        raise ValueError(
            f"`block_size`={block_size} is too small for halo {halo} plus the RNA map's reach "
            f"{density_halo(rna_sigma)} px; increase `block_size`."
        )


@dataclass(frozen=True)
class WindowOptions:
    """How one window is segmented: its RNA map, the network pass and decoding (working pixels).

    ``rna_level`` is the RNA map's per-slide level
    (:func:`~gsn_spatial.core.rna.density.rna_density_window`); with
    ``rna_local`` each pixel's level, and with ``confidence_by_density``
    (the model's table and the slide's transcripts per um^2) its confidence
    threshold, follow the local transcript density (:mod:`~gsn_spatial.core.rna.local`);
    ``map_genes`` (one flag per gene code; all when ``None``) says which
    transcripts enter the RNA map (not the control probes);
    ``tile_size=None`` runs the network on the whole window at once;
    ``decode`` holds :func:`~gsn_spatial.core.decode.cells.decode_cells`'s
    keyword arguments; ``reuse_memory`` is
    :func:`~gsn_spatial.core.network.tiling.predict_maps`'s.
    """

    rna_sigma: float = 1.0
    rna_mode: str = "sum"
    rna_method: str = "exact"
    rna_level: float = 1.0
    rna_local: LocalDensity | None = None
    confidence_by_density: tuple[tuple[tuple[float, float], ...], float] | None = None
    map_genes: np.ndarray | None = None
    tile_size: int | None = 256
    overlap: int = 32
    batch_size: int = 8
    device: torch.device | str = "cpu"
    autocast_dtype: torch.dtype | None = None
    decode: dict[str, Any] = field(default_factory=dict)
    reuse_memory: bool = True


def segment_window(
    image: np.ndarray,
    points_xy: np.ndarray | None,
    window: tuple[int, int, int, int],
    core: tuple[int, int, int, int],
    network: torch.nn.Module,
    options: WindowOptions,
    *,
    rna: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """Cells owned by one block, painted on its window with local ids ``1..n``.

    ``image`` is the normalised float32 window ``window`` of the image,
    ``points_xy`` the transcripts (image pixels) that can reach it. A decoded
    cell is owned when its centre lies in ``core``. ``rna``, the window's RNA
    map computed beforehand, replaces ``points_xy``. Returns the window-sized
    uint32 labels and ``n``.
    """
    o = options
    wy0, wy1, wx0, wx1 = window
    decode = o.decode
    if rna is None:
        level = o.rna_level
        if o.rna_local is not None:
            ratio = density_ratio_window(points_xy, (wy1 - wy0, wx1 - wx0), o.rna_local, origin=(wx0, wy0))
            level = o.rna_level * ratio
            if o.confidence_by_density is not None:
                table, per_um2 = o.confidence_by_density
                threshold = threshold_for_density(table, per_um2 * ratio).astype(np.float32)
                decode = {**decode, "confidence_threshold": threshold}
        rna = rna_density_window(
            points_xy, (wy1 - wy0, wx1 - wx0), origin=(wx0, wy0), sigma=o.rna_sigma, mode=o.rna_mode,
            method=o.rna_method, level=level,
        )  # fmt: skip
    maps = predict_maps(
        network,
        np.stack([image, rna]),
        tile_size=o.tile_size,
        overlap=0 if o.tile_size is None else o.overlap,
        batch_size=o.batch_size,
        device=o.device,
        autocast_dtype=o.autocast_dtype,
        # Zero-padded at the bottom and right to the network's input multiple only (not to a square, nor to a
        # tile), as a pass over the whole image is: the image's edges then look the same in every window and tiling.
        pad_to_tile=False,
        reuse_memory=o.reuse_memory,
    )
    cells, centres = decode_cells(maps, **decode)
    local = np.zeros((wy1 - wy0, wx1 - wx0), dtype=np.uint32)
    if len(centres) == 0:
        return local, 0
    cy, cx = centres[:, 0] + wy0, centres[:, 1] + wx0
    y0, y1, x0, x1 = core
    owned = (cy >= y0) & (cy < y1) & (cx >= x0) & (cx < x1)
    new_ids = np.zeros(len(centres) + 1, dtype=np.uint32)
    new_ids[1:][owned] = np.arange(1, int(owned.sum()) + 1, dtype=np.uint32)
    local[:] = new_ids[cells]
    return local, int(owned.sum())


def compose_core(
    grid: BlockGrid, block: int, window_labels: Callable[[int], np.ndarray], offsets: np.ndarray
) -> np.ndarray:
    """Final uint32 labels of the core of ``block``.

    ``window_labels(b)`` returns block ``b``'s window result (local ids);
    ``offsets[b]`` is the global id offset of block ``b``. Blocks paint in
    block order and the first cell to cover a pixel keeps it.
    """
    y0, y1, x0, x1 = grid.core(block)
    out = np.zeros((y1 - y0, x1 - x0), dtype=np.uint32)
    for nb in grid.neighbours(block):
        wy0, wy1, wx0, wx1 = grid.window(nb)
        oy0, oy1, ox0, ox1 = max(y0, wy0), min(y1, wy1), max(x0, wx0), min(x1, wx1)
        if oy0 >= oy1 or ox0 >= ox1:
            continue
        local = window_labels(nb)[oy0 - wy0 : oy1 - wy0, ox0 - wx0 : ox1 - wx0]
        target = out[oy0 - y0 : oy1 - y0, ox0 - x0 : ox1 - x0]
        free = (target == 0) & (local > 0)
        target[free] = local[free] + np.uint32(offsets[nb])
    return out


def label_stats(labels: np.ndarray, origin: tuple[int, int] = (0, 0)) -> tuple[np.ndarray, ...]:
    """``(ids, area, sum_y, sum_x)`` of the non-zero labels of an array at ``origin`` ``(y0, x0)``.

    Sums of pixel-centre coordinates, so that blocks can be added up and
    divided by the area for centroids.

    Examples
    --------
    >>> ids, area, sy, sx = label_stats(np.array([[0, 2], [2, 2]]), origin=(10, 0))
    >>> ids.tolist(), area.tolist(), (sy / area).tolist(), (sx / area).tolist()
    ([2], [3], [11.166666666666666], [1.1666666666666667])
    >>> label_stats(np.array([[7, 0], [10**9, 7]]))[:2]  # sparse ids take the np.unique path
    (array([         7, 1000000000]), array([2, 1]))
    """
    flat = labels.ravel()
    nz = np.flatnonzero(flat)
    if len(nz) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0), np.zeros(0)
    values = flat[nz].astype(np.int64)
    rows, cols = np.divmod(nz, labels.shape[1])
    lo, hi = int(values.min()), int(values.max())
    if hi - lo < 4 * len(nz) + 1024:
        # A block's ids are a narrow range (offset + local ids): bincount beats np.unique's sort (1.5x for
        # this function, benchmarks/levers.py).
        inverse = values - lo
        area = np.bincount(inverse, minlength=hi - lo + 1)
        present = np.flatnonzero(area)
        ids, area = present + lo, area[present]
        sum_y = np.bincount(inverse, weights=rows + origin[0] + 0.5, minlength=hi - lo + 1)[present]
        sum_x = np.bincount(inverse, weights=cols + origin[1] + 0.5, minlength=hi - lo + 1)[present]
        return ids.astype(np.int64), area.astype(np.int64), sum_y, sum_x
    ids, inverse, area = np.unique(values, return_inverse=True, return_counts=True)  # sparse ids (vendor labels)
    sum_y = np.bincount(inverse, weights=rows + origin[0] + 0.5, minlength=len(ids))
    sum_x = np.bincount(inverse, weights=cols + origin[1] + 0.5, minlength=len(ids))
    return ids.astype(np.int64), area.astype(np.int64), sum_y, sum_x


def segment_array(
    inputs: np.ndarray,
    network: torch.nn.Module,
    *,
    block_size: int,
    halo: int,
    options: WindowOptions | None = None,
) -> np.ndarray:
    """Cells of an image held in memory, by the blocks, windows and stitching of a whole-slide run.

    The same :func:`segment_window` and :func:`compose_core` as
    :func:`gsn_spatial.core.slide.steps.segment_slide` (what ``gsn.tl.segment``
    runs), so what training predicts on its image is what users get.
    ``inputs`` is the ``(2, h, w)`` ``[image, rna_density]`` (the RNA map of
    a window does not depend on the window it is computed in, so computing it
    once for the image gives the windows' maps, and ``options.rna_*`` are not
    used). Returns uint32 labels with ids in block order.

    Examples
    --------
    >>> from gsn_spatial.core.network.unet import NetworkConfig
    >>> net = GeneSegNet(NetworkConfig(widths=(8, 8, 8, 8, 8)))
    >>> opts = WindowOptions(tile_size=None)
    >>> segment_array(np.zeros((2, 64, 80), np.float32), net, block_size=32, halo=8, options=opts).shape
    (64, 80)
    """
    shape = tuple(inputs.shape[1:])
    grid = BlockGrid(shape, block_size, halo)
    options = options or WindowOptions()
    windows, counts = [], []
    with keep_freed_memory() if options.reuse_memory else contextlib.nullcontext():
        for b in range(grid.n_blocks):
            y0, y1, x0, x1 = win = grid.window(b)
            local, n = segment_window(
                inputs[0, y0:y1, x0:x1], None, win, grid.core(b), network, options, rna=inputs[1, y0:y1, x0:x1]
            )
            windows.append(local)
            counts.append(n)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    out = np.zeros(shape, dtype=np.uint32)
    for b in range(grid.n_blocks):
        y0, y1, x0, x1 = grid.core(b)
        out[y0:y1, x0:x1] = compose_core(grid, b, windows.__getitem__, offsets)
    return out
