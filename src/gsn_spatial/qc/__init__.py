"""Quality control, scanpy style: per-cell metrics, slide-level metrics, scores against a reference,
and :func:`compare` for several segmentations of one slide side by side.

The array-level definitions live in :mod:`gsn_spatial.core.metrics.cell_shape`,
:mod:`gsn_spatial.core.metrics.coverage`, :mod:`gsn_spatial.core.metrics.expression` and
:mod:`gsn_spatial.core.metrics.matching`.
"""

from __future__ import annotations

from gsn_spatial.qc._cells import cell_metrics
from gsn_spatial.qc._compare import compare
from gsn_spatial.qc._reference import match_reference, reference_metrics
from gsn_spatial.qc._slide import (
    cell_calling,
    correlation_reproducibility,
    fraction_assigned,
    genes_per_cell,
    intensity_capture,
    marker_purity,
)

__all__ = [
    "cell_calling",
    "cell_metrics",
    "compare",
    "correlation_reproducibility",
    "fraction_assigned",
    "genes_per_cell",
    "intensity_capture",
    "marker_purity",
    "match_reference",
    "reference_metrics",
]
