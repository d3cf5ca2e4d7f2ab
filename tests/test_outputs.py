"""What a run writes for the ecosystem: one key scheme, cell boundaries, global units, sopa and Xenium Explorer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import spatialdata as sd
from scipy import ndimage
from spatialdata.models import Image2DModel, PointsModel
from spatialdata.transformations import Scale, get_transformation

import gsn_spatial as gsn
from gsn_spatial._constants import run_keys

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_xenium = pytest.mark.skipif(not (DATA / "xenium_breast_crop").is_dir(), reason="needs ../shared/data")

RUN_KINDS = {"labels": "labels", "table": "tables", "boundaries": "shapes", "assignment": "points"}


def _run_elements(sdata, labels_key):
    keys = run_keys(labels_key)
    return {kind: getattr(sdata, RUN_KINDS[kind])[name] for kind, name in keys.as_dict().items()}


@pytest.mark.slow  # 12-15 s; the default suite reached 595 s of its 600 in fresh-clone CI
def test_two_runs_coexist_in_object_and_store(tmp_path, model):
    store = tmp_path / "two.zarr"
    gsn.datasets.synthetic_tissue((192, 192), seed=4).write(store)
    sdata = sd.read_zarr(store)
    gsn.tl.segment(sdata, model=model)
    gsn.tl.segment(sdata, model=model, labels_key_added="run_b", confidence_threshold=0.9)
    for back in (sdata, sd.read_zarr(store)):
        for labels_key in ("gsn_labels", "run_b"):
            run = _run_elements(back, labels_key)
            table = run["table"]
            assert table.uns["spatialdata_attrs"]["region"] == labels_key
            assert table.uns["gsn"]["keys"] == run_keys(labels_key).as_dict()
            assert np.array_equal(run["boundaries"].index.to_numpy(), table.obs["cell_id"].to_numpy())
            assigned = run["assignment"]["cell_id"].compute().to_numpy()
            assert int((assigned > 0).sum()) == int(table.X.sum())
    first = sdata.tables["gsn_table"].obs.copy()
    second = sdata.tables["run_b_table"]
    assert second.uns["gsn"]["params"]["confidence_threshold"] == 0.9  # two different runs, not one copied
    assert not np.array_equal(np.asarray(sdata.labels["gsn_labels"]), np.asarray(sdata.labels["run_b"]))
    # overwrite=True replaces exactly that run's elements.
    gsn.tl.segment(sdata, model=model, labels_key_added="run_b", overwrite=True)
    back = sd.read_zarr(store)
    pd.testing.assert_frame_equal(back.tables["gsn_table"].obs, first)
    assert back.tables["run_b_table"].n_obs == len(first)  # same settings as the first run now
    assert set(back.shapes) == {"gsn_boundaries", "run_b_boundaries"}


@pytest.mark.parametrize("pixel_size", [0.2, 0.5, 1.0])
def test_boundaries_one_polygon_per_cell_at_any_pixel_size(model, pixel_size):
    side = int(round(96 / pixel_size))
    sdata = gsn.datasets.synthetic_tissue((side, side), seed=7, pixel_size=pixel_size)
    gsn.tl.segment(sdata, model=model)
    table, shapes = sdata.tables["gsn_table"], sdata.shapes["gsn_boundaries"]
    assert table.n_obs > 10
    assert (shapes.geom_type == "Polygon").mean() >= 0.99
    assert np.array_equal(shapes.index.to_numpy(), table.obs["cell_id"].to_numpy())
    ratio = shapes.area.to_numpy() / table.obs["area_pixels"].to_numpy()
    assert abs(np.median(ratio) - 1) < 0.10
    # Aligned: each polygon's centroid is its cell's (in the labels' pixels), and they share transformations.
    centroid = np.column_stack([shapes.centroid.x, shapes.centroid.y])
    assert np.median(np.linalg.norm(centroid - table.obsm["spatial_pixels"], axis=1)) < 0.5
    assert get_transformation(shapes, get_all=True) == get_transformation(sdata.labels["gsn_labels"], get_all=True)


def test_obsm_spatial_is_in_the_global_frame_of_a_scaled_image(model):
    # The image's pixels are 0.4 global units; transcripts are given in global units.
    base = gsn.datasets.synthetic_tissue((256, 256), seed=9, pixel_size=0.4)
    image = base.images["dapi"]
    scale = Scale([0.4, 0.4], axes=("y", "x"))
    img = Image2DModel.parse(image.data, dims=("c", "y", "x"), transformations={"global": scale})
    pts = base.points["transcripts"].compute()
    px = get_transformation(base.points["transcripts"], "global").to_affine_matrix(("x", "y"), ("x", "y"))
    xy = np.column_stack([pts["x"], pts["y"], np.ones(len(pts))]) @ px.T
    frame = pd.DataFrame({"x": xy[:, 0] * 0.4, "y": xy[:, 1] * 0.4, "gene": pts["gene"].astype(str)})
    points = PointsModel.parse(frame, coordinates={"x": "x", "y": "y"}, feature_key="gene")
    sdata = sd.SpatialData(images={"dapi": img}, points={"transcripts": points})
    gsn.tl.segment(sdata, model=model, pixel_size=0.4)
    table = sdata.tables["gsn_table"]
    labels = np.asarray(sdata.labels["gsn_labels"].data)
    ids = table.obs["cell_id"].to_numpy()
    centres = np.asarray(ndimage.center_of_mass(np.ones_like(labels), labels, ids)) + 0.5  # pixel centres
    expected = centres[:, ::-1] * 0.4
    assert table.n_obs > 20 and table.uns["gsn"]["spatial"]["coordinate_system"] == "global"
    assert np.abs(table.obsm["spatial"] - expected).max() < 0.5 * 0.4  # half a pixel
    counts = np.bincount(labels.ravel())[ids]
    np.testing.assert_allclose(table.obs["area"], table.obs["area_pixels"] * 0.4**2, rtol=0.01)  # rounded
    # The areas are the working grid's, scaled to the image's pixels (here 0.8 working px per image px).
    assert np.median(np.abs(table.obs["area_pixels"] / counts - 1)) < 0.03


@pytest.fixture(scope="module")
def xenium_run():
    sdata = gsn.io.read_xenium_crop(DATA / "xenium_breast_crop")
    gsn.tl.segment(sdata)
    return sdata


@needs_xenium
def test_boundaries_on_the_xenium_crop(xenium_run):
    table, shapes = xenium_run.tables["gsn_table"], xenium_run.shapes["gsn_boundaries"]
    assert table.n_obs > 500
    assert (shapes.geom_type == "Polygon").mean() >= 0.99
    assert np.array_equal(shapes.index.to_numpy(), table.obs["cell_id"].to_numpy())
    assert abs(np.median(shapes.area.to_numpy() / table.obs["area_pixels"].to_numpy()) - 1) < 0.10


@needs_xenium
def test_sopa_aggregate_and_explorer_export_run_on_gsn_output(xenium_run, tmp_path):
    sopa = pytest.importorskip("sopa")  # the `sopa` extra, installed by `.[dev]` in CI
    sdata = sd.SpatialData(
        images=dict(xenium_run.images),
        labels=dict(xenium_run.labels),
        points=dict(xenium_run.points),
        shapes={k: v.copy() for k, v in xenium_run.shapes.items()},
        tables=dict(xenium_run.tables),
        attrs=dict(xenium_run.attrs),
    )
    ours = sdata.tables["gsn_table"]
    # No element argument: sopa finds the boundaries, transcripts and image from sdata.attrs. Its default filter
    # drops cells whose stain is dim (min_intensity_ratio=0.1): cells called from their transcripts, with the
    # nucleus out of the section, are kept here so that the tables can be compared cell for cell.
    sopa.aggregate(sdata, min_intensity_ratio=0.0)
    theirs = sdata.tables["table"]
    assert theirs.n_obs == ours.n_obs
    # sopa counts the transcripts inside the polygons; gsn counts those on the labels' pixels.
    assert abs(theirs.X.sum() / ours.X.sum() - 1) < 0.02
    out = gsn.io.write_explorer(sdata, tmp_path / "explorer")
    assert {"experiment.xenium", "cells.zarr.zip", "cell_feature_matrix.zarr.zip", "transcripts.zarr.zip"} <= {
        p.name for p in out.iterdir()
    }
    # A table that annotates the boundaries goes to sopa's own writer unchanged.
    gsn.tl.segment(sdata, labels_key_added="shapes_run", table_annotates="boundaries")
    sopa.io.explorer.write(
        str(tmp_path / "direct"),
        sdata,
        table_key="shapes_run_table",
        points_key="transcripts",
        gene_column="gene",
        mode="-it",
    )
    assert (tmp_path / "direct" / "cells.zarr.zip").exists()


@needs_xenium
def test_explorer_export_after_another_tool_dropped_polygons(xenium_run, tmp_path, caplog):
    # sopa.aggregate's default filters drop the polygons of cells whose stain is dim (cells called from their
    # transcripts); the export then leaves those cells out, with a warning, instead of failing on the table.
    pytest.importorskip("sopa")
    shapes = xenium_run.shapes["gsn_boundaries"]
    sdata = sd.SpatialData(
        images=dict(xenium_run.images),
        points=dict(xenium_run.points),
        shapes={"gsn_boundaries": shapes.iloc[2:].copy()},
        tables=dict(xenium_run.tables),
        attrs=dict(xenium_run.attrs),
    )
    with caplog.at_level("WARNING", logger="gsn_spatial.io._explorer"):
        out = gsn.io.write_explorer(sdata, tmp_path / "explorer")
    assert (out / "experiment.xenium").exists()
    assert "2 of the" in caplog.text and "have no polygon" in caplog.text
    assert len(xenium_run.shapes["gsn_boundaries"]) == len(shapes)  # the caller's elements are untouched
