"""Coordinates: composing SpatialData transformations into pixel grids, micron scales and the global frame."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from spatialdata import SpatialData
from spatialdata.transformations import (
    Affine,
    Scale,
    Sequence,
    get_transformation,
    get_transformation_between_coordinate_systems,
)

#: Coordinate-system names taken to be in microns when none is given.
MICRON_SYSTEMS = ("microns", "micron", "micrometers", "micrometres", "micrometer", "um", "µm")


def transformations(element: Any) -> dict[str, Any]:
    """An element's transformations by coordinate system."""
    return dict(get_transformation(element, get_all=True))


def scaled_affine(affine: np.ndarray, zoom: float) -> np.ndarray:
    """``affine`` (to an image's pixels) followed by a scale by ``zoom`` (to the working scale)."""
    return np.diag([zoom, zoom, 1.0]) @ np.asarray(affine, dtype=float)


def affine_xy(transformation: Any) -> np.ndarray:
    return np.asarray(transformation.to_affine_matrix(input_axes=("x", "y"), output_axes=("x", "y")), dtype=float)


def points_to_pixels(sdata: SpatialData, points_key: str, image_key: str) -> np.ndarray:
    """3 x 3 affine from the points' coordinates to the image's pixel grid.

    Built by composing each element's transformation into a coordinate system
    they share (``points -> cs -> image pixels``). Where they share several, the
    results must agree; where they share none, SpatialData's graph search over
    coordinate systems is used.
    """
    return element_to_pixels(sdata, points_key, image_key, kind="points")


def element_to_pixels(sdata: SpatialData, element_key: str, image_key: str, *, kind: str = "shapes") -> np.ndarray:
    """3 x 3 affine from a points or shapes element's coordinates to an image's (or labels') pixel grid.

    As :func:`points_to_pixels`, for an element of ``kind`` (``"points"`` or ``"shapes"``; only the wording of the
    errors depends on it).
    """
    element, image = sdata[element_key], sdata[image_key]
    t_element = get_transformation(element, get_all=True)
    t_image = get_transformation(image, get_all=True)
    candidates = [
        (cs, np.linalg.solve(affine_xy(t_image[cs]), affine_xy(t_element[cs]))) for cs in t_element if cs in t_image
    ]
    if not candidates:
        try:
            t = get_transformation_between_coordinate_systems(sdata, element, image)
        except Exception as err:
            raise ValueError(
                f"No transformation path between {kind} {element_key!r} (coordinate systems {list(t_element)}) and "
                f"image {image_key!r} ({list(t_image)}). Give both a transformation to a shared coordinate system."
            ) from err
        return affine_xy(t)
    cs0, m0 = candidates[0]
    for cs, m in candidates[1:]:
        if not np.allclose(m, m0, atol=1e-6, rtol=1e-6):
            raise ValueError(
                f"{kind.capitalize()} {element_key!r} and image {image_key!r} are aligned differently in coordinate "
                f"systems {cs0!r} and {cs!r}; fix the transformations so they agree."
            )
    return m0


def _writes_a_scale(transformation: Any) -> bool:
    if isinstance(transformation, Sequence):
        return any(_writes_a_scale(t) for t in transformation.transformations)
    return isinstance(transformation, (Scale, Affine))


def transformations_write_a_scale(sdata: SpatialData, points_key: str, image_key: str) -> bool:
    """Whether one of the points' and the image's transformations to a coordinate system they share is a scale or
    an affine, and the other is not.

    Someone then wrote down how the two grids relate, even where the scale is 1 (an image at 1 um/px under points
    in um). With only identities and translations, or a scale on both sides (both brought to one frame), the points
    lie on the image's own grid.
    """
    t_points = get_transformation(sdata.points[points_key], get_all=True)
    t_image = get_transformation(sdata[image_key], get_all=True)
    return any(_writes_a_scale(t_points[cs]) != _writes_a_scale(t_image[cs]) for cs in t_points if cs in t_image)


def pixel_to_microns(
    sdata: SpatialData, element_key: str, *, coordinate_system: str | None = None
) -> np.ndarray | None:
    """2 x 2 linear part of the map from an element's pixels to microns, or ``None`` when unknown.

    ``coordinate_system`` names the micron coordinate system; by default the
    first of :data:`MICRON_SYSTEMS` the element has a transformation to.
    """
    transforms = get_transformation(sdata[element_key], get_all=True)
    if coordinate_system is not None:
        if not isinstance(coordinate_system, str):
            raise TypeError(f"`coordinate_system` must be a string, got {type(coordinate_system).__name__}.")
        if coordinate_system not in transforms:
            raise KeyError(
                f"Element {element_key!r} has no transformation to coordinate system {coordinate_system!r} "
                f"(`coordinate_system`); it has {list(transforms)}."
            )
        name = coordinate_system
    else:
        name = next((cs for cs in MICRON_SYSTEMS if cs in transforms), None)
        if name is None:
            return None
    m = np.asarray(transforms[name].to_affine_matrix(input_axes=("x", "y"), output_axes=("x", "y")), dtype=float)
    return m[:2, :2]


def microns_per_pixel(
    sdata: SpatialData, element_key: str, *, coordinate_system: str | None = None, isotropic: bool = False
) -> float | None:
    """Side of a pixel in microns (the square root of the pixel's area), or ``None`` when unknown.

    With ``isotropic=True`` a transformation that scales x and y differently
    (or shears) raises ``ValueError``.
    """
    lin = pixel_to_microns(sdata, element_key, coordinate_system=coordinate_system)
    if lin is None:
        return None
    area = abs(float(np.linalg.det(lin)))
    if area <= 0:
        raise ValueError(f"The transformation of {element_key!r} to microns is singular.")
    if isotropic:
        sx, sy = np.linalg.norm(lin, axis=0)
        if not np.isclose(sx, sy, rtol=1e-6) or not np.isclose(abs(float(lin[:, 0] @ lin[:, 1])), 0, atol=1e-9):
            raise ValueError(
                f"Pixels of {element_key!r} are not square in microns ({sx:g} x {sy:g} um); "
                "an isotropic distance cannot be converted to pixels."
            )
    return float(np.sqrt(area))


@dataclass(frozen=True)
class GlobalFrame:
    """An element's map from its pixels to its global coordinate system (2-D affine, ``(x, y)``)."""

    name: str
    affine: np.ndarray
    units: str

    def apply(self, xy: np.ndarray) -> np.ndarray:
        xy = np.asarray(xy, dtype=float).reshape(-1, 2)
        return xy @ self.affine[:2, :2].T + self.affine[:2, 2]

    @property
    def area_scale(self) -> float:
        return float(abs(np.linalg.det(self.affine[:2, :2])))


def global_frame(element: Any) -> GlobalFrame:
    """The coordinate system that ``obsm["spatial"]`` and areas are given in, for a raster element.

    ``"global"`` when the element has it, else a coordinate system named in
    microns, else its first one. Units are ``"um"`` for a micron-named system
    (what the ``gsn.io`` readers write, and Xenium's and CosMx's global frame
    is in microns), else ``"units of <name>"``.
    """
    t = transformations(element)
    names = list(t)
    micron = [n for n in names if n.lower() in MICRON_SYSTEMS]
    name = "global" if "global" in t else (micron[0] if micron else names[0])
    affine = affine_xy(t[name])
    # The global frame is in microns when it is the same map as a micron-named system of the element.
    same_as_microns = any(np.allclose(affine, affine_xy(t[m])) for m in micron)
    units = "um" if name.lower() in MICRON_SYSTEMS or same_as_microns else f"units of {name!r}"
    return GlobalFrame(name, affine, units)


def micron_frame(element: Any) -> GlobalFrame | None:
    """The element's map to a coordinate system named in microns, if it has one."""
    t = transformations(element)
    names = [n for n in t if n.lower() in MICRON_SYSTEMS]
    return GlobalFrame(names[0], affine_xy(t[names[0]]), "um") if names else None
