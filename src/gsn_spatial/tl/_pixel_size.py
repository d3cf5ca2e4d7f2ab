"""The input image's pixel size: given, from a coordinate system in microns, or from the size of its nuclei."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from spatialdata import SpatialData

from gsn_spatial import _sdata
from gsn_spatial.models import InputSpec
from gsn_spatial.tl._image_only import IMAGE_ONLY_POINTS

logger = logging.getLogger(__name__)

#: How far the nuclei's pixel size may be from the one the transformations imply (points taken as micrometres) for
#: the latter, exact one to be taken, when the points lie on the image's own grid (no scale between them, so the
#: "1 um/px" is a guess): 30 %. The estimate is within 20 % of the hand masks on 92 % of the DSB 2018 images, and a
#: tissue's nuclei differ from the model's reference (6.41 um) by as much again (5-8 um is common). Images at
#: 0.77-1.3 um/px with points in their pixels are read at 1 um/px, within the 0.5-2x scale augmentation of training.
AGREEMENT = 0.3
#: The same when the transformations do carry a scale between the points and the image (the layout of vendors and
#: spatialdata-io: points in um, the image scaled to them; a Scale or Affine on one side counts even where it is 1):
#: up to 2x, where the warning starts. Someone wrote that
#: scale down, and a tissue's nuclei can be half or twice the reference (lymphocytes, hepatocytes): on a second
#: simulator's tissues with 3-17 um nuclei the truth was 0.72-1.67x the estimate, and the exact scale gave mean
#: matched IoU 0.738 against 0.718 over 36 settings (benchmarks/foreign_tissue.py --tissues, 2026-12-07; docs/units.md).
SCALED_AGREEMENT = 1.0
TRANSFORM_SOURCE = "transformations (points in um; checked against the nucleus size)"
UNCHECKED_TRANSFORM_SOURCE = "transformations (points in um; no nuclei to check against)"


@dataclass(frozen=True)
class PixelSize:
    """The input image's pixel size and how it was found (recorded in ``uns["gsn"]["params"]``)."""

    um_per_pixel: float
    # "argument", "coordinate system <name>", TRANSFORM_SOURCE, UNCHECKED_TRANSFORM_SOURCE, "nucleus size" or
    # "model (assumed)"
    source: str
    nucleus_diameter_px: float | None = None  # the estimate, when the size came from it

    def zoom(self, spec: InputSpec) -> float:
        """Working pixels per input pixel."""
        return self.um_per_pixel / spec.pixel_size

    def to_params(self) -> dict[str, Any]:
        out: dict[str, Any] = {"pixel_size": self.um_per_pixel, "pixel_size_source": self.source}
        if self.nucleus_diameter_px is not None:
            out["estimated_nucleus_diameter_px"] = round(self.nucleus_diameter_px, 3)
        return out


def check_pixel_size(pixel_size: float | None) -> None:
    if pixel_size is None:
        return
    if isinstance(pixel_size, bool) or not isinstance(pixel_size, (int, float, np.floating, np.integer)):
        raise TypeError(f"`pixel_size` must be a number (um per image pixel), got {type(pixel_size).__name__}.")
    if not (np.isfinite(pixel_size) and pixel_size > 0):
        raise ValueError(f"`pixel_size` must be a positive number of um per image pixel, got {pixel_size}.")


def resolve_pixel_size(
    sdata: SpatialData,
    *,
    image_key: str,
    points_key: str | None,
    pixels: Any,
    pixel_size: float | None,
    spec: InputSpec,
) -> PixelSize:
    """The image's um per pixel: given, from a micron coordinate system, or from the nuclei's size.

    Without ``pixel_size`` and without a transformation of the image to a
    coordinate system named in microns (what ``gsn.io`` readers and
    ``gsn.datasets`` write), the nucleus diameter is estimated on a sample of
    windows (:func:`~gsn_spatial.core.image.size_windows.estimate_nucleus_diameter_windows`)
    and compared with the model's ``nucleus_diameter_um``. The points'
    transformations suggest a scale too, if the points are in micrometres
    (as vendors' and spatialdata-io's are). Where the transformations carry a
    scale between the points and the image (a ``Scale`` or ``Affine`` written
    in one of the two, even of 1), that exact scale is taken within 2x
    of the estimate (``SCALED_AGREEMENT``); where the points lie on the image's
    own grid (their "1 um/px" is only a guess), within 30 % (``AGREEMENT``).
    More than 2x away, a warning says so and the estimate is kept. Where no
    nuclei can be measured, a scale the transformations write down is taken
    (with a warning); without one, a ValueError asks for ``pixel_size``.
    """
    check_pixel_size(pixel_size)
    if points_key == IMAGE_ONLY_POINTS:  # an image-only run's empty points share the image's frame: no cue
        points_key = None
    if pixel_size is not None:
        found = PixelSize(float(pixel_size), "argument")
        _check_argument(sdata, image_key, points_key, found.um_per_pixel)
    elif (um := _sdata.microns_per_pixel(sdata, image_key)) is not None:
        cs = next(cs for cs in _sdata.MICRON_SYSTEMS if cs in _sdata.transformations(sdata[image_key]))
        found = PixelSize(um, f"coordinate system {cs!r}")
    elif spec.nucleus_diameter_um is None:
        logger.warning(
            "The model records no nucleus diameter, so the pixel size of image %r cannot be estimated; assuming "
            "the model's %.4g um/px. Pass `pixel_size=` (um per image pixel) if that is wrong.",
            image_key,
            spec.pixel_size,
        )
        found = PixelSize(spec.pixel_size, "model (assumed)")
    else:
        from gsn_spatial.core.image.size_windows import estimate_nucleus_diameter_windows

        reader = _sdata.ArrayWindows(pixels)
        suggested, scaled = None, False
        if points_key is not None:
            to_pixels = _sdata.points_to_pixels(sdata, points_key, image_key)
            suggested = 1.0 / np.sqrt(abs(np.linalg.det(to_pixels[:2, :2])))
            scaled = abs(np.log(suggested)) > 1e-6 or _sdata.transformations_write_a_scale(sdata, points_key, image_key)
        try:
            diameter = estimate_nucleus_diameter_windows(reader.read, (int(pixels.shape[0]), int(pixels.shape[1])))
        except ValueError as err:
            if not scaled:
                raise ValueError(
                    f"Cannot estimate the pixel size of image {image_key!r} from its nuclei ({err}); "
                    "pass `pixel_size=` (um per image pixel)."
                ) from err
            # No nuclei to measure (a dim or sparse stain), but the transformations write down a scale between the
            # points and the image: take it, as where the two cues agree, and say that it was not checked.
            logger.warning(
                "Image %r: no nuclei to estimate the pixel size from (%s); taking the transformations' %.4g um/px "
                "(if the points of %r are in micrometres). Pass `pixel_size=` if that is wrong.",
                image_key, err, suggested, points_key,
            )  # fmt: skip
            return PixelSize(float(suggested), UNCHECKED_TRANSFORM_SOURCE)
        found = PixelSize(spec.nucleus_diameter_um / diameter, "nucleus size", diameter)
        if suggested is not None:
            ratio = suggested / found.um_per_pixel
            band = SCALED_AGREEMENT if scaled else AGREEMENT
            if abs(np.log(ratio)) <= np.log(1.0 + band):
                # Two cues agree: the exact scale of the transformations, if the points are in micrometres (as
                # vendors' and spatialdata-io's are), and the estimate. The exact one is taken: the estimate also
                # reads how large this tissue's nuclei are, which the model's augmentation covers (0.5-2x).
                found = PixelSize(float(suggested), TRANSFORM_SOURCE, diameter)
            elif not 0.5 <= ratio <= 2.0:
                logger.warning(
                    "Image %r: the nuclei suggest %.4g um/px, but the transformations suggest %.4g (if the points "
                    "of %r are in micrometres). Pass `pixel_size=` if the estimate is wrong.",
                    image_key,
                    found.um_per_pixel,
                    suggested,
                    points_key,
                )
    logger.info("Image %r: %.4g um per pixel (%s).", image_key, found.um_per_pixel, found.source)
    return found


def _check_argument(sdata: SpatialData, image_key: str, points_key: str | None, pixel_size: float) -> None:
    """Warn where ``pixel_size=`` is more than 2x from the scale the transformations write down (a slip of a decimal
    place, or nanometres for micrometres, runs without error and finds few or no cells); the argument is still used."""
    um, source = _sdata.microns_per_pixel(sdata, image_key), "its coordinate system in microns"
    if um is None and points_key is not None and _sdata.transformations_write_a_scale(sdata, points_key, image_key):
        um = 1.0 / float(np.sqrt(abs(np.linalg.det(_sdata.points_to_pixels(sdata, points_key, image_key)[:2, :2]))))
        source = f"the transformations from points {points_key!r} (if those are in micrometres)"
    if um is not None and not 0.5 <= pixel_size / um <= 2.0:
        logger.warning(
            "Image %r: `pixel_size=%.4g` is %.3gx the %.4g um/px of %s; it is used as given. Check its units (um per "
            "image pixel) or leave it out to take the transformations' scale.",
            image_key, pixel_size, pixel_size / um, um, source,
        )  # fmt: skip
