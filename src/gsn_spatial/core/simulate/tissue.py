"""Synthetic tissue whose truth is known by construction (array level).

The simulator draws cells as a noisy, weighted Voronoi partition of jittered
hexagonal seeds, so neighbouring cells touch along irregular borders and gaps
open where seeds are missing, as in tissue. Each cell gets an off-centre
elliptical nucleus, a cell type and transcripts spread over its whole area
(cytoplasm included: the part a nucleus stain cannot see). Ambient
("background") transcripts are scattered uniformly.

Everything here is plain numpy; :func:`gsn_spatial.datasets.synthetic_tissue`
wraps the result into a SpatialData object.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree
from skimage.measure import label as connected_label


@dataclass
class SimulatedTissue:
    """Arrays of one simulated tissue. Points are in pixel coordinates.

    A pixel ``(row, col)`` covers ``[col, col + 1) x [row, row + 1)`` in
    pixel coordinates, the SpatialData convention.
    """

    image: np.ndarray  # (y, x) uint16 nucleus stain
    cells: np.ndarray  # (y, x) uint32 whole-cell truth, 0 = background
    nuclei: np.ndarray  # (y, x) uint32 nucleus truth, same ids as cells
    points_xy: np.ndarray  # (n, 2) float64 pixel coordinates (x, y)
    gene: np.ndarray  # (n,) int gene index
    cell_id: np.ndarray  # (n,) uint32 cell of origin, 0 = ambient
    gene_names: list[str]
    cell_type: np.ndarray  # (n_cells + 1,) int, index = cell id, -1 for id 0


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    """Zero-mean, unit-variance Gaussian random field with correlation length ``scale``."""
    field = ndi.gaussian_filter(rng.standard_normal(shape), sigma=scale, mode="wrap")
    std = field.std()
    return field / std if std > 0 else field


def _hex_seeds(rng: np.random.Generator, shape: tuple[int, int], spacing: float, jitter: float) -> np.ndarray:
    h, w = shape
    dy = spacing * np.sqrt(3) / 2
    rows = np.arange(-1, h / dy + 1)
    cols = np.arange(-1, w / spacing + 1)
    yy, xx = np.meshgrid(rows, cols, indexing="ij")
    xx = xx * spacing + (yy % 2) * spacing / 2
    yy = yy * dy
    seeds = np.stack([yy.ravel(), xx.ravel()], axis=1)
    seeds += rng.uniform(-jitter, jitter, size=seeds.shape) * spacing
    return seeds


def _tissue_frame(yy: np.ndarray, xx: np.ndarray, aspect: float, seed: int):
    """The tissue-frame coordinates of every pixel, and the frame's bounding box (origin, extent)."""
    h, w = yy.shape
    if aspect == 1.0:
        return yy, xx, np.zeros(2), (h, w)
    # The axis from a stream of its own: the main generator's draws stay those of the tissue's other choices.
    angle = np.random.default_rng([seed, 1]).uniform(0, np.pi)
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    # Image (y, x) to tissue frame about the image centre: undo a stretch of sqrt(aspect) along the axis.
    back = rot @ np.diag([1 / np.sqrt(aspect), np.sqrt(aspect)]) @ rot.T
    cy, cx = (h - 1) / 2, (w - 1) / 2
    ty = (back[0, 0] * (yy - cy) + back[0, 1] * (xx - cx) + cy).astype(np.float32)
    tx = (back[1, 0] * (yy - cy) + back[1, 1] * (xx - cx) + cx).astype(np.float32)
    origin = np.array([ty.min(), tx.min()])
    extent = (int(np.ceil(ty.max() - origin[0])) + 1, int(np.ceil(tx.max() - origin[1])) + 1)
    return ty, tx, origin, extent


@dataclass(frozen=True)
class TissueParameters:
    """What a simulated tissue looks like; lengths in pixels of the simulated image.

    Attributes
    ----------
    cell_diameter_px
        Mean cell diameter in pixels.
    density
        Fraction of lattice sites that hold a cell; lower values open more gaps.
    n_genes, n_cell_types
        Size of the gene panel and number of cell types (each with its own markers).
    transcripts_per_cell
        Mean transcripts of a cell of mean area (scaled by each cell's area).
    background_fraction
        Fraction of all transcripts that are ambient, uniformly placed.
    noise
        Standard deviation of the image's additive read noise, relative to the
        mean nucleus brightness.
    nucleus_fraction
        Mean nucleus diameter as a fraction of its cell's diameter.
    nucleus_margin_px, nucleus_shift
        How far a nucleus stays inside its cell (pixels), and a factor on how far off the cell's centre it sits
        (0.1-0.4 cell radii at 1): small for cells with a thin rim of cytoplasm, such as lymphocytes.
    max_elongation
        Cells are stretched along a random axis by a factor drawn from
        ``[1, max_elongation]`` (1: no elongation).
    bundle_stretch
        The whole tissue, nuclei included, stretched by this aspect ratio along
        one random axis (area kept): aligned, elongated cells with elongated
        nuclei, as in stroma or muscle (1: none).
    cytoplasm_stain
        Faint stain of the whole cell relative to nuclei (0: a pure nucleus
        stain, where the image says nothing about the cytoplasm).
    dim_nucleus_fraction
        Fraction of cells whose nucleus is dim (10-40 % of the others'
        brightness) or out of the imaged plane (not stained at all), half
        each; such cells are known only from their transcripts. Their
        ``nuclei`` truth is kept.
    blur_px
        Standard deviation of the optical blur, in pixels.
    texture, texture_scale_px
        Relative contrast and correlation length (pixels) of the chromatin
        texture inside nuclei.

    Examples
    --------
    >>> TissueParameters(transcripts_per_cell=16.0).density
    0.85
    """

    cell_diameter_px: float = 28.0
    density: float = 0.85
    n_genes: int = 40
    n_cell_types: int = 5
    transcripts_per_cell: float = 80.0
    background_fraction: float = 0.05
    noise: float = 0.05
    nucleus_fraction: float = 0.5
    nucleus_margin_px: int = 2
    nucleus_shift: float = 1.0
    max_elongation: float = 1.8
    bundle_stretch: float = 1.0
    cytoplasm_stain: float = 0.0
    dim_nucleus_fraction: float = 0.0
    blur_px: float = 1.2
    texture: float = 0.25
    texture_scale_px: float = 1.5

    def __post_init__(self) -> None:
        if not (0 < self.density <= 1):
            raise ValueError(f"`density` must be in (0, 1], got {self.density}.")
        if not (0 <= self.background_fraction < 1):
            raise ValueError(f"`background_fraction` must be in [0, 1), got {self.background_fraction}.")
        if not (0 <= self.dim_nucleus_fraction <= 1):
            raise ValueError(f"`dim_nucleus_fraction` must be in [0, 1], got {self.dim_nucleus_fraction}.")
        if self.nucleus_margin_px < 0 or self.nucleus_shift < 0:
            raise ValueError("`nucleus_margin_px` and `nucleus_shift` must be non-negative.")
        if self.bundle_stretch < 1:
            raise ValueError(f"`bundle_stretch` must be at least 1, got {self.bundle_stretch}.")
        if self.cell_diameter_px < 4:
            raise ValueError(f"`cell_diameter_px` must be at least 4, got {self.cell_diameter_px}.")
        if self.n_cell_types < 1 or self.n_genes < self.n_cell_types:
            raise ValueError("Need at least one cell type and at least as many genes as cell types.")


def simulate_tissue(
    shape: tuple[int, int] = (1024, 1024),
    params: TissueParameters | None = None,
    *,
    seed: int = 0,
) -> SimulatedTissue:
    """Simulate one tissue section.

    Parameters
    ----------
    shape
        Image size ``(height, width)`` in pixels.
    params
        The tissue's parameters (default: ``TissueParameters()``).
    seed
        Seed of the random generator; the same seed gives the same tissue.

    Returns
    -------
    SimulatedTissue
        Image, truth labels and transcripts in pixel coordinates.

    Examples
    --------
    >>> t = simulate_tissue((128, 128), TissueParameters(cell_diameter_px=20.0), seed=1)
    >>> t.image.dtype, int(t.cells.max()) > 5
    (dtype('uint16'), True)
    """
    params = params or TissueParameters()
    rng = np.random.default_rng(seed)
    h, w = shape
    spacing = params.cell_diameter_px * 0.92

    # --- cells: noisy weighted Voronoi of jittered hexagonal seeds -----------
    # Cells and nuclei are drawn in the tissue's own frame (ty, tx): the image's pixels, or with
    # ``bundle_stretch`` the image mapped back through the stretch, so that the picture is stretched.
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ty, tx, origin, extent = _tissue_frame(yy, xx, params.bundle_stretch, seed)
    seeds = _hex_seeds(rng, extent, spacing, jitter=0.28) + origin
    seeds = seeds[rng.random(len(seeds)) < params.density]
    radius = params.cell_diameter_px / 2 * rng.uniform(0.75, 1.3, size=len(seeds))
    stretch = rng.uniform(1.0, max(1.0, params.max_elongation), size=len(seeds))
    axis = rng.uniform(0, np.pi, size=len(seeds))
    # Warp the coordinates with a smooth field: borders become irregular.
    amp = 0.12 * params.cell_diameter_px
    wy = ty + amp * _smooth_noise(rng, shape, params.cell_diameter_px / 3)
    wx = tx + amp * _smooth_noise(rng, shape, params.cell_diameter_px / 3)
    tree = cKDTree(seeds)
    k = min(6, len(seeds))
    dist, idx = tree.query(np.stack([wy.ravel(), wx.ravel()], axis=1), k=k, workers=-1)
    if k == 1:
        dist, idx = dist[:, None], idx[:, None]
    # Anisotropic distance: each seed's cell is stretched along its own axis (area kept).
    dy = wy.ravel()[:, None] - seeds[idx, 0]
    dx = wx.ravel()[:, None] - seeds[idx, 1]
    along = dx * np.cos(axis[idx]) + dy * np.sin(axis[idx])
    across = -dx * np.sin(axis[idx]) + dy * np.cos(axis[idx])
    s_ = np.sqrt(stretch[idx])
    dist = np.hypot(along / s_, across * s_)
    norm = dist / radius[idx]  # distance in units of each seed's radius
    best = np.argmin(norm, axis=1)
    owner = idx[np.arange(len(idx)), best]
    inside = norm[np.arange(len(idx)), best] < 1.0
    cells = np.where(inside, owner + 1, 0).reshape(shape)
    # One connected piece per cell: keep each cell's largest component.
    pieces = connected_label(cells, background=0, connectivity=1)
    sizes = np.bincount(pieces.ravel())
    piece_owner = np.zeros(len(sizes), dtype=np.int64)
    piece_owner[pieces.ravel()] = cells.ravel()
    order = np.lexsort((-sizes, piece_owner))  # by owner, largest piece first
    keep = np.zeros(len(sizes), dtype=bool)
    first = np.ones(len(order), dtype=bool)
    first[1:] = piece_owner[order][1:] != piece_owner[order][:-1]
    keep[order[first]] = True
    keep[0] = False
    cells = np.where(keep[pieces], cells, 0)
    # Drop slivers (cells cut by the image border or squeezed by neighbours).
    areas = np.bincount(cells.ravel())
    min_area = 0.15 * np.pi * (params.cell_diameter_px / 2) ** 2
    small = areas < min_area
    small[0] = False
    cells[small[cells]] = 0
    # Sequential ids 1..n.
    present = np.flatnonzero(np.bincount(cells.ravel()))
    present = present[present > 0]
    remap = np.zeros(int(cells.max()) + 1, dtype=np.uint32)
    remap[present] = np.arange(1, len(present) + 1, dtype=np.uint32)
    cells = remap[cells]
    n_cells = len(present)

    # --- nuclei: off-centre ellipses inside the eroded cell --------------------
    idx_all = np.arange(1, n_cells + 1)
    area = np.bincount(cells.ravel(), minlength=n_cells + 1).astype(float)
    cy = ndi.sum_labels(ty, cells, idx_all) / np.maximum(area[1:], 1)
    cx = ndi.sum_labels(tx, cells, idx_all) / np.maximum(area[1:], 1)
    r_eff = np.sqrt(area[1:] / np.pi)
    shift = rng.uniform(0.1, 0.4, n_cells) * r_eff * params.nucleus_shift
    ang = rng.uniform(0, 2 * np.pi, n_cells)
    ny = np.concatenate([[0], cy + shift * np.sin(ang)])
    nx = np.concatenate([[0], cx + shift * np.cos(ang)])
    size = params.nucleus_fraction * rng.uniform(0.85, 1.15, n_cells) * r_eff
    ecc = rng.uniform(0.7, 1.0, n_cells)
    a_ax = np.concatenate([[1], size / np.sqrt(ecc)])
    b_ax = np.concatenate([[1], size * np.sqrt(ecc)])
    theta = np.concatenate([[0], rng.uniform(0, np.pi, n_cells)])
    dy_ = ty - ny[cells]
    dx_ = tx - nx[cells]
    ct, st = np.cos(theta)[cells], np.sin(theta)[cells]
    u = (dx_ * ct + dy_ * st) / a_ax[cells]
    v = (-dx_ * st + dy_ * ct) / b_ax[cells]
    # Nuclei stay inside their cell (2 px by default) so the stain never marks a cell border.
    margin = 2 * int(params.nucleus_margin_px) + 1
    eroded = ndi.grey_erosion(cells, size=margin) == cells
    eroded &= ndi.grey_dilation(cells, size=margin) == cells
    nuclei = np.where((u * u + v * v <= 1.0) & eroded & (cells > 0), cells, 0).astype(np.uint32)

    # --- nucleus stain ----------------------------------------------------------
    brightness = np.concatenate([[0], rng.uniform(0.6, 1.0, n_cells)])
    if params.dim_nucleus_fraction > 0:
        # Drawn only when asked for, so that the default tissues stay what they were.
        dim = rng.random(n_cells) < params.dim_nucleus_fraction
        gone = dim & (rng.random(n_cells) < 0.5)
        brightness[1:][dim] *= rng.uniform(0.1, 0.4, int(dim.sum()))
        brightness[1:][gone] = 0.0
    grain = 1 + params.texture * _smooth_noise(rng, shape, params.texture_scale_px)
    signal = (nuclei > 0) * brightness[nuclei] * grain
    signal += params.cytoplasm_stain * (cells > 0)
    signal = ndi.gaussian_filter(signal, sigma=params.blur_px) if params.blur_px > 0 else signal
    photons = rng.poisson(np.clip(signal, 0, None) * 400) / 400
    img = 0.03 + photons + params.noise * rng.standard_normal(shape)
    image = np.clip(img * 3000 + 100, 0, 65535).astype(np.uint16)

    # --- transcripts --------------------------------------------------------------
    cell_type = np.concatenate([[-1], rng.integers(0, params.n_cell_types, n_cells)])
    base = rng.gamma(1.0, 1.0, size=(params.n_cell_types, params.n_genes)) * 0.2
    markers = np.array_split(rng.permutation(params.n_genes), params.n_cell_types)
    for t, genes in enumerate(markers):
        base[t, genes] += rng.gamma(2.0, 1.0, size=len(genes)) * 3
    profile = base / base.sum(axis=1, keepdims=True)
    mean_area = np.pi * (params.cell_diameter_px / 2) ** 2
    counts = rng.poisson(params.transcripts_per_cell * area[1:] / mean_area)
    flat = cells.ravel()
    order = np.argsort(flat, kind="stable")
    starts = np.searchsorted(flat[order], idx_all)
    pick = rng.random(int(counts.sum()))
    owner_tx = np.repeat(idx_all, counts)
    pix = order[starts[owner_tx - 1] + (pick * area[owner_tx]).astype(np.int64)]
    py, px = np.divmod(pix, w)
    xy_cells = np.stack([px, py], axis=1) + rng.random((len(pix), 2))
    gene_cells = np.zeros(len(pix), dtype=np.int64)
    tx_type = cell_type[owner_tx]
    for t in range(params.n_cell_types):
        sel = np.flatnonzero(tx_type == t)
        gene_cells[sel] = rng.choice(params.n_genes, size=len(sel), p=profile[t])
    n_bg = int(round(params.background_fraction / (1 - params.background_fraction) * len(pix)))
    xy_bg = rng.random((n_bg, 2)) * np.array([w, h])
    gene_bg = rng.integers(0, params.n_genes, n_bg)
    points_xy = np.concatenate([xy_cells, xy_bg])
    gene = np.concatenate([gene_cells, gene_bg])
    cell_id = np.concatenate([owner_tx.astype(np.uint32), np.zeros(n_bg, dtype=np.uint32)])
    shuffle = rng.permutation(len(gene))
    width = len(str(params.n_genes - 1))
    return SimulatedTissue(
        image=image,
        cells=cells.astype(np.uint32),
        nuclei=nuclei,
        points_xy=points_xy[shuffle],
        gene=gene[shuffle],
        cell_id=cell_id[shuffle],
        gene_names=[f"Gene{g:0{width}d}" for g in range(params.n_genes)],
        cell_type=cell_type,
    )


def noisy_labels(
    cells: np.ndarray,
    nuclei: np.ndarray,
    *,
    seed: int = 0,
    merge_fraction: float = 0.1,
    split_fraction: float = 0.1,
) -> np.ndarray:
    """Initial labels that are wrong the way real ones are: nuclei only (too small), some merged, some split.

    Starts from the nucleus truth; ``merge_fraction`` of the cells are merged
    with a touching neighbour (both nuclei and the band of cytoplasm between
    them take one id, as a watershed that missed a border would), and
    ``split_fraction`` of the remaining nuclei are cut in two along a random
    line through their centre.

    Examples
    --------
    >>> t = simulate_tissue((128, 128), seed=1)
    >>> lab = noisy_labels(t.cells, t.nuclei, seed=1)
    >>> bool(((lab > 0) <= (t.cells > 0)).all())
    True
    """
    rng = np.random.default_rng(seed)
    out = nuclei.astype(np.int64).copy()
    n = int(cells.max())
    if n == 0:
        return out
    # Touching pairs of cells.
    pairs = set()
    for a, b in ((cells[:, :-1], cells[:, 1:]), (cells[:-1], cells[1:])):
        m = (a > 0) & (b > 0) & (a != b)
        pairs |= {(int(min(x, y)), int(max(x, y))) for x, y in zip(a[m], b[m], strict=True)}
    used: set[int] = set()
    n_merge = int(round(merge_fraction * n / 2))
    for a, b in rng.permutation(sorted(pairs))[: 4 * n_merge + 1]:
        if n_merge == 0:
            break
        if a in used or b in used:
            continue
        used |= {int(a), int(b)}
        n_merge -= 1
        both = (cells == a) | (cells == b)
        # The union of the two nuclei, bridged by the cytoplasm band between them.
        near = ndi.distance_transform_edt(~((nuclei == a) | (nuclei == b))) < 0.5 * np.sqrt(both.sum() / np.pi)
        out[both & near] = a
    ids = np.array([i for i in range(1, n + 1) if i not in used])
    split = rng.permutation(ids)[: int(round(split_fraction * n))]
    rows, cols = np.indices(out.shape)
    next_id = n + 1
    for cid in split:
        m = out == cid
        if m.sum() < 8:
            continue
        cy, cx = rows[m].mean(), cols[m].mean()
        ang = rng.uniform(0, np.pi)
        side = (rows - cy) * np.cos(ang) - (cols - cx) * np.sin(ang) > 0
        out[m & side] = next_id
        next_id += 1
    return out
