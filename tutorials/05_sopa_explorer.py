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
# # From a Xenium store to boundaries, sopa and Xenium Explorer
#
# gsn writes what the tools after segmentation read: cell **boundaries** as a shapes element that
# shares its ids with the labels and the table, sopa's keys in `sdata.attrs`, and a **Xenium
# Explorer** folder. This tutorial takes the Xenium breast crop into a zarr store, segments it
# with the default model, draws image, boundaries and transcripts together with
# spatialdata-plot, aggregates with `sopa.aggregate` and writes an Explorer folder. It needs the
# `sopa` extra: `pip install 'gsn_spatial[sopa]'`.

# %%
import os
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import spatialdata as sd
import spatialdata_plot  # noqa: F401  (adds sdata.pl)

import gsn_spatial as gsn

DATA = Path(os.environ.get("GSN_SHARED_DATA", "../../shared/data")) / "xenium_breast_crop"
OUTPUT = Path(os.environ.get("GSN_TUTORIAL_OUTPUT", "tutorial_output"))
FIGURES = Path(os.environ.get("GSN_TUTORIAL_FIGURES", "figures"))
OUTPUT.mkdir(parents=True, exist_ok=True)
FIGURES.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## A Xenium store
#
# `gsn.io.read_xenium_crop` reads the vendor files with their coordinates (image pixels in
# `"global"`, microns in `"microns"`); written to zarr, every result below goes into the store.

# %%
store = OUTPUT / "xenium.zarr"
if store.exists():
    shutil.rmtree(store)
gsn.io.read_xenium_crop(DATA).write(store)
sdata = sd.read_zarr(store)

# %% [markdown]
# ## Segment: labels, table, boundaries, assignment
#
# Every element of a run is named from `labels_key_added` (`gsn.run_keys`): the default run
# writes `gsn_labels`, `gsn_table`, `gsn_boundaries` and `gsn_transcripts`.

# %%
gsn.tl.segment(sdata)
table, boundaries = sdata.tables["gsn_table"], sdata.shapes["gsn_boundaries"]
print(gsn.run_keys("gsn_labels"))
print(f"{table.n_obs} cells; {(boundaries.geom_type == 'Polygon').mean():.1%} of boundaries are one Polygon")
print("ids shared:", bool((boundaries.index.to_numpy() == table.obs["cell_id"].to_numpy()).all()))
print("polygon / label area, median:", round(float((boundaries.area / table.obs["area_pixels"].values).median()), 4))
print("obsm['spatial'] frame:", table.uns["gsn"]["spatial"])

# %% [markdown]
# ## Image, boundaries and transcripts together
#
# The boundaries carry the labels' transformations, so spatialdata-plot draws them over the image
# and the transcripts in one coordinate system (here the window 500-900 x 300-600 px).

# %%
window = sd.bounding_box_query(
    sdata, axes=("x", "y"), min_coordinate=[500, 300], max_coordinate=[900, 600], target_coordinate_system="global"
)
ax = plt.figure(figsize=(8, 6)).add_subplot()
(
    window.pl.render_images("morphology_mip")
    .pl.render_shapes("gsn_boundaries", fill_alpha=0.0, outline_alpha=1.0, outline_color="yellow")
    .pl.render_points("transcripts", size=0.5, color="cyan")
    .pl.show(coordinate_systems="global", ax=ax, title="Xenium crop: gsn boundaries and transcripts")
)
ax.set_xlim(500, 900)
ax.set_ylim(600, 300)
plt.savefig(FIGURES / "sopa_boundaries.png", dpi=110, bbox_inches="tight")

# %% [markdown]
# ![Image, gsn boundaries and transcripts](figures/sopa_boundaries.png)
#
# ## sopa
#
# `gsn.tl.segment` records sopa's keys for its boundaries, transcripts and image in
# `sdata.attrs`, so `sopa.aggregate` needs no argument. It counts the transcripts inside each
# polygon and averages the image's channels into a new table `table`. sopa gives the shapes it
# aggregates its own string ids; gsn's id stays in the boundaries' `cell_id` column. By default sopa
# drops cells whose stain is dim (`min_intensity_ratio=0.1`), such as cells that gsn called from their
# transcripts with the nucleus out of the section; `gsn.io.write_explorer` below then leaves them out,
# with a warning.

# %%
import sopa  # noqa: E402

sopa.aggregate(sdata)
print(sdata.tables["table"])
print("transcripts counted by sopa / by gsn:", round(float(sdata.tables["table"].X.sum() / table.X.sum()), 4))

# %% [markdown]
# ## Xenium Explorer
#
# `gsn.io.write_explorer` hands one run to sopa's Explorer writer (the Explorer reads cells from
# shapes, so the table is shown on the boundaries); open `experiment.xenium` in Xenium Explorer.
# A run made with `table_annotates="boundaries"` also goes to `sopa.io.explorer.write` as it is.

# %%
explorer = OUTPUT / "explorer"
if explorer.exists():
    shutil.rmtree(explorer)
gsn.io.write_explorer(sdata, explorer)
print(sorted(p.name for p in explorer.iterdir()))
