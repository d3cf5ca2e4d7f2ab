"""Tools: segmentation, training and baselines."""

from gsn_spatial.tl._assign import assign_transcripts
from gsn_spatial.tl._baseline import expand_nuclei, watershed, watershed_nuclei
from gsn_spatial.tl._segment import segment
from gsn_spatial.tl._train import train

__all__ = ["assign_transcripts", "expand_nuclei", "segment", "train", "watershed", "watershed_nuclei"]
