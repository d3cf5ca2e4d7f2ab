"""Nucleus-diameter estimator (gsn_spatial.core.image.size): synthetic truths, scaling, failure, windows, DSB 2018."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from skimage.transform import rescale

from gsn_spatial.core.image.size import estimate_nucleus_diameter
from gsn_spatial.core.image.size_windows import estimate_nucleus_diameter_windows

ROOT = Path(__file__).resolve().parents[1]
DSB = ROOT / ".." / "shared" / "data" / "dsb2018_stage1_fluorescence"
HELDOUT = ROOT / "benchmarks" / "splits" / "dsb2018_heldout.txt"


def disk_image(shape: tuple[int, int], diameter: float, seed: int) -> tuple[np.ndarray, float]:
    """Disks of varying brightness on a jittered grid, some sites empty; returns (image in [0, 1], truth)."""
    rng = np.random.default_rng(seed)
    image = np.zeros(shape)
    labels = np.zeros(shape, dtype=np.int32)
    r, spacing = diameter / 2, 1.7 * diameter + 3
    offsets = np.arange(-int(np.ceil(r)), int(np.ceil(r)) + 1)
    dy, dx = np.meshgrid(offsets, offsets, indexing="ij")
    for cy in np.arange(spacing / 2, shape[0] - spacing / 2, spacing):
        for cx in np.arange(spacing / 2, shape[1] - spacing / 2, spacing):
            if rng.random() < 0.3:
                continue  # empty site: irregular spacing
            # Jitter the centre (sub-pixel too) but keep a gap of >= 3 px to the neighbours.
            y, x = np.array([cy, cx]) + rng.uniform(-0.15, 0.15, 2) * diameter
            yy, xx = np.round(y).astype(int) + dy, np.round(x).astype(int) + dx
            inside = (yy - y) ** 2 + (xx - x) ** 2 <= r * r
            image[yy[inside], xx[inside]] = rng.uniform(0.4, 1.0)
            labels[yy[inside], xx[inside]] = labels.max() + 1
    area = np.bincount(labels.ravel())[1:]
    return image, float(np.median(np.sqrt(4 * area[area > 0] / np.pi)))


def noisy(image: np.ndarray, dtype: str, seed: int) -> np.ndarray:
    """A blurred, noisy rendering of a [0, 1] image as uint8 counts or as floats."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    x = ndi.gaussian_filter(image, 1.0)
    if dtype == "uint8":
        return np.clip(12 + 200 * x + rng.normal(0, 4, x.shape), 0, 255).astype(np.uint8)
    return (x + rng.normal(0, 0.04, x.shape)).astype(np.float32)


@pytest.mark.parametrize("dtype", ["uint8", "float32"])
@pytest.mark.parametrize("diameter", [8, 16, 32])
def test_disks_of_known_diameter(diameter, dtype):
    image, truth = disk_image((384, 384), diameter, seed=diameter)
    estimate = estimate_nucleus_diameter(noisy(image, dtype, seed=1))
    assert abs(estimate / truth - 1) < 0.15, (estimate, truth)


def test_touching_disks_are_split():
    # Pairs of touching disks: without splitting the median would be about sqrt(2) too large.
    image = np.zeros((256, 256))
    yy, xx = np.mgrid[:256, :256]
    for cy in range(24, 256, 52):
        for cx in range(24, 220, 64):
            for dx in (0, 19):
                image[(yy - cy) ** 2 + (xx - cx - dx) ** 2 <= 10**2] = 1.0
    estimate = estimate_nucleus_diameter(noisy(image, "float32", seed=2))
    assert abs(estimate / 20.0 - 1) < 0.15, estimate


def aligned_ellipse_stain(diameter: float, aspect: float, seed: int) -> tuple[np.ndarray, float]:
    """Long nuclei in one aligned bundle (stroma), with a chromatin texture; returns (uint8 stain, truth)."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    shape = (384, 384)
    b = diameter / 2 / np.sqrt(aspect)  # semi-axes of the area of a disk `diameter` across
    a = b * aspect
    angle = 0.4 + seed
    c, s = np.cos(angle), np.sin(angle)
    image, labels = np.zeros(shape), np.zeros(shape, np.int32)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    for i in range(-40, 40):
        for j in range(-40, 40):
            u0 = i * (2 * a + 6) + (j % 2) * (a + 3) + rng.uniform(-2, 2)
            v0 = j * (2 * b + 5) + rng.uniform(-1, 1)
            cy, cx = shape[0] / 2 + u0 * s + v0 * c, shape[1] / 2 + u0 * c - v0 * s
            if not (a < cy < shape[0] - a and a < cx < shape[1] - a) or rng.random() < 0.2:
                continue
            u, v = (xx - cx) * c + (yy - cy) * s, -(xx - cx) * s + (yy - cy) * c
            inside = (u / a) ** 2 + (v / b) ** 2 <= 1
            labels[inside] = labels.max() + 1
            image[inside] = rng.uniform(0.5, 1.0)
    texture = ndi.gaussian_filter(rng.normal(0, 1, shape), 1.5)
    image *= 1 + 0.3 * texture / texture.std()
    x = ndi.gaussian_filter(image, 1.0)
    stain = np.clip(12 + 200 * x + rng.normal(0, 4, x.shape), 0, 255).astype(np.uint8)
    area = np.bincount(labels.ravel())[1:]
    return stain, float(np.median(np.sqrt(4 * area[area > 0] / np.pi)))


@pytest.mark.parametrize(("diameter", "seed"), [(16, 0), (16, 1), (24, 0), (24, 1)])
def test_long_aligned_nuclei_are_not_cut_into_round_ones(diameter, seed):
    # 4:1 textured nuclei (fibroblasts, smooth muscle): the bumps on their flat distance-transform ridge used to
    # seed several watershed pieces each. Measured 0.985-1.019 x the truth; the split without the merge of
    # pieces with neither neck nor notch (core.image.split) gave 0.727-0.782.
    stain, truth = aligned_ellipse_stain(diameter, 4.0, seed)
    estimate = estimate_nucleus_diameter(stain)
    assert abs(estimate / truth - 1) < 0.1, (estimate, truth)


def test_estimate_scales_with_the_image():
    image, _ = disk_image((256, 256), 12, seed=3)
    small = noisy(image, "float32", seed=4)
    big = rescale(small, 2.0, order=1)
    ratio = estimate_nucleus_diameter(big) / estimate_nucleus_diameter(small)
    assert 1.8 < ratio < 2.2, ratio


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((128, 128), dtype=np.uint8),
        np.full((128, 128), 7.5),
        np.random.default_rng(0).normal(100, 10, (256, 256)),
        np.random.default_rng(1).poisson(3, (256, 256)).astype(np.uint16),
    ],
    ids=["zeros", "constant", "gaussian-noise", "poisson-noise"],
)
def test_no_nuclei_raises(image):
    with pytest.raises(ValueError, match="pixel_size"):
        estimate_nucleus_diameter(image)


def test_rejects_non_2d():
    with pytest.raises(ValueError, match="2-D"):
        estimate_nucleus_diameter(np.zeros((4, 32, 32)))


def test_windows_agree_with_full_image():
    image, _ = disk_image((1536, 1536), 14, seed=5)
    stain = noisy(image, "uint8", seed=6)
    reads = []

    def read(y0, y1, x0, x1):
        reads.append((y0, y1, x0, x1))
        return stain[y0:y1, x0:x1]

    full = estimate_nucleus_diameter(stain)
    windowed = estimate_nucleus_diameter_windows(read, stain.shape, window=384, n_windows=6)
    assert abs(windowed / full - 1) < 0.05, (windowed, full)
    assert len(reads) == 6
    assert all(0 <= y0 < y1 <= 1536 and 0 <= x0 < x1 <= 1536 for y0, y1, x0, x1 in reads)


def mixed_disk_stain(shape: tuple[int, int], seed: int) -> np.ndarray:
    """Non-overlapping disks 16-64 px across at random places, rendered as in :func:`noisy`."""
    rng = np.random.default_rng(seed)
    disks: list[tuple[float, float, float]] = []
    for _ in range(4000):
        d, y, x = rng.uniform(16, 64), rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        if all((y - cy) ** 2 + (x - cx) ** 2 >= ((d + cd) / 2 + 4) ** 2 for cy, cx, cd in disks):
            disks.append((y, x, d))
    image = np.zeros(shape)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    for y, x, d in disks:
        r = int(d / 2) + 2
        box = (slice(max(0, int(y) - r), int(y) + r + 1), slice(max(0, int(x) - r), int(x) + r + 1))
        image[box][(yy[box] - y) ** 2 + (xx[box] - x) ** 2 <= (d / 2) ** 2] = rng.uniform(0.4, 1.0)
    return noisy(image, "uint8", seed=seed + 1)


def test_windows_do_not_favour_small_nuclei():
    # Small windows drop the nuclei cut by their inner edges, large ones more often; the estimate weights
    # the others back (measured: windowed / full 0.992-1.001 over seeds 1-3; without weights 0.926-0.957).
    stain = mixed_disk_stain((2048, 2048), seed=1)
    full = estimate_nucleus_diameter(stain)
    windowed = estimate_nucleus_diameter_windows(lambda *b: stain[b[0] : b[1], b[2] : b[3]], stain.shape, window=256)
    assert abs(windowed / full - 1) < 0.03, (windowed, full)


def test_windows_skip_empty_regions_and_raise_when_all_empty():
    image, truth = disk_image((512, 512), 16, seed=7)
    stain = np.zeros((2048, 2048), dtype=np.uint8)
    stain[1024:1536, 512:1024] = noisy(image, "uint8", seed=8)  # one tile of tissue in an empty slide
    d = estimate_nucleus_diameter_windows(lambda *b: stain[b[0] : b[1], b[2] : b[3]], stain.shape, n_windows=4)
    assert abs(d / truth - 1) < 0.15, (d, truth)
    blank = np.zeros((2048, 2048), dtype=np.uint8)
    with pytest.raises(ValueError, match="pixel_size"):
        estimate_nucleus_diameter_windows(lambda *b: blank[b[0] : b[1], b[2] : b[3]], blank.shape)


def test_dsb2018_heldout_within_20_percent():
    if not DSB.is_dir():
        pytest.skip(f"DSB 2018 fluorescence data not found at {DSB}")
    ids = sorted(s.strip() for s in HELDOUT.read_text().splitlines() if s.strip() and not s.startswith("#"))
    within = []
    for name in ids[::3][:30]:  # 30 held-out images spread over the sorted list
        with np.load(DSB / f"{name}.npz") as z:
            image, labels = z["image"], z["labels"]
        area = np.bincount(labels.ravel())[1:]
        truth = np.median(np.sqrt(4 * area[area > 0] / np.pi))
        try:
            within.append(abs(estimate_nucleus_diameter(image) / truth - 1) <= 0.2)
        except ValueError:
            within.append(False)
    # Measured 0.90 on these 30 images (27 of 30) and 0.917 on all 108 held-out images (benchmarks/size_estimate.py).
    assert np.mean(within) >= 0.8, np.mean(within)


def test_noise_level_ignores_a_background_clipped_to_zero():
    # A background clipped to exactly zero over most of the image has no noise to measure; the noise level
    # (which decides what is too faint to be a nucleus) must come from the pixels above the clip, or it is 0
    # and every faint fragment counts as a nucleus.
    from gsn_spatial.core.image.size import _noise_std

    rng = np.random.default_rng(11)
    x = np.zeros((256, 256))
    x[:, :64] = np.clip(rng.normal(0.5, 0.02, (256, 64)), 0, 1)  # a quarter of the image above the clip
    assert abs(_noise_std(x) / 0.02 - 1) < 0.1, _noise_std(x)


def test_nuclei_on_bright_out_of_focus_tissue():
    # A ring of nuclei on an embryo-like body, brighter than the dark surround and half as bright as the
    # nuclei: without removing that background the body is one object hundreds of pixels across.
    from scipy import ndimage as ndi

    h, w = 600, 1200
    yy, xx = np.mgrid[:h, :w]
    body = ((yy - 300) / 220.0) ** 2 + ((xx - 600) / 480.0) ** 2 <= 1.0
    image = 0.5 * ndi.gaussian_filter(body.astype(float), 12)
    labels = np.zeros((h, w), dtype=np.int32)
    rng = np.random.default_rng(13)
    for k, t in enumerate(np.linspace(0, 2 * np.pi, 120, endpoint=False), start=1):
        cy, cx = 300 + 200 * np.sin(t), 600 + 450 * np.cos(t)
        inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= 8**2
        image[inside] = rng.uniform(0.8, 1.0)
        labels[inside] = k
    area = np.bincount(labels.ravel())[1:]
    truth = float(np.median(np.sqrt(4 * area / np.pi)))
    stain = noisy(image, "uint8", seed=14)
    estimate = estimate_nucleus_diameter(stain)
    assert abs(estimate / truth - 1) < 0.2, (estimate, truth)
    # As segment estimates it, on 512 px windows: there the body reaches the windows' inner edges.
    windowed = estimate_nucleus_diameter_windows(lambda y0, y1, x0, x1: stain[y0:y1, x0:x1], stain.shape)
    assert abs(windowed / truth - 1) < 0.2, (windowed, truth)


def test_large_nuclei_are_not_mistaken_for_background():
    # Nuclei a quarter of a window across (15 um at 0.1 um/px): no top-hat may cut them into texture.
    from gsn_spatial.core.simulate.tissue import TissueParameters, simulate_tissue

    sim = simulate_tissue((1024, 1024), TissueParameters(cell_diameter_px=360.0), seed=3)
    area = np.bincount(sim.nuclei.ravel())[1:]
    truth = float(np.median(np.sqrt(4 * area[area > 0] / np.pi)))
    d = estimate_nucleus_diameter_windows(lambda y0, y1, x0, x1: sim.image[y0:y1, x0:x1], sim.image.shape)
    assert abs(d / truth - 1) < 0.15, (d, truth)


@pytest.mark.parametrize("photons", [3, 6])
def test_photon_starved_nuclei_on_a_zero_background(photons):
    # An under-exposed camera: large nuclei give a few photons each on a background of exactly zero. The
    # noise, measured inside the nuclei, is then a third of their brightness or more, so a bar of 4 noise
    # sigmas per pixel dropped every nucleus ("no nuclei found"); their mean over hundreds of pixels stands
    # well out of a background with no noise at all.
    image, truth = disk_image((384, 384), 28, seed=12)
    from scipy import ndimage as ndi

    counts = np.random.default_rng(13).poisson(photons * ndi.gaussian_filter(image, 1.0)).astype(np.uint16)
    estimate = estimate_nucleus_diameter(counts)
    assert abs(estimate / truth - 1) < 0.2, (estimate, truth)


def test_a_dim_embryo_is_not_read_as_one_nucleus():
    # A DSB training image of an embryo, under-exposed (12 photons at the 99.9th percentile, background clipped
    # to zero): the body is one object over half the image side, and no top-hat separates its noisy nuclei. The
    # body's own size (30-50x the nuclei) was returned; now the estimate fails and asks for pixel_size.
    path = DSB / "a102535b0e88374b.npz"
    with np.load(path) as z:
        image = z["image"].astype(np.float32)
    image = image.mean(-1) if image.ndim == 3 else image
    signal = np.clip(image - np.percentile(image, 50), 0, None)
    counts = np.random.default_rng(0).poisson(12.0 * signal / np.percentile(signal, 99.9))
    with pytest.raises(ValueError, match="pixel_size"):
        estimate_nucleus_diameter(counts)


def test_specks_outnumbering_large_nuclei_are_not_read_as_nuclei():
    # A dim stain over a background clipped to zero, with more specks of a few pixels (hot pixels, debris,
    # compression) than nuclei: the specks' median (2-3 px) was returned, and a model then called thousands of
    # cells. No nucleus is under 4 px at the package's coarsest 1 um/px, so the estimate is made again without
    # objects under two smoothing kernels.
    from gsn_spatial.core.image.size import MIN_NUCLEUS_PX, _estimate

    image, truth = disk_image((512, 640), 40, seed=15)
    nuclei = image > 0
    rng = np.random.default_rng(16)
    stain = np.round(40 * image).astype(np.uint8)
    placed = 0
    while placed < 400:
        y, x = rng.integers(0, 509), rng.integers(0, 637)
        if not nuclei[max(0, y - 3) : y + 6, max(0, x - 3) : x + 6].any():
            stain[y : y + 3, x : x + 3] = rng.integers(8, 30)
            placed += 1
    assert _estimate(stain, 0.0) < MIN_NUCLEUS_PX  # what the first pass reads: the specks
    for estimate in (
        estimate_nucleus_diameter(stain),
        estimate_nucleus_diameter_windows(lambda y0, y1, x0, x1: stain[y0:y1, x0:x1], stain.shape),
    ):
        assert abs(estimate / truth - 1) < 0.2, (estimate, truth)
