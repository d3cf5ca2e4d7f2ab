"""Preprocessing: the RNA location map as an image element."""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np
from spatialdata import SpatialData
from spatialdata.models import Image2DModel, Labels2DModel
from spatialdata.transformations import get_transformation

from gsn_spatial import _sdata
from gsn_spatial._constants import Keys
from gsn_spatial.core.blocks import PointBins
from gsn_spatial.core.density import check_density_options, density_halo, rna_density_window


def rna_density(
    sdata: SpatialData,
    *,
    points_key: str | None = None,
    image_key: str | None = None,
    gene_key: str | None = None,
    sigma: float = 7.0,
    mode: str = "sum",
    method: str = "exact",
    chunk_size: int = 1024,
    key_added: str = Keys.RNA_DENSITY,
    overwrite: bool = False,
) -> None:
    """The RNA location map (the paper's Eq. 5) on an image's pixel grid.

    ``G(p) = min(sum_l exp(-|p - g_l|^2 / (2 sigma^2)), 1)``: a lazy dask image
    whose chunks are computed from only the transcripts in the chunk plus a
    ``4 sigma`` halo. The points are aligned to the image by composing their
    transformations.

    Parameters
    ----------
    sdata
        SpatialData object.
    points_key, image_key
        Transcripts and the image whose pixel grid the map uses.
    gene_key
        Gene column (only validated here; every transcript counts).
    sigma
        Gaussian standard deviation in pixels (the paper's 7 by default).
    mode
        ``"sum"`` (Eq. 5) or ``"max"`` (the authors' code).
    method
        ``"exact"`` (the sum of Gaussians at pixel centres) or ``"binned"``
        (transcripts counted per pixel, then one separable Gaussian filter:
        about 9x faster, each transcript moved at most half a pixel; what
        ``gsn.tl.segment`` uses with the shipped models).
    chunk_size
        Chunk size of the dask image.
    key_added
        Name of the image element written: ``(c, y, x)`` float32, channel
        ``"rna_density"``, with the image's transformations.
    overwrite
        Replace an existing element of that name.

    Examples
    --------
    >>> import gsn_spatial as gsn
    >>> sdata = gsn.datasets.synthetic_tissue((128, 128), seed=0)
    >>> gsn.pp.rna_density(sdata, sigma=3)
    >>> float(sdata.images["gsn_rna_density"].max()) <= 1.0
    True
    """
    image_key = _sdata.resolve_key(sdata, "images", image_key, parameter="image_key")
    points_key = _sdata.resolve_key(sdata, "points", points_key, parameter="points_key")
    _sdata.check_new_keys(sdata, {key_added: "images"}, overwrite=overwrite)
    check_density_options(sigma, mode, method)  # before any chunk is computed
    if chunk_size < density_halo(sigma):
        raise ValueError(f"`chunk_size`={chunk_size} must be at least the Gaussian's reach {density_halo(sigma)} px.")
    image_el = sdata.images[image_key]
    plane = _sdata.scale0(image_el)
    shape = (int(plane.sizes["y"]), int(plane.sizes["x"]))
    points_el = sdata.points[points_key]
    gene_key = _sdata.resolve_gene_key(points_el, gene_key, points_key=points_key)
    pts = _sdata.read_points(
        points_el, gene_key, _sdata.points_to_pixels(sdata, points_key, image_key), points_key=points_key
    )
    bins = PointBins(pts.xy_pixels, shape, chunk_size)

    def block(block_info=None):
        (y0, y1), (x0, x1) = block_info[None]["array-location"][1:]
        near = bins.around(y0 // chunk_size, x0 // chunk_size)
        return rna_density_window(near, (y1 - y0, x1 - x0), origin=(x0, y0), sigma=sigma, mode=mode, method=method)[
            None
        ]

    chunks = ((1,), *(tuple(min(chunk_size, n - s) for s in range(0, n, chunk_size)) for n in shape))
    lazy = da.map_blocks(block, dtype=np.float32, chunks=chunks, meta=np.array((), dtype=np.float32))
    element = Image2DModel.parse(
        lazy,
        dims=("c", "y", "x"),
        c_coords=[Keys.RNA_DENSITY_CHANNEL],
        transformations=dict(get_transformation(image_el, get_all=True)),
    )
    _sdata.store_elements(sdata, {key_added: element}, overwrite=overwrite, derived=(key_added,))


def labels_from_assignment(
    sdata: SpatialData,
    *,
    cell_id_key: str,
    points_key: str | None = None,
    image_key: str | None = None,
    max_distance: float = 5.0,
    labels_key_added: str = "assignment_labels",
    overwrite: bool = False,
) -> None:
    """Rasterise a per-transcript cell assignment (e.g. a vendor's) into a labels element.

    Each pixel takes the cell of its nearest assigned transcript within
    ``max_distance`` pixels (image grid); each cell keeps its largest piece
    with holes filled. Useful as noisy initial labels for
    :func:`gsn_spatial.tl.train`.

    Parameters
    ----------
    cell_id_key
        Integer column of the points holding the cell id (0 or negative = unassigned).
    max_distance
        Reach of each transcript, in image pixels.
    labels_key_added
        Labels element written (uint32, image's grid and transformations).

    Examples
    --------
    >>> import gsn_spatial as gsn
    >>> sdata = gsn.datasets.synthetic_tissue((128, 128), seed=0)
    >>> gsn.pp.labels_from_assignment(sdata, cell_id_key="cell_id", max_distance=3)
    >>> int(sdata.labels["assignment_labels"].max()) > 0
    True
    """
    from gsn_spatial.core.assign import rasterise_assignment

    image_key = _sdata.resolve_key(sdata, "images", image_key, parameter="image_key")
    points_key = _sdata.resolve_key(sdata, "points", points_key, parameter="points_key")
    _sdata.check_new_keys(sdata, {labels_key_added: "labels"}, overwrite=overwrite)
    points_el = sdata.points[points_key]
    if cell_id_key not in points_el.columns:
        raise KeyError(f"Points {points_key!r} have no column {cell_id_key!r}; columns: {list(points_el.columns)}.")
    frame = points_el[["x", "y", cell_id_key]].compute()
    ids = frame[cell_id_key].to_numpy()
    if not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"Column {cell_id_key!r} must hold integer cell ids, got dtype {ids.dtype}.")
    m = _sdata.points_to_pixels(sdata, points_key, image_key)
    xy = frame[["x", "y"]].to_numpy(dtype=np.float64) @ m[:2, :2].T + m[:2, 2]
    plane = _sdata.scale0(sdata.images[image_key])
    shape = (int(plane.sizes["y"]), int(plane.sizes["x"]))
    labels = rasterise_assignment(xy, np.where(ids > 0, ids, 0), shape, max_distance=max_distance)
    element = Labels2DModel.parse(
        labels.astype(np.uint32),
        dims=("y", "x"),
        transformations=dict(get_transformation(sdata.images[image_key], get_all=True)),
    )
    _sdata.store_elements(sdata, {labels_key_added: element}, overwrite=overwrite)


class _RescaledChunk:
    """One chunk of a lazily resampled ``(c, y, x)`` image (picklable, for ``da.map_blocks``)."""

    def __init__(self, data: Any, zoom: float, dtype: np.dtype):
        self.data, self.zoom, self.dtype = data, zoom, np.dtype(dtype)

    def __call__(self, block_info: dict | None = None) -> np.ndarray:
        from gsn_spatial.core.resample import resample_window

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
    (:func:`~gsn_spatial.core.resample.resample_window`): nothing is loaded
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
    import dask.array as da
    from spatialdata.transformations import Scale, Sequence

    from gsn_spatial.core.resample import working_shape

    image_key = _sdata.resolve_key(sdata, "images", image_key, parameter="image_key")
    if isinstance(factor, bool) or not isinstance(factor, (int, float, np.number)) or not factor > 0:
        raise ValueError(f"`factor` must be a positive number, got {factor!r}.")
    if not isinstance(chunk_size, (int, np.integer)) or chunk_size < 16:
        raise ValueError(f"`chunk_size` must be an integer >= 16, got {chunk_size!r}.")
    key_added = key_added or f"{image_key}_x{factor:g}"
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


__all__ = ["rna_density", "labels_from_assignment", "rescale_image"]
