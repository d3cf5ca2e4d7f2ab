"""Building SpatialData from raw files, the shared crops' alignment, and interoperability."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import gsn_spatial as gsn
from gsn_spatial._sdata import points_to_pixels

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
XENIUM = SHARED / "xenium_breast_crop"
COSMX = SHARED / "cosmx_lung_fov2"
ISS = SHARED / "iss_ca1"
DSB = SHARED / "dsb2018_nuclei"


def pixels_of(sdata, points_key, element_key):
    """Integer (col, row) of every point on ``element_key``'s grid, through the transformations."""
    tx = sdata.points[points_key].compute()
    m = points_to_pixels(sdata, points_key, element_key)
    xy = tx[["x", "y"]].to_numpy() @ m[:2, :2].T + m[:2, 2]
    return tx, np.floor(xy).astype(np.int64)


def test_from_image_and_transcripts_maps_units_to_pixels():
    img = np.zeros((2, 30, 40), np.uint16)
    tx = pd.DataFrame({"gx": [10.0, 20.5], "gy": [5.0, 7.25], "target": ["A", "B"], "vendor": [3, 0]})
    s = gsn.io.from_image_and_transcripts(
        img,
        tx,
        x="gx",
        y="gy",
        gene="target",
        pixel_size=0.5,
        offset_px=(-3.0, 1.0),
        extra_columns=["vendor"],
        channel_names=["DAPI", "membrane"],
    )
    m = points_to_pixels(s, "transcripts", "image")
    np.testing.assert_allclose(np.array([[10.0, 5.0, 1.0]]) @ m.T, [[17.0, 11.0, 1.0]])
    pts = s.points["transcripts"].compute()
    assert pts["gene"].dtype == "category" and pts["vendor"].tolist() == [3, 0]
    assert list(s.images["image"].coords["c"].values) == ["DAPI", "membrane"]
    with pytest.raises(KeyError, match="nope"):
        gsn.io.from_image_and_transcripts(img, tx, x="nope")


@pytest.mark.skipif(not XENIUM.is_dir(), reason="shared Xenium crop not present (../shared/data)")
def test_xenium_crop_alignment():
    s = gsn.io.read_xenium_crop(XENIUM)
    tx = s.points["transcripts"].compute()
    m = points_to_pixels(s, "transcripts", "morphology_mip")
    xy = tx[["x", "y"]].to_numpy() @ m[:2, :2].T + m[:2, 2]
    img = s.images["morphology_mip"].values[0]
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < img.shape[1]) & (xy[:, 1] >= 0) & (xy[:, 1] < img.shape[0])
    assert inside.mean() > 0.99
    dapi = img[xy[inside, 1].astype(int), xy[inside, 0].astype(int)]
    nuc = tx["overlaps_nucleus"].to_numpy()[inside] == 1
    # Transcripts the vendor says overlap a nucleus sit on much brighter DAPI (measured: median 838 vs 326).
    assert np.median(dapi[nuc]) > 2 * np.median(dapi[~nuc])
    assert tx["vendor_cell_id"].nunique() - 1 == 798


@pytest.mark.skipif(not XENIUM.is_dir(), reason="shared Xenium crop not present (../shared/data)")
def test_xenium_vendor_labels_on_rescaled_grid():
    s = gsn.io.read_xenium_crop(XENIUM)
    gsn.pp.rescale_image(s, image_key="morphology_mip", factor=0.5 / 0.2125, key_added="dapi_05um")
    assert s.images["dapi_05um"].shape == (1, 510, 1020)
    gsn.pp.labels_from_assignment(
        s, cell_id_key="vendor_cell_id", image_key="dapi_05um", max_distance=2.5, labels_key_added="vendor"
    )
    lab = s.labels["vendor"].values
    assert len(np.unique(lab)) - 1 > 750
    # The label under each assigned transcript is its vendor cell for most transcripts.
    tx = s.points["transcripts"].compute()
    m = points_to_pixels(s, "transcripts", "vendor")
    xy = tx[["x", "y"]].to_numpy() @ m[:2, :2].T + m[:2, 2]
    ok = (xy[:, 0] >= 0) & (xy[:, 0] < 1020) & (xy[:, 1] >= 0) & (xy[:, 1] < 510) & (tx["vendor_cell_id"] > 0)
    under = lab[xy[ok, 1].astype(int), xy[ok, 0].astype(int)]
    # Measured 0.971 (2026-11-25); the rest fall where two cells' transcripts interleave.
    assert (under == tx["vendor_cell_id"].to_numpy()[ok]).mean() > 0.93


def test_from_image_and_transcripts_flips_and_microns():
    img = np.zeros((10, 20), np.uint16)
    tx = pd.DataFrame({"x_px": [3.2, 19.9], "y_px": [9.9, 0.1], "target": ["A", "B"]})
    s = gsn.io.from_image_and_transcripts(
        img, tx, x="x_px", y="y_px", gene="target", flip_y=True, offset_px=(0, 10), microns_per_pixel=0.18
    )
    _, cr = pixels_of(s, "transcripts", "image")
    assert cr.tolist() == [[3, 0], [19, 9]]  # y up: the largest y is the top row
    # In "microns" the points are the table scaled, the image mirrored onto them.
    from spatialdata.transformations import get_transformation

    m_pts = get_transformation(s.points["transcripts"], "microns").to_affine_matrix(("x", "y"), ("x", "y"))
    m_img = get_transformation(s.images["image"], "microns").to_affine_matrix(("x", "y"), ("x", "y"))
    np.testing.assert_allclose(m_pts[:2, :2], np.diag([0.18, 0.18]))
    np.testing.assert_allclose(np.linalg.solve(m_img, m_pts) @ [3.2, 9.9, 1], [3.2, 0.1, 1], atol=1e-9)
    s = gsn.io.from_image_and_transcripts(img, tx, x="x_px", y="y_px", gene="target", flip_x=True, offset_px=(20, 0))
    assert pixels_of(s, "transcripts", "image")[1][:, 0].tolist() == [16, 0]
    assert "microns" not in s.coordinate_systems


def test_from_image_and_transcripts_labels_only_and_errors():
    lab = np.zeros((8, 8), np.uint32)
    lab[2:4, 2:4] = 7
    tx = pd.DataFrame({"x": [2.0], "y": [3.0], "gene": ["A"]})
    s = gsn.io.from_image_and_transcripts(None, tx, labels={"cells": lab})
    assert not s.images and s.labels["cells"].values.max() == 7
    with pytest.raises(ValueError, match="labels"):
        gsn.io.from_image_and_transcripts(None, tx)
    with pytest.raises(ValueError, match="differ in shape"):
        gsn.io.from_image_and_transcripts(np.zeros((4, 4)), tx, labels={"cells": lab})
    with pytest.raises(ValueError, match="pixel_size"):
        gsn.io.from_image_and_transcripts(lab, tx, pixel_size=0)
    with pytest.raises(TypeError, match="offset_px"):
        gsn.io.from_image_and_transcripts(lab, tx, offset_px=3)
    with pytest.raises(TypeError, match="transcripts"):
        gsn.io.from_image_and_transcripts(lab, tx.to_numpy())
    with pytest.raises(KeyError, match="extra_columns"):
        gsn.io.from_image_and_transcripts(lab, tx, extra_columns=["qv"])


@pytest.mark.parametrize(
    "reader", [gsn.io.read_xenium_crop, gsn.io.read_cosmx_crop, gsn.io.read_iss_ca1, gsn.io.read_dsb_nuclei]
)
def test_readers_missing_folder(tmp_path, reader):
    with pytest.raises(FileNotFoundError, match="folder"):
        reader(tmp_path / "absent")


@pytest.mark.skipif(not COSMX.is_dir(), reason="shared CosMx crop not present (../shared/data)")
def test_cosmx_crop_alignment():
    s = gsn.io.read_cosmx_crop(COSMX)
    lab = s.labels["cell_labels"].values
    assert s.images["composite"].shape == (3, 648, 672) and lab.shape == (648, 672)
    assert list(s.images["composite"].coords["c"].values) == ["red", "green", "DAPI"]
    assert len(np.unique(lab)) - 1 == 67
    tx, cr = pixels_of(s, "transcripts", "cell_labels")
    assert len(tx) == 12542
    inside = (cr[:, 0] >= 0) & (cr[:, 0] < 672) & (cr[:, 1] >= 0) & (cr[:, 1] < 648)
    assert inside.mean() > 0.999  # a few on the crop's last half pixel
    tx, cr = tx[inside], cr[inside]
    vendor = tx["vendor_cell_id"].to_numpy()
    assigned = vendor > 0
    under = lab[cr[assigned, 1], cr[assigned, 0]]
    # Measured 1.000 (all 9,847 assigned transcripts; 0.989 with the README's floor mapping,
    # 0.066 without the y flip).
    assert (under == vendor[assigned]).mean() > 0.995
    # Unassigned transcripts mostly fall outside the vendor's cells.
    assert (lab[cr[~assigned, 1], cr[~assigned, 0]] == 0).mean() > 0.9
    # The DAPI (blue) channel is brighter under transcripts the vendor calls nuclear.
    dapi = s.images["composite"].sel(c="DAPI").values
    comp = tx["CellComp"].astype(str).to_numpy()
    nuc, cyto = comp == "Nuclear", comp == "Cytoplasm"
    assert dapi[cr[nuc, 1], cr[nuc, 0]].mean() > 1.2 * dapi[cr[cyto, 1], cr[cyto, 0]].mean()
    assert "microns" in s.coordinate_systems
    no_neg = gsn.io.read_cosmx_crop(COSMX, negative_probes=False).points["transcripts"].compute()
    assert not no_neg["gene"].astype(str).str.startswith("NegPrb").any() and 0 < len(no_neg) < len(tx)


@pytest.mark.skipif(not COSMX.is_dir(), reason="shared CosMx crop not present (../shared/data)")
def test_cosmx_bad_arguments():
    with pytest.raises(FileNotFoundError, match="CellComposite_F003"):
        gsn.io.read_cosmx(COSMX, fov=3)
    with pytest.raises(TypeError, match="fov"):
        gsn.io.read_cosmx(COSMX, fov="2")


@pytest.mark.skipif(not ISS.is_dir(), reason="shared ISS CA1 data not present (../shared/data)")
def test_iss_ca1_alignment():
    s = gsn.io.read_iss_ca1(ISS)
    lab = s.labels["cell_labels"].values
    assert lab.shape == (5471, 7602) and lab.max() == 3481 and not s.images
    tx, cr = pixels_of(s, "transcripts", "cell_labels")
    assert len(tx) == 72336 and tx["gene"].nunique() == 92
    inside = (cr[:, 0] >= 0) & (cr[:, 0] < lab.shape[1]) & (cr[:, 1] >= 0) & (cr[:, 1] < lab.shape[0])
    assert (~inside).sum() == 6  # the README's six spots at x = -1
    on_label = (lab[cr[inside, 1], cr[inside, 0]] > 0).mean()
    # Measured 0.613 (README: 61.3 %) on 8.9 % labelled area; transposed 0.23, flipped 0.05-0.09.
    assert 0.60 < on_label < 0.63
    assert on_label > 5 * (lab > 0).mean()


@pytest.mark.skipif(not DSB.is_dir(), reason="shared DSB nuclei crop not present (../shared/data)")
def test_dsb_nuclei():
    s = gsn.io.read_dsb_nuclei(DSB)
    img, mask = s.images["image"].values[0], s.labels["nuclei"].values
    assert img.shape == mask.shape == (512, 512)
    assert len(np.unique(mask)) - 1 == 125
    # Measured 67.4 inside vs 22.9 outside (README).
    assert img[mask > 0].mean() > 2.5 * img[mask == 0].mean()


def test_multiscale_image_points_in_microns_roundtrip(tmp_path):
    """spatialdata-io-like input: a DataTree image, points in microns, three coordinate systems."""
    import anndata as ad
    import scanpy as sc
    import spatialdata as sd
    from spatialdata.models import Image2DModel
    from spatialdata.transformations import Scale, Sequence, Translation, get_transformation

    base = gsn.datasets.synthetic_tissue((256, 256), seed=3)
    dapi = base.images["dapi"]
    tfs = dict(get_transformation(dapi, get_all=True))
    # A third system in which everything is shifted and scaled ("aligned" to another section).
    extra = Sequence([Scale([2.0, 2.0], axes=("x", "y")), Translation([10.0, -4.0], axes=("x", "y"))])
    tfs["aligned"] = extra
    pts = base.points["transcripts"]
    pts_tfs = dict(get_transformation(pts, get_all=True))
    pts_tfs["aligned"] = Sequence([pts_tfs["global"], extra])
    from spatialdata.transformations import set_transformation

    set_transformation(pts, pts_tfs, set_all=True)
    multi = Image2DModel.parse(
        dapi.data, dims=("c", "y", "x"), c_coords=["DAPI"], scale_factors=[2, 2], transformations=tfs
    )
    sdata = sd.SpatialData(images={"dapi": multi}, points={"transcripts": pts}, labels={"cells": base.labels["cells"]})
    assert len(sdata.coordinate_systems) == 3
    store = tmp_path / "in.zarr"
    sdata.write(store)
    sdata = sd.read_zarr(store)
    gsn.tl.segment(sdata, image_key="dapi", points_key="transcripts")
    assert gsn.qc.match_reference(sdata, labels_key="gsn_labels", reference_key="cells")["f1"] > 0.9

    back = sd.read_zarr(store)
    for kind, key in (("labels", "gsn_labels"), ("tables", "gsn_table"), ("points", "gsn_transcripts")):
        assert key in getattr(back, kind)
    assert set(get_transformation(back.labels["gsn_labels"], get_all=True)) == {"global", "microns", "aligned"}
    table = back.tables["gsn_table"]
    assert table.uns["spatialdata_attrs"]["region"] == "gsn_labels"
    # The image is multiscale, so the labels get the same pyramid.
    assert isinstance(back.labels["gsn_labels"], xr.DataTree) and len(back.labels["gsn_labels"].children) == 3
    labels_ids = set(np.unique(back.labels["gsn_labels"]["scale0"]["image"].values)) - {0}
    assert set(table.obs["cell_id"].astype(int)) == labels_ids

    adata = ad.AnnData(table.X.astype(np.float32), obs=table.obs.copy(), var=table.var.copy())
    adata.obsm["spatial"] = table.obsm["spatial"]
    adata = adata[adata.obs["n_transcripts"] > 5].copy()
    sc.pp.normalize_total(adata)
    sc.pp.log1p(adata)
    sc.pp.pca(adata, n_comps=10)
    sc.pp.neighbors(adata, n_neighbors=10)
    sc.tl.leiden(adata, resolution=0.5, flavor="igraph", n_iterations=2, directed=False)
    assert adata.obs["leiden"].nunique() >= 2
    assert adata.obs["leiden"].value_counts().max() < 0.8 * adata.n_obs


@pytest.mark.skipif(not COSMX.is_dir(), reason="shared CosMx crop not present (../shared/data)")
def test_readers_record_element_roles():
    # As sopa's readers do (sopa.constants.SopaAttrs), so sopa.aggregate and gsn_spatial find the elements.
    sdata = gsn.io.read_cosmx_crop(COSMX)
    assert sdata.attrs["cell_segmentation_image"] == "composite"
    assert sdata.attrs["transcripts_dataframe"] == "transcripts"
