import numpy as np
import pytest
from scipy import ndimage as ndi

import gsn_spatial as gsn
from gsn_spatial._sdata import points_to_pixels
from gsn_spatial.core.assign.counts import lookup_cells
from gsn_spatial.core.simulate.tissue import simulate_tissue


@pytest.fixture(scope="module")
def sim():
    return simulate_tissue((384, 384), seed=7)


def test_same_seed_same_tissue():
    a, b = simulate_tissue((96, 96), seed=3), simulate_tissue((96, 96), seed=3)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.points_xy, b.points_xy)
    c = simulate_tissue((96, 96), seed=4)
    assert not np.array_equal(a.cells, c.cells)


def test_cells_touch_like_tissue(sim):
    cells = sim.cells
    touching = set()
    for a, b in ((cells[:, :-1], cells[:, 1:]), (cells[:-1], cells[1:])):
        m = (a > 0) & (b > 0) & (a != b)
        touching |= set(a[m].tolist()) | set(b[m].tolist())
    assert len(touching) / cells.max() > 0.8  # tissue, not isolated discs
    assert 0.5 < (cells > 0).mean() < 0.95  # gaps exist


def test_cells_are_irregular(sim):
    from skimage.measure import regionprops

    props = regionprops(sim.cells)
    solidity = np.array([p.solidity for p in props])
    assert solidity.mean() < 0.97  # not convex polygons only


def test_nuclei_inside_smaller_and_off_centre(sim):
    n, c = sim.nuclei, sim.cells
    assert np.all(c[n > 0] == n[n > 0])
    ids = np.unique(n[n > 0])
    assert len(ids) / c.max() > 0.95
    cell_area = np.bincount(c.ravel())[ids]
    nuc_area = np.bincount(n.ravel(), minlength=c.max() + 1)[ids]
    assert np.all(nuc_area < cell_area) and np.median(nuc_area / cell_area) < 0.5
    cc = np.array(ndi.center_of_mass(np.ones_like(c), c, ids))
    nc = np.array(ndi.center_of_mass(np.ones_like(n), n, ids))
    assert np.median(np.linalg.norm(cc - nc, axis=1)) > 1.0


def _orientations(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Aspect ratio and orientation (radians) of every object of a label image."""
    from skimage.measure import regionprops

    props = [p for p in regionprops(labels) if p.area >= 20]
    aspect = np.array([p.axis_major_length / max(p.axis_minor_length, 1e-6) for p in props])
    return aspect, np.array([p.orientation for p in props])


def test_bundle_stretch_gives_aligned_elongated_cells_and_nuclei():
    from gsn_spatial.core.simulate.tissue import TissueParameters

    plain = simulate_tissue((256, 256), TissueParameters(max_elongation=1.0), seed=2)
    bundle = simulate_tissue((256, 256), TissueParameters(max_elongation=1.0, bundle_stretch=3.0), seed=2)
    for labels_of in (lambda t: t.cells, lambda t: t.nuclei):
        aspect_plain, _ = _orientations(labels_of(plain))
        aspect, angle = _orientations(labels_of(bundle))
        assert np.median(aspect) > 1.5 * np.median(aspect_plain)
        # One common axis: orientations (mod pi) concentrated (mean resultant length of the doubled angles).
        assert np.abs(np.exp(2j * angle).mean()) > 0.7
    # The area is kept: about as many cells in the same field.
    assert 0.7 < bundle.cells.max() / plain.cells.max() < 1.4
    with pytest.raises(ValueError, match="bundle_stretch"):
        TissueParameters(bundle_stretch=0.5)


def test_transcripts_cover_cytoplasm_and_background(sim):
    under_cell = lookup_cells(sim.cells, sim.points_xy)
    under_nucleus = lookup_cells(sim.nuclei, sim.points_xy)
    own = sim.cell_id > 0
    assert np.all(under_cell[own] == sim.cell_id[own])  # truth column agrees with truth labels
    assert (under_nucleus[own] == 0).mean() > 0.5  # most cell transcripts lie outside the nucleus
    assert 0.03 < (~own).mean() < 0.07  # default background fraction 0.05


def test_expression_is_cell_type_specific(sim):
    n_types = sim.cell_type.max() + 1
    profiles = np.zeros((n_types, len(sim.gene_names)))
    own = sim.cell_id > 0
    np.add.at(profiles, (sim.cell_type[sim.cell_id[own]], sim.gene[own]), 1)
    profiles /= profiles.sum(1, keepdims=True)
    corr = np.corrcoef(profiles)
    assert corr[~np.eye(n_types, dtype=bool)].max() < 0.6


def test_synthetic_tissue_spatialdata():
    sdata = gsn.datasets.synthetic_tissue((128, 160), seed=2, pixel_size=0.4, origin_um=(100.0, 50.0))
    img = sdata.images["dapi"]
    assert img.dims == ("c", "y", "x") and img.dtype == np.uint16 and img.shape == (1, 128, 160)
    assert list(img.coords["c"].values) == ["DAPI"]
    pts = sdata.points["transcripts"]
    assert pts.attrs["spatialdata_attrs"]["feature_key"] == "gene"
    frame = pts.compute()
    assert frame["gene"].dtype == "category"
    # Points are in microns: the transformation to the pixel grid is not the identity.
    m = points_to_pixels(sdata, "transcripts", "dapi")
    assert not np.allclose(m, np.eye(3))
    np.testing.assert_allclose(m[:2, :2], np.eye(2) / 0.4)
    pix = frame[["x", "y"]].to_numpy() @ m[:2, :2].T + m[:2, 2]
    cells = sdata.labels["cells"].values
    own = frame["cell_id"].to_numpy() > 0
    assert np.all(lookup_cells(cells, pix[own]) == frame["cell_id"].to_numpy()[own])
