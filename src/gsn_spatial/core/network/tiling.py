"""Overlapping-tile inference with seam-free blending (array level).

Near a window's edge the network lacks context, and this U-Net's outputs
keep changing with context up to ~120 px away (``python benchmarks/seams.py
--context``: in float32 the confidence in a block's core differs from the
whole image's by up to 0.06-0.11 with 64 px of context around the core,
0.006-0.013 with 96 px, 3e-4 with 128 px; 99 % of the gradient of an output
pixel lies within 93-116 px). Hence:

- a window's blending weight is zero over the outer 3/8 of its overlap with
  each neighbour and ramps to one over the middle quarter, so each pixel comes
  from the window in which it has the most context, and two windows are only
  mixed where both have at least 3/8 of the overlap;
- windows are spread evenly (as few as keep each overlap at least
  ``overlap``, the spare length shared out), so the overlaps are as large as
  that many windows allow;
- the array's own edges are not tapered (no other window covers them);
- windows start at multiples of ``GeneSegNet.INPUT_MULTIPLE`` (its four
  poolings make the network shift-equivariant only for such shifts), and an
  array is zero-padded at the bottom and right to such a multiple, as one pass
  over the whole image pads it (``pad_to_tile=False``: also where the array is
  smaller than a tile): tiled and one-pass maps then agree wherever the tiles
  give enough context (``tests/test_seams.py``).

A 256 px tile can lend at most 128 px of context: with the default overlap
(112, spread to 128 px) 256 px tiles cost 3x the network work of one pass and
give the same cells as one pass for >= 99 % of cells; one pass per block
window (``segment``'s default) has no tile seams at all.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from gsn_spatial._constants import Defaults
from gsn_spatial.core.network.memory import keep_freed_memory, network_allocations
from gsn_spatial.core.network.unet import GeneSegNet


def tile_starts(length: int, tile: int, overlap: int, *, align: int = 1) -> list[int]:
    """Start offsets of windows of size ``tile`` covering ``[0, length)``, spread evenly.

    As few windows as keep every overlap at least ``overlap``, with the spare
    length shared out, so that the overlaps (the context each window adds to
    its neighbours) are as large as that number of windows allows. Starts are
    multiples of ``align`` (``length - tile`` must be one); the stride is at
    least ``align``.

    Examples
    --------
    >>> tile_starts(600, 256, 64)
    [0, 172, 344]
    >>> tile_starts(1024, 256, 112, align=16)  # overlaps of 128, not 112
    [0, 128, 256, 384, 512, 640, 768]
    """
    if overlap < 0 or overlap >= tile:
        raise ValueError(f"`overlap` must be in [0, tile_size), got {overlap} for tile_size={tile}.")
    if length <= tile:
        return [0]
    span = length - tile
    if span % align:
        raise ValueError(f"`length` - `tile` = {span} is not a multiple of `align`={align}.")
    units, step = span // align, max(1, (tile - overlap) // align)
    gaps = -(-units // step)
    return [align * (units * i // gaps) for i in range(gaps + 1)]


def edge_ramp(tile: int, overlap: int) -> np.ndarray:
    """1-D blending weight against the distance ``d`` from an edge shared with a window overlapping by ``overlap``.

    Zero over the outer 3/8 of the overlap (where the network has the least
    context), then a linear ramp to one over the middle quarter: two windows
    cross-fade there, and every pixel is taken from the window in which it
    has the most context.

    Examples
    --------
    >>> edge_ramp(12, 8).tolist()
    [0.0, 0.0, 0.0, 0.25, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    """
    margin = 3 * overlap // 8
    ramp = overlap - 2 * margin
    if ramp == 0:
        return np.ones(tile, dtype=np.float32)
    d = np.arange(tile, dtype=np.float32)
    return np.clip((d - margin + 0.5) / ramp, 0.0, 1.0).astype(np.float32)


def taper(tile: int, before: int, after: int) -> np.ndarray:
    """1-D weights of a window that overlaps the previous window by ``before`` and the next by ``after`` pixels.

    0 means no neighbour on that side (an edge of the array, not tapered:
    nothing else predicts it).

    Examples
    --------
    >>> taper(8, 0, 4).tolist()
    [1.0, 1.0, 1.0, 1.0, 1.0, 0.75, 0.25, 0.0]
    """
    w = np.ones(tile, dtype=np.float32)
    if before:
        w = np.minimum(w, edge_ramp(tile, before))
    if after:
        w = np.minimum(w, edge_ramp(tile, after)[::-1])
    return w


def axis_weights(starts: list[int], tile: int) -> list[np.ndarray]:
    """The :func:`taper` of each window along one axis, from its actual overlaps with its neighbours."""
    return [
        taper(
            tile,
            starts[i - 1] + tile - s if i > 0 else 0,
            s + tile - starts[i + 1] if i + 1 < len(starts) else 0,
        )
        for i, s in enumerate(starts)
    ]


def predict_maps(
    network: GeneSegNet,
    inputs: np.ndarray,
    *,
    tile_size: int | None = Defaults.TILE_SIZE,
    overlap: int = Defaults.TILE_OVERLAP,
    batch_size: int = 8,
    device: torch.device | str = "cpu",
    autocast_dtype: torch.dtype | None = None,
    pad_to_tile: bool = True,
    reuse_memory: bool = True,
) -> np.ndarray:
    """Blended network maps ``(4, h, w)``: confidence, centre, dy, dx.

    ``inputs`` is the ``(2, h, w)`` float32 ``[image, rna_density]``.
    ``tile_size=None``: one pass over the whole array (padded to a multiple of
    ``GeneSegNet.INPUT_MULTIPLE``). Along an axis where the array is smaller
    than a tile, it is zero-padded to the tile (one input shape, for compiled
    networks) or, with ``pad_to_tile=False``, only to the input multiple, as
    in one pass: the network's outputs near the array's bottom and right
    edges depend on how much zero padding lies beyond them.
    ``reuse_memory``: the passes' activations reuse the C heap's freed memory
    instead of page-faulting fresh pages (:mod:`gsn_spatial.core.network.memory`;
    faster, and the heap then holds about 1 GB more at its peak).
    """
    m = GeneSegNet.INPUT_MULTIPLE
    if tile_size is not None and tile_size % m:
        raise ValueError(f"`tile_size` must be a multiple of {m}, got {tile_size}.")
    if tile_size is not None and not 0 <= overlap < tile_size:
        raise ValueError(f"`overlap` must be in [0, tile_size), got {overlap} for tile_size={tile_size}.")
    _, h, w = inputs.shape
    ph, pw = -(-h // m) * m, -(-w // m) * m
    if tile_size is None:
        tile_h, tile_w = ph, pw
    elif pad_to_tile:
        ph, pw = max(ph, tile_size), max(pw, tile_size)
        tile_h = tile_w = tile_size
    else:
        tile_h, tile_w = min(ph, tile_size), min(pw, tile_size)
    if (ph, pw) != (h, w):
        inputs = np.pad(inputs, ((0, 0), (0, ph - h), (0, pw - w)))
    device = torch.device(device)
    network.eval()
    # Channels-last is what oneDNN's and cuDNN's fast convolution kernels want: measured 2.3-2.8x faster
    # with bf16 on the 2-core CPU (benchmarks/speed.py). Converting a network already in that layout is free.
    network.to(memory_format=torch.channels_last)

    def run(batch: list[tuple[int, int]]) -> np.ndarray:
        x = np.stack([inputs[:, y : y + tile_h, x0 : x0 + tile_w] for y, x0 in batch])
        xt = torch.from_numpy(np.ascontiguousarray(x)).to(device).contiguous(memory_format=torch.channels_last)
        with (
            torch.inference_mode(),
            torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None),
        ):
            with network_allocations() if reuse_memory else contextlib.nullcontext():
                out = network.predict(xt)
            return out.float().cpu().numpy()

    # Each pass's activations reuse the previous pass's freed memory instead of page-faulting it anew (and those
    # of earlier calls inside a keep_freed_memory block, such as a run's segment step).
    with keep_freed_memory() if reuse_memory else contextlib.nullcontext():
        if (tile_h, tile_w) == (ph, pw):  # one tile (a whole block window): nothing to blend
            return run([(0, 0)])[0][:, :h, :w]
        # An axis shorter than a tile (pad_to_tile=False) has one window along it, whatever the overlap.
        ys = tile_starts(ph, tile_h, min(overlap, tile_h - 1), align=m)
        xs = tile_starts(pw, tile_w, min(overlap, tile_w - 1), align=m)
        wy, wx = (
            dict(zip(ys, axis_weights(ys, tile_h), strict=True)),
            dict(zip(xs, axis_weights(xs, tile_w), strict=True)),
        )
        corners = [(y, x) for y in ys for x in xs]
        acc = np.zeros((4, ph, pw), dtype=np.float32)
        norm = np.zeros((ph, pw), dtype=np.float32)
        for i in range(0, len(corners), batch_size):
            batch = corners[i : i + batch_size]
            for (y, x0), o in zip(batch, run(batch), strict=True):
                weight = np.outer(wy[y], wx[x0])
                acc[:, y : y + tile_h, x0 : x0 + tile_w] += o * weight
                norm[y : y + tile_h, x0 : x0 + tile_w] += weight
        acc /= norm
        return acc[:, :h, :w]
