"""Preprocessing: the RNA location map as an image element."""

from __future__ import annotations

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


def rescale_image(
    sdata: SpatialData,
    *,
    factor: float,
    image_key: str | None = None,
    key_added: str | None = None,
    overwrite: bool = False,
) -> None:
    """Add a resampled copy of an image, e.g. to bring a slide to a model's pixel size.

    The new element's pixel grid is ``factor`` times coarser (``factor > 1``
    downsamples, by area averaging) and its transformations are the image's
    composed with ``Scale(factor)``, so it stays aligned with every other
    element. Segmenting it gives labels on the coarse grid, aligned the same way.

    Parameters
    ----------
    factor
        Old pixels per new pixel, e.g. ``0.5 / 0.2125`` to take Xenium's
        0.2125 um pixels to 0.5 um.
    key_added
        Default ``f"{image_key}_x{factor:g}"``.

    Examples
    --------
    >>> import gsn_spatial as gsn
    >>> sdata = gsn.datasets.synthetic_tissue((128, 128), seed=0)
    >>> gsn.pp.rescale_image(sdata, image_key="dapi", factor=2, key_added="dapi_half")
    >>> sdata.images["dapi_half"].shape
    (1, 64, 64)
    """
    from skimage.transform import resize
    from spatialdata.transformations import Scale, Sequence

    image_key = _sdata.resolve_key(sdata, "images", image_key, parameter="image_key")
    if not factor > 0:
        raise ValueError(f"`factor` must be positive, got {factor}.")
    key_added = key_added or f"{image_key}_x{factor:g}"
    _sdata.check_new_keys(sdata, {key_added: "images"}, overwrite=overwrite)
    image_el = sdata.images[image_key]
    plane = _sdata.scale0(image_el)
    c, h, w = (int(plane.sizes[d]) for d in ("c", "y", "x"))
    shape = (c, max(1, round(h / factor)), max(1, round(w / factor)))
    data = np.asarray(plane.data)
    out = resize(data, shape, order=1, anti_aliasing=factor > 1, preserve_range=True).astype(data.dtype)
    # The coarse grid's pixel edges land on the fine grid at ``h / new_h`` spacing.
    scale = Scale([h / shape[1], w / shape[2]], axes=("y", "x"))
    tf = {cs: Sequence([scale, t]) for cs, t in get_transformation(image_el, get_all=True).items()}
    element = Image2DModel.parse(out, dims=("c", "y", "x"), c_coords=list(plane.coords["c"].values), transformations=tf)
    _sdata.store_elements(sdata, {key_added: element}, overwrite=overwrite)


__all__ = ["rna_density", "labels_from_assignment", "rescale_image"]
