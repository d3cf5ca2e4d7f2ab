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
