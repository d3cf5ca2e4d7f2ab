"""Plotting, scanpy style: every function returns its axes and takes ``show=`` and ``save=``.

- :func:`segmentation_overlay`: image, cell boundaries, transcripts inside and outside cells;
- :func:`metric_distributions`: per-cell metrics of several segmentations side by side;
- :func:`cell_calling_curve`: cell calling over the distance ``delta``;
- :func:`intensity_capture`: pixels and transcripts inside cells by image intensity (paper, Fig. 2d-e);
- :func:`correlation_scatter`: gene-gene correlations of two replicate regions against each other;
- :func:`training_history`: losses and cell counts per round of :func:`gsn_spatial.tl.train`.
"""

from gsn_spatial.pl._common import INSIDE_COLOUR, OUTSIDE_COLOUR
from gsn_spatial.pl._overlay import segmentation_overlay
from gsn_spatial.pl._qc import cell_calling_curve, correlation_scatter, intensity_capture, metric_distributions
from gsn_spatial.pl._training import training_history

__all__ = [
    "INSIDE_COLOUR",
    "OUTSIDE_COLOUR",
    "cell_calling_curve",
    "correlation_scatter",
    "intensity_capture",
    "metric_distributions",
    "segmentation_overlay",
    "training_history",
]
