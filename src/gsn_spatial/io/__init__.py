"""Building SpatialData objects from raw files: an image array plus a transcript table, and readers."""

from gsn_spatial.io._build import from_image_and_transcripts
from gsn_spatial.io._explorer import write_explorer
from gsn_spatial.io._readers import read_cosmx, read_cosmx_crop, read_dsb_nuclei, read_iss_ca1, read_xenium_crop

__all__ = [
    "from_image_and_transcripts",
    "read_cosmx",
    "read_cosmx_crop",
    "read_dsb_nuclei",
    "read_iss_ca1",
    "read_xenium_crop",
    "write_explorer",
]
