"""A lazily resampled copy of an image element."""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np
from spatialdata import SpatialData
from spatialdata.models import Image2DModel
from spatialdata.transformations import get_transformation

from gsn_spatial import _sdata
from gsn_spatial._constants import rescaled_image_key


class _RescaledChunk:
    """One chunk of a lazily resampled ``(c, y, x)`` image (picklable, for ``da.map_blocks``)."""

    def __init__(self, data: Any, zoom: float, dtype: np.dtype):
        self.data, self.zoom, self.dtype = data, zoom, np.dtype(dtype)

    def __call__(self, block_info: dict | None = None) -> np.ndarray:
        from gsn_spatial.core.image.resample import resample_window

        (c0, c1), (y0, y1), (x0, x1) = block_info[None]["array-location"]
        shape = tuple(int(n) for n in self.data.shape[1:])
        planes = []
        for c in range(c0, c1):
            windows = _sdata.ArrayWindows(self.data[c])
            planes.append(resample_window(windows.read, shape, (y0, y1, x0, x1), self.zoom))
        out = np.stack(planes)
        if np.issubdtype(self.dtype, np.integer):
            info = np.iinfo(self.dtype)
            out = np.clip(np.rint(out), info.min, info.max)
        return out.astype(self.dtype)


def rescale_image(
    sdata: SpatialData,
    *,
    factor: float,
    image_key: str | None = None,
    key_added: str | None = None,
    chunk_size: int = 1024,
    overwrite: bool = False,
) -> None:
    """Add a lazily resampled copy of an image (for viewing, or a pyramid level of your own).

    ``gsn.tl.segment`` and ``gsn.tl.train`` resample to their model's scale
    by themselves, window by window; this is not needed before them. The new
    element's pixel grid is ``factor`` times coarser (``factor > 1``
    downsamples, with an anti-aliasing Gaussian) and its transformations are
    the image's composed with ``Scale(factor)``, so it stays aligned with
    every other element. It is a dask array computed chunk by chunk from the
    source pixels around each chunk
    (:func:`~gsn_spatial.core.image.resample.resample_window`): nothing is loaded
    until it is read or written.

    Parameters
    ----------
    factor
        Old pixels per new pixel, e.g. ``0.5 / 0.2125`` to take Xenium's
        0.2125 um pixels to 0.5 um.
    key_added
        Default ``f"{image_key}_x{factor:g}"``.
    chunk_size
        Chunk side of the new element, in its pixels.

    Examples
    --------
    >>> import gsn_spatial as gsn
    >>> sdata = gsn.datasets.synthetic_tissue((128, 128), seed=0)
    >>> gsn.pp.rescale_image(sdata, image_key="dapi", factor=2, key_added="dapi_half")
    >>> sdata.images["dapi_half"].shape
    (1, 64, 64)
    """
    from spatialdata.transformations import Scale, Sequence

    from gsn_spatial.core.image.resample import working_shape

    image_key = _sdata.resolve_key(sdata, "images", image_key, parameter="image_key")
    if isinstance(factor, bool) or not isinstance(factor, (int, float, np.number)) or not factor > 0:
        raise ValueError(f"`factor` must be a positive number, got {factor!r}.")
    if not isinstance(chunk_size, (int, np.integer)) or chunk_size < 16:
        raise ValueError(f"`chunk_size` must be an integer >= 16, got {chunk_size!r}.")
    key_added = key_added or rescaled_image_key(image_key, factor)
    _sdata.check_new_keys(sdata, {key_added: "images"}, overwrite=overwrite)
    image_el = sdata.images[image_key]
    plane = _sdata.scale0(image_el)
    data = plane.data if isinstance(plane.data, da.Array) else da.from_array(plane.data)
    c = int(plane.sizes["c"])
    h, w = working_shape((int(plane.sizes["y"]), int(plane.sizes["x"])), 1 / factor)
    chunks = ((1,) * c, *(tuple(min(chunk_size, n - i) for i in range(0, n, chunk_size)) for n in (h, w)))
    out = da.map_blocks(
        _RescaledChunk(data, 1 / factor, data.dtype),
        chunks=chunks,
        dtype=data.dtype,
        meta=np.zeros((0, 0, 0), data.dtype),
    )
    # Pixel centres are aligned (resample_window): new pixel i is old coordinate (i + 0.5) * factor.
    scale = Scale([factor, factor], axes=("y", "x"))
    tf = {cs: Sequence([scale, t]) for cs, t in get_transformation(image_el, get_all=True).items()}
    element = Image2DModel.parse(out, dims=("c", "y", "x"), c_coords=list(plane.coords["c"].values), transformations=tf)
    _sdata.store_elements(sdata, {key_added: element}, overwrite=overwrite)
