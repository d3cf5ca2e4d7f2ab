"""``gsn.tl.assign_transcripts``: transcripts to the cells of any labels element, out of core."""

from __future__ import annotations

import logging

from spatialdata import SpatialData

from gsn_spatial import _sdata
from gsn_spatial._constants import Defaults, run_keys
from gsn_spatial._settings import progress_bar
from gsn_spatial.core.slide.blocks import BlockGrid
from gsn_spatial.core.slide.runner import active_client
from gsn_spatial.core.slide.steps import assign_slide, cell_table_arrays, count_matrix_from_runs, reassign_slide
from gsn_spatial.core.slide.workdir import WorkDir
from gsn_spatial.tl import _slide
from gsn_spatial.tl._genes import check_gene_options, gene_roles
from gsn_spatial.tl._inputs import assignment_params, check_assignment
from gsn_spatial.tl._pixel_size import check_pixel_size
from gsn_spatial.tl._table import build_table

logger = logging.getLogger(__name__)


def assign_transcripts(
    sdata: SpatialData,
    *,
    labels_key: str,
    points_key: str | None = None,
    gene_key: str | None = None,
    table_key_added: str | None = None,
    assignment_key_added: str | None = None,
    boundaries: bool = True,
    assignment: str = "mask",
    pixel_size: float | None = None,
    control_genes: str | None = Defaults.CONTROL_GENES,
    min_qv: float | None = Defaults.MIN_QV,
    block_size: int = 2048,
    recover: bool = False,
    overwrite: bool = False,
) -> None:
    """Assign every transcript to the cell under it and count genes per cell, for any labels element.

    Works on labels from any source (a vendor, another segmenter, a baseline)
    in time linear in the number of transcripts and memory that does not grow
    with them: one pass over the points' partitions bins them to blocks of the
    labels, each block's transcripts are looked up in that block's labels only,
    and the counts are gathered range of cell ids by range. Points and labels
    are aligned by composing their transformations. Runs on an active
    ``dask.distributed`` client when there is one.

    Parameters
    ----------
    sdata
        SpatialData object with the labels and points elements.
    labels_key
        Labels element whose cells receive the transcripts.
    points_key, gene_key
        Points element and its gene column (default: the only points element
        and its ``feature_key``, else its one column with a usual gene-column name).
    table_key_added, assignment_key_added
        Names of the table and of the new points element with the
        ``cell_id`` column; default: named from ``labels_key`` by
        :func:`gsn_spatial.run_keys` (``cells`` -> ``cells_table``,
        ``cells_transcripts``), as ``segment`` names its outputs.
    boundaries
        Also write the cells' boundaries (one Polygon per cell) as the shapes
        element ``run_keys(labels_key).boundaries``; pass ``False`` when the
        object already has boundaries of these labels under that name.
    assignment
        ``"mask"`` (default: the cell under each transcript, as the labels
        say) or ``"expression"`` (near boundaries, the nearby cell whose
        expression best explains the transcript's gene, as
        :func:`gsn_spatial.tl.segment` does by default;
        :mod:`gsn_spatial.core.assign.expression`).
    pixel_size
        Microns per pixel of the labels, for ``assignment="expression"``
        (its 2 um reach); default: from the labels' transformation to a
        micron coordinate system.
    control_genes
        Control probes (gene names matched at their start, case-insensitive): counted in
        ``obs["n_control_transcripts"]``, not as genes, as in :func:`gsn_spatial.tl.segment`.
    min_qv
        Transcripts whose gene call (``qv`` column) is of lower quality count in
        ``obs["n_low_quality_transcripts"]``, not as their gene, as in :func:`gsn_spatial.tl.segment`.
    block_size
        Side of the label blocks read at a time, in pixels.
    recover
        Resume an interrupted run with the same inputs.
    overwrite
        Replace existing elements with the output names.

    Returns
    -------
    ``None``; ``sdata`` gains the table ``table_key_added`` (cells x genes
    counts annotating ``labels_key``, ``obs`` ``cell_id``, ``region``,
    ``n_transcripts``, ``area``, ``obsm["spatial"]``, parameters in
    ``uns["gsn"]``), the boundaries (see ``boundaries``) and the points ``assignment_key_added`` (``x``, ``y``,
    gene, ``cell_id``; 0 = outside every cell). Inputs are not modified.

    Examples
    --------
    >>> import gsn_spatial as gsn
    >>> sdata = gsn.datasets.synthetic_tissue((128, 128), seed=2)
    >>> gsn.tl.assign_transcripts(sdata, labels_key="cells")
    >>> t = sdata.tables["cells_table"]
    >>> bool(t.n_obs == len(set(sdata.labels["cells"].values.ravel()) - {0}))
    True
    """
    if not isinstance(sdata, SpatialData):
        raise TypeError(f"`sdata` must be a SpatialData object, got {type(sdata).__name__}.")
    if block_size <= 0:
        raise ValueError(f"`block_size` must be positive, got {block_size}.")
    check_assignment(assignment)
    check_pixel_size(pixel_size)
    check_gene_options(control_genes, min_qv)
    labels_key = _sdata.resolve_key(sdata, "labels", labels_key, parameter="labels_key")
    points_key = _sdata.resolve_key(sdata, "points", points_key, parameter="points_key", beside=labels_key)
    keys = run_keys(labels_key)
    table_key_added = table_key_added or keys.table
    assignment_key_added = assignment_key_added or keys.assignment
    outputs = {table_key_added: "tables", assignment_key_added: "points"}
    if boundaries:
        outputs[keys.boundaries] = "shapes"
    _sdata.check_new_keys(sdata, outputs, overwrite=overwrite)
    if assignment_key_added == points_key:
        raise ValueError("`assignment_key_added` must differ from `points_key`; the input points are never replaced.")
    labels_el = sdata.labels[labels_key]
    labels = _sdata.scale0(labels_el).data
    if assignment == "expression" and pixel_size is None:
        pixel_size = _sdata.microns_per_pixel(sdata, labels_key)
        if pixel_size is None:
            raise ValueError(
                f"`assignment='expression'` needs the pixel size of labels {labels_key!r}: it has no transformation "
                "to a micron coordinate system; pass `pixel_size` (um per labels pixel)."
            )
    points_el = sdata.points[points_key]
    gene_key = _sdata.resolve_gene_key(points_el, gene_key, points_key=points_key)
    points = _sdata.PointsPartitions(
        points_el, gene_key, _sdata.points_to_pixels(sdata, points_key, labels_key), points_key=points_key,
        min_qv=min_qv,
    )  # fmt: skip
    shape = (int(labels.shape[0]), int(labels.shape[1]))
    roles = gene_roles(points, control_genes)
    params = {
        "labels_key": labels_key,
        "points_key": points_key,
        "gene_key": gene_key,
        "block_size": block_size,
        **roles.params,
        **assignment_params(assignment),
    }
    if assignment == "expression":
        params["pixel_size"] = float(pixel_size)
    run_dir, _, lock = _slide.open_tool_run(
        "assign", sdata, shape=shape, n_partitions=points.n_partitions, params=params, recover=recover
    )
    with lock:  # released however the run ends; the work directory stays on failure
        work = WorkDir(run_dir, BlockGrid(shape, block_size, 0), points.n_partitions)
        client = active_client()
        _, edges = assign_slide(
            work, labels=_sdata.ArrayWindows(labels), points=points, client=client, progress=progress_bar
        )
        cell_ids, area, centroids = cell_table_arrays(work)
        counts = count_matrix_from_runs(work, cell_ids, edges, len(points.gene_names))
        if assignment == "expression":
            work, counts = reassign_slide(
                work,
                labels=_sdata.ArrayWindows(labels),
                cell_ids=cell_ids,
                counts=roles.profile_counts(counts),
                bucket_edges=edges,
                radius=Defaults.REASSIGN_RADIUS_UM / pixel_size,
                length=Defaults.REASSIGN_LENGTH_UM / pixel_size,
                client=client,
                progress=progress_bar,
            )
        params["distributed"] = client is not None
        run = {"labels": labels_key, "table": table_key_added, "assignment": assignment_key_added}
        if boundaries:
            run["boundaries"] = keys.boundaries
        table = build_table(
            cell_ids,
            area,
            centroids,
            counts,
            points.gene_names,
            region=labels_key,
            params=params,
            labels_element=labels_el,
            keys=run,
            apart=roles.apart,
        )
        elements = {
            table_key_added: table,
            assignment_key_added: _slide.assignment_element(work, points, points_el, in_memory=not sdata.is_backed()),
        }
        if boundaries:
            elements[keys.boundaries] = _slide.boundaries_element(labels_el, cell_ids, centroids, tolerance=0.25)
        sopa_attrs = {"boundaries": keys.boundaries, "transcripts": points_key} if boundaries else {}
        _slide.store_run(sdata, work, elements, outputs, run=run, overwrite=overwrite, sopa_attrs=sopa_attrs)
    logger.info("gsn.tl.assign_transcripts: %d cells, %d transcripts counted", table.n_obs, int(table.X.sum()))
