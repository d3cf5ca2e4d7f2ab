"""Control probes: transcripts whose gene marks no cell's RNA (negative probes, blank and unassigned codewords)."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np


def control_gene_mask(gene_names: Sequence[str], pattern: str | None) -> np.ndarray:
    """Boolean mask of the genes whose name begins with a match of ``pattern`` (case-insensitive).

    Vendors put control probes among the genes: negative-control probes that
    bind no target (Xenium ``NegControlProbe_*``, CosMx ``NegPrb*``) and
    codewords that decode to no gene (Xenium ``BLANK_*``,
    ``UnassignedCodeword_*``, MERSCOPE ``Blank-*``). They measure the
    background, so they neither draw cells nor belong in a cell's expression.
    ``None`` marks no gene.

    Examples
    --------
    >>> names = ["ACTB", "NegControlProbe_00042", "BLANK_0006", "NegPrb3", "Blank-12", "BLANKET1"]
    >>> control_gene_mask(names, r"negcontrol|negprb|blank[_-]").tolist()
    [False, True, True, True, True, False]
    """
    if pattern is None:
        return np.zeros(len(gene_names), dtype=bool)
    regex = re.compile(pattern, flags=re.IGNORECASE)
    return np.array([regex.match(str(name)) is not None for name in gene_names], dtype=bool)
