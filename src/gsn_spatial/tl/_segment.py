"""``gsn.tl.segment``: GeneSegNet cells, a cell x gene table and a transcript assignment."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from spatialdata import SpatialData
from spatialdata.models import Labels2DModel, PointsModel, TableModel
from spatialdata.transformations import get_transformation

from gsn_spatial import __version__, _sdata
from gsn_spatial._constants import Defaults, Keys
from gsn_spatial._settings import progress_bar, settings
from gsn_spatial.core.assign import count_matrix, lookup_cells
from gsn_spatial.core.blocks import segment_blocks
from gsn_spatial.core.device import resolve_device
from gsn_spatial.core.network import GeneSegNet
from gsn_spatial.models import GeneSegModel
from gsn_spatial.tl._inputs import resolve_inputs, resolve_model

logger = logging.getLogger(__name__)


def _check_params(tile_size: int, tile_overlap: int, block_size: int, block_halo: int, min_area: int) -> None:
    if tile_size <= 0 or tile_size % GeneSegNet.INPUT_MULTIPLE:
        raise ValueError(f"`tile_size` must be a positive multiple of {GeneSegNet.INPUT_MULTIPLE}, got {tile_size}.")
    if not 0 <= tile_overlap < tile_size:
        raise ValueError(f"`tile_overlap` must be in [0, tile_size={tile_size}), got {tile_overlap}.")
    if block_size < tile_size:
        raise ValueError(f"`block_size`={block_size} must be at least `tile_size`={tile_size}.")
    if not 0 <= block_halo <= block_size:
        raise ValueError(f"`block_halo` must be in [0, block_size={block_size}], got {block_halo}.")
    if min_area < 0:
        raise ValueError(f"`min_area` must be >= 0, got {min_area}.")


def build_table(
    labels: np.ndarray,
    cell_of_point: np.ndarray,
    gene_codes: np.ndarray,
    gene_names: list[str],
    *,
    region: str,
    params: dict[str, Any],
) -> ad.AnnData:
    """Cell x gene AnnData annotating ``region``: one row per cell id present in ``labels``."""
    area = np.bincount(labels.ravel())
    cell_ids = np.flatnonzero(area)
    cell_ids = cell_ids[cell_ids > 0]
    counts = count_matrix(cell_of_point, gene_codes, cell_ids, len(gene_names))
    if len(cell_ids):
        centroids = np.asarray(ndi.center_of_mass(np.ones_like(labels, dtype=np.uint8), labels, cell_ids))
        # Pixel (r, c) spans [c, c+1) x [r, r+1): its centre is at (c + 0.5, r + 0.5).
        spatial = centroids[:, ::-1] + 0.5
    else:
        spatial = np.zeros((0, 2))
    obs = pd.DataFrame(
        {
            Keys.CELL_ID: cell_ids.astype(np.int64),
            Keys.REGION: pd.Categorical([region] * len(cell_ids), categories=[region]),
            "n_transcripts": np.asarray(counts.sum(axis=1)).ravel().astype(np.int64),
            "area": area[cell_ids].astype(np.int64),
        },
        index=pd.Index([str(i) for i in cell_ids]),
    )
    table = ad.AnnData(X=counts, obs=obs, var=pd.DataFrame(index=pd.Index(gene_names)))
    table.obsm["spatial"] = spatial
    table.uns[Keys.UNS] = {"params": params, "version": __version__}
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
    labels_key_added: str = Keys.LABELS,
    table_key_added: str = Keys.TABLE,
    assignment_key_added: str | None = None,
    tile_size: int = Defaults.TILE_SIZE,
    tile_overlap: int = Defaults.TILE_OVERLAP,
    block_size: int = Defaults.BLOCK_SIZE,
    block_halo: int = Defaults.BLOCK_HALO,
    batch_size: int = Defaults.BATCH_SIZE,
    confidence_threshold: float = 0.5,
    centre_threshold: float = 0.5,
    min_area: int = Defaults.MIN_AREA,
    device: str | None = None,
    overwrite: bool = False,
) -> None:
    """Segment cells from a nucleus stain and transcript locations with GeneSegNet.

    The transcripts are aligned to the image's pixel grid by composing the
    elements' transformations, turned into the RNA location map (Eq. 5) window
    by window, and fed with the image to the network over overlapping tiles;
    cells are decoded from the confidence, centre and offset maps (Eq. 4)
    block by block, each cell kept by the block that holds its centre.

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
        model file; default: the shipped ``"synthetic"`` model.
    labels_key_added, table_key_added
        Names of the labels and table elements written.
    assignment_key_added
        Name of the new points element with the per-transcript assignment;
        default ``f"{points_key}_gsn"``.
    tile_size, tile_overlap
        Network window and the overlap of neighbouring windows, in pixels
        (``tile_overlap=tile_size // 2`` is the paper's 50 %).
    block_size, block_halo
        Cells are decoded per block of ``block_size`` pixels, seen with
        ``block_halo`` pixels of context (keep it above two cell diameters).
    batch_size
        Windows per network call.
    confidence_threshold, centre_threshold
        Thresholds of Eq. 4 on the confidence and centre maps.
    min_area
        Cells smaller than this many pixels are dropped.
    device
        ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; default
        ``gsn.settings.device`` (``"auto"``). A device that is not present
        raises ``ValueError``.
    overwrite
        Replace existing elements with the output names.

    Returns
    -------
    ``None``; ``sdata`` gains (and, when backed by a zarr store, its store):

    - ``sdata.labels[labels_key_added]``: uint32 cells, 0 = background, on the
      image's pixel grid with the image's transformations;
    - ``sdata.tables[table_key_added]``: AnnData annotating the labels
      (``region_key="region"``, ``instance_key="cell_id"``), ``X`` sparse
      counts cells x genes, one row per cell in the labels (cells without
      transcripts included), ``obs["n_transcripts"]``, ``obs["area"]``
      (pixels), ``obsm["spatial"]`` centroids ``(x, y)`` in pixels and
      ``uns["gsn"]["params"]``;
    - ``sdata.points[assignment_key_added]``: the transcripts' ``x``, ``y`` and
      gene with a ``cell_id`` column (0 = unassigned), same transformations
      as the source points. The source points are never modified.

    Examples
    --------
    >>> import gsn_spatial as gsn
    >>> sdata = gsn.datasets.synthetic_tissue((256, 256), seed=3)
    >>> gsn.tl.segment(sdata)
    >>> t = sdata.tables["gsn_table"]
    >>> t.n_obs > 20, int(t.X.sum()) == int((sdata.points["transcripts_gsn"]["cell_id"] > 0).sum().compute())
    (True, True)
    """
    if not isinstance(sdata, SpatialData):
        raise TypeError(f"`sdata` must be a SpatialData object, got {type(sdata).__name__}.")
    _check_params(tile_size, tile_overlap, block_size, block_halo, min_area)
    for name, v in (("confidence_threshold", confidence_threshold), ("centre_threshold", centre_threshold)):
        if not 0 < v < 1:
            raise ValueError(f"`{name}` must be in (0, 1), got {v}.")
    gsn_model = resolve_model(model)
    torch_device, autocast = resolve_device(device or settings.device, cpu_bf16=settings.cpu_bf16)
    # Keys first, so that output-key errors come before any reading.
    image_key = _sdata.resolve_key(sdata, "images", image_key, parameter="image_key")
    points_key = _sdata.resolve_key(sdata, "points", points_key, parameter="points_key")
    assignment_key_added = assignment_key_added or f"{points_key}{Keys.ASSIGNMENT_SUFFIX}"
    _sdata.check_new_keys(
        sdata,
        {labels_key_added: "labels", table_key_added: "tables", assignment_key_added: "points"},
        overwrite=overwrite,
    )
    if points_key == assignment_key_added or image_key == labels_key_added:
        raise ValueError("Output keys must differ from the input elements' keys; the inputs are never replaced.")
    inputs = resolve_inputs(
        sdata,
        image_key=image_key,
        points_key=points_key,
        gene_key=gene_key,
        image_channel=image_channel,
        spec=gsn_model.input,
    )
    pts, shape = inputs.points, inputs.shape
    gsn_model.network.to(torch_device)

    progress = progress_bar("blocks")

    labels = segment_blocks(
        inputs.image_window,
        pts.xy_pixels,
        shape,
        gsn_model.network,
        rna_sigma=gsn_model.input.rna_sigma,
        rna_mode=gsn_model.input.rna_mode,
        block_size=block_size,
        halo=block_halo,
        tile_size=tile_size,
        overlap=tile_overlap,
        batch_size=batch_size,
        device=torch_device,
        autocast_dtype=autocast,
        decode_kwargs={
            "confidence_threshold": confidence_threshold,
            "centre_threshold": centre_threshold,
            "min_area": min_area,
        },
        progress=progress,
    )
    cell_of_point = lookup_cells(labels, pts.xy_pixels)

    params = {
        "image_key": image_key,
        "image_channel": inputs.channel,
        "points_key": points_key,
        "gene_key": inputs.gene_key,
        "model": str(gsn_model.meta.get("name", "custom")),
        "rna_sigma": gsn_model.input.rna_sigma,
        "rna_mode": gsn_model.input.rna_mode,
        "intensity_range": list(inputs.intensity_range),
        "tile_size": tile_size,
        "tile_overlap": tile_overlap,
        "block_size": block_size,
        "block_halo": block_halo,
        "confidence_threshold": confidence_threshold,
        "centre_threshold": centre_threshold,
        "min_area": min_area,
        "device": str(torch_device),
        "precision": str(autocast).replace("torch.", "") if autocast else "float32",
        "assignment_key": assignment_key_added,
    }
    table = build_table(labels, cell_of_point, pts.gene_codes, pts.gene_names, region=labels_key_added, params=params)
    image_tf = dict(get_transformation(inputs.image_element, get_all=True))
    labels_el = Labels2DModel.parse(
        labels, dims=("y", "x"), transformations=image_tf, chunks=(min(shape[0], 2048), min(shape[1], 2048))
    )
    assignment = pd.DataFrame(
        {
            "x": pts.xy[:, 0],
            "y": pts.xy[:, 1],
            inputs.gene_key: pd.Categorical.from_codes(pts.gene_codes, categories=pts.gene_names),
            Keys.CELL_ID: cell_of_point.astype(np.int64),
        }
    )
    points_tf = dict(get_transformation(inputs.points_element, get_all=True))
    assignment_el = PointsModel.parse(
        assignment,
        coordinates={"x": "x", "y": "y"},
        feature_key=inputs.gene_key,
        instance_key=Keys.CELL_ID,
        transformations=points_tf,
        npartitions=max(1, inputs.points_element.npartitions),
    )
    _sdata.store_elements(
        sdata,
        {labels_key_added: labels_el, assignment_key_added: assignment_el, table_key_added: table},
        overwrite=overwrite,
        derived=(assignment_key_added,),
    )
    logger.info(
        "gsn.tl.segment: %d cells, %d of %d transcripts assigned",
        table.n_obs,
        (cell_of_point > 0).sum(),
        len(cell_of_point),
    )
