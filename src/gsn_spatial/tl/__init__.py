"""Tools: segmentation, training and baselines."""

from gsn_spatial.tl._baseline import watershed_nuclei
from gsn_spatial.tl._segment import segment
from gsn_spatial.tl._train import train

__all__ = ["segment", "train", "watershed_nuclei"]
