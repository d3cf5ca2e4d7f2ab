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
# # Xenium breast cancer: from the raw files to clusters on a map
#
# A 1200 x 2400 px crop of 10x Genomics' public Xenium FFPE human breast data set (replicate 1,
# Janesick et al. 2023, CC BY 4.0): a DAPI image, 118,287 transcripts of 313 genes, and the vendor's
# assignment of transcripts to cells. This tutorial reads the raw files with the right coordinates,
# trains a model from the vendor's cells, segments, compares with image-only baselines and the
# vendor, then clusters the cells with scanpy and maps the clusters.
#
# The training settings are tiny so that the test suite can run the tutorial in under a minute;
# the tuned model is compared below with the default `generalist` model, which never saw this
# crop's right quarter ([models](../models.md)).

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import scanpy as sc
import spatialdata as sd

import gsn_spatial as gsn

DATA = Path(os.environ.get("GSN_SHARED_DATA", "../../shared/data")) / "xenium_breast_crop"
OUTPUT = Path(os.environ.get("GSN_TUTORIAL_OUTPUT", "tutorial_output"))
FIGURES = Path(os.environ.get("GSN_TUTORIAL_FIGURES", "figures"))
pd.set_option("display.width", 200)
pd.set_option("display.max_columns", 20)
for folder in (OUTPUT, FIGURES):
    folder.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## Read the raw files
#
# Xenium's transcripts are in microns of the whole slide; the image is a crop at 0.2125 um per pixel
# whose top-left corner is pixel (5000, 1000) of the slide. {func}`gsn_spatial.io.read_xenium_crop`
# is {func}`gsn_spatial.io.from_image_and_transcripts` with those numbers: the points keep their
# microns and map onto the image's pixels by `Scale(1 / 0.2125)` then `Translation(-5000, -1000)`.
# For your own files, call `from_image_and_transcripts` with your column names, pixel size, offset
# and axis flips.
#
# Writing the object to a zarr store and reading it back makes it *backed*: every result below is
# written into the store as well, where `spatialdata.read_zarr` (or the `gsn` command) finds it.

# %%
raw = gsn.io.read_xenium_crop(DATA)
store = OUTPUT / "xenium_breast.zarr"
if store.exists():
    import shutil

    shutil.rmtree(store)
raw.write(store)
sdata = sd.read_zarr(store)
print(sdata)

# %% [markdown]
# The models work at 0.5 um per pixel; `segment` and `train` resample the image to that scale window
# by window and bring their labels back to the image's 0.2125 um grid, so nothing needs resampling
# here. The reader's `"microns"` coordinate system tells them the pixel size (without it, they
# would estimate it from the size of the nuclei).
#
# The vendor's assignment becomes noisy initial labels: each pixel takes the cell of its nearest
# assigned transcript within 1.25 um, 5.9 px ({func}`gsn_spatial.pp.labels_from_assignment`).

# %%
gsn.pp.labels_from_assignment(
    sdata, cell_id_key="vendor_cell_id", image_key="morphology_mip", max_distance=1.25 / 0.2125,
    labels_key_added="vendor",
)  # fmt: skip
print(sdata.images["morphology_mip"].shape, int(sdata.labels["vendor"].max()), "vendor cells")

# %% [markdown]
# ## Train from the vendor's cells
#
# {func}`gsn_spatial.tl.train` runs GeneSegNet's recursive training: fit the network to the labels,
# predict, refine each cell with a level set, and take the refined cells as the next round's
# labels. Here: one round of two short epochs, starting from the default `generalist` model (a
# fine-tune). The same from a shell: `gsn train xenium_breast.zarr --labels-key vendor ...`.

# %%
model = gsn.tl.train(
    sdata,
    labels_key="vendor",
    image_key="morphology_mip",
    max_rounds=1,
    epochs=2,
    steps_per_epoch=4,
    patch_size=128,
    batch_size=4,
    name="xenium_tutorial",
)
model.save(OUTPUT / "xenium_tutorial.pt")
print(model.meta["history"][-1])

# %% [markdown]
# ## Segment
#
# Segment with the model just trained and with the default `generalist` model. Each call adds
# labels, a table, cell boundaries and the transcripts with their cell id, all named from
# `labels_key_added` (`gsn_tutorial` -> `gsn_tutorial_table`, `gsn_tutorial_boundaries`,
# `gsn_tutorial_transcripts`), and writes them to the store.

# %%
gsn.tl.segment(
    sdata, image_key="morphology_mip", points_key="transcripts", model=OUTPUT / "xenium_tutorial.pt",
    labels_key_added="gsn_tutorial",
)  # fmt: skip
gsn.tl.segment(sdata, image_key="morphology_mip", points_key="transcripts")
print(sd.read_zarr(store))

# %% [markdown]
# ## Compare with image-only baselines and the vendor
#
# Two baselines from DAPI alone: the paper's watershed, and its nuclei expanded by 15 um as Xenium's
# first release did (the vendor's cells here are nuclei expanded by up to 15 um). The vendor is the
# reference: agreement, not accuracy, since there is no truth for real tissue.

# %%
gsn.tl.watershed_nuclei(sdata, image_key="morphology_mip", labels_key_added="watershed")
gsn.tl.expand_nuclei(sdata, labels_key="watershed", distance_um=15.0, labels_key_added="expanded")
scores = gsn.qc.compare(
    sdata,
    labels_keys=["gsn_labels", "gsn_tutorial", "watershed", "expanded"],
    reference_key="vendor",
    points_key="transcripts",
    image_key="morphology_mip",
)
columns = ["n_cells", "f1_iou50", "mean_matched_iou", "tx_ari", "fraction_assigned", "median_total_counts"]
print(scores[[c for c in columns if c in scores]].round(3))

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 6))
window = (100, 350, 300, 550)
gsn.pl.segmentation_overlay(
    sdata, labels_key="gsn_labels", reference_key="vendor", image_key="morphology_mip", window=window, ax=axes[0],
    title="GeneSegNet generalist (red) vs vendor (cyan)",
)  # fmt: skip
gsn.pl.segmentation_overlay(
    sdata, labels_key="expanded", reference_key="vendor", image_key="morphology_mip", window=window, ax=axes[1],
    title="watershed + 15 um expansion (red) vs vendor (cyan)",
)  # fmt: skip
fig.tight_layout()
fig.savefig(FIGURES / "xenium_overlay.png", dpi=80)

# %% [markdown]
# ![GeneSegNet and nucleus expansion against the vendor's cells](figures/xenium_overlay.png)
#
# ## Cluster with scanpy and map the clusters
#
# `gsn_table` holds raw counts (cells x 313 genes); normalise, reduce, cluster, and find each
# cluster's top genes.

# %%
adata = sdata.tables["gsn_table"].copy()
adata = adata[adata.obs["n_transcripts"] >= 20].copy()
adata.layers["counts"] = adata.X.copy()
sc.pp.normalize_total(adata)
sc.pp.log1p(adata)
sc.pp.pca(adata, n_comps=20)
sc.pp.neighbors(adata, n_neighbors=15)
sc.tl.leiden(adata, resolution=0.5, flavor="igraph", n_iterations=2, directed=False, random_state=0)
sc.tl.rank_genes_groups(adata, "leiden", method="t-test")
top = {c: list(adata.uns["rank_genes_groups"]["names"][c][:4]) for c in adata.obs["leiden"].cat.categories}
for cluster, genes in top.items():
    print(cluster, (adata.obs["leiden"] == cluster).sum(), "cells:", ", ".join(genes))

# %% [markdown]
# Each cell of `gsn_labels` takes its cluster's colour: the cells' ids are `obs["cell_id"]`.

# %%
labels = np.asarray(sdata.labels["gsn_labels"].data)
lut = np.full(int(labels.max()) + 1, -1)
lut[adata.obs["cell_id"].to_numpy(dtype=int)] = adata.obs["leiden"].cat.codes.to_numpy()
clusters = np.ma.masked_less(lut[labels], 0)
n = len(top)
fig, ax = plt.subplots(figsize=(12, 6.5))
dapi = np.asarray(sdata.images["morphology_mip"].data[0])
ax.imshow(dapi, cmap="gray", vmax=np.percentile(dapi, 99.5))
im = ax.imshow(clusters, cmap="tab20", vmin=-0.5, vmax=19.5, alpha=0.65, interpolation="nearest")
handles = [
    plt.Line2D([], [], marker="s", ls="", color=plt.cm.tab20(i), label=f"{c}: {', '.join(g[:2])}")
    for i, (c, g) in enumerate(top.items())
]
ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, title="cluster: top genes")
ax.set_title("Xenium breast crop: GeneSegNet cells coloured by Leiden cluster")
ax.set_axis_off()
fig.savefig(FIGURES / "xenium_clusters.png", dpi=80, bbox_inches="tight")

# %% [markdown]
# ![Cells coloured by Leiden cluster](figures/xenium_clusters.png)
#
# The store now holds every result; `spatialdata.read_zarr("tutorial_output/xenium_breast.zarr")`
# opens it, and `gsn qc tutorial_output/xenium_breast.zarr --labels-keys gsn_labels expanded
# --reference-key vendor` compares segmentations from a shell.
