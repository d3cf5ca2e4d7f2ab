"""``gsn.tl.segment``: GeneSegNet cells, a cell x gene table and a transcript assignment."""

from __future__ import annotations

import logging
from pathlib import Path

from spatialdata import SpatialData

from gsn_spatial import _sdata
from gsn_spatial._constants import Defaults, Keys, run_keys
from gsn_spatial._settings import progress_bar, settings
from gsn_spatial.core.network.device import resolve_device
from gsn_spatial.core.slide.blocks import BlockGrid, WindowOptions, check_block_geometry
from gsn_spatial.core.slide.runner import active_client
from gsn_spatial.core.slide.steps import (
    cell_table_arrays,
    count_matrix_from_runs,
    reassign_slide,
    segment_slide,
)
from gsn_spatial.core.slide.workdir import WorkDir, ZarrWindows
from gsn_spatial.models import GeneSegModel
from gsn_spatial.tl import _slide
from gsn_spatial.tl._genes import check_gene_options, gene_roles
from gsn_spatial.tl._image_only import image_only_when_no_points
from gsn_spatial.tl._inputs import (
    assignment_params,
    check_assignment,
    check_outputs,
    check_tiling,
    decode_settings,
    int8_inference,
    network_digest,
    resolve_inputs,
    resolve_model,
)
from gsn_spatial.tl._outcome import check_assigned_share
from gsn_spatial.tl._pixel_size import check_pixel_size
from gsn_spatial.tl._table import build_table

logger = logging.getLogger(__name__)


@image_only_when_no_points
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
    rna_normalisation: str = Defaults.RNA_NORMALISATION,
    control_genes: str | None = Defaults.CONTROL_GENES,
    min_qv: float | None = Defaults.MIN_QV,
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
    (see :mod:`gsn_spatial.core.slide.steps`). When a ``dask.distributed`` client
    is active, the blocks run on its workers (none is created here); a GPU
    stays in this process. The result is the same wherever it ran, and
    changes little with the block size (``tests/test_scale.py``: at least
    99 % of cells and transcripts agree across block sizes).

    Parameters
    ----------
    sdata
        SpatialData object with an image element and a points element.
    image_key, points_key
        Elements to use; may be omitted when the object has exactly one. An object with no points element is
        segmented from the stain alone (a warning; the table has no genes and no assignment is written).
    gene_key
        Gene column of the points (categories, strings or integers); default: the points' ``feature_key``, else
        the one column with a usual gene-column name (``gene``, ``feature_name``, ...; ``Keys.GENE_COLUMN_NAMES``).
    image_channel
        Channel (name or index) of the nucleus stain. Default: the only
        channel, or the one channel named as a nucleus stain ("DAPI",
        "Hoechst", ...; logged), or the blue channel of an RGB composite with channels ``0, 1, 2`` or ``r, g, b``
        (a warning); a ValueError asks for it otherwise. A z-stack is used through its maximum projection along z.
    model
        A :class:`~gsn_spatial.models.GeneSegModel`, a shipped model name or a
        model file; default: the shipped default model.
    pixel_size
        Microns per image pixel. Default: from the image's transformation to a coordinate system named in microns
        (``"microns"``, ``"um"``, ...: what the ``gsn.io`` readers write), else estimated from the size of the
        nuclei in the image compared with the model's training nuclei. The scale the points' transformations imply
        (if the points are in micrometres, as vendors' are) is taken instead where it is within 2x of that estimate
        (30 % where the points lie on the image's own grid); a warning is logged where it is more than 2x away.
        What was used, and how it was found, is in ``uns["gsn"]["params"]``.
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
        distance (:mod:`gsn_spatial.core.assign.expression`; on held-out simulated
        tissue +0.068 to +0.083 transcript accuracy over the mask, docs/models.md).
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
        else 0.5; the default model's confidence threshold follows the
        tissue's transcript density (lower where transcripts are sparse;
        ``params["confidence_threshold"]`` records the one used).
    min_area
        Cells smaller than this many working pixels are dropped.
    rna_normalisation
        ``"local"`` (default): the RNA map's level and the confidence threshold follow the transcript density
        within ~40 um (:mod:`gsn_spatial.core.rna.local`, ``params["rna_local"]``); ``"slide"``: one per slide.
    control_genes
        Regular expression matched at the start of gene names (case-insensitive) that marks control probes
        (default: the vendors' negative probes and blank or unassigned codewords, ``Defaults.CONTROL_GENES``).
        Their transcripts are assigned to cells but neither make the RNA map nor count as genes of the table
        (``obs["n_control_transcripts"]``; ``params["control_genes"]`` lists them). ``None``: no control probes.
    min_qv
        Where the points have a ``qv`` column (Xenium), transcripts whose gene call is of lower quality make the
        RNA map and are assigned, but count in ``obs["n_low_quality_transcripts"]``, not as their gene (as 10x's
        counts). ``None``: every call counts.
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
      counts cells x genes (control probes apart), one row per cell in the labels (cells without
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
      channel and ``image_z_planes``, the planes of a z-stack read through
      their maximum projection, the RNA map's sigma and level, the
      transcript density);
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
    check_tiling(tile_size, tile_overlap, block_size, block_halo, min_area)
    if rna_normalisation not in ("local", "slide"):
        raise ValueError(f"`rna_normalisation` must be 'local' or 'slide', got {rna_normalisation!r}.")
    check_pixel_size(pixel_size)
    check_outputs(labels_grid, table_annotates, boundary_tolerance)
    check_assignment(assignment)
    check_gene_options(control_genes, min_qv)
    keys = run_keys(labels_key_added)
    table_key_added = table_key_added or keys.table
    gsn_model = resolve_model(model)
    confidence_threshold, centre_threshold, vote_geometry = decode_settings(
        gsn_model, confidence_threshold, centre_threshold
    )
    torch_device, autocast = resolve_device(device or settings.device, cpu_bf16=settings.cpu_bf16)
    int8 = int8_inference(gsn_model, torch_device, autocast)
    # Keys first, so that output-key errors come before any reading.
    image_key = _sdata.resolve_key(sdata, "images", image_key, parameter="image_key")
    points_key = _sdata.resolve_key(sdata, "points", points_key, parameter="points_key", beside=image_key)
    assignment_key_added = assignment_key_added or keys.assignment
    outputs = {labels_key_added: "labels", table_key_added: "tables", keys.boundaries: "shapes"}
    outputs[assignment_key_added] = "points"
    _sdata.check_new_keys(sdata, outputs, overwrite=overwrite)
    if points_key == assignment_key_added or image_key == labels_key_added:
        raise ValueError("Output keys must differ from the input elements' keys; the inputs are never replaced.")
    spec = gsn_model.input
    check_block_geometry(block_size, block_halo, spec.rna_sigma)
    inputs = resolve_inputs(
        sdata, image_key=image_key, points_key=points_key, gene_key=gene_key, image_channel=image_channel,
        spec=spec, pixel_size=pixel_size, read_points=False,
    )  # fmt: skip
    image_el, points_el, pixels, zoom = inputs.image_element, inputs.points_element, inputs.pixels, inputs.zoom
    points, intensity_range, shape = inputs.point_partitions(min_qv), inputs.intensity_range, inputs.shape
    roles = gene_roles(points, control_genes)
    grid = BlockGrid(shape, block_size, block_halo)

    params = {
        "image_key": image_key, "image_channel": inputs.channel, "image_z_planes": inputs.z_planes,
        "points_key": points_key, "gene_key": inputs.gene_key, "model": str(gsn_model.meta.get("name", "custom")),
        **inputs.pixel_size.to_params(),
        "working_pixel_size": spec.pixel_size,
        "labels_grid": labels_grid,
        "rna_sigma_um": spec.rna_sigma_um, "rna_norm": spec.rna_norm, "rna_mode": spec.rna_mode,
        "rna_method": spec.rna_method,
        "intensity_range": list(intensity_range),
        "tile_size": tile_size, "tile_overlap": tile_overlap, "block_size": block_size, "block_halo": block_halo,
        "confidence_threshold": confidence_threshold,
        "centre_threshold": centre_threshold,
        "min_area": min_area,
        "rna_normalisation": rna_normalisation,
        **roles.params,
        **vote_geometry,
        "device": str(torch_device),
        "precision": "int8" if int8 else str(autocast).replace("torch.", "") if autocast else "float32",
        "compiled": bool(settings.compile),
        "assignment_key": assignment_key_added,
        **assignment_params(assignment),
    }  # fmt: skip
    run_dir, resumed, lock = _slide.open_tool_run(
        "segment", sdata, shape=shape, n_partitions=points.n_partitions,
        # The device does not change the result, so a run may resume on another one.
        params={"model_digest": network_digest(gsn_model.network)} | {k: v for k, v in params.items() if k != "device"},
        recover=recover,
    )  # fmt: skip
    with lock:  # released however the run ends; the work directory stays on failure
        work = WorkDir(run_dir, grid, points.n_partitions)
        if not resumed:
            work.create_arrays()
        client = active_client()
        # An inference copy (the caller's model stays as it is): batch norms folded, in int8 where chosen above.
        network = gsn_model.inference_network(int8=int8).to(torch_device)
        if settings.compile and (client is None or torch_device.type != "cpu"):
            # Edge windows keep their own shapes (padded only to the network's input multiple, as one pass over
            # the image is), so a slide compiles up to four shapes: padding them all to one shape changed the
            # cells near the image's edges (F1 0.93 against the eager run, tests/test_inference.py).
            network.compile(dynamic=False)

        decode = {**vote_geometry, "confidence_threshold": confidence_threshold, "centre_threshold": centre_threshold,
                  "min_area": min_area}  # fmt: skip
        windows = _sdata.ArrayWindows(pixels, intensity_range, zoom)  # the image, normalised, at the working scale
        check_binned = _slide.binned_check(
            work, spec, shape, params, points_key=points_key, image_key=image_key, decode=decode, model=gsn_model,
            rna_normalisation=rna_normalisation, map_genes=roles.map_genes, image=windows,
        )  # fmt: skip

        _, edges = segment_slide(
            work,
            image=windows,
            points=points,
            network=network,
            options=WindowOptions(
                rna_sigma=spec.rna_sigma,
                rna_mode=spec.rna_mode,
                rna_method=spec.rna_method,
                tile_size=tile_size,
                overlap=tile_overlap,
                batch_size=batch_size,
                device=torch_device,
                autocast_dtype=autocast,
                reuse_memory=settings.reuse_memory,
                decode=decode,
                map_genes=roles.map_genes,
            ),
            client=client,
            # A GPU stays in this process, batched; only CPU inference is spread over the cluster.
            network_on_client=torch_device.type == "cpu",
            progress=progress_bar,
            on_binned=check_binned,
        )
        cell_ids, area, centroids = cell_table_arrays(work)
        counts = count_matrix_from_runs(work, cell_ids, edges, len(points.gene_names))
        if assignment == "expression":
            work, counts = reassign_slide(
                work,
                labels=ZarrWindows(work.path / "labels.zarr"),
                cell_ids=cell_ids,
                counts=roles.profile_counts(counts),
                bucket_edges=edges,
                radius=Defaults.REASSIGN_RADIUS_UM / spec.pixel_size,
                length=Defaults.REASSIGN_LENGTH_UM / spec.pixel_size,
                client=client,
                progress=progress_bar,
            )
        params["distributed"] = client is not None
        check_assigned_share(params, int(counts.sum()), len(cell_ids), points_key=points_key)
        # The run's cells are on the working grid; the table describes them on the labels' grid.
        to_labels = 1.0 / zoom if labels_grid == "image" else 1.0
        in_memory = not sdata.is_backed()
        labels_el = _slide.labels_element(
            work, image_el, in_memory=in_memory, zoom=zoom, image_grid=labels_grid == "image"
        )
        params["boundary_tolerance_px"] = boundary_tolerance
        run = {"labels": labels_key_added, "table": table_key_added, "boundaries": keys.boundaries,
               "assignment": assignment_key_added}  # fmt: skip
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
            apart=roles.apart,
        )
        elements = {
            labels_key_added: labels_el,
            keys.boundaries: _slide.boundaries_element(
                labels_el, cell_ids, centroids * to_labels, tolerance=boundary_tolerance
            ),
            assignment_key_added: _slide.assignment_element(work, points, points_el, in_memory=in_memory),
            table_key_added: table,
        }
        sopa_attrs = dict(boundaries=keys.boundaries, transcripts=points_key, image=image_key, labels=labels_key_added)
        _slide.store_run(sdata, work, elements, outputs, run=run, overwrite=overwrite, sopa_attrs=sopa_attrs)
    logger.info("gsn.tl.segment: %d cells, %d transcripts counted", table.n_obs, int(table.X.sum()))
