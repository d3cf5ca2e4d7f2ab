"""The one thin layer between SpatialData containers and the array-level core.

Everything that knows about SpatialData elements, their transformations and
their stores lives here, one concern per module: element keys (:mod:`.keys`),
coordinates and units (:mod:`.frames`), image and labels arrays
(:mod:`.images`), points on a pixel grid (:mod:`.points`) and writing results
(:mod:`.store`). The rest of the package imports this package, not its modules.
"""

from gsn_spatial._sdata.frames import (
    MICRON_SYSTEMS,
    GlobalFrame,
    affine_xy,
    element_to_pixels,
    global_frame,
    micron_frame,
    microns_per_pixel,
    pixel_to_microns,
    points_to_pixels,
    scaled_affine,
    transformations,
    transformations_write_a_scale,
)
from gsn_spatial._sdata.images import ArrayWindows, scale0, select_channel
from gsn_spatial._sdata.keys import (
    ELEMENT_KINDS,
    check_new_keys,
    quiet_ome_zarr,
    quiet_table_writes,
    resolve_gene_key,
    resolve_key,
)
from gsn_spatial._sdata.points import PointsInPixels, PointsPartitions, read_points, transcripts_element
from gsn_spatial._sdata.shapes import shapes_to_labels
from gsn_spatial._sdata.store import reload_from_store, store_elements

__all__ = [
    "ELEMENT_KINDS",
    "MICRON_SYSTEMS",
    "ArrayWindows",
    "GlobalFrame",
    "affine_xy",
    "element_to_pixels",
    "PointsInPixels",
    "PointsPartitions",
    "check_new_keys",
    "global_frame",
    "micron_frame",
    "microns_per_pixel",
    "pixel_to_microns",
    "points_to_pixels",
    "quiet_ome_zarr",
    "quiet_table_writes",
    "read_points",
    "reload_from_store",
    "resolve_gene_key",
    "resolve_key",
    "scale0",
    "scaled_affine",
    "select_channel",
    "shapes_to_labels",
    "store_elements",
    "transcripts_element",
    "transformations",
    "transformations_write_a_scale",
]
