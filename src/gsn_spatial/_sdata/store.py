"""Writing results: elements added to the object and, when it is backed, to its zarr store, all or nothing."""

from __future__ import annotations

import logging
from typing import Any

from spatialdata import SpatialData

from gsn_spatial._sdata.keys import quiet_ome_zarr, quiet_table_writes

logger = logging.getLogger(__name__)


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
            with quiet_table_writes():
                for name in elements:
                    if _on_disk(sdata, name):
                        if not overwrite:
                            raise ValueError(
                                f"Element {name!r} exists in the store; pass `overwrite=True` to replace it."
                            )
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
