# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Scaling out: a slide in a zarr store, segmented on a dask cluster
#
# Whole slides are segmented the same way as crops: `gsn.tl.segment` never holds the slide in
# memory. It bins the transcripts to blocks in one pass over their partitions, segments each block
# from a window with a halo, stitches cells by the block that holds their centre and writes the
# labels chunk by chunk into the store. When a `dask.distributed` client is active, the blocks run
# on its workers; nothing else changes, and the result is the same cell for cell.
#
# This tutorial uses a small slide so that it runs in a minute on a laptop; the same code runs a
# 16k x 16k slide (see the scale benchmark in the docs). Outputs go to `tutorial_output/`
# (set `GSN_TUTORIAL_OUTPUT`), figures to `figures/`.

# %%
import os
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import spatialdata as sd
from distributed import Client, LocalCluster

import gsn_spatial as gsn

OUTPUT = Path(os.environ.get("GSN_TUTORIAL_OUTPUT", "tutorial_output"))
FIGURES = Path(os.environ.get("GSN_TUTORIAL_FIGURES", "figures"))
OUTPUT.mkdir(parents=True, exist_ok=True)
FIGURES.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## A slide on disk
#
# {func}`gsn_spatial.datasets.write_synthetic_slide` writes a synthetic slide straight into a zarr
# store, tile by tile, so it can make slides far larger than memory. Here: 1536 x 1536 pixels.

# %%
store = OUTPUT / "slide.zarr"
if store.exists():
    shutil.rmtree(store)
gsn.datasets.write_synthetic_slide(store, (1536, 1536), tile_size=768, seed=3)
sdata = sd.read_zarr(store)
print(sdata)

# %% [markdown]
# ## Segment on a local cluster
#
# Start a cluster the way you normally would. Here: two workers with one thread each, in this
# process (`processes=False`) so that the tutorial also runs as a plain script; with worker
# processes (the default), a script needs the usual `if __name__ == "__main__":` guard. On a
# cluster scheduler use `dask_jobqueue` or a `Client` connected to the scheduler's address.
# `gsn` never creates one itself: it uses the client that is active. Intermediate files go to
# `gsn.settings.work_dir` (the system's temporary directory by default), which on a multi-machine
# cluster must be a directory all workers share.

# %%
with (
    LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster,
    Client(cluster),
):
    gsn.tl.segment(sdata, image_key="dapi", points_key="transcripts", block_size=512)

table = sdata.tables["gsn_table"]
print(table.n_obs, "cells;", "ran on the cluster:", table.uns["gsn"]["params"]["distributed"])
print(sdata.labels["gsn_labels"].data.chunks)  # one chunk per block, read lazily from the store

# %% [markdown]
# The labels were written into the store chunk by chunk and are read back lazily from it;
# `spatialdata.read_zarr` sees the new elements:

# %%
back = sd.read_zarr(store)
print(sorted(back.labels), sorted(back.tables), sorted(back.points))

# %% [markdown]
# ## The same cells as a local run
#
# Each block is segmented from its own window and every cell is owned by the block that holds its
# centre, so where a block ran does not change the result. A local run on a copy of the elements:

# %%
local = sd.SpatialData(images=dict(sdata.images), points={"transcripts": sdata.points["transcripts"]})
gsn.tl.segment(local, image_key="dapi", points_key="transcripts", block_size=512)
same = np.array_equal(local.labels["gsn_labels"].values, sdata.labels["gsn_labels"].values)
print("identical labels:", same)
print(gsn.qc.match_reference(sdata, labels_key="gsn_labels", reference_key="cells"))

# %% [markdown]
# Cells are stitched across block seams, not cut by them: the figure shows the blocks' cores
# (dashed) over the cells, coloured by id.
#
# ![Cells across block seams](figures/dask_blocks.png)

# %%
labels = sdata.labels["gsn_labels"].values
rng = np.random.default_rng(0)
colours = rng.random((int(labels.max()) + 1, 3))
colours[0] = 0
fig, ax = plt.subplots(figsize=(7, 7))
ax.imshow(colours[labels][256:1280, 256:1280], extent=(256, 1280, 1280, 256), interpolation="nearest")
for edge in (512, 1024):
    ax.axhline(edge, color="white", ls="--", lw=1)
    ax.axvline(edge, color="white", ls="--", lw=1)
ax.set_title("GeneSegNet cells across block seams (dashed)")
ax.set_axis_off()
fig.savefig(FIGURES / "dask_blocks.png", dpi=80, bbox_inches="tight")

# %% [markdown]
# ## Resuming an interrupted run
#
# A run keeps its finished blocks in its work directory until it succeeds. If a job is killed
# (a pre-empted node, a time limit), run the same call again with `recover=True` and only the
# missing blocks are computed; the result is identical to an uninterrupted run
# (`tests/test_scale.py` kills a run midway and checks this).
#
# ```python
# gsn.tl.segment(sdata, image_key="dapi", points_key="transcripts", recover=True)
# ```
#
# From a shell or a pipeline, the same is `gsn segment slide.zarr --image-key dapi --points-key
# transcripts`.
