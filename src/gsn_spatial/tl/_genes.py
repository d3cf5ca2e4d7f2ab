"""What the genes of a run's transcripts do: make the RNA map, count as genes of the table, or count apart."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from gsn_spatial import _sdata
from gsn_spatial.core.rna.controls import control_gene_mask


def check_gene_options(pattern: str | None, min_qv: float | None = None) -> None:
    """``control_genes`` is None or a valid regular expression; ``min_qv`` None or a number >= 0."""
    if min_qv is not None and (isinstance(min_qv, bool) or not isinstance(min_qv, (int, float)) or not min_qv >= 0):
        raise ValueError(
            f"`min_qv` must be a number >= 0 (a Phred quality, 20 for 10x's counts) or None, got {min_qv!r}."
        )
    if pattern is None:
        return
    if not isinstance(pattern, str):
        raise TypeError(f"`control_genes` must be a regular expression (str) or None, got {type(pattern).__name__}.")
    try:
        re.compile(pattern)
    except re.error as err:
        raise ValueError(f"`control_genes`={pattern!r} is not a regular expression: {err}.") from None


@dataclass(frozen=True)
class GeneRoles:
    """What each gene code of a run's transcripts does: make the RNA map, count as a gene, or count apart.

    ``apart`` maps an ``obs`` column to the gene codes counted in it instead
    of ``X`` (control probes; transcripts under the quality threshold).
    ``map_genes`` flags the codes that make the RNA map (``None``: all).
    """

    map_genes: np.ndarray | None
    apart: dict[str, np.ndarray]
    params: dict[str, Any]

    def profile_counts(self, counts: Any) -> Any:
        """``counts`` with the columns counted apart emptied: they are no cell's expression profile."""
        if not self.apart:
            return counts
        return counts.multiply(~np.logical_or.reduce(list(self.apart.values()))).tocsr()


def gene_roles(points: _sdata.PointsPartitions, control_genes: str | None) -> GeneRoles:
    """The :class:`GeneRoles` of ``points``: control probes by name (``control_genes``), low-quality calls by qv.

    A control probe stays one whatever its quality: ``points`` is told to apply its quality threshold to the
    other genes only (``points.qv_genes``).
    """
    names = points.gene_names
    control = control_gene_mask(names, control_genes)
    points.qv_genes = ~control[: len(points.categories)]
    low = np.zeros(len(names), dtype=bool)
    if points.low_qv_code is not None:
        control[points.low_qv_code], low[points.low_qv_code] = False, True
    if control[~low].all():
        raise ValueError(f"`control_genes`={control_genes!r} matches every gene of {points.points_key!r}; pass None.")
    apart = {"n_control_transcripts": control} if control.any() else {}
    if low.any():
        apart["n_low_quality_transcripts"] = low
    params = {"control_genes": [g for g, c in zip(names, control, strict=True) if c], "min_qv": points.min_qv}
    return GeneRoles(~control if control.any() else None, apart, params)
