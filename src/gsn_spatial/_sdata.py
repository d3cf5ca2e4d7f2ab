"""The one thin layer between SpatialData containers and the array-level core.

Everything that knows about SpatialData elements, their transformations and
their stores lives here: key resolution, channel selection, aligning points to
an image's pixel grid by composing transformations, and writing results.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import dask.dataframe as dd
import numpy as np
import pandas as pd
import xarray as xr
from spatialdata import SpatialData
from spatialdata.transformations import (
    get_transformation,
    get_transformation_between_coordinate_systems,
)

logger = logging.getLogger(__name__)

ELEMENT_KINDS = ("images", "labels", "points", "shapes", "tables")
#: Coordinate-system names taken to be in microns when none is given.
MICRON_SYSTEMS = ("microns", "micron", "micrometers", "micrometres", "micrometer", "um", "µm")


@contextmanager
def quiet_ome_zarr():
    """Silence ``ome_zarr.reader``'s "no parent found" warning, which every labels element read prints."""
    reader = logging.getLogger("ome_zarr.reader")
    level = reader.level
    reader.setLevel(logging.ERROR)
    try:
        yield
    finally:
        reader.setLevel(level)


def resolve_key(sdata: SpatialData, kind: str, key: str | None, *, parameter: str) -> str:
    """The element key to use: ``key`` if given and present, else the only element of ``kind``."""
    if not isinstance(sdata, SpatialData):
        raise TypeError(f"Expected a SpatialData object, got {type(sdata).__name__}.")
    names = list(getattr(sdata, kind).keys())
    if key is not None:
        if not isinstance(key, str):
            raise TypeError(f"`{parameter}` must be a string, got {type(key).__name__}.")
        if key not in names:
            raise KeyError(f"No {kind} element {key!r} (`{parameter}`). Available {kind}: {names or 'none'}.")
        return key
    if not names:
        raise KeyError(f"The SpatialData object has no {kind} element; `{parameter}` cannot be resolved.")
    # Elements gsn_spatial derived from others (assignments, RNA maps) are never picked implicitly,
    # so a second run resolves the same inputs as the first.
    candidates = [n for n in names if n not in _derived_names(sdata, kind)]
    if len(candidates) == 1:
        return candidates[0]
    raise KeyError(f"Several {kind} elements: {names}. Pass `{parameter}=` to choose one.")


def _derived_names(sdata: SpatialData, kind: str) -> set[str]:
    """Names of elements gsn_spatial derived from others (recorded in ``sdata.attrs``)."""
    from gsn_spatial._constants import Keys

    recorded = set(sdata.attrs.get(Keys.DERIVED_ATTR, []))
    names = set(getattr(sdata, kind))
    if kind == "points":
        # Also the assignments named by an older scheme (f"{points}_gsn"), for objects written before the record.
        recorded |= {n for n in names if n.endswith("_gsn") and n[: -len("_gsn")] in names}
    return recorded & names


def scale0(element: Any) -> xr.DataArray:
    """Full-resolution DataArray of a single- or multi-scale raster element."""
    if isinstance(element, xr.DataTree):
        return next(iter(element["scale0"].values()))
    return element


def select_channel(image: xr.DataArray, channel: int | str | None, *, image_key: str) -> xr.DataArray:
    """The ``(y, x)`` plane of one channel of a ``(c, y, x)`` image."""
    if "z" in image.dims:
        raise ValueError(f"Image {image_key!r} is 3-D (dims {image.dims}); only 2-D (c, y, x) images are supported.")
    names = list(image.coords["c"].values) if "c" in image.coords else list(range(image.sizes.get("c", 1)))
    if channel is None:
        if len(names) != 1:
            raise ValueError(
                f"Image {image_key!r} has {len(names)} channels {names}; pass `image_channel=` with the nucleus stain."
            )
        return image.isel(c=0)
    if isinstance(channel, (int, np.integer)) and not isinstance(channel, bool):
        if not -len(names) <= channel < len(names):
            raise ValueError(
                f"`image_channel`={channel} is out of range for image {image_key!r} with channels {names}."
            )
        return image.isel(c=int(channel))
    if channel not in names:
        raise ValueError(f"Image {image_key!r} has no channel {channel!r}; channels are {names}.")
    return image.isel(c=names.index(channel))


def transformations(element: Any) -> dict[str, Any]:
    """An element's transformations by coordinate system."""
    return dict(get_transformation(element, get_all=True))


def scaled_affine(affine: np.ndarray, zoom: float) -> np.ndarray:
    """``affine`` (to an image's pixels) followed by a scale by ``zoom`` (to the working scale)."""
    return np.diag([zoom, zoom, 1.0]) @ np.asarray(affine, dtype=float)


def _affine_xy(transformation: Any) -> np.ndarray:
    return np.asarray(transformation.to_affine_matrix(input_axes=("x", "y"), output_axes=("x", "y")), dtype=float)


def points_to_pixels(sdata: SpatialData, points_key: str, image_key: str) -> np.ndarray:
    """3 x 3 affine from the points' coordinates to the image's pixel grid.

    Built by composing each element's transformation into a coordinate system
    they share (``points -> cs -> image pixels``). Where they share several, the
    results must agree; where they share none, SpatialData's graph search over
    coordinate systems is used.
    """
    points, image = sdata.points[points_key], sdata[image_key]
    t_points = get_transformation(points, get_all=True)
    t_image = get_transformation(image, get_all=True)
    shared = [cs for cs in t_points if cs in t_image]
    candidates = []
    for cs in shared:
        to_cs = _affine_xy(t_points[cs])
        image_to_cs = _affine_xy(t_image[cs])
        candidates.append((cs, np.linalg.solve(image_to_cs, to_cs)))
    if not candidates:
        try:
            t = get_transformation_between_coordinate_systems(sdata, points, image)
        except Exception as err:
            raise ValueError(
                f"No transformation path between points {points_key!r} (coordinate systems {list(t_points)}) and "
                f"image {image_key!r} ({list(t_image)}). Give both a transformation to a shared coordinate system."
            ) from err
        return _affine_xy(t)
    cs0, m0 = candidates[0]
    for cs, m in candidates[1:]:
        if not np.allclose(m, m0, atol=1e-6, rtol=1e-6):
            raise ValueError(
                f"Points {points_key!r} and image {image_key!r} are aligned differently in coordinate systems "
                f"{cs0!r} and {cs!r}; fix the transformations so they agree."
            )
    return m0


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


def resolve_gene_key(points: dd.DataFrame, gene_key: str | None, *, points_key: str) -> str:
    attrs = points.attrs.get("spatialdata_attrs", {})
    if gene_key is None:
        gene_key = attrs.get("feature_key")
        if gene_key is None:
            raise KeyError(
                f"Points {points_key!r} have no `feature_key`; pass `gene_key=` naming the gene column "
                f"(columns: {list(points.columns)})."
            )
    if gene_key not in points.columns:
        raise KeyError(f"Points {points_key!r} have no column {gene_key!r}; columns: {list(points.columns)}.")
    return gene_key


@dataclass
class PointsInPixels:
    """Transcripts read from a points element, with their positions on the image's pixel grid."""

    xy: np.ndarray  # (n, 2) float64, in the points' own coordinates
    xy_pixels: np.ndarray  # (n, 2) float64, image pixel coordinates
    gene_codes: np.ndarray  # (n,) int32
    gene_names: list[str]


def _checked_genes(points: dd.DataFrame, gene_key: str, *, points_key: str) -> Any:
    """The gene column of 2-D points, checked to be categorical."""
    if "z" in points.columns:
        raise ValueError(f"Points {points_key!r} have a `z` column; only 2-D points are supported.")
    genes = points[gene_key]
    if not isinstance(genes.dtype, pd.CategoricalDtype):
        raise TypeError(
            f"Gene column {gene_key!r} of points {points_key!r} must be categorical (dtype {genes.dtype}); "
            "convert it with `.astype('category')` when building the points element."
        )
    return genes


def read_points(points: dd.DataFrame, gene_key: str, to_pixels: np.ndarray, *, points_key: str) -> PointsInPixels:
    """Read ``x``, ``y`` and the gene column of a points element and map them to pixels."""
    _checked_genes(points, gene_key, points_key=points_key)
    frame = points[["x", "y", gene_key]].compute()
    categories = frame[gene_key].cat.categories
    xy = frame[["x", "y"]].to_numpy(dtype=np.float64)
    if len(xy) == 0:
        raise ValueError(f"Points element {points_key!r} is empty.")
    if not np.isfinite(xy).all():
        raise ValueError(f"Points {points_key!r} have NaN or infinite coordinates; drop those rows first.")
    pix = xy @ to_pixels[:2, :2].T + to_pixels[:2, 2]
    codes = frame[gene_key].cat.codes.to_numpy().astype(np.int32)
    return PointsInPixels(xy, pix, codes, [str(c) for c in categories])


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
    affine = _affine_xy(t[name])
    # The global frame is in microns when it is the same map as a micron-named system of the element.
    same_as_microns = any(np.allclose(affine, _affine_xy(t[m])) for m in micron)
    units = "um" if name.lower() in MICRON_SYSTEMS or same_as_microns else f"units of {name!r}"
    return GlobalFrame(name, affine, units)


def micron_frame(element: Any) -> GlobalFrame | None:
    """The element's map to a coordinate system named in microns, if it has one."""
    t = transformations(element)
    names = [n for n in t if n.lower() in MICRON_SYSTEMS]
    return GlobalFrame(names[0], _affine_xy(t[names[0]]), "um") if names else None


def check_new_keys(sdata: SpatialData, new: dict[str, str], *, overwrite: bool) -> None:
    """Raise before any work if an output key is taken (or taken by another element type)."""
    seen: dict[str, str] = {}
    for key, kind in new.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"Output keys must be non-empty strings, got {key!r}.")
        low = key.lower()
        if low in seen:
            raise ValueError(f"Output keys {seen[low]!r} and {key!r} collide; element names must differ.")
        seen[low] = key
        for other_kind in ELEMENT_KINDS:
            for name in getattr(sdata, other_kind):
                if name.lower() != low:
                    continue
                if other_kind != kind:
                    raise ValueError(
                        f"Output key {key!r} is already used by a {other_kind} element; choose another key."
                    )
                if not overwrite:
                    raise ValueError(f"{kind} element {key!r} already exists; pass `overwrite=True` to replace it.")


def _on_disk(sdata: SpatialData, name: str) -> bool:
    return any(sdata._element_type_and_name_from_element_path(p)[1] == name for p in sdata.elements_paths_on_disk())


def _replace_on_disk(sdata: SpatialData, name: str) -> None:
    """Replace an element in the object's own store; the old files go only once a full copy is on disk.

    SpatialData refuses ``write_element(overwrite=True)`` inside the object's own store, and its
    documented workaround (delete, then write) loses the element if the write fails. The new element
    is first written completely under a temporary name.
    """
    tmp = f"{name}-gsn-tmp"
    sdata[tmp] = sdata[name]
    try:
        sdata.write_element(tmp)
        sdata.delete_element_from_disk(name)
        sdata.write_element(name)
        sdata.delete_element_from_disk(tmp)
    finally:
        del sdata[tmp]


def store_elements(
    sdata: SpatialData,
    elements: dict[str, Any],
    *,
    overwrite: bool,
    derived: tuple[str, ...] = (),
    attrs: dict[str, Any] | None = None,
) -> None:
    """Add complete elements to ``sdata`` and, if it is backed by a zarr store, write them there.

    All-or-nothing for new keys: if any write fails, the elements this call
    added are removed again from memory and from the store, and the previous
    in-memory elements of replaced keys are put back, before the error is
    re-raised. Elements replaced on disk (``overwrite=True``) are removed only
    after a complete copy of the new element is written. Names in ``derived``
    (outputs made from other elements of the same kind, such as a transcript
    assignment) are recorded in ``sdata.attrs`` so they are never picked as
    inputs implicitly. ``attrs`` are set in ``sdata.attrs`` once every
    element is stored.
    """
    previous = {name: sdata[name] for name in elements if name in sdata}
    written: list[str] = []
    try:
        for name, element in elements.items():
            sdata[name] = element
        if sdata.is_backed():
            for name in elements:
                if _on_disk(sdata, name):
                    if not overwrite:
                        raise ValueError(f"Element {name!r} exists in the store; pass `overwrite=True` to replace it.")
                    _replace_on_disk(sdata, name)
                else:
                    sdata.write_element(name)
                    written.append(name)
        if derived or attrs:
            from gsn_spatial._constants import Keys

            if derived:
                record = list(dict.fromkeys([*sdata.attrs.get(Keys.DERIVED_ATTR, []), *derived]))
                sdata.attrs[Keys.DERIVED_ATTR] = record
            sdata.attrs.update(attrs or {})
            if sdata.is_backed():
                sdata.write_attrs()
    except BaseException:
        for name in elements:
            if name in previous:
                sdata[name] = previous[name]
                continue
            if sdata.is_backed() and name in written:
                try:
                    sdata.delete_element_from_disk(name)  # needs the element still in memory
                except Exception:  # pragma: no cover - best effort while handling the original error
                    logger.exception("Could not remove the partly written element %r from the store.", name)
            if name in sdata:
                del sdata[name]
        raise


class PointsPartitions:
    """A points element read partition by partition, mapped to an image's pixel grid.

    Picklable (it holds the lazy dataframe and a 3 x 3 matrix), so
    ``dask.distributed`` workers can read their own partitions.
    """

    def __init__(self, points: dd.DataFrame, gene_key: str, to_pixels: np.ndarray, *, points_key: str):
        genes = _checked_genes(points, gene_key, points_key=points_key)
        if not genes.cat.known:
            genes = genes.cat.as_known()  # one pass over the gene column
        self.categories = list(genes.cat.categories)
        self.frame = points[["x", "y", gene_key]]
        self.gene_key = gene_key
        self.points_key = points_key
        self.to_pixels = np.asarray(to_pixels, dtype=float)
        self.n_partitions = int(self.frame.npartitions)

    @property
    def gene_names(self) -> list[str]:
        return [str(c) for c in self.categories]

    def partition(self, partition: int) -> pd.DataFrame:
        """Partition ``partition`` of the points' ``x``, ``y`` and gene columns (genes with known categories).

        Always read by its number in the source element, one partition per
        call: a whole-frame computation may fuse small parquet partitions, and
        then dask's partition numbers no longer match the source's.
        """
        # The synchronous scheduler as an argument, not a config change: this runs in dask's worker threads too.
        part = self.frame.partitions[partition].compute(scheduler="synchronous")
        return part.assign(**{self.gene_key: pd.Categorical(part[self.gene_key], categories=self.categories)})

    def __call__(self, partition: int) -> tuple[np.ndarray, np.ndarray]:
        part = self.partition(partition)
        xy = part[["x", "y"]].to_numpy(dtype=np.float64)
        if not np.isfinite(xy).all():
            raise ValueError(f"Points {self.points_key!r} have NaN or infinite coordinates; drop those rows first.")
        codes = part[self.gene_key].cat.codes.to_numpy().astype(np.int32)
        return xy @ self.to_pixels[:2, :2].T + self.to_pixels[:2, 2], codes


class ArrayWindows:
    """Windows of a lazy 2-D array, optionally resampled and intensity-normalised (picklable).

    With ``zoom`` != 1 a window ``(y0, y1, x0, x1)`` is in pixels of the
    working scale (``zoom`` working pixels per array pixel) and is computed
    from the array pixels around it alone
    (:func:`~gsn_spatial.core.resample.resample_window`).
    """

    def __init__(self, array: Any, intensity_range: tuple[float, float] | None = None, zoom: float = 1.0):
        self.array = array
        self.intensity_range = intensity_range
        self.zoom = float(zoom)

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Window of the array itself, at its own resolution."""
        window = self.array[y0:y1, x0:x1]
        # Synchronous as an argument, not a config change: this runs in dask's worker threads too.
        return np.asarray(window.compute(scheduler="synchronous") if hasattr(window, "compute") else window)

    def __call__(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        from gsn_spatial.core.resample import is_identity, resample_window

        if is_identity(self.zoom):
            window = self.read(y0, y1, x0, x1)
        else:
            shape = (int(self.array.shape[0]), int(self.array.shape[1]))
            window = resample_window(self.read, shape, (y0, y1, x0, x1), self.zoom)
        if self.intensity_range is None:
            return window
        from gsn_spatial.core.intensity import normalise_intensity

        return normalise_intensity(window, *self.intensity_range)


def reload_from_store(sdata: SpatialData, names: dict[str, str]) -> None:
    """Replace in-memory elements by their lazily read copies from the object's store.

    ``names`` maps element names to their kind (``"labels"``, ``"points"``, ...).
    After this the elements no longer depend on the files they were computed from.
    """
    from spatialdata import read_zarr

    with quiet_ome_zarr():
        fresh = read_zarr(sdata.path, selection=tuple(sorted(set(names.values()))))
    for name, kind in names.items():
        sdata[name] = getattr(fresh, kind)[name]
