"""Datasets: a synthetic tissue with known truth, as a SpatialData object."""

from gsn_spatial.datasets._large_slide import write_synthetic_slide
from gsn_spatial.datasets._tissue import synthetic_tissue

__all__ = ["synthetic_tissue", "write_synthetic_slide"]
