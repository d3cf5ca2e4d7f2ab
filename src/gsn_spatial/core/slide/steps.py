"""Out-of-core segmentation and transcript assignment of a whole slide (array level, no SpatialData).

A run lives in a *work directory* and goes through four steps, each a set of
independent tasks that read and write only their own part of that directory:

1. **bin** (one task per partition of the transcripts): map to pixels and write
   the partition's transcripts as a sorted run keyed by block
   (:class:`~gsn_spatial.core.slide.runs.SortedRuns`): one pass over the points.
2. **segment** (one task per block): read the block's window of the image and
   the transcripts of the nine bins around it, run the network tile by tile,
   decode and keep the cells whose centre is in the core
   (:func:`~gsn_spatial.core.slide.blocks.segment_window`); the window's local
   labels and the cell count go to a zarr array.
3. **compose** (one task per block): paint the core's final labels from the
   windows around it (:func:`~gsn_spatial.core.slide.blocks.compose_core`), write
   them as one chunk of the output labels and save the cells' area and
   coordinate sums.
4. **assign** (one task per block): look the transcripts of the core up in the
   core's labels; write the cell of each transcript keyed by its partition and
   the (cell, gene) counts keyed by a range of cell ids.

Memory is bounded by one window (image, RNA map, network maps) plus one
partition, whatever the slide size. A task whose output is on disk is not run
again when a run is resumed, and as tasks only depend on files, they run the
same in this process or on a ``dask.distributed`` cluster sharing the
directory. Results do not depend on the order tasks ran in.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from gsn_spatial.core.assign.counts import lookup_cells
from gsn_spatial.core.assign.expression import ExpressionProfiles, reassign_by_expression
from gsn_spatial.core.network.memory import keep_freed_memory
from gsn_spatial.core.slide.blocks import WindowOptions, compose_core, label_stats, segment_window
from gsn_spatial.core.slide.runner import run_tasks
from gsn_spatial.core.slide.workdir import (
    ASSIGN_RECORD,
    COUNT_RECORD,
    POINT_RECORD,
    PartitionSource,
    WindowSource,
    WorkDir,
    ZarrWindows,
    default_buckets,
)


def bin_partition(work: WorkDir, partition: int, source: PartitionSource) -> tuple[int, int]:
    """Step 1 for one partition; returns its number of transcripts and how many fall inside the image."""
    run = f"p{partition}"
    if work.points.has(run):
        n, inside = np.load(work.points.directory / f"{run}.length.npy")
        return int(n), int(inside)
    xy, genes = source(partition)
    n = len(xy)
    # A transcript with no gene (code -1: a missing name) is left out of the map, the assignment and the counts
    # (its cell stays 0): as a column index, -1 would corrupt the count matrix.
    named = genes >= 0
    rows = np.flatnonzero(named)
    xy, genes = xy[named], genes[named]
    h, w = work.grid.shape
    inside = int(np.count_nonzero((xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)))
    records = np.empty(len(xy), dtype=POINT_RECORD)
    records["x"], records["y"], records["gene"] = xy[:, 0], xy[:, 1], genes
    records["part"], records["row"] = partition, rows
    np.save(work.points.directory / f"{run}.length.npy", np.array([n, inside], dtype=np.int64))
    work.points.write(run, work.grid.point_keys(xy), records)
    return n, inside


def segment_block(
    work: WorkDir, block: int, image: WindowSource, network: Any, options: WindowOptions, threads: int | None = None
) -> int:
    """Step 2 for one block; returns its number of owned cells."""
    n_cells = work.array("n_cells")
    done = int(n_cells[block])
    if done >= 0:
        return done
    if threads:
        import torch

        torch.set_num_threads(threads)
    g = work.grid
    window = g.window(block)
    near = np.concatenate([work.points.read(k0, k1) for k0, k1 in g.neighbourhood_key_ranges(block)])
    if options.map_genes is not None:
        near = near[options.map_genes[near["gene"]]]
    xy = np.stack([near["x"], near["y"]], axis=1)
    local, n = segment_window(image(*window), xy, window, g.core(block), network, options)
    work.array("windows")[block, : local.shape[0], : local.shape[1]] = local
    n_cells[block] = n  # written last: the block's result is complete
    return n


def compose_block(work: WorkDir, block: int, offsets: np.ndarray) -> None:
    """Step 3 for one block: the core's final labels and its cells' area and coordinate sums."""
    if work.is_done("compose", block):
        return
    g = work.grid
    windows = work.array("windows", mode="r")

    def window_labels(b: int) -> np.ndarray:
        y0, y1, x0, x1 = g.window(b)
        return windows[b, : y1 - y0, : x1 - x0]

    core = compose_core(g, block, window_labels, offsets)
    y0, y1, x0, x1 = g.core(block)
    work.array("labels")[y0:y1, x0:x1] = core
    ids, area, sum_y, sum_x = label_stats(core, origin=(y0, x0))
    np.savez(work.stats_path(block), ids=ids, area=area, sum_y=sum_y, sum_x=sum_x)
    work.mark("compose", block)


def assign_block(
    work: WorkDir, block: int, labels: WindowSource, bucket_edges: np.ndarray, reassign: Reassignment | None = None
) -> None:
    """Step 4 for one block: the cell of each transcript in the core, and (cell, gene) counts.

    ``bucket_edges`` (sorted, first entry 1) cut the cell ids into ranges; the
    counts of a cell go to the run key of its range, so that the count matrix
    can be built range by range. With ``reassign``, transcripts near cell
    boundaries are assigned by expression
    (:func:`~gsn_spatial.core.assign.expression.reassign_by_expression`), from the core's
    labels and a halo of ``reassign.radius`` around them.
    """
    run = f"b{block}"
    counts_runs = work.counts_runs(len(bucket_edges))
    if work.assign.has(run) and counts_runs.has(run):
        return
    g = work.grid
    y0, y1, x0, x1 = g.core(block)
    pts = work.points.read(g.core_key(block))
    if reassign is None:
        xy = np.stack([pts["x"] - x0, pts["y"] - y0], axis=1)
        cell = lookup_cells(np.asarray(labels(y0, y1, x0, x1)), xy).astype(np.uint32)
    else:
        halo = int(np.ceil(reassign.radius)) + 1
        wy0, wx0 = max(0, y0 - halo), max(0, x0 - halo)
        wy1, wx1 = min(g.shape[0], y1 + halo), min(g.shape[1], x1 + halo)
        xy = np.stack([pts["x"] - wx0, pts["y"] - wy0], axis=1)
        window = np.asarray(labels(wy0, wy1, wx0, wx1))
        cell = reassign_by_expression(
            window, xy, pts["gene"], reassign.profiles, radius=reassign.radius, length=reassign.length
        ).astype(np.uint32)
    hit = cell > 0
    rec = np.empty(int(hit.sum()), dtype=ASSIGN_RECORD)
    rec["row"], rec["cell"] = pts["row"][hit], cell[hit]
    work.assign.write(run, pts["part"][hit], rec)
    # Counts per (cell, gene) within the core; a cell cut by cores gets one record per core.
    key = cell[hit].astype(np.int64) << 32 | pts["gene"][hit].astype(np.int64)
    uniq, n = np.unique(key, return_counts=True)
    counts = np.empty(len(uniq), dtype=COUNT_RECORD)
    counts["cell"], counts["gene"], counts["count"] = uniq >> 32, uniq & 0xFFFFFFFF, n
    buckets = np.searchsorted(bucket_edges, counts["cell"], side="right") - 1
    counts_runs.write(run, buckets, counts)


def sample_transcripts(work: WorkDir, *, max_blocks: int = 16, genes: np.ndarray | None = None) -> np.ndarray:
    """``(n, 2)`` pixel positions of the transcripts in up to ``max_blocks`` cores, spread over the slide.

    The cores are chosen evenly, in block order, among those that hold
    transcripts (known from the binned runs without reading them), so a slide
    with large empty areas is still sampled where its tissue is. ``genes``
    (one flag per gene code) keeps only those genes' transcripts.
    """
    keys, counts = _core_keys_and_counts(work)
    occupied = keys[counts > 0]
    if not len(occupied):
        return np.zeros((0, 2))
    chosen = occupied[np.unique(np.linspace(0, len(occupied) - 1, min(max_blocks, len(occupied))).round().astype(int))]
    rec = _read_keys(work, chosen, genes)
    return np.stack([rec["x"], rec["y"]], axis=1)


def densest_core(work: WorkDir, *, genes: np.ndarray | None = None) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """The core ``(y0, y1, x0, x1)`` that holds the most transcripts, and their ``(n, 2)`` pixel positions in it.

    ``genes`` (one flag per gene code) keeps only those genes' transcripts.
    """
    keys, counts = _core_keys_and_counts(work)
    block = int(np.argmax(counts))
    rec = _read_keys(work, keys[block : block + 1], genes)
    y0, y1, x0, x1 = work.grid.core(block)
    return (y0, y1, x0, x1), np.stack([rec["x"] - x0, rec["y"] - y0], axis=1)


def _core_keys_and_counts(work: WorkDir) -> tuple[np.ndarray, np.ndarray]:
    """Each block's core key and its number of binned transcripts, known without reading them."""
    g = work.grid
    keys = np.array([g.core_key(b) for b in range(g.n_blocks)])
    return keys, work.points.key_counts()[keys]


def _read_keys(work: WorkDir, keys: np.ndarray, genes: np.ndarray | None) -> np.ndarray:
    """The binned records of ``keys``, only those of the flagged ``genes`` where given."""
    rec = np.concatenate([work.points.read(int(k)) for k in keys])
    return rec if genes is None else rec[genes[rec["gene"]]]


def cell_table_arrays(work: WorkDir) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(cell_ids, area, centroid_yx)`` of every cell in the composed labels, ids sorted."""
    ids, area, sy, sx = [], [], [], []
    for b in range(work.grid.n_blocks):
        s = np.load(work.stats_path(b))
        ids.append(s["ids"])
        area.append(s["area"])
        sy.append(s["sum_y"])
        sx.append(s["sum_x"])
    return reduce_stats(np.concatenate(ids), np.concatenate(area), np.concatenate(sy), np.concatenate(sx))


def reduce_stats(ids: np.ndarray, area: np.ndarray, sum_y: np.ndarray, sum_x: np.ndarray) -> tuple[np.ndarray, ...]:
    """Add up per-chunk label statistics of the same ids: ``(ids, area, centroid_yx)``."""
    cell_ids, inverse = np.unique(ids, return_inverse=True)
    tot_area = np.bincount(inverse, weights=area, minlength=len(cell_ids))
    cy = np.bincount(inverse, weights=sum_y, minlength=len(cell_ids)) / np.maximum(tot_area, 1)
    cx = np.bincount(inverse, weights=sum_x, minlength=len(cell_ids)) / np.maximum(tot_area, 1)
    return cell_ids, tot_area.astype(np.int64), np.stack([cy, cx], axis=1)


def count_matrix_from_runs(
    work: WorkDir, cell_ids: np.ndarray, bucket_edges: np.ndarray, n_genes: int
) -> sp.csr_matrix:
    """``len(cell_ids) x n_genes`` CSR counts, built one range of cell ids at a time."""
    runs = work.counts_runs(len(bucket_edges))
    indices, data, rows = [], [], []
    for k in range(len(bucket_edges)):
        rec = runs.read(k)
        if not len(rec):
            continue
        key = rec["cell"].astype(np.int64) << 32 | rec["gene"].astype(np.int64)
        uniq, inverse = np.unique(key, return_inverse=True)  # sorted by cell then gene: CSR order
        total = np.bincount(inverse, weights=rec["count"], minlength=len(uniq))
        indices.append((uniq & 0xFFFFFFFF).astype(np.int32))
        data.append(total.astype(np.int32))
        rows.append(np.searchsorted(cell_ids, uniq >> 32))
    if not rows:
        return sp.csr_matrix((len(cell_ids), n_genes), dtype=np.int32)
    row = np.concatenate(rows)
    if row.max(initial=0) >= len(cell_ids):
        raise RuntimeError("A transcript was assigned to a cell missing from the labels' statistics.")
    indptr = np.concatenate([[0], np.cumsum(np.bincount(row, minlength=len(cell_ids)))])
    return sp.csr_matrix((np.concatenate(data), np.concatenate(indices), indptr), shape=(len(cell_ids), n_genes))


def partition_cells(work: WorkDir, partition: int, length: int) -> np.ndarray:
    """Cell id (0 = none) of every transcript of one partition, in the partition's order."""
    out = np.zeros(length, dtype=np.uint32)
    rec = work.assign.read(partition)
    out[rec["row"]] = rec["cell"]
    return out


def segment_slide(
    work: WorkDir,
    *,
    image: WindowSource,
    points: PartitionSource,
    network: Any,
    options: WindowOptions,
    client: Any | None = None,
    network_on_client: bool = True,
    progress: Callable[[str], Callable[[Iterable], Iterable] | None] | None = None,
    on_binned: Callable[[list[int], int], dict[str, Any] | None] | None = None,
) -> tuple[list[int], np.ndarray]:
    """Steps 1-4 of a segmentation run; returns the partition lengths and the cell id range edges.

    ``progress(step)`` gives a progress wrapper per step. ``network_on_client``
    false keeps step 2 in this process (the process that holds the GPU) while
    the other steps use the cluster. ``on_binned(lengths, n_inside)`` is
    called after step 1 with the partition lengths and the number of
    transcripts inside the image (input checks); what it returns updates
    ``options`` (settings that need the binned transcripts, such as the RNA
    map's level).
    """
    bar = progress or (lambda step: None)
    g = work.grid
    binned = run_tasks(bin_partition, work, range(points.n_partitions), points, client=client, progress=bar("bin"))
    lengths = [n for n, _ in binned]
    if on_binned:
        options = dataclasses.replace(options, **(on_binned(lengths, sum(inside for _, inside in binned)) or {}))
    seg_client = client if network_on_client else None
    threads = None
    if seg_client is not None:
        image = seg_client.scatter(image, broadcast=True)
        network = seg_client.scatter(network, broadcast=True)
        threads = 1  # one torch thread per worker thread: workers x threads = the cores they were given
    # In this process each block's network pass reuses the previous one's freed memory (activations of the same
    # sizes) instead of page-faulting it anew: one trim after the step. A cluster's worker trims after each pass.
    with keep_freed_memory() if seg_client is None and options.reuse_memory else contextlib.nullcontext():
        n_cells = run_tasks(
            segment_block, work, range(g.n_blocks), image, network, options, threads, client=seg_client,
            progress=bar("segment"),
        )  # fmt: skip
    offsets = np.concatenate([[0], np.cumsum(n_cells)]).astype(np.int64)
    run_tasks(compose_block, work, range(g.n_blocks), offsets, client=client, progress=bar("stitch"))
    edges = offsets[:-1] + 1  # cells of block b have ids offsets[b] + 1 .. offsets[b + 1]
    labels = ZarrWindows(work.path / "labels.zarr")
    run_tasks(assign_block, work, range(g.n_blocks), labels, edges, client=client, progress=bar("assign"))
    return lengths, edges


@dataclass(frozen=True)
class Reassignment:
    """Settings of the expression-aware assignment pass, in pixels of the labels it runs on."""

    profiles: ExpressionProfiles
    radius: float
    length: float


def reassign_slide(
    work: WorkDir,
    *,
    labels: WindowSource,
    cell_ids: np.ndarray,
    counts: sp.csr_matrix,
    bucket_edges: np.ndarray,
    radius: float,
    length: float,
    client: Any | None = None,
    progress: Callable[[str], Callable[[Iterable], Iterable] | None] | None = None,
) -> tuple[WorkDir, sp.csr_matrix]:
    """The expression-aware assignment pass over every block, after a mask assignment gave ``counts``.

    Writes the pass's assignment and counts as the stage ``"expression"`` of
    ``work`` (the mask assignment stays); returns that stage's view and its
    count matrix (rows ``cell_ids``, as ``counts``).
    """
    bar = progress or (lambda step: None)
    staged = work.staged("expression")
    settings = Reassignment(ExpressionProfiles.from_counts(cell_ids, counts), float(radius), float(length))
    if client is not None:
        labels = client.scatter(labels, broadcast=True)
        settings = client.scatter(settings, broadcast=True)
    run_tasks(
        assign_block, staged, range(work.grid.n_blocks), labels, bucket_edges, settings, client=client,
        progress=bar("reassign"),
    )  # fmt: skip
    return staged, count_matrix_from_runs(staged, cell_ids, bucket_edges, counts.shape[1])


def stats_block(work: WorkDir, block: int, labels: WindowSource) -> None:
    """Area and coordinate sums of the cells in the core of ``block`` of an existing labels array."""
    if work.is_done("stats", block):
        return
    y0, y1, x0, x1 = work.grid.core(block)
    ids, area, sum_y, sum_x = label_stats(np.asarray(labels(y0, y1, x0, x1)), origin=(y0, x0))
    np.savez(work.stats_path(block), ids=ids, area=area, sum_y=sum_y, sum_x=sum_x)
    work.mark("stats", block)


def assign_slide(
    work: WorkDir,
    *,
    labels: WindowSource,
    points: PartitionSource,
    client: Any | None = None,
    progress: Callable[[str], Callable[[Iterable], Iterable] | None] | None = None,
) -> tuple[list[int], np.ndarray]:
    """Transcript assignment to existing labels: bin, label statistics, assign.

    Returns the partition lengths and the cell id range edges.
    """
    bar = progress or (lambda step: None)
    g = work.grid
    binned = run_tasks(bin_partition, work, range(points.n_partitions), points, client=client, progress=bar("bin"))
    lengths = [n for n, _ in binned]
    if client is not None:
        labels = client.scatter(labels, broadcast=True)
    run_tasks(stats_block, work, range(g.n_blocks), labels, client=client, progress=bar("cells"))
    max_id = max((int(np.load(work.stats_path(b))["ids"].max(initial=0)) for b in range(g.n_blocks)), default=0)
    edges = default_buckets(max_id, g.n_blocks)
    run_tasks(assign_block, work, range(g.n_blocks), labels, edges, client=client, progress=bar("assign"))
    return lengths, edges
