"""Bad inputs: a catchable exception, a message naming the element or parameter, nothing changed.

Every case runs on a zarr-backed object and checks afterwards that the object's elements are the
very same objects as before and that the store's files are byte-for-byte unchanged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import spatialdata as sd
import torch
from spatialdata.models import Image2DModel, Labels2DModel, PointsModel
from spatialdata.transformations import Identity, Scale, get_transformation, remove_transformation

import gsn_spatial as gsn
from gsn_spatial.core.network.unet import NetworkConfig
from gsn_spatial.models import GeneSegModel, InputSpec


def snapshot(sdata: sd.SpatialData) -> tuple[dict, dict]:
    elements = {name: id(el) for _, name, el in sdata.gen_elements()}
    files = {}
    if sdata.path is not None:
        for p in sorted(Path(sdata.path).rglob("*")):
            if p.is_file():
                files[str(p.relative_to(sdata.path))] = hashlib.md5(p.read_bytes()).hexdigest()
    return elements, files


@pytest.fixture
def backed(tmp_path):
    sdata = gsn.datasets.synthetic_tissue((128, 128), seed=3)
    sdata.write(tmp_path / "s.zarr")
    return sd.read_zarr(tmp_path / "s.zarr")


def _add(sdata, name, element):
    """Add an element in memory and on disk (part of the set-up, before the snapshot)."""
    sdata[name] = element
    sdata.write_element(name)


def _points(frame: pd.DataFrame, **kw):
    return PointsModel.parse(frame, coordinates={"x": "x", "y": "y"}, **kw)


def setup_points_only(s):
    # In situ sequencing data may come without a stain image (the shared ISS CA1 crop has labels and points only).
    del s["dapi"]


def setup_image_only(s):
    del s["transcripts"]


def setup_two_images(s):
    _add(s, "dapi2", Image2DModel.parse(s["dapi"].values, dims=("c", "y", "x"), c_coords=["DAPI"]))


def setup_two_points(s):
    # In the same coordinate systems as the transcripts: neither is the image's alone.
    tf = get_transformation(s["transcripts"], get_all=True)
    _add(s, "more_points", _points(s["transcripts"].compute(), feature_key="gene", transformations=tf))


def setup_two_channels(s):
    img = s["dapi"].values
    _add(s, "stains", Image2DModel.parse(np.concatenate([img, img]), dims=("c", "y", "x"), c_coords=["A", "B"]))


def setup_far_points(s):
    far = pd.DataFrame({"x": [1e6, 1e6 + 1], "y": [1e6, 1e6], "gene": pd.Categorical(["a", "b"])})
    _add(s, "far", _points(far, feature_key="gene", transformations={"global": Identity()}))


def setup_unlinked_points(s):
    pts = s["transcripts"].compute()[["x", "y", "gene"]]
    _add(s, "unlinked", _points(pts, feature_key="gene", transformations={"elsewhere": Identity()}))


def setup_empty_points(s):
    empty = pd.DataFrame({"x": np.zeros(0), "y": np.zeros(0), "gene": pd.Categorical([], categories=["a"])})
    _add(s, "empty", _points(empty, feature_key="gene", transformations={"global": Identity()}))


def setup_nan_points(s):
    pts = s["transcripts"].compute()[["x", "y", "gene"]].reset_index(drop=True)
    pts.loc[3, "x"] = np.nan
    tf = get_transformation(s["transcripts"], "global")
    _add(s, "nan_points", _points(pts, feature_key="gene", transformations={"global": tf}))


def setup_float_genes(s):
    # A float column is no gene name (strings, integers and categories are read as genes).
    pts = s["transcripts"].compute()[["x", "y", "gene"]].reset_index(drop=True)
    pts["gene"] = pts["gene"].cat.codes.astype(float) + 0.5
    tf = get_transformation(s["transcripts"], "global")
    _add(s, "float_genes", _points(pts, transformations={"global": tf}))


def setup_no_feature_key(s):
    # A gene column under no usual name ("symbol"): nothing says which column is the gene.
    pts = s["transcripts"].compute()[["x", "y", "gene"]].rename(columns={"gene": "symbol"}).reset_index(drop=True)
    tf = get_transformation(s["transcripts"], "global")
    _add(s, "no_feature", _points(pts, transformations={"global": tf}))


def setup_float_labels(s):
    _add(s, "float_labels", Labels2DModel.parse(np.zeros((128, 128), np.float32) + 0.5, dims=("y", "x")))


def setup_existing_output(s):
    _add(s, "gsn_labels", Labels2DModel.parse(np.zeros((128, 128), np.uint32), dims=("y", "x")))


def no_setup(s):
    pass


def three_channel_model(tmp_path):
    m = GeneSegModel.new(NetworkConfig(widths=(8, 8, 8, 8, 8), in_channels=3), InputSpec())
    return m.save(tmp_path / "three.pt")


def junk_model(tmp_path):
    p = tmp_path / "junk.pt"
    p.write_bytes(b"\x00not a model")
    return p


def dict_model(tmp_path):
    p = tmp_path / "dict.pt"
    torch.save({"weights": torch.zeros(3)}, p)
    return p


seg = gsn.tl.segment

# (id, setup, call, exception, text the message must contain)
CASES: list[tuple[str, Callable, Callable, type, str]] = [
    ("not_spatialdata", no_setup, lambda s, t: seg({"a": 1}), TypeError, "SpatialData"),
    ("unknown_image", no_setup, lambda s, t: seg(s, image_key="dappi"), KeyError, "'dapi'"),
    ("ambiguous_image", setup_two_images, lambda s, t: seg(s), KeyError, "image_key"),
    ("no_image", setup_points_only, lambda s, t: seg(s), KeyError, "a nucleus stain (DAPI) beside the transcripts"),
    # segment then works from the image alone (tests/test_image_only.py); training needs the transcripts.
    (
        "no_points_to_train",
        setup_image_only,
        lambda s, t: gsn.tl.train(s, labels_key="nuclei", max_rounds=1, epochs=1),
        KeyError,
        "spatialdata.models.PointsModel",
    ),
    ("unknown_points", no_setup, lambda s, t: seg(s, points_key="tx"), KeyError, "'transcripts'"),
    ("invalid_output_name", no_setup, lambda s, t: seg(s, labels_key_added="my run"), ValueError, "'my run'"),
    ("ambiguous_points", setup_two_points, lambda s, t: seg(s, image_key="dapi"), KeyError, "points_key"),
    ("channel_required", setup_two_channels, lambda s, t: seg(s, image_key="stains"), ValueError, "image_channel"),
    ("channel_name", no_setup, lambda s, t: seg(s, image_channel="DNA"), ValueError, "no channel 'DNA'"),
    ("channel_index", no_setup, lambda s, t: seg(s, image_channel=3), ValueError, "out of range"),
    (
        "no_transform_path",
        setup_unlinked_points,
        lambda s, t: seg(s, image_key="dapi", points_key="unlinked"),
        ValueError,
        "No transformation path",
    ),
    (
        "points_outside",
        setup_far_points,
        lambda s, t: seg(s, image_key="dapi", points_key="far"),
        ValueError,
        "falls inside",
    ),
    (
        "empty_points",
        setup_empty_points,
        lambda s, t: seg(s, image_key="dapi", points_key="empty"),
        ValueError,
        "'empty' has no transcripts; pass `points_key=`",
    ),
    (
        "nan_coordinates",
        setup_nan_points,
        lambda s, t: seg(s, image_key="dapi", points_key="nan_points"),
        ValueError,
        "NaN",
    ),
    ("missing_gene_column", no_setup, lambda s, t: seg(s, gene_key="feature_name"), KeyError, "feature_name"),
    (
        "float_gene_column",
        setup_float_genes,
        lambda s, t: seg(s, image_key="dapi", points_key="float_genes", gene_key="gene"),
        TypeError,
        "gene_key",
    ),
    (
        "no_feature_key",
        setup_no_feature_key,
        lambda s, t: seg(s, image_key="dapi", points_key="no_feature"),
        KeyError,
        "gene_key",
    ),
    ("control_genes_regex", no_setup, lambda s, t: seg(s, control_genes="NegPrb("), ValueError, "control_genes"),
    ("control_genes_type", no_setup, lambda s, t: seg(s, control_genes=["NegPrb"]), TypeError, "control_genes"),
    ("control_genes_all", no_setup, lambda s, t: seg(s, control_genes=""), ValueError, "matches every gene"),
    ("min_qv_negative", no_setup, lambda s, t: seg(s, min_qv=-1), ValueError, "min_qv"),
    ("min_qv_text", no_setup, lambda s, t: seg(s, min_qv="20"), ValueError, "min_qv"),
    ("existing_output", setup_existing_output, lambda s, t: seg(s), ValueError, "overwrite=True"),
    ("output_other_type", no_setup, lambda s, t: seg(s, table_key_added="nuclei"), ValueError, "labels element"),
    ("output_is_input", no_setup, lambda s, t: seg(s, labels_key_added="dapi"), ValueError, "images element"),
    ("colliding_outputs", no_setup, lambda s, t: seg(s, table_key_added="GSN_LABELS"), ValueError, "collide"),
    ("cuda_absent", no_setup, lambda s, t: seg(s, device="cuda"), ValueError, "no CUDA"),
    ("unknown_device", no_setup, lambda s, t: seg(s, device="tpu"), ValueError, "device"),
    ("model_type", no_setup, lambda s, t: seg(s, model=42), TypeError, "model"),
    ("model_missing_file", no_setup, lambda s, t: seg(s, model=t / "nope.pt"), FileNotFoundError, "nope.pt"),
    ("model_junk_file", no_setup, lambda s, t: seg(s, model=junk_model(t)), ValueError, "not a gsn_spatial model"),
    ("model_dict_file", no_setup, lambda s, t: seg(s, model=dict_model(t)), ValueError, "not a gsn_spatial model"),
    ("model_channels", no_setup, lambda s, t: seg(s, model=three_channel_model(t)), ValueError, "3 input channels"),
    ("tile_overlap", no_setup, lambda s, t: seg(s, tile_size=256, tile_overlap=300), ValueError, "tile_overlap"),
    ("tile_size", no_setup, lambda s, t: seg(s, tile_size=100), ValueError, "tile_size"),
    ("block_halo", no_setup, lambda s, t: seg(s, block_halo=5000), ValueError, "block_halo"),
    ("block_size", no_setup, lambda s, t: seg(s, block_size=64), ValueError, "block_size"),
    ("threshold", no_setup, lambda s, t: seg(s, confidence_threshold=1.5), ValueError, "confidence_threshold"),
    ("min_area", no_setup, lambda s, t: seg(s, min_area=-1), ValueError, "min_area"),
    ("negative_sigma", no_setup, lambda s, t: gsn.pp.rna_density(s, sigma=-1.0), ValueError, "sigma"),
    (
        "train_float_labels",
        setup_float_labels,
        lambda s, t: gsn.tl.train(s, labels_key="float_labels", device="cpu"),
        TypeError,
        "integer",
    ),
    ("train_unknown_labels", no_setup, lambda s, t: gsn.tl.train(s, labels_key="cellz"), KeyError, "'cells'"),
    (
        "train_patch_size",
        no_setup,
        lambda s, t: gsn.tl.train(s, labels_key="cells", patch_size=100),
        ValueError,
        "patch_size",
    ),
    (
        "train_resume_without_dir",
        no_setup,
        lambda s, t: gsn.tl.train(s, labels_key="cells", resume=True),
        ValueError,
        "checkpoint_dir",
    ),
    ("watershed_expand", no_setup, lambda s, t: gsn.tl.watershed_nuclei(s, expand=-2), ValueError, "expand"),
    (
        "assignment_column",
        no_setup,
        lambda s, t: gsn.pp.labels_from_assignment(s, cell_id_key="vendor"),
        KeyError,
        "vendor",
    ),
    ("rescale_factor", no_setup, lambda s, t: gsn.pp.rescale_image(s, factor=0), ValueError, "factor"),
]


@pytest.mark.parametrize(("name", "setup", "call", "exc", "text"), CASES, ids=[c[0] for c in CASES])
def test_bad_input(backed, tmp_path, name, setup, call, exc, text):
    setup(backed)
    before = snapshot(backed)
    with pytest.raises(exc) as info:
        call(backed, tmp_path)
    assert text in str(info.value), str(info.value)
    assert snapshot(backed) == before


def test_enough_distinct_cases():
    assert len({c[0] for c in CASES}) >= 25


def test_warns_when_many_points_outside(tissue, caplog):
    pts = tissue["transcripts"].compute()[["x", "y", "gene"]].reset_index(drop=True)
    far = pts.copy()
    far["x"] += 1e5
    both = pd.concat([pts, far, far], ignore_index=True)
    tf = get_transformation(tissue["transcripts"], "global")
    tissue["half_out"] = _points(both, feature_key="gene", transformations={"global": tf})
    with caplog.at_level("WARNING"):
        gsn.tl.segment(tissue, points_key="half_out")
    assert any("fall inside the image" in r.message for r in caplog.records)


def test_interrupted_write_leaves_store_readable_and_unchanged(backed, monkeypatch):
    """A failure after the first output element was written rolls back; the store stays readable."""
    before = snapshot(backed)
    calls = {"n": 0}
    original = sd.SpatialData.write_element

    def failing_write(self, name, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("simulated interruption")
        return original(self, name, **kw)

    monkeypatch.setattr(sd.SpatialData, "write_element", failing_write)
    with pytest.raises(KeyboardInterrupt):
        gsn.tl.segment(backed)
    monkeypatch.setattr(sd.SpatialData, "write_element", original)
    assert calls["n"] == 2
    after = snapshot(backed)
    assert after[0] == before[0]
    changed = {k for k in set(before[1]) | set(after[1]) if before[1].get(k) != after[1].get(k)}
    # Only group metadata (the store's consolidated metadata, the labels group's list) may be rewritten.
    assert changed <= {"zarr.json", "labels/zarr.json"}, changed
    back = sd.read_zarr(backed.path)
    assert set(back.labels) == {"cells", "nuclei"} and set(back.points) == {"transcripts"} and not back.tables
    np.testing.assert_array_equal(back["cells"].values, backed["cells"].values)
    # And a clean rerun works.
    gsn.tl.segment(backed)
    assert "gsn_table" in sd.read_zarr(backed.path).tables


def test_overwrite_replaces_only_after_success(backed):
    gsn.tl.segment(backed)
    first = backed.labels["gsn_labels"]
    with pytest.raises(ValueError, match="min_area"):
        gsn.tl.segment(backed, overwrite=True, min_area=-5)
    assert backed.labels["gsn_labels"] is first
    gsn.tl.segment(backed, overwrite=True, min_area=50)
    back = sd.read_zarr(backed.path)
    np.testing.assert_array_equal(back["gsn_labels"].values, backed["gsn_labels"].values)


# ---------------------------------------------------------- degenerate but valid ---


def test_image_without_cells_gives_empty_valid_outputs(tissue):
    tissue["blank"] = Image2DModel.parse(
        np.zeros((1, 256, 256), np.uint16),
        dims=("c", "y", "x"),
        c_coords=["DAPI"],
        transformations=dict(get_transformation(tissue["dapi"], get_all=True)),
    )
    far = pd.DataFrame({"x": [1300.0], "y": [900.0], "gene": pd.Categorical(["Gene00"])})
    tissue["one_point"] = _points(
        far, feature_key="gene", transformations=dict(get_transformation(tissue["transcripts"], get_all=True))
    )
    gsn.tl.segment(tissue, image_key="blank", points_key="one_point")
    assert int(tissue.labels["gsn_labels"].max()) == 0
    t = tissue.tables["gsn_table"]
    assert t.n_obs == 0 and t.n_vars == 1
    assert tissue.points["gsn_transcripts"].compute()["cell_id"].tolist() == [0]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_image_dtypes(dtype, model):
    s = gsn.datasets.synthetic_tissue((192, 192), seed=6)
    img = s["dapi"].values.astype(np.float64)
    img = img / img.max() * (255 if dtype == np.uint8 else 60000 if dtype == np.uint16 else 1.0)
    s["dapi"] = Image2DModel.parse(
        img.astype(dtype),
        dims=("c", "y", "x"),
        c_coords=["DAPI"],
        transformations=dict(get_transformation(s["dapi"], get_all=True)),
    )
    gsn.tl.segment(s, model=model)
    assert gsn.qc.match_reference(s, labels_key="gsn_labels", reference_key="cells")["f1"] > 0.7


@pytest.mark.parametrize("chunksize", [10_000_000, 500])
def test_points_partitions_do_not_matter(chunksize, model):
    a = gsn.datasets.synthetic_tissue((192, 192), seed=6)
    b = gsn.datasets.synthetic_tissue((192, 192), seed=6, points_chunksize=chunksize)
    gsn.tl.segment(a, model=model)
    gsn.tl.segment(b, model=model)
    np.testing.assert_array_equal(a["gsn_labels"].values, b["gsn_labels"].values)
    assert b["gsn_transcripts"].npartitions == b["transcripts"].npartitions


def test_single_cell_touching_border(model):
    s = gsn.datasets.synthetic_tissue((64, 64), seed=1, cell_diameter_um=20, density=0.3)
    gsn.tl.segment(s, model=model)
    labels = s["gsn_labels"].values
    t = s.tables["gsn_table"]
    assert t.n_obs == len(np.unique(labels)) - (labels == 0).any()


def test_scale_transformation_on_points_only(tissue, model):
    """Points given in a unit where the path needs a Scale: cells still line up."""
    remove_transformation(tissue["transcripts"], "global")
    assert isinstance(get_transformation(tissue["transcripts"], "microns"), Identity)
    gsn.tl.segment(tissue, model=model)
    assert gsn.qc.match_reference(tissue, labels_key="gsn_labels", reference_key="cells")["f1"] > 0.7
    assert not isinstance(get_transformation(tissue["dapi"], "microns"), Scale)  # a Sequence: non-trivial


def test_gene_column_found_by_its_usual_name():
    """Points that declare no feature_key: one column with a vendor's gene-column name is taken, two are ambiguous."""
    from gsn_spatial._sdata.keys import resolve_gene_key

    frame = pd.DataFrame({"x": [0.0, 1.0], "y": [0.0, 1.0], "feature_name": pd.Categorical(["a", "b"])})
    assert resolve_gene_key(_points(frame), None, points_key="tx") == "feature_name"
    frame["Target"] = frame["feature_name"]
    with pytest.raises(KeyError, match="gene_key"):
        resolve_gene_key(_points(frame), None, points_key="tx")
