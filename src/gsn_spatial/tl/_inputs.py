"""Resolving a SpatialData object into the network's inputs (shared by segment and train)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
from spatialdata import SpatialData

from gsn_spatial import _sdata
from gsn_spatial.core.density import rna_density_window
from gsn_spatial.core.intensity import normalise_intensity, sample_percentiles
from gsn_spatial.models import GeneSegModel, InputSpec
from gsn_spatial.models import load as load_model

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
    """An image plane and transcripts on its pixel grid, ready for the core."""

    image_key: str
    points_key: str
    gene_key: str
    channel: str
    image_element: Any
    points_element: Any
    pixels: da.Array  # (y, x) lazily read
    intensity_range: tuple[float, float]
    points: _sdata.PointsInPixels

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.pixels.shape[0]), int(self.pixels.shape[1])

    def image_window(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Normalised float32 image window."""
        return normalise_intensity(np.asarray(self.pixels[y0:y1, x0:x1]), *self.intensity_range)

    def full_inputs(self, spec: InputSpec) -> np.ndarray:
        """``(2, h, w)`` ``[image, rna_density]`` of the whole image (for training-sized images)."""
        h, w = self.shape
        rna = rna_density_window(
            self.points.xy_pixels, (h, w), sigma=spec.rna_sigma, mode=spec.rna_mode, method=spec.rna_method
        )
        return np.stack([self.image_window(0, h, 0, w), rna])


def resolve_inputs(
    sdata: SpatialData,
    *,
    image_key: str | None,
    points_key: str | None,
    gene_key: str | None,
    image_channel: int | str | None,
    spec: InputSpec,
) -> ResolvedInputs:
    """Resolve keys and channel, align the points to the image grid and check they overlap."""
    image_key = _sdata.resolve_key(sdata, "images", image_key, parameter="image_key")
    points_key = _sdata.resolve_key(sdata, "points", points_key, parameter="points_key")
    image_el = sdata.images[image_key]
    plane = _sdata.select_channel(_sdata.scale0(image_el), image_channel, image_key=image_key)
    pixels = plane.data
    if not isinstance(pixels, da.Array):
        pixels = da.from_array(pixels)
    points_el = sdata.points[points_key]
    gene_key = _sdata.resolve_gene_key(points_el, gene_key, points_key=points_key)
    to_pixels = _sdata.points_to_pixels(sdata, points_key, image_key)
    pts = _sdata.read_points(points_el, gene_key, to_pixels, points_key=points_key)
    h, w = int(pixels.shape[0]), int(pixels.shape[1])
    xy = pts.xy_pixels
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
    if not inside.any():
        raise ValueError(
            f"No transcript of {points_key!r} falls inside image {image_key!r} ({w} x {h} px) after composing "
            "their transformations; check the elements' coordinate systems."
        )
    if inside.mean() < 0.5:
        logger.warning("Only %.0f%% of the transcripts of %r fall inside the image.", 100 * inside.mean(), points_key)
    channel = str(plane.coords["c"].item()) if "c" in plane.coords else ""
    return ResolvedInputs(
        image_key=image_key,
        points_key=points_key,
        gene_key=gene_key,
        channel=channel,
        image_element=image_el,
        points_element=points_el,
        pixels=pixels,
        intensity_range=sample_percentiles(pixels, spec.percentiles),
        points=pts,
    )
