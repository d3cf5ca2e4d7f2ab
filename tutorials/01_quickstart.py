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
# # Quick start: a simulated tissue
#
# This tutorial runs the whole method on a tissue simulated by the package, whose true cells are
# known by construction: segment, look at what was written where, score against the truth and
# against image-only baselines, and cluster the cells with scanpy.
#
# It runs in well under a minute on a laptop CPU. Figures are saved to `figures/` (set
# `GSN_TUTORIAL_FIGURES` to change that).

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import scanpy as sc

import gsn_spatial as gsn

FIGURES = Path(os.environ.get("GSN_TUTORIAL_FIGURES", "figures"))
pd.set_option("display.width", 200)
pd.set_option("display.max_columns", 20)
FIGURES.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## The input: an image and transcripts in SpatialData
#
# {func}`gsn_spatial.datasets.synthetic_tissue` returns a SpatialData object shaped like what
# spatialdata-io makes of a Xenium run: a DAPI image `"dapi"` whose pixel grid is the coordinate
# system `"global"`, and transcripts `"transcripts"` whose `x`, `y` are in microns and map onto the
# grid by a scale and a translation. The simulator also gives the truth: labels `"cells"` and
# `"nuclei"`.

# %%
sdata = gsn.datasets.synthetic_tissue((384, 384), seed=7)
print(sdata)
print(sdata.points["transcripts"].head())

# %% [markdown]
# ## Segment
#
# {func}`gsn_spatial.tl.segment` aligns the transcripts to the image's pixel grid through the
# transformations, builds the RNA location map, runs the network over overlapping tiles and decodes
# cells. It adds three elements (and would write them to the zarr store if `sdata` were backed by
# one):
#
# - labels `gsn_labels`: the cells, on the image's grid with its transformations;
# - table `gsn_table`: cells x genes counts annotating `gsn_labels`;
# - points `gsn_transcripts`: the transcripts with their `cell_id` (0 = unassigned).

# %%
gsn.tl.segment(sdata)
table = sdata.tables["gsn_table"]
print(table)
print(table.obs.head())

# %% [markdown]
# ## Score against the truth and image-only baselines
#
# Two baselines that see only the nucleus stain: the paper's watershed on DAPI, and nuclei expanded
# by 3 microns as vendors approximate cells. {func}`gsn_spatial.qc.compare` puts several
# segmentations side by side, one row each, ranked by F1 at IoU 0.5 against the reference.

# %%
gsn.tl.watershed(sdata, image_key="dapi", labels_key_added="watershed")
gsn.tl.expand_nuclei(sdata, labels_key="watershed", distance_um=3.0, labels_key_added="expanded")
scores = gsn.qc.compare(
    sdata, labels_keys=["gsn_labels", "watershed", "expanded"], reference_key="cells", points_key="transcripts"
)
print(scores[["n_cells", "f1_iou50", "f1_iou75", "mean_matched_iou", "fraction_assigned"]].round(3))

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 5.5))
window = (0, 192, 0, 192)
gsn.pl.segmentation_overlay(
    sdata, labels_key="gsn_labels", reference_key="cells", points_key="transcripts", window=window, ax=axes[0],
    point_size=3, title="GeneSegNet (red) vs truth (cyan)",
)  # fmt: skip
gsn.pl.segmentation_overlay(
    sdata, labels_key="expanded", reference_key="cells", window=window, ax=axes[1],
    title="nucleus expansion (red) vs truth (cyan)",
)  # fmt: skip
fig.tight_layout()
fig.savefig(FIGURES / "quickstart_overlay.png", dpi=90)

# %% [markdown]
# ![GeneSegNet and nucleus expansion against the true cells](figures/quickstart_overlay.png)
#
# ## Cluster the cells with scanpy
#
# `gsn_table` is an ordinary AnnData: raw integer counts in `X`, per-cell values in `obs`, centroids
# in `obsm["spatial"]` (pixels of the labels' grid). The simulator has five cell types.

# %%
adata = table.copy()
adata = adata[adata.obs["n_transcripts"] >= 10].copy()
sc.pp.normalize_total(adata)
sc.pp.log1p(adata)
sc.pp.pca(adata, n_comps=15)
sc.pp.neighbors(adata, n_neighbors=15)
sc.tl.leiden(adata, resolution=0.3, flavor="igraph", n_iterations=2, directed=False, random_state=0)
print(adata.obs["leiden"].value_counts())

# %% [markdown]
# Colour each cell of `gsn_labels` by its cluster: a lookup from label id to cluster.

# %%
labels = np.asarray(sdata.labels["gsn_labels"].data)
lut = np.full(labels.max() + 1, -1)
lut[adata.obs["cell_id"].to_numpy(dtype=int)] = adata.obs["leiden"].cat.codes.to_numpy()
clusters = np.ma.masked_less(lut[labels], 0)
fig, ax = plt.subplots(figsize=(5.5, 5.5))
ax.imshow(np.asarray(sdata.images["dapi"].data[0]), cmap="gray")
ax.imshow(clusters, cmap="tab10", alpha=0.6, interpolation="nearest")
ax.set_title("GeneSegNet cells coloured by Leiden cluster")
ax.set_axis_off()
fig.savefig(FIGURES / "quickstart_clusters.png", dpi=90, bbox_inches="tight")

# %% [markdown]
# ![Cells coloured by cluster](figures/quickstart_clusters.png)
#
# ## Next
#
# - Real data: the [Xenium breast tutorial](02_xenium_breast.py) goes from the vendor's raw files
#   to clusters on a map.
# - From a shell: `gsn segment sample.zarr` does the segmentation step on a zarr store
#   ([command line](../cli.md)).
