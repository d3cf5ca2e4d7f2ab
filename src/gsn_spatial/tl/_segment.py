"""``gsn.tl.segment``: GeneSegNet cells, a cell x gene table and a transcript assignment."""

from __future__ import annotations

import copy
import hashlib
import logging
from pathlib import Path
from typing import Any

import anndata as ad
import dask.array as da
import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from spatialdata import SpatialData
from spatialdata.models import TableModel

from gsn_spatial import __version__, _sdata
from gsn_spatial._constants import Defaults, Keys, run_keys
from gsn_spatial._settings import progress_bar, settings
from gsn_spatial.core.blocks import BlockGrid, check_block_geometry
from gsn_spatial.core.density import rna_map_settings
from gsn_spatial.core.device import resolve_device
from gsn_spatial.core.intensity import sample_percentiles
from gsn_spatial.core.network import GeneSegNet
from gsn_spatial.core.resample import working_shape
from gsn_spatial.core.slide import (
    WorkDir,
    ZarrWindows,
    active_client,
    cell_table_arrays,
    count_matrix_from_runs,
    reassign_slide,
    sample_transcripts,
    segment_slide,
)
from gsn_spatial.models import GeneSegModel
from gsn_spatial.tl import _slide
from gsn_spatial.tl._inputs import (
    assignment_params,
    check_assignment,
    check_pixel_size,
    resolve_model,
    resolve_pixel_size,
)

logger = logging.getLogger(__name__)


def _check_params(tile_size: int | None, tile_overlap: int, block_size: int, block_halo: int, min_area: int) -> None:
    if tile_size is None:  # one network pass per block window
        tile_size = block_size + 2 * block_halo
    elif tile_size <= 0 or tile_size % GeneSegNet.INPUT_MULTIPLE:
        raise ValueError(f"`tile_size` must be a positive multiple of {GeneSegNet.INPUT_MULTIPLE}, got {tile_size}.")
    if not 0 <= tile_overlap < tile_size:
        raise ValueError(f"`tile_overlap` must be in [0, tile_size={tile_size}), got {tile_overlap}.")
    if tile_size > block_size + 2 * block_halo:
        raise ValueError(
            f"`tile_size`={tile_size} must be at most a block's window, `block_size` + 2 * `block_halo` = "
            f"{block_size + 2 * block_halo}."
        )
    if not 0 <= block_halo <= block_size:
        raise ValueError(f"`block_halo` must be in [0, block_size={block_size}], got {block_halo}.")
    if min_area < 0:
        raise ValueError(f"`min_area` must be >= 0, got {min_area}.")


def build_table(
    cell_ids: np.ndarray,
    area: np.ndarray,
    centroid_yx: np.ndarray,
    counts: sp.csr_matrix,
    gene_names: list[str],
    *,
    region: str,
    params: dict[str, Any],
    area_um2: np.ndarray | None = None,
    labels_element: Any = None,
    keys: dict[str, str] | None = None,
) -> ad.AnnData:
    """Cell x gene AnnData annotating ``region``: one row per cell id (sorted, ids present in the labels).

    ``centroid_yx`` and ``area`` are in pixels of the labels' grid, centroids
    as pixel-centre coordinates (a pixel ``(r, c)`` spans ``[c, c + 1) x
    [r, r + 1)``). ``obsm["spatial_pixels"]`` holds them as ``(x, y)``;
    ``obsm["spatial"]`` and ``obs["area"]`` are in the global coordinate
    system of ``labels_element`` (see :func:`gsn_spatial._sdata.global_frame`),
    or in pixels when no element is given.
    """
    total = np.asarray(counts.sum(axis=1)).ravel().astype(np.int64)
    xy_pixels = np.asarray(centroid_yx, dtype=float).reshape(-1, 2)[:, ::-1].copy()
    area_pixels = np.asarray(area, dtype=float)
    spatial = {"coordinate_system": None, "units": "pixels of the labels' grid"}
    xy, area_global, xy_um = xy_pixels, area_pixels, None
    if labels_element is not None:
        frame = _sdata.global_frame(labels_element)
        xy = frame.apply(xy_pixels)
        area_global = area_pixels * frame.area_scale
        spatial = {"coordinate_system": frame.name, "units": frame.units}
        microns = _sdata.micron_frame(labels_element)
        if microns is not None and frame.units != "um":
            xy_um = microns.apply(xy_pixels)
            spatial["microns_coordinate_system"] = microns.name
    obs = pd.DataFrame(
        {
            Keys.CELL_ID: cell_ids.astype(np.int64),
            Keys.REGION: pd.Categorical([region] * len(cell_ids), categories=[region]),
            "n_transcripts": total,
            "area": area_global,
            "area_pixels": np.rint(area_pixels).astype(np.int64),
            **({"area_um2": np.asarray(area_um2, dtype=float)} if area_um2 is not None else {}),
        },
        index=pd.Index([str(i) for i in cell_ids]),
    )
    table = ad.AnnData(X=counts, obs=obs, var=pd.DataFrame(index=pd.Index(gene_names)))
    table.obsm["spatial"] = xy
    table.obsm["spatial_pixels"] = xy_pixels
    if xy_um is not None:
        table.obsm["spatial_um"] = xy_um
    table.uns[Keys.UNS] = {"params": params, "version": __version__, "spatial": spatial, "keys": keys or {}}
    if not len(cell_ids):
        # SpatialData cannot validate a table that annotates a region with no rows, so an empty result is a
        # valid table that annotates nothing; uns["gsn"]["params"] still names the labels it belongs to.
        return TableModel.parse(table)
    return TableModel.parse(table, region=region, region_key=Keys.REGION, instance_key=Keys.CELL_ID)


def segment(
    sdata: SpatialData,
    *,
    image_key: str | None = None,
    points_key: str | None = None,
    gene_key: str | None = None,
    image_channel: int | str | None = None,
    model: GeneSegModel | str | Path | None = None,
    pixel_size: float | None = None,
    labels_grid: str = "image",
    labels_key_added: str = Keys.LABELS,
    table_key_added: str | None = None,
    assignment_key_added: str | None = None,
    assignment: str = Defaults.ASSIGNMENT,
    table_annotates: str = "labels",
    boundary_tolerance: float = 0.25,
    tile_size: int | None = None,
    tile_overlap: int = Defaults.TILE_OVERLAP,
    block_size: int = Defaults.BLOCK_SIZE,
    block_halo: int = Defaults.BLOCK_HALO,
    batch_size: int = Defaults.BATCH_SIZE,
    confidence_threshold: float | None = None,
    centre_threshold: float | None = None,
    min_area: int = Defaults.MIN_AREA,
    device: str | None = None,
    recover: bool = False,
    overwrite: bool = False,
) -> None:
    """Segment cells from a nucleus stain and transcript locations with GeneSegNet.

    The network works at its model's working scale (``model.input.pixel_size``
    um per pixel, 0.5 for the shipped models): the image is resampled to it
    window by window, whatever its own pixel size, and the transcripts are
    aligned to that grid by composing the elements' transformations. The RNA
    location map (Eq. 5) is normalised by the tissue's transcript density, so
    that platforms detecting 0.1 or 2 transcripts per um^2 give the network
    the same input. Cells are decoded from the confidence, centre and offset
    maps (Eq. 4) block by block, each cell kept by the block that holds its
    centre, and brought back to the image's pixel grid.

    Whole slides run in memory that does not grow with the slide: the image
    is read window by window, the transcripts are binned to blocks in one
    pass over their partitions and spilled to a work directory
    (``gsn.settings.work_dir``), and the labels are written chunk by chunk
    (see :mod:`gsn_spatial.core.slide`). When a ``dask.distributed`` client
    is active, the blocks run on its workers (none is created here); a GPU
    stays in this process. The result is the same wherever it ran, and
    changes little with the block size (``tests/test_scale.py``: at least
    99 % of cells and transcripts agree across block sizes).

    Parameters
    ----------
    sdata
        SpatialData object with an image element and a points element.
    image_key, points_key
        Elements to use; may be omitted when the object has exactly one.
    gene_key
        Gene column of the points; default: the points' ``feature_key``.
    image_channel
        Channel (name or index) of the nucleus stain, required when the
        image has several channels.
    model
        A :class:`~gsn_spatial.models.GeneSegModel`, a shipped model name or a
        model file; default: the shipped default model.
    pixel_size
        Microns per image pixel. Default: from the image's transformation to a
        coordinate system named in microns (``"microns"``, ``"um"``, ...: what
        the ``gsn.io`` readers write), else estimated from the size of the
        nuclei in the image compared with the model's training nuclei (a
        warning is logged when the points' transformation suggests a scale
        more than 2x away). What was used, and how it was found, is in
        ``uns["gsn"]["params"]``.
    labels_grid
        ``"image"``: labels on the image's pixel grid with its
        transformations; ``"working"``: at the working scale, with a scale
        transformation to the image's grid before the image's own (smaller
        for very fine images).
    labels_key_added
        Name of the labels; every other element of the run is named from it
        (:func:`gsn_spatial.run_keys`: ``gsn_labels`` -> ``gsn_table``,
        ``gsn_boundaries``, ``gsn_transcripts``; ``run_b`` -> ``run_b_table``,
        ...), so runs with different labels keys stand side by side.
    table_key_added, assignment_key_added
        Override the table's or the assignment's derived name (rarely needed).
    assignment
        How transcripts get their cell. ``"expression"`` (default): the cell
        under the transcript, except within 2 um of another cell (or just
        outside every cell), where the transcript goes to the nearby cell
        whose expression profile best explains its gene, discounted by
        distance (:mod:`gsn_spatial.core.reassign`; on held-out simulated
        tissue +0.06 transcript accuracy over the mask, docs/models.md).
        A transcript can so be counted in a cell whose mask is up to 2 um
        away. ``"mask"``: strictly the cell under the transcript.
    table_annotates
        ``"labels"`` (default: the labels are the segmentation itself, and
        ``spatialdata-plot``'s ``render_labels``, squidpy's
        ``spatial_segment`` and gsn's own QC read them) or ``"boundaries"``
        (what sopa, SegTraQ and Xenium Explorer exports expect). Both share
        the table's ``cell_id``; the other element's key is in
        ``uns["gsn"]["keys"]``.
    boundary_tolerance
        Simplification of the boundaries, in pixels of the labels' grid.
    tile_size, tile_overlap
        Network window and the overlap of neighbouring windows, in working
        pixels.
        Default ``None``: the whole block window in one pass, so no pixel is
        predicted twice inside a block (the fastest; F1 within 0.01 of 256 px
        tiles, ``benchmarks/speed.py``). ``tile_size=256,
        tile_overlap=128`` is the paper's 50 % overlap.
    block_size, block_halo
        Cells are decoded per block of ``block_size`` working pixels, seen
        with ``block_halo`` working pixels of context (keep it above two cell
        diameters).
    batch_size
        Windows per network call.
    confidence_threshold, centre_threshold
        Thresholds of Eq. 4 on the confidence and centre maps. Default: the
        model's, chosen on its validation data (``model.meta["decode"]``),
        else 0.5.
    min_area
        Cells smaller than this many working pixels are dropped.
    device
        ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; default
        ``gsn.settings.device`` (``"auto"``). A device that is not present
        raises ``ValueError``.
    recover
        Resume an interrupted run with the same inputs and parameters from its
        finished blocks (its work directory is kept when a run fails or is
        killed) instead of starting over.
    overwrite
        Replace existing elements with the output names.

    Returns
    -------
    ``None``; ``sdata`` gains (and, when backed by a zarr store, its store):

    - ``sdata.labels[labels_key_added]``: uint32 cells, 0 = background, on the
      image's pixel grid with the image's transformations (see
      ``labels_grid``), chunked by block,
      multiscale (the image's scale factors, or halvings for images above
      4096 px) for large images;
    - ``sdata.shapes[<run>_boundaries]``: one Polygon per cell (its largest
      piece, holes filled), indexed by ``cell_id``, in the labels' pixel frame
      with the labels' transformations, drawn window by window;
    - ``sdata.tables[table_key_added]``: AnnData annotating the labels
      (``region_key="region"``, ``instance_key="cell_id"``), ``X`` sparse
      counts cells x genes, one row per cell in the labels (cells without
      transcripts included), ``obs["n_transcripts"]``, ``obs["area"]``
      (in the units of the image's global coordinate system),
      ``obs["area_pixels"]`` (pixels of the labels' grid), ``obs["area_um2"]``,
      ``obsm["spatial"]`` centroids ``(x, y)`` in that global coordinate
      system (``uns["gsn"]["spatial"]`` names it and its units),
      ``obsm["spatial_pixels"]`` the same in pixels of the labels' grid
      (and ``obsm["spatial_um"]`` in microns when that frame is not in microns
      but the labels have a coordinate system named in microns),
      ``uns["gsn"]["keys"]`` the run's element keys and
      ``uns["gsn"]["params"]`` (the pixel size used and its source, the
      RNA map's sigma and level, the transcript density);
    - ``sdata.points[<run>_transcripts]``: the transcripts' ``x``, ``y`` and
      gene with a ``cell_id`` column (0 = unassigned), same transformations
      as the source points. The source points are never modified;
    - ``sdata.attrs``: sopa's keys for the boundaries, transcripts and image
      of this run, so that ``sopa.aggregate(sdata)`` and
      ``sopa.io.explorer.write`` find them without arguments.

    Examples
    --------
    >>> import gsn_spatial as gsn
    >>> sdata = gsn.datasets.synthetic_tissue((256, 256), seed=3)
    >>> gsn.tl.segment(sdata)
    >>> t = sdata.tables["gsn_table"]
    >>> t.n_obs > 20, int(t.X.sum()) == int((sdata.points["gsn_transcripts"]["cell_id"] > 0).sum().compute())
    (True, True)
    """
    if not isinstance(sdata, SpatialData):
        raise TypeError(f"`sdata` must be a SpatialData object, got {type(sdata).__name__}.")
    _check_params(tile_size, tile_overlap, block_size, block_halo, min_area)
    check_pixel_size(pixel_size)
    if labels_grid not in ("image", "working"):
        raise ValueError(f"`labels_grid` must be 'image' or 'working', got {labels_grid!r}.")
    for name, v in (("confidence_threshold", confidence_threshold), ("centre_threshold", centre_threshold)):
        if v is not None and not 0 < v < 1:
            raise ValueError(f"`{name}` must be in (0, 1), got {v}.")
    if table_annotates not in ("labels", "boundaries"):
        raise ValueError(f"`table_annotates` must be 'labels' or 'boundaries', got {table_annotates!r}.")
    check_assignment(assignment)
    if not boundary_tolerance >= 0:
        raise ValueError(f"`boundary_tolerance` must be >= 0 pixels, got {boundary_tolerance}.")
    keys = run_keys(labels_key_added)
    table_key_added = table_key_added or keys.table
    gsn_model = resolve_model(model)
    model_decode = gsn_model.meta.get("decode", {})
    if confidence_threshold is None:
        confidence_threshold = float(model_decode.get("confidence_threshold", 0.5))
    if centre_threshold is None:
        centre_threshold = float(model_decode.get("centre_threshold", 0.5))
    # The peak spacing and vote reach the model was validated with, in its working pixels (decode's defaults else).
    vote_geometry = {k: model_decode[k] for k in ("min_distance", "max_vote_distance") if k in model_decode}
    torch_device, autocast = resolve_device(device or settings.device, cpu_bf16=settings.cpu_bf16)
    # Keys first, so that output-key errors come before any reading.
    image_key = _sdata.resolve_key(sdata, "images", image_key, parameter="image_key")
    points_key = _sdata.resolve_key(sdata, "points", points_key, parameter="points_key")
    assignment_key_added = assignment_key_added or keys.assignment
    outputs = {
        labels_key_added: "labels",
        table_key_added: "tables",
        keys.boundaries: "shapes",
        assignment_key_added: "points",
    }
    _sdata.check_new_keys(sdata, outputs, overwrite=overwrite)
    if points_key == assignment_key_added or image_key == labels_key_added:
        raise ValueError("Output keys must differ from the input elements' keys; the inputs are never replaced.")
    spec = gsn_model.input
    check_block_geometry(block_size, block_halo, spec.rna_sigma)
    image_el = sdata.images[image_key]
    plane = _sdata.select_channel(_sdata.scale0(image_el), image_channel, image_key=image_key)
    pixels = plane.data if isinstance(plane.data, da.Array) else da.from_array(plane.data)
    channel = str(plane.coords["c"].item()) if "c" in plane.coords else ""
    points_el = sdata.points[points_key]
    gene_key = _sdata.resolve_gene_key(points_el, gene_key, points_key=points_key)
    found = resolve_pixel_size(
        sdata, image_key=image_key, points_key=points_key, pixels=pixels, pixel_size=pixel_size, spec=spec
    )
    zoom = found.zoom(spec)
    # Everything below runs at the working scale: the points are mapped onto its grid, the image is resampled.
    to_working = _sdata.scaled_affine(_sdata.points_to_pixels(sdata, points_key, image_key), zoom)
    points = _sdata.PointsPartitions(points_el, gene_key, to_working, points_key=points_key)
    intensity_range = sample_percentiles(pixels, spec.percentiles)
    shape = working_shape((int(pixels.shape[0]), int(pixels.shape[1])), zoom)
    grid = BlockGrid(shape, block_size, block_halo)

    params = {
        "image_key": image_key,
        "image_channel": channel,
        "points_key": points_key,
        "gene_key": gene_key,
        "model": str(gsn_model.meta.get("name", "custom")),
        **found.to_params(),
        "working_pixel_size": spec.pixel_size,
        "labels_grid": labels_grid,
        "rna_sigma_um": spec.rna_sigma_um,
        "rna_norm": spec.rna_norm,
        "rna_mode": spec.rna_mode,
        "rna_method": spec.rna_method,
        "intensity_range": list(intensity_range),
        "tile_size": tile_size,
        "tile_overlap": tile_overlap,
        "block_size": block_size,
        "block_halo": block_halo,
        "confidence_threshold": confidence_threshold,
        "centre_threshold": centre_threshold,
        "min_area": min_area,
        **vote_geometry,
        "device": str(torch_device),
        "precision": str(autocast).replace("torch.", "") if autocast else "float32",
        "compiled": bool(settings.compile),
        "assignment_key": assignment_key_added,
        **assignment_params(assignment),
    }
    run_dir, resumed, lock = _slide.open_tool_run(
        "segment",
        sdata,
        shape=shape,
        n_partitions=points.n_partitions,
        # The device does not change the result, so a run may resume on another one.
        params={"model_digest": _network_digest(gsn_model.network)}
        | {k: v for k, v in params.items() if k != "device"},
        recover=recover,
    )
    with lock:  # released however the run ends; the work directory stays on failure
        work = WorkDir(run_dir, grid, points.n_partitions)
        if not resumed:
            work.create_arrays()
        client = active_client()
        network = gsn_model.network.to(torch_device)
        if settings.compile and (client is None or torch_device.type != "cpu"):
            # Edge windows keep their own shapes (padded only to the network's input multiple, as one pass over
            # the image is), so a slide compiles up to four shapes: padding them all to one shape changed the
            # cells near the image's edges (F1 0.93 against the eager run, tests/test_inference.py).
            # Compiled in a copy, so that the caller's model stays a plain module.
            network = copy.deepcopy(network)
            network.compile(dynamic=False)

        def check_binned(lengths: list[int], inside: int) -> None:
            if sum(lengths) == 0:
                raise ValueError(f"Points element {points_key!r} is empty.")
            if inside == 0:
                raise ValueError(
                    f"No transcript of {points_key!r} falls inside image {image_key!r} ({shape[1]} x {shape[0]} px) "
                    "after composing their transformations; check the elements' coordinate systems."
                )
            if inside < 0.5 * sum(lengths):
                share = 100 * inside / sum(lengths)
                logger.warning("Only %.0f%% of the transcripts of %r fall inside the image.", share, points_key)
            sigma, level, per_um2 = rna_map_settings(
                sample_transcripts(work),
                shape,
                pixel_size=spec.pixel_size,
                sigma_um=spec.rna_sigma_um,
                norm=spec.rna_norm,
                bin_um=spec.density_bin_um,
            )
            params.update({"rna_level": level, "transcripts_per_um2": per_um2})
            return {"rna_sigma": sigma, "rna_level": level}

        _, edges = segment_slide(
            work,
            image=_sdata.ArrayWindows(pixels, intensity_range, zoom),
            points=points,
            network=network,
            options={
                "rna_sigma": spec.rna_sigma,
                "rna_mode": spec.rna_mode,
                "rna_method": spec.rna_method,
                "tile_size": tile_size,
                "overlap": tile_overlap,
                "batch_size": batch_size,
                "device": torch_device,
                "autocast_dtype": autocast,
                "decode_kwargs": {
                    **vote_geometry,
                    "confidence_threshold": confidence_threshold,
                    "centre_threshold": centre_threshold,
                    "min_area": min_area,
                },
            },
            client=client,
            # A GPU stays in this process, batched; only CPU inference is spread over the cluster.
            network_on_client=torch_device.type == "cpu",
            progress=progress_bar,
            on_binned=check_binned,
        )
        cell_ids, area, centroids = cell_table_arrays(work)
        counts = count_matrix_from_runs(work, cell_ids, edges, len(points.gene_names))
        if assignment == "expression":
            work = reassign_slide(
                work,
                labels=ZarrWindows(work.path / "labels.zarr"),
                cell_ids=cell_ids,
                counts=counts,
                bucket_edges=edges,
                radius=Defaults.REASSIGN_RADIUS_UM / spec.pixel_size,
                length=Defaults.REASSIGN_LENGTH_UM / spec.pixel_size,
                client=client,
                progress=progress_bar,
            )
            counts = count_matrix_from_runs(work, cell_ids, edges, len(points.gene_names))
        params["distributed"] = client is not None
        # The run's cells are on the working grid; the table describes them on the labels' grid.
        to_labels = 1.0 / zoom if labels_grid == "image" else 1.0
        in_memory = not sdata.is_backed()
        labels_el = _slide.labels_element(
            work, image_el, in_memory=in_memory, zoom=zoom, image_grid=labels_grid == "image"
        )
        params["boundary_tolerance_px"] = boundary_tolerance
        run = {
            "labels": labels_key_added,
            "table": table_key_added,
            "boundaries": keys.boundaries,
            "assignment": assignment_key_added,
        }
        table = build_table(
            cell_ids,
            area * to_labels**2,
            centroids * to_labels,
            counts,
            points.gene_names,
            region=labels_key_added if table_annotates == "labels" else keys.boundaries,
            params=params,
            area_um2=area * spec.pixel_size**2,
            labels_element=labels_el,
            keys=run,
        )
        elements = {
            labels_key_added: labels_el,
            keys.boundaries: _slide.boundaries_element(
                labels_el, cell_ids, centroids * to_labels, tolerance=boundary_tolerance
            ),
            assignment_key_added: _slide.assignment_element(work, points, points_el, in_memory=in_memory),
            table_key_added: table,
        }
        sopa_attrs = {"boundaries": keys.boundaries, "transcripts": points_key, "image": image_key}
        _slide.store_run(sdata, work, elements, outputs, run=run, overwrite=overwrite, sopa_attrs=sopa_attrs)
    logger.info(
        "gsn.tl.segment: %d cells, %d transcripts assigned",
        table.n_obs,
        int(table.X.sum()),
    )


def _network_digest(network: torch.nn.Module) -> str:
    """Hash of a network's weights (identifies the model of a resumable run)."""
    h = hashlib.sha256()
    for name, tensor in network.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]
