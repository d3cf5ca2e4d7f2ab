"""Image-only baselines as labels elements: ``gsn.tl.watershed``, ``gsn.tl.expand_nuclei`` and
``gsn.tl.watershed_nuclei``."""

from __future__ import annotations

import logging

import numpy as np
from skimage.segmentation import expand_labels
from spatialdata import SpatialData
from spatialdata.models import Labels2DModel
from spatialdata.transformations import get_transformation

from gsn_spatial import _sdata
from gsn_spatial.core.image.watershed import watershed as _watershed_cells
from gsn_spatial.core.image.watershed import watershed_nuclei as _watershed
from gsn_spatial.tl._pixel_size import check_pixel_size, resolve_pixel_size

logger = logging.getLogger(__name__)


def _plane(sdata: SpatialData, image_key: str | None, image_channel: int | str | None) -> tuple[str, np.ndarray]:
    image_key = _sdata.resolve_key(sdata, "images", image_key, parameter="image_key")
    plane = _sdata.select_channel(_sdata.scale0(sdata.images[image_key]), image_channel, image_key=image_key)
    return image_key, np.asarray(plane.data)


def _microns_per_pixel(
    sdata: SpatialData,
    key: str,
    *,
    image: np.ndarray | None = None,
    nuclei: np.ndarray | None = None,
    coordinate_system: str | None = None,
) -> float:
    """Um per pixel of element ``key``, found as ``segment`` finds it where neither an argument nor a micron
    coordinate system gives it: from the nuclei of ``image`` (and the points' transformations, with one points
    element), else from the nuclei labels ``nuclei`` (element ``key``'s), against the default model's reference
    diameter."""
    um = _sdata.microns_per_pixel(sdata, key, coordinate_system=coordinate_system, isotropic=True)
    if um is not None:
        return um
    from gsn_spatial.models import load

    spec = load().input
    if image is not None:
        try:  # the transcripts: the one points element, the one in a system of the image's own, or the attrs' one
            points_key = _sdata.resolve_key(sdata, "points", None, parameter="points_key", beside=key)
        except KeyError:
            points_key = None
        try:
            found = resolve_pixel_size(sdata, image_key=key, points_key=points_key, pixels=image, pixel_size=None,
                                       spec=spec)  # fmt: skip
        except ValueError:
            if points_key is None:
                raise
            found = resolve_pixel_size(sdata, image_key=key, points_key=None, pixels=image, pixel_size=None, spec=spec)
        return found.um_per_pixel
    area = np.bincount(nuclei.ravel())[1:]
    area = area[area > 0]
    if not len(area):
        raise ValueError(f"Labels {key!r} hold no nuclei to estimate the pixel size from; pass `pixel_size=`.")
    um = spec.nucleus_diameter_um / float(np.median(np.sqrt(4.0 * area / np.pi)))
    logger.info("Labels %r: %.4g um per pixel, from their median nucleus diameter (pass `pixel_size=`).", key, um)
    return um


def _store(sdata: SpatialData, labels: np.ndarray, source_key: str, key_added: str, overwrite: bool) -> None:
    """Write ``labels`` on the grid of ``source_key`` with its transformations, as ``segment`` does."""
    h, w = labels.shape
    element = Labels2DModel.parse(
        labels.astype(np.uint32),
        dims=("y", "x"),
        transformations=dict(get_transformation(sdata[source_key], get_all=True)),
        chunks=(min(h, 2048), min(w, 2048)),
    )
    _sdata.store_elements(sdata, {key_added: element}, overwrite=overwrite)


def watershed_nuclei(
    sdata: SpatialData,
    *,
    image_key: str | None = None,
    image_channel: int | str | None = None,
    expand: float = 0.0,
    pixel_size: float | None = None,
    labels_key_added: str = "watershed_nuclei",
    overwrite: bool = False,
) -> None:
    """Image-only baseline: nucleus watershed, optionally expanded by ``expand`` pixels.

    The smoothing (0.5 um) and the markers' least distance (2 um) are
    physical: converted by ``pixel_size`` (um per pixel) when given, else by
    the image's micron coordinate system, else by the pixel size found as
    :func:`~gsn_spatial.tl.segment` finds it (the nuclei's size, and the
    transcripts' transformations where there is one points element).

    Writes ``sdata.labels[labels_key_added]`` (uint32, the image's grid and
    transformations). The whole image is loaded: meant for crops and
    comparisons, not whole slides. See :func:`watershed` for the paper's
    recipe (with erosion) and :func:`expand_nuclei` for expansion in microns.

    Examples
    --------
    >>> import gsn_spatial as gsn
    >>> sdata = gsn.datasets.synthetic_tissue((128, 128), seed=2)
    >>> gsn.tl.watershed_nuclei(sdata)
    >>> int(sdata.labels["watershed_nuclei"].max()) > 5
    True
    """
    image_key = _sdata.resolve_key(sdata, "images", image_key, parameter="image_key")
    if expand < 0:
        raise ValueError(f"`expand` must be >= 0, got {expand}.")
    check_pixel_size(pixel_size)
    _sdata.check_new_keys(sdata, {labels_key_added: "labels"}, overwrite=overwrite)
    image_key, img = _plane(sdata, image_key, image_channel)
    um = pixel_size or _microns_per_pixel(sdata, image_key, image=img)
    labels = _watershed(img, smooth=0.5 / um, min_distance=max(1, round(2.0 / um)), expand=expand)
    _store(sdata, labels, image_key, labels_key_added, overwrite)


def watershed(
    sdata: SpatialData,
    *,
    image_key: str | None = None,
    image_channel: int | str | None = None,
    smooth: float = 1.0,
    erosion_radius: int = 1,
    min_distance: int = 4,
    threshold: float | None = None,
    labels_key_added: str = "watershed",
    overwrite: bool = False,
) -> None:
    """The paper's watershed baseline on the nucleus stain (Methods, "Watershed Algorithm").

    Grey-level erosion of the smoothed image (disc of ``erosion_radius``
    pixels) to separate touching nuclei; a foreground mask by ``threshold``
    (default Otsu's); markers at the local maxima, ``min_distance`` pixels
    apart, of the mask's distance to the background; scikit-image's
    watershed of the negated distance from those markers inside the mask.

    Parameters
    ----------
    sdata
        SpatialData object with an image element.
    image_key, image_channel
        Image (may be omitted when there is one) and its nucleus channel.
    smooth
        Gaussian sigma (pixels) before the erosion; 0 for none.
    erosion_radius, min_distance, threshold
        See above.
    labels_key_added
        Name of the labels element written.
    overwrite
        Replace an existing element of that name.

    Returns
    -------
    ``None``; ``sdata.labels[labels_key_added]``: uint32 labels on the
    image's pixel grid with the image's transformations (as
    :func:`~gsn_spatial.tl.segment` writes). The whole image is loaded.

    Examples
    --------
    >>> import gsn_spatial as gsn
    >>> sdata = gsn.datasets.synthetic_tissue((128, 128), seed=2)
    >>> gsn.tl.watershed(sdata)
    >>> int(sdata.labels["watershed"].max()) > 5
    True
    """
    image_key = _sdata.resolve_key(sdata, "images", image_key, parameter="image_key")
    if smooth < 0:
        raise ValueError(f"`smooth` must be >= 0, got {smooth}.")
    if not isinstance(erosion_radius, (int, np.integer)) or erosion_radius < 0:
        raise ValueError(f"`erosion_radius` must be an integer >= 0, got {erosion_radius!r}.")
    if not isinstance(min_distance, (int, np.integer)) or min_distance < 1:
        raise ValueError(f"`min_distance` must be an integer >= 1, got {min_distance!r}.")
    _sdata.check_new_keys(sdata, {labels_key_added: "labels"}, overwrite=overwrite)
    image_key, img = _plane(sdata, image_key, image_channel)
    labels = _watershed_cells(
        img, smooth=smooth, erosion_radius=int(erosion_radius), min_distance=int(min_distance), threshold=threshold
    )
    _store(sdata, labels, image_key, labels_key_added, overwrite)


def expand_nuclei(
    sdata: SpatialData,
    *,
    labels_key: str | None = None,
    image_key: str | None = None,
    image_channel: int | str | None = None,
    distance_um: float = 5.0,
    pixel_size: float | None = None,
    coordinate_system: str | None = None,
    labels_key_added: str = "expanded_nuclei",
    overwrite: bool = False,
) -> None:
    """Nucleus expansion, as vendors approximate cells: each nucleus grows by ``distance_um`` microns.

    Nuclei are the labels element ``labels_key`` when given, else a nucleus
    watershed of the image (:func:`watershed_nuclei`). Each nucleus grows by
    up to ``distance_um`` without overlapping its neighbours
    (``skimage.segmentation.expand_labels``; pixels between two nuclei go to
    the nearer). Microns become pixels by ``pixel_size`` (um per pixel) when
    given, else through the element's transformation to a micron coordinate
    system (``coordinate_system``, by default one named ``"microns"``,
    ``"um"``, ...; pixels must be square), else by the pixel size found as
    :func:`watershed_nuclei` finds it (for labels: their median nucleus
    diameter against the default model's reference, logged). Xenium uses 5 um
    (15 um in its first release).

    Returns
    -------
    ``None``; ``sdata.labels[labels_key_added]``: uint32 labels on the
    source element's grid with its transformations.

    Examples
    --------
    >>> import gsn_spatial as gsn
    >>> sdata = gsn.datasets.synthetic_tissue((128, 128), seed=2)
    >>> gsn.tl.expand_nuclei(sdata, labels_key="nuclei", distance_um=2.0)  # 4 px at 0.5 um / px
    >>> int((sdata.labels["expanded_nuclei"] > 0).sum()) > int((sdata.labels["nuclei"] > 0).sum())
    True
    """

    if labels_key is not None and image_key is not None:
        raise ValueError("Pass either `labels_key` (nuclei) or `image_key` (segment nuclei first), not both.")
    if (
        isinstance(distance_um, bool)
        or not isinstance(distance_um, (int, float, np.number))
        or not np.isfinite(distance_um)
    ):
        raise TypeError(f"`distance_um` must be a finite number, got {distance_um!r}.")
    if distance_um < 0:
        raise ValueError(f"`distance_um` must be >= 0, got {distance_um}.")
    if labels_key is not None or (image_key is None and not any(True for _ in sdata.images)):
        source_key = _sdata.resolve_key(sdata, "labels", labels_key, parameter="labels_key")
    else:
        source_key = _sdata.resolve_key(sdata, "images", image_key, parameter="image_key")
    _sdata.check_new_keys(sdata, {labels_key_added: "labels"}, overwrite=overwrite)
    if source_key == labels_key_added:
        raise ValueError("`labels_key_added` must differ from `labels_key`; the input is never replaced.")
    check_pixel_size(pixel_size)
    if labels_key is not None or source_key in sdata.labels:
        nuclei = np.asarray(_sdata.scale0(sdata.labels[source_key]).data)
        um = pixel_size or _microns_per_pixel(sdata, source_key, nuclei=nuclei, coordinate_system=coordinate_system)
    else:
        _, img = _plane(sdata, source_key, image_channel)
        um = pixel_size or _microns_per_pixel(sdata, source_key, image=img, coordinate_system=coordinate_system)
        nuclei = _watershed(img, smooth=0.5 / um, min_distance=max(1, round(2.0 / um)))
    grown = expand_labels(nuclei, distance=distance_um / um) if distance_um > 0 else nuclei
    _store(sdata, np.asarray(grown), source_key, labels_key_added, overwrite)
