"""Resolving a SpatialData object into the network's inputs (shared by segment and train)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import torch
from spatialdata import SpatialData

from gsn_spatial import _sdata
from gsn_spatial._constants import Defaults
from gsn_spatial._settings import settings
from gsn_spatial.core.image.intensity import sample_percentiles
from gsn_spatial.core.image.resample import nearest_window, working_shape
from gsn_spatial.core.network.quantize import int8_available
from gsn_spatial.core.network.unet import GeneSegNet, weights_digest
from gsn_spatial.core.rna.density import rna_map_settings
from gsn_spatial.models import GeneSegModel, InputSpec
from gsn_spatial.models import load as load_model
from gsn_spatial.tl._pixel_size import PixelSize, resolve_pixel_size

logger = logging.getLogger(__name__)


def resolve_model(model: GeneSegModel | str | Path | None) -> GeneSegModel:
    """A model object from ``None`` (the default), a shipped name or a file path."""
    if model is None:
        resolved = load_model()
    elif isinstance(model, GeneSegModel):
        resolved = model
    elif isinstance(model, (str, Path)):
        resolved = load_model(model)
    else:
        raise TypeError(f"`model` must be a GeneSegModel, a shipped model name or a path, got {type(model).__name__}.")
    if resolved.network.config.in_channels != 2:
        raise ValueError(
            f"The model expects {resolved.network.config.in_channels} input channels; GeneSegNet models take 2 "
            "(nucleus stain and RNA location map). Use a model trained with gsn_spatial."
        )
    return resolved


@dataclass
class ResolvedInputs:
    """An image plane and transcripts, aligned to the model's working scale.

    ``points`` holds every transcript on the working grid (training-sized
    images); for whole slides (``resolve_inputs(read_points=False)``) it is
    ``None`` and :meth:`point_partitions` reads them partition by partition.
    """

    image_key: str
    points_key: str
    gene_key: str
    channel: str
    image_element: Any
    points_element: Any
    pixels: da.Array  # (y, x) lazily read, at the image's own resolution
    intensity_range: tuple[float, float]
    points: _sdata.PointsInPixels | None  # xy_pixels on the working grid
    pixel_size: PixelSize
    zoom: float  # working pixels per image pixel
    points_to_working: np.ndarray  # 3 x 3 affine from the points' coordinates to the working grid
    z_planes: int = 1  # planes of a z-stack image, read through their maximum projection (1: a 2-D image)

    def point_partitions(self, min_qv: float | None = None) -> _sdata.PointsPartitions:
        """The transcripts on the working grid, read partition by partition (whole slides)."""
        return _sdata.PointsPartitions(
            self.points_element, self.gene_key, self.points_to_working, points_key=self.points_key, min_qv=min_qv
        )

    @property
    def image_shape(self) -> tuple[int, int]:
        return int(self.pixels.shape[0]), int(self.pixels.shape[1])

    @property
    def shape(self) -> tuple[int, int]:
        """Shape at the working scale."""
        return working_shape(self.image_shape, self.zoom)

    def working_image(self) -> np.ndarray:
        """The normalised float32 image at the working scale."""
        h, w = self.shape
        return _sdata.ArrayWindows(self.pixels, self.intensity_range, self.zoom)(0, h, 0, w)

    def to_working(self, labels: np.ndarray) -> np.ndarray:
        """Labels on the image's grid brought to the working grid (nearest neighbour)."""
        h, w = self.shape
        return nearest_window(lambda y0, y1, x0, x1: labels[y0:y1, x0:x1], labels.shape, (0, h, 0, w), self.zoom)

    def to_image(self, labels: np.ndarray) -> np.ndarray:
        """Working-grid labels brought to the image's grid (nearest neighbour)."""
        h, w = self.image_shape
        return nearest_window(lambda y0, y1, x0, x1: labels[y0:y1, x0:x1], labels.shape, (0, h, 0, w), 1 / self.zoom)

    def rna_settings(self, spec: InputSpec, xy: np.ndarray | None = None) -> tuple[float, float, float]:
        """``(sigma, level, transcripts per um^2)`` of the RNA map, as ``segment`` sets them per slide.

        ``xy``: the transcripts that make the map (working pixels); default all of them.
        """
        return rna_map_settings(
            self.points.xy_pixels if xy is None else xy,
            self.shape,
            pixel_size=spec.pixel_size,
            sigma_um=spec.rna_sigma_um,
            norm=spec.rna_norm,
            bin_um=spec.density_bin_um,
        )


def resolve_inputs(
    sdata: SpatialData,
    *,
    image_key: str | None,
    points_key: str | None,
    gene_key: str | None,
    image_channel: int | str | None,
    spec: InputSpec,
    pixel_size: float | None = None,
    read_points: bool = True,
) -> ResolvedInputs:
    """Resolve keys, channel and pixel size, and align the points to the working grid.

    With ``read_points`` the transcripts are read whole and checked to overlap
    the image; without, nothing of them is read here (whole slides check after
    binning, :func:`gsn_spatial.tl._slide.binned_check`).
    """
    image_key = _sdata.resolve_key(sdata, "images", image_key, parameter="image_key")
    points_key = _sdata.resolve_key(sdata, "points", points_key, parameter="points_key", beside=image_key)
    image_el = sdata.images[image_key]
    plane = _sdata.select_channel(_sdata.scale0(image_el), image_channel, image_key=image_key)
    pixels = plane.data if isinstance(plane.data, da.Array) else da.from_array(plane.data)
    points_el = sdata.points[points_key]
    gene_key = _sdata.resolve_gene_key(points_el, gene_key, points_key=points_key)
    found = resolve_pixel_size(
        sdata, image_key=image_key, points_key=points_key, pixels=pixels, pixel_size=pixel_size, spec=spec
    )
    zoom = found.zoom(spec)
    # Everything after this runs at the working scale: the points are mapped onto its grid, the image is resampled.
    to_working = _sdata.scaled_affine(_sdata.points_to_pixels(sdata, points_key, image_key), zoom)
    pts = _sdata.read_points(points_el, gene_key, to_working, points_key=points_key) if read_points else None
    if pts is not None:
        h, w = working_shape((int(pixels.shape[0]), int(pixels.shape[1])), zoom)
        xy = pts.xy_pixels
        inside = (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
        if not inside.any():
            raise ValueError(
                f"No transcript of {points_key!r} falls inside image {image_key!r} ({pixels.shape[1]} x "
                f"{pixels.shape[0]} px) after composing their transformations; check the elements' coordinate "
                "systems."
            )
        if inside.mean() < 0.5:
            share = 100 * inside.mean()
            logger.warning("Only %.0f%% of the transcripts of %r fall inside the image.", share, points_key)
    return ResolvedInputs(
        image_key=image_key,
        points_key=points_key,
        gene_key=gene_key,
        channel=str(plane.coords["c"].item()) if "c" in plane.coords else "",
        image_element=image_el,
        points_element=points_el,
        pixels=pixels,
        intensity_range=sample_percentiles(pixels, spec.percentiles),
        points=pts,
        pixel_size=found,
        zoom=zoom,
        points_to_working=to_working,
        z_planes=int(_sdata.scale0(image_el).sizes.get("z", 1)),
    )


ASSIGNMENTS = ("expression", "mask")


def check_assignment(assignment: str) -> None:
    if assignment not in ASSIGNMENTS:
        raise ValueError(f"`assignment` must be one of {ASSIGNMENTS}, got {assignment!r}.")


def assignment_params(assignment: str) -> dict[str, Any]:
    """What a run records about how transcripts were assigned (``uns["gsn"]["params"]``)."""
    out: dict[str, Any] = {"assignment": assignment}
    if assignment == "expression":
        out |= {"reassign_radius_um": Defaults.REASSIGN_RADIUS_UM, "reassign_length_um": Defaults.REASSIGN_LENGTH_UM}
    return out


def check_tiling(tile_size: int | None, tile_overlap: int, block_size: int, block_halo: int, min_area: int) -> None:
    if tile_size is None:  # one network pass per block window
        tile_size = block_size + 2 * block_halo
    elif tile_size <= 0 or tile_size % GeneSegNet.INPUT_MULTIPLE:
        raise ValueError(f"`tile_size` must be a positive multiple of {GeneSegNet.INPUT_MULTIPLE}, got {tile_size}.")
    if not 0 <= tile_overlap < tile_size:
        raise ValueError(f"`tile_overlap` must be in [0, tile_size={tile_size}), got {tile_overlap}.")
    if tile_size > block_size + 2 * block_halo:
        raise ValueError(
            f"`tile_size`={tile_size} must be at most a block's window, `block_size` + 2 * `block_halo` = "
            f"{block_size + 2 * block_halo}."
        )
    if not 0 <= block_halo <= block_size:
        raise ValueError(f"`block_halo` must be in [0, block_size={block_size}], got {block_halo}.")
    if min_area < 0:
        raise ValueError(f"`min_area` must be >= 0, got {min_area}.")


def network_digest(network: torch.nn.Module) -> str:
    """Hash of a network's weights (identifies the model of a resumable run)."""
    return weights_digest(network)[:16]


def int8_inference(model: GeneSegModel, device: torch.device, autocast: torch.dtype | None) -> bool:
    """Whether ``segment`` runs ``model``'s network in int8 on ``device`` (see ``Settings.cpu_int8``).

    On the CPU without bf16 autocast, with ``gsn.settings.cpu_int8`` on and
    ``compile`` off, for a model that carries int8 ranges, where this torch
    can quantize (:mod:`gsn_spatial.core.network.quantize`).
    """
    return (
        settings.cpu_int8 and device.type == "cpu" and autocast is None and not settings.compile
        and model.int8_ranges is not None and int8_available()
    )  # fmt: skip


def decode_settings(
    model: GeneSegModel, confidence_threshold: float | None, centre_threshold: float | None
) -> tuple[float | None, float, dict[str, float]]:
    """The decoding settings of a run: thresholds given, else the model's validated ones (else 0.5).

    The confidence threshold is ``None`` where the model chose one per
    transcript density and none was given: it is set once the tissue's density
    is known (:meth:`GeneSegModel.decode_options`). Also the peak spacing and
    vote reach the model was validated with, in its working pixels (decode's
    defaults where the model has none).
    """
    for name, v in (("confidence_threshold", confidence_threshold), ("centre_threshold", centre_threshold)):
        if v is not None and not 0 < v < 1:
            raise ValueError(f"`{name}` must be in (0, 1), got {v}.")
    decode = model.meta.get("decode", {})
    if confidence_threshold is None and not decode.get("confidence_by_density"):
        confidence_threshold = float(decode.get("confidence_threshold", 0.5))
    if centre_threshold is None:
        centre_threshold = float(decode.get("centre_threshold", 0.5))
    vote_geometry = {k: decode[k] for k in ("min_distance", "max_vote_distance") if k in decode}
    return confidence_threshold, centre_threshold, vote_geometry


def check_outputs(labels_grid: str, table_annotates: str, boundary_tolerance: float) -> None:
    """``segment``'s choices about its outputs: the labels' grid, what the table annotates, polygon tolerance."""
    if labels_grid not in ("image", "working"):
        raise ValueError(f"`labels_grid` must be 'image' or 'working', got {labels_grid!r}.")
    if table_annotates not in ("labels", "boundaries"):
        raise ValueError(f"`table_annotates` must be 'labels' or 'boundaries', got {table_annotates!r}.")
    if not boundary_tolerance >= 0:
        raise ValueError(f"`boundary_tolerance` must be >= 0 pixels, got {boundary_tolerance}.")
