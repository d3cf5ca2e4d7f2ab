"""Shared fixtures: small synthetic tissues (the package's own toy dataset)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import gsn_spatial as gsn

torch.set_num_threads(int(os.environ.get("GSN_TEST_THREADS", "2")))


@pytest.fixture(scope="session")
def model():
    return gsn.models.load()


@pytest.fixture
def tissue():
    """A fresh 256 x 256 synthetic tissue (function scope: tests may add elements)."""
    return gsn.datasets.synthetic_tissue((256, 256), seed=11)


@pytest.fixture(scope="session")
def segmented():
    """A 384 x 384 tissue segmented once with the default model (do not modify)."""
    sdata = gsn.datasets.synthetic_tissue((384, 384), seed=5)
    gsn.tl.segment(sdata)
    return sdata


def points_frame(sdata, key):
    return sdata.points[key].compute()


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _outlines_in_microns(sdata, labels_key: str):
    """The cells of labels ``labels_key`` as a shapes element of exact polygons in micrometres, placed by the
    element's "microns" system (a scale and a translation), as a vendor's cell boundaries are."""
    import geopandas as gpd
    from scipy import ndimage as ndi
    from shapely import affinity
    from spatialdata.models import ShapesModel
    from spatialdata.transformations import Identity, get_transformation

    from gsn_spatial.core.decode.boundaries import cell_polygons

    labels = np.asarray(sdata.labels[labels_key].data)
    ids = np.unique(labels[labels > 0])
    centroids = np.array(ndi.center_of_mass(np.ones_like(labels), labels, ids)) + 0.5
    outlines = cell_polygons(lambda y0, y1, x0, x1: labels[y0:y1, x0:x1], labels.shape, ids, centroids, tolerance=0)
    m = gsn._sdata.affine_xy(get_transformation(sdata[labels_key], "microns"))
    assert not np.allclose(m, np.eye(3))
    to_microns = [m[0, 0], m[0, 1], m[1, 0], m[1, 1], m[0, 2], m[1, 2]]
    microns = [affinity.affine_transform(p, to_microns) for p in outlines]
    return ShapesModel.parse(gpd.GeoDataFrame(geometry=microns), transformations={"microns": Identity()})


@pytest.fixture
def outlines_in_microns():
    """``outlines_in_microns(sdata, labels_key)``: a labels element's cells as polygons in micrometres."""
    return _outlines_in_microns
