"""Tools: segmentation and baselines."""

from gsn_spatial.tl._baseline import watershed_nuclei
from gsn_spatial.tl._segment import segment

__all__ = ["segment", "watershed_nuclei"]
