"""Element keys: resolving the one a call means, refusing to overwrite, finding the gene column; quiet reads."""

from __future__ import annotations

import logging
import re
import warnings
from contextlib import contextmanager

import dask.dataframe as dd
from spatialdata import SpatialData
from spatialdata._core.validation import check_valid_name
from spatialdata.transformations import get_transformation

from gsn_spatial._constants import Keys
from gsn_spatial._sdata.images import scale0, stain_channels

ELEMENT_KINDS = ("images", "labels", "points", "shapes", "tables")

logger = logging.getLogger(__name__)


@contextmanager
def quiet_table_writes():
    """Silence anndata's "zarr v3 autosharding will be the default" warning, printed for every sparse matrix it
    writes (17 times for one ``segment`` into a store): a note on anndata's own future defaults, which the user
    of this package cannot act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="zarr v3 autosharding", category=UserWarning)
        yield


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


def resolve_key(sdata: SpatialData, kind: str, key: str | None, *, parameter: str, beside: str | None = None) -> str:
    """The element key to use: ``key`` if given and present, else the only element of ``kind``.

    With ``beside`` (the element the call already works on, such as its image),
    of several elements the only one in a coordinate system of ``beside``'s
    that no other candidate is in is taken: with spatialdata-io's CosMx
    reader, each field of view's image and points share a system of their own
    beside ``global``. Of several elements otherwise,
    the one that ``sdata.attrs`` names for the role (beside an image, only
    where the attrs name that image too, or none)
    (``Keys.ROLE_ATTRS``, sopa's convention) is taken; of several images, else
    the only one with a channel named as a nucleus stain, or of several such
    the first of ``Keys.PREFERRED_IMAGES`` (spatialdata-io's Xenium reader
    writes ``morphology_focus`` and ``morphology_mip``, with an H&E image
    beside them), or of the z-layers of one section (``{name}_z{k}`` of one
    shape, as spatialdata-io's MERSCOPE reader writes them) the middle one,
    the layer that reader loads by default. Elements derived by gsn_spatial
    are never picked implicitly.
    """
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
        need = {
            "images": " GeneSegNet reads a nucleus stain (DAPI) beside the transcripts: add the image as an image "
            "element (spatialdata.models.Image2DModel), with a transformation to the points' coordinate system.",
            "points": " Add the transcripts as a points element (spatialdata.models.PointsModel).",
        }.get(kind, "")
        raise KeyError(f"The SpatialData object has no {kind} element; `{parameter}` cannot be resolved.{need}")
    # Elements gsn_spatial derived from others (assignments, RNA maps) are never picked implicitly,
    # so a second run resolves the same inputs as the first.
    candidates = [n for n in names if n not in _derived_names(sdata, kind)]
    if len(candidates) == 1:
        return candidates[0]
    if beside is not None and (own := _in_a_system_of_its_own(sdata, candidates, beside)) is not None:
        logger.info(
            "Using %s element %r, in a coordinate system of %r's (pass `%s=` to choose).", kind, own, beside, parameter
        )
        return own
    role = Keys.ROLE_ATTRS.get(kind)
    named = sdata.attrs.get(role) if role else None
    if beside in sdata.images and sdata.attrs.get(Keys.ROLE_ATTRS["images"], beside) != beside:
        named = None  # recorded with another image (a run on another field of view): not this image's
    if isinstance(named, str) and named in candidates:
        logger.info(
            "Using %s element %r, named by sdata.attrs[%r] (pass `%s=` to choose).", kind, named, role, parameter
        )
        return named
    if kind == "images" and (stained := _stained_image(sdata, candidates)) is not None:
        logger.info("Using image %r of %s (pass `%s=` to choose another).", stained, candidates, parameter)
        return stained
    raise KeyError(f"Several {kind} elements: {names}. Pass `{parameter}=` to choose one.")


def _in_a_system_of_its_own(sdata: SpatialData, candidates: list[str], beside: str) -> str | None:
    """Of ``candidates``, the only one in a coordinate system of ``beside`` that no other candidate is in."""
    systems = {n: set(get_transformation(sdata[n], get_all=True)) for n in [*candidates, beside]}
    own = {members[0] for cs in systems[beside] if len(members := [n for n in candidates if cs in systems[n]]) == 1}
    return own.pop() if len(own) == 1 else None


def _stained_image(sdata: SpatialData, candidates: list[str]) -> str | None:
    """Of several images, the one to segment without being told: see :func:`resolve_key`."""
    stained = [n for n in candidates if stain_channels(scale0(sdata.images[n]))]
    if len(stained) > 1:
        stained = [n for n in Keys.PREFERRED_IMAGES if n in stained][:1] or _middle_z_layer(sdata, stained)
    return stained[0] if len(stained) == 1 else None


def _middle_z_layer(sdata: SpatialData, names: list[str]) -> list[str]:
    """``[the middle layer]`` if ``names`` are z-layers of one section (one prefix, one shape), else ``[]``."""
    layers = [re.fullmatch(r"(.+)_z(\d+)", n) for n in names]
    if not all(layers) or len({m.group(1) for m in layers}) != 1:
        return []
    if len({scale0(sdata.images[n]).shape for n in names}) != 1:
        return []
    by_z = sorted(layers, key=lambda m: int(m.group(2)))
    return [by_z[(len(by_z) - 1) // 2].string]


def _derived_names(sdata: SpatialData, kind: str) -> set[str]:
    """Names of elements gsn_spatial derived from others (recorded in ``sdata.attrs``)."""
    recorded = set(sdata.attrs.get(Keys.DERIVED_ATTR, []))
    names = set(getattr(sdata, kind))
    if kind == "points":
        # Also the assignments named by an older scheme (f"{points}_gsn"), for objects written before the record.
        recorded |= {n for n in names if n.endswith("_gsn") and n[: -len("_gsn")] in names}
    return recorded & names


def check_new_keys(sdata: SpatialData, new: dict[str, str], *, overwrite: bool) -> None:
    """Raise before any work if an output key is taken (or taken by another element type)."""
    seen: dict[str, str] = {}
    for key, kind in new.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"Output keys must be non-empty strings, got {key!r}.")
        try:  # spatialdata's own rule for element names, checked before any work rather than at the write
            check_valid_name(key)
        except ValueError as err:
            raise ValueError(f"Output key {key!r} is not a valid element name: {err} Choose another key.") from None
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


def resolve_gene_key(points: dd.DataFrame, gene_key: str | None, *, points_key: str) -> str:
    attrs = points.attrs.get("spatialdata_attrs", {})
    if gene_key is None:
        gene_key = attrs.get("feature_key")
    if gene_key is None:
        # No declared feature key: one column with a usual gene-column name is taken, as a user would expect.
        named = [c for c in points.columns if str(c).lower() in Keys.GENE_COLUMN_NAMES]
        if len(named) != 1:
            raise KeyError(
                f"Points {points_key!r} have no `feature_key`; pass `gene_key=` naming the gene column "
                f"(columns: {list(points.columns)})."
            )
        gene_key = named[0]
        logger.info("Points %r declare no feature_key; taking column %r as the gene.", points_key, gene_key)
    if gene_key not in points.columns:
        raise KeyError(f"Points {points_key!r} have no column {gene_key!r}; columns: {list(points.columns)}.")
    return gene_key
