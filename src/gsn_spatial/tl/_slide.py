"""Shared plumbing of the whole-slide tools: work directories and the lazily built output elements."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import pandas as pd
from spatialdata import SpatialData
from spatialdata.models import Labels2DModel, PointsModel

from gsn_spatial import _sdata
from gsn_spatial._constants import Defaults, Keys
from gsn_spatial._settings import settings
from gsn_spatial.core.image.resample import is_identity, nearest_window
from gsn_spatial.core.rna.density import MIN_LEVEL_DENSITY_UM2, density_level, rna_map_settings
from gsn_spatial.core.rna.local import LocalDensity, reference_density
from gsn_spatial.core.slide.runner import active_client
from gsn_spatial.core.slide.steps import partition_cells, sample_transcripts
from gsn_spatial.core.slide.workdir import WorkDir, ZarrWindows, open_run, remove_work_dir
from gsn_spatial.models import GeneSegModel, InputSpec
from gsn_spatial.tl._alignment import check_alignment
from gsn_spatial.tl._image_only import IMAGE_ONLY_POINTS

logger = logging.getLogger(__name__)

PYRAMID_MIN_SIZE = 4096  # labels larger than this on a side get a multiscale pyramid


def run_directory(tool: str, fingerprint: dict[str, Any]) -> Path:
    """Prefix of a run's work directory: ``<settings.work_dir or tmp>/gsn_spatial/<tool>-<hash>``.

    The same inputs and parameters give the same prefix, which is how
    ``recover=True`` finds an interrupted run.
    """
    base = Path(settings.work_dir) if settings.work_dir else Path(tempfile.gettempdir()) / "gsn_spatial"
    digest = hashlib.sha256(json.dumps(fingerprint, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return base / f"{tool}-{digest}"


def open_tool_run(
    tool: str, sdata: SpatialData, *, shape: tuple[int, int], n_partitions: int, params: dict[str, Any], recover: bool
) -> tuple[Path, bool, Any]:
    """Locked work directory of a run of ``tool`` on ``sdata`` (see :func:`gsn_spatial.core.slide.workdir.open_run`).

    The fingerprint that ``recover=True`` matches on: the tool, the package version, the store, the
    raster shape, the points' partitioning and ``params``.
    """
    from gsn_spatial import __version__

    fingerprint = {
        "tool": tool,
        "version": __version__,
        "store": str(sdata.path) if sdata.is_backed() else None,
        "shape": list(shape),
        "n_partitions": n_partitions,
        **params,
    }
    return open_run(run_directory(tool, fingerprint), fingerprint, recover=recover)


def pyramid_factors(shape: tuple[int, int], image_element: Any) -> list[int] | None:
    """Scale factors for the labels: the image's own pyramid when it has one, else halvings for large images."""
    import xarray as xr

    if isinstance(image_element, xr.DataTree):
        sizes = [int(next(iter(image_element[k].values())).sizes["y"]) for k in image_element.children]
        sizes = sorted(sizes, reverse=True)
        factors = [round(a / b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
        if factors and all(f >= 2 for f in factors):
            return factors
    factors = []
    side = max(shape)
    while side > PYRAMID_MIN_SIZE:
        factors.append(2)
        side //= 2
    return factors or None


class _NativeLabelsChunk:
    """One chunk of working-scale labels brought to the image's grid (picklable, for ``da.map_blocks``)."""

    def __init__(self, path: str, shape: tuple[int, int], zoom: float):
        self.windows = ZarrWindows(path)
        self.shape = shape
        self.zoom = zoom

    def __call__(self, block_info: dict | None = None) -> np.ndarray:
        (y0, y1), (x0, x1) = block_info[None]["array-location"]
        return nearest_window(self.windows, self.shape, (y0, y1, x0, x1), 1.0 / self.zoom).astype(np.uint32)


def labels_element(
    work: WorkDir, image_element: Any, *, in_memory: bool, zoom: float = 1.0, image_grid: bool = True
) -> Any:
    """The labels element of a run, read chunk by chunk from the work directory.

    The run's labels are at the working scale (``zoom`` working pixels per
    image pixel). ``image_grid`` brings them to the image's own pixel grid,
    chunk by chunk by nearest neighbour, with the image's transformations;
    otherwise they stay at the working scale with a scale to the image's
    pixels before the image's transformations. ``in_memory`` loads them (for
    objects without a store, whose elements must outlive the work directory).
    """
    from spatialdata.transformations import Scale, Sequence

    working = da.from_zarr(str(work.path / "labels.zarr"))
    transformations = dict(_sdata.transformations(image_element))
    shape = work.grid.shape
    if is_identity(zoom):
        data = working
    elif image_grid:
        image_shape = tuple(int(n) for n in _sdata.scale0(image_element).shape[-2:])
        step = max(256, round(work.grid.block_size / zoom))
        chunks = tuple(tuple(min(step, n - i) for i in range(0, n, step)) for n in image_shape)
        data = da.map_blocks(
            _NativeLabelsChunk(str(work.path / "labels.zarr"), shape, zoom),
            chunks=chunks,
            dtype=np.uint32,
            meta=np.zeros((0, 0), dtype=np.uint32),
        )
        shape = image_shape
    else:
        data = working
        to_image = Scale([1 / zoom, 1 / zoom], axes=("y", "x"))
        transformations = {cs: Sequence([to_image, t]) for cs, t in transformations.items()}
    if in_memory:
        data = da.from_array(np.asarray(data), chunks=data.chunks)
    return Labels2DModel.parse(
        data,
        dims=("y", "x"),
        transformations=transformations,
        scale_factors=pyramid_factors(shape, image_element),
    )


class _AssignedPartition:
    """Partition ``i`` of the source points with each transcript's cell (picklable, for ``dd.from_map``)."""

    def __init__(self, points: _sdata.PointsPartitions, work: WorkDir):
        self.points = points
        self.work = work

    def __call__(self, partition: int) -> pd.DataFrame:
        part = self.points.partition(partition)
        cells = partition_cells(self.work, partition, len(part))
        return part.assign(**{Keys.CELL_ID: cells.astype(np.int64)})


def assignment_element(work: WorkDir, points: _sdata.PointsPartitions, points_element: Any, *, in_memory: bool) -> Any:
    """The transcripts' ``x``, ``y`` (``z``) and gene with a ``cell_id`` column, partition by partition.

    One output partition per source partition, each read by its number
    (:meth:`~gsn_spatial._sdata.PointsPartitions.partition`), as the cells
    were recorded per source partition. A ``map_partitions`` over the source
    frame would not do: dask fuses small parquet partitions when it computes
    a column selection, and then its partition numbers no longer match.
    """
    import dask.dataframe as dd
    from spatialdata.transformations import get_transformation

    meta = points.frame._meta.assign(
        **{
            points.gene_key: pd.Categorical([], categories=points.categories),
            Keys.CELL_ID: np.zeros(0, dtype=np.int64),
        }
    )
    out = dd.from_map(_AssignedPartition(points, work), range(points.n_partitions), meta=meta)
    if in_memory:
        out = out.compute()
        extra = {"npartitions": max(1, points.n_partitions)}
    else:
        # The element keeps the source points' index row for row, sorted or not. Without `sort`, the parser
        # checks whether that index is monotonic, which computes every partition: a full extra pass over
        # the transcripts that held 0.47 GB more at 42 M transcripts (benchmarks/scale.py). For a dask
        # frame `sort` only skips that check (and its warning); nothing is reordered.
        extra = {"sort": True}
    return PointsModel.parse(
        out,
        # 3-D points stay 3-D (PointsModel would drop a z column it is not told about).
        coordinates={"x": "x", "y": "y", **({"z": "z"} if "z" in out.columns else {})},
        feature_key=points.gene_key,
        instance_key=Keys.CELL_ID,
        transformations=dict(get_transformation(points_element, get_all=True)),
        **extra,
    )


def boundaries_element(labels_element: Any, cell_ids: np.ndarray, centroids_yx: np.ndarray, *, tolerance: float) -> Any:
    """The run's cell boundaries: a shapes element of one Polygon per cell, indexed by ``cell_id``.

    Drawn from the labels window by window (:func:`gsn_spatial.core.decode.boundaries.cell_polygons`), in
    the labels' pixel frame with the labels' transformations. ``centroids_yx`` are in labels pixels.
    ``None`` when there are no cells: SpatialData cannot validate an empty shapes element.
    """
    if not len(cell_ids):
        return None
    import geopandas as gpd
    from spatialdata.models import ShapesModel

    from gsn_spatial.core.decode.boundaries import cell_polygons

    data = _sdata.scale0(labels_element).data

    def read(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        return np.asarray(data[y0:y1, x0:x1])

    polygons = cell_polygons(read, tuple(int(n) for n in data.shape), cell_ids, centroids_yx, tolerance=tolerance)
    ids = np.asarray(cell_ids, dtype=np.int64)
    # The id is also a column: sopa.aggregate replaces the index of the shapes it aggregates with its own ids.
    frame = gpd.GeoDataFrame({Keys.CELL_ID: ids}, geometry=polygons, index=pd.Index(ids))
    return ShapesModel.parse(frame, transformations=dict(_sdata.transformations(labels_element)))


def store_run(
    sdata: SpatialData,
    work: WorkDir,
    elements: dict[str, Any],
    kinds: dict[str, str],
    *,
    run: dict[str, str],
    overwrite: bool,
    sopa_attrs: dict[str, str],
) -> None:
    """Store one run's elements (named by ``run``: its table, boundaries and assignment keys).

    A run without cells has no boundaries element (SpatialData cannot validate an empty one): it is
    left out, ``None`` in the table's ``uns["gsn"]["keys"]``, and sopa's keys are not recorded.
    """
    boundaries = run.get("boundaries")
    if boundaries is not None and elements.get(boundaries, 0) is None:
        del elements[boundaries]
        kinds.pop(boundaries)
        elements[run["table"]].uns[Keys.UNS]["keys"]["boundaries"] = None
        sopa_attrs = {}
    store_and_release(
        sdata, work, elements, kinds, overwrite=overwrite, derived=(run["assignment"],), sopa_attrs=sopa_attrs
    )


def store_and_release(
    sdata: SpatialData,
    work: WorkDir,
    elements: dict[str, Any],
    kinds: dict[str, str],
    *,
    overwrite: bool,
    derived: tuple[str, ...],
    sopa_attrs: dict[str, str] | None = None,
) -> None:
    """Store the elements (all or nothing), re-read the lazy ones from the store, remove the work directory.

    On failure the work directory is kept so that the run can be resumed.
    """
    threads = settings.write_threads
    # Local writes compute the lazy outputs with dask's threads; each thread holds a partition of the
    # transcripts, so the number of threads bounds the memory of this step (the setting's docstring).
    local = {"num_workers": threads} if threads is not None and active_client() is None else {}
    with dask.config.set(local):
        _sdata.store_elements(sdata, elements, overwrite=overwrite, derived=derived, attrs=_sopa_attrs(sopa_attrs))
    if sdata.is_backed():
        # The stored copies replace the elements read from the work directory, which can then go.
        _sdata.reload_from_store(sdata, {k: v for k, v in kinds.items() if v in ("labels", "points")})
    remove_work_dir(work.path)


def _sopa_attrs(keys: dict[str, str] | None) -> dict[str, str]:
    """sopa's ``sdata.attrs`` keys (``sopa.constants.SopaAttrs``) for a run's boundaries, transcripts and image.

    With them ``sopa.aggregate(sdata)`` and ``sopa.io.explorer.write`` find the run's elements without
    arguments, even though the object holds two points elements (the transcripts and their assignment).
    The names are sopa 2.x's (``Keys.SOPA_ATTRS``); ``"labels"`` is gsn_spatial's own entry
    (``Keys.LATEST_LABELS_ATTR``), the labels that qc and pl take of several.
    """
    names = {**Keys.SOPA_ATTRS, "labels": Keys.LATEST_LABELS_ATTR}
    return {names[k]: v for k, v in (keys or {}).items()}


def local_density(
    spec: InputSpec, sigma: float, level: float, sample_xy: np.ndarray, shape: tuple[int, int]
) -> LocalDensity | None:
    """How the RNA map's level follows the local density (:mod:`~gsn_spatial.core.rna.local`), its reference
    from ``sample_xy`` (transcripts in working pixels); ``None`` for models without a density-normalised map."""
    if spec.rna_norm != "density":
        return None
    # No pixel's level under that of RNA_LOCAL_MIN_DENSITY_UM2 (nor the slide level's own floor): stray
    # transcripts on bare glass beside tissue must not read as sparse tissue (benchmarks/mixed_density.py --glass).
    floor_um2 = max(MIN_LEVEL_DENSITY_UM2, Defaults.RNA_LOCAL_MIN_DENSITY_UM2)
    floor = density_level(floor_um2 * spec.pixel_size**2, sigma) / level
    bounds = min(1.0, max(Defaults.RNA_LOCAL_MIN_RATIO, floor)), 1 / Defaults.RNA_LOCAL_MIN_RATIO
    local = LocalDensity(
        spec.density_bin_um / spec.pixel_size, Defaults.RNA_LOCAL_SIGMA_UM / spec.density_bin_um, 1.0, *bounds
    )
    return dataclasses.replace(local, reference=max(reference_density(sample_xy, shape, local), 1e-6))


def local_density_params(local: LocalDensity, spec: InputSpec) -> dict[str, float]:
    """What ``params["rna_local"]`` records: the settings in um and the reference in transcripts per um^2."""
    return {
        "sigma_um": local.sigma_bins * spec.density_bin_um, "bin_um": spec.density_bin_um,
        "min_ratio": local.min_ratio, "max_ratio": local.max_ratio,
        "reference_per_um2": local.reference / spec.density_bin_um**2,
    }  # fmt: skip


def binned_check(
    work: WorkDir,
    spec: InputSpec,
    shape: tuple[int, int],
    params: dict[str, Any],
    *,
    points_key: str,
    image_key: str,
    decode: dict[str, Any],
    model: GeneSegModel,
    rna_normalisation: str = Defaults.RNA_NORMALISATION,
    map_genes: np.ndarray | None = None,
    image: Any = None,
) -> Any:
    """What runs once the transcripts are binned: clear errors for none inside the image, and the RNA map's level.

    With ``image`` (windows of the normalised image at the working scale), whether the transcripts sit on its
    nuclei is checked on the densest block (:func:`~gsn_spatial.tl._alignment.check_alignment`).

    The level (from a sample of occupied blocks) goes into ``params`` and to
    the segment step; so does the model's confidence threshold for the
    tissue's transcript density where ``decode`` has none yet
    (:meth:`~gsn_spatial.models.GeneSegModel.decode_options`). With
    ``rna_normalisation="local"`` both then follow the local density
    (:mod:`~gsn_spatial.core.rna.local`; its reference from the same sample). ``map_genes`` (one flag
    per gene code) names the genes whose transcripts make the RNA map, and so its level.
    """

    def _check_transcripts_reach_image(lengths: list[int], inside: int) -> None:
        if sum(lengths) == 0:
            raise ValueError(
                f"Points element {points_key!r} has no transcripts; pass `points_key=` naming the element that "
                "holds them."
            )
        if inside == 0:
            raise ValueError(
                f"No transcript of {points_key!r} falls inside image {image_key!r} ({shape[1]} x {shape[0]} px) "
                "after composing their transformations; check the elements' coordinate systems."
            )
        if inside < 0.5 * sum(lengths):
            share = 100 * inside / sum(lengths)
            logger.warning("Only %.0f%% of the transcripts of %r fall inside the image.", share, points_key)

    def check_binned(lengths: list[int], inside: int) -> dict[str, Any]:
        params["transcripts_in_image"] = int(inside)
        if points_key != IMAGE_ONLY_POINTS:  # an image-only run has no transcripts by design (tl._image_only)
            _check_transcripts_reach_image(lengths, inside)
            if image is not None:
                check_alignment(work, image, spec, params, map_genes, points_key=points_key, image_key=image_key)
        sample = sample_transcripts(work, genes=map_genes)
        sigma, level, per_um2 = rna_map_settings(
            sample,
            shape,
            pixel_size=spec.pixel_size,
            sigma_um=spec.rna_sigma_um,
            norm=spec.rna_norm,
            bin_um=spec.density_bin_um,
        )
        params.update({"rna_level": level, "transcripts_per_um2": per_um2})
        out: dict[str, Any] = {"rna_sigma": sigma, "rna_level": level}
        table = model.meta.get("decode", {}).get("confidence_by_density")
        local = local_density(spec, sigma, level, sample, shape) if rna_normalisation == "local" else None
        if local is not None:
            out["rna_local"] = local
            params["rna_local"] = local_density_params(local, spec)
            if decode["confidence_threshold"] is None and table:
                out["confidence_by_density"] = (tuple(map(tuple, table)), per_um2)
        if decode["confidence_threshold"] is not None:
            return out
        threshold = model.decode_options(per_um2)["confidence_threshold"]
        params.update(confidence_threshold=threshold, confidence_by_density=table)
        return {**out, "decode": {**decode, "confidence_threshold": threshold}}

    return check_binned
