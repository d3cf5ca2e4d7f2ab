"""Element keys, column names and defaults shared across the package (no magic strings elsewhere)."""

from __future__ import annotations


class Keys:
    """Default names of what gsn_spatial reads and writes."""

    LABELS = "gsn_labels"
    TABLE = "gsn_table"
    ASSIGNMENT_SUFFIX = "_gsn"  # new points element: f"{points_key}{ASSIGNMENT_SUFFIX}"
    CELL_ID = "cell_id"  # instance key of the table and the assignment column
    REGION = "region"  # region key of the table
    UNS = "gsn"  # table.uns[UNS] = {"params": ..., "version": ...}
    RNA_DENSITY = "gsn_rna_density"
    RNA_DENSITY_CHANNEL = "rna_density"
    DERIVED_ATTR = "gsn_derived_elements"  # sdata.attrs key: outputs never picked as inputs implicitly


class Defaults:
    TILE_SIZE = 256  # network window of tiled inference (segment default: one pass per block window)
    TILE_OVERLAP = 32
    BLOCK_SIZE = 1024  # cells are decoded per block; each cell is owned by the block holding its centre
    BLOCK_HALO = 64  # >= 2 cell diameters of typical cells at ~0.5 um / px
    BATCH_SIZE = 8
    MIN_AREA = 10
