"""Tile seams and block seams: how an image is cut must not change its cells.

Geometry first, with a network whose receptive field is known (exact
agreement, whatever the weights); then the shipped model on tissues it was
not trained on, at the package defaults (``benchmarks/seams.py`` has the same
comparisons at 1024 px and the settings around the defaults).
"""

import numpy as np
import pytest
import spatialdata as sd
import torch

import gsn_spatial as gsn
from gsn_spatial.core.metrics.matching import overlap_table
from gsn_spatial.core.network.tiling import axis_weights, predict_maps, tile_starts
from gsn_spatial.core.network.unet import GeneSegNet


class LocalNet(torch.nn.Module):
    """Stand-in for :class:`GeneSegNet`: shift-equivariant, receptive field radius 15 px."""

    RADIUS = 1 + 2 + 4 + 8

    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        layers = []
        for i, d in enumerate((1, 2, 4, 8)):
            layers += [torch.nn.Conv2d(2 if i == 0 else 8, 8, 3, padding=d, dilation=d), torch.nn.Tanh()]
        self.body = torch.nn.Sequential(*layers, torch.nn.Conv2d(8, 4, 1))

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


@pytest.mark.parametrize("tile", [64, 128, 256])
def test_tile_starts_cover_with_aligned_even_overlaps(tile):
    for length in range(tile, 5 * tile + 1, 16):
        for overlap in range(0, tile - 15, 8):
            starts = tile_starts(length, tile, overlap, align=16)
            assert starts[0] == 0 and starts[-1] == length - tile
            assert all(s % 16 == 0 for s in starts)
            gaps = np.diff(starts)
            if len(gaps):
                assert tile - gaps.max() >= overlap  # every overlap at least the requested one
                assert gaps.max() - gaps.min() <= 16  # spread evenly
            norm = np.zeros(length)
            for s, w in zip(starts, axis_weights(starts, tile), strict=True):
                norm[s : s + tile] += w
            assert norm.min() > 0


def test_blending_ignores_the_outer_part_of_each_overlap():
    starts = tile_starts(640, 256, 128, align=16)
    weights = axis_weights(starts, 256)
    assert weights[0][0] == 1 and weights[-1][-1] == 1  # the array's edges: nothing else predicts them
    for s, w in zip(starts[1:], weights[1:], strict=True):
        assert np.all(w[:48] == 0), s  # 3/8 of the 128 px overlap
        assert w[48] > 0


@pytest.mark.parametrize("shape", [(200, 330), (256, 256), (401, 515)])
def test_tiled_maps_equal_one_pass_when_tiles_give_enough_context(shape):
    """A network that sees 15 px gives the same maps tiled as in one pass once the tiles drop > 15 px at edges.

    Image edges included (array edges are neither tapered nor padded differently), so any blending weight
    left on a tile's outer pixels, or a tile start off the network's input grid, shows up.
    """
    net = LocalNet().eval()
    inputs = np.random.default_rng(1).random((2, *shape), dtype=np.float32)
    one = predict_maps(net, inputs, tile_size=None)
    assert one.shape == (4, *shape)
    tiled = predict_maps(net, inputs, tile_size=128, overlap=48)  # 3/8 * 48 = 18 px dropped > 15 px
    np.testing.assert_allclose(tiled, one, atol=1e-5)
    abutting = predict_maps(net, inputs, tile_size=128, overlap=0)  # no context across tiles: the seams show
    assert np.abs(abutting - one).max() > 1e-3


def test_arrays_thinner_than_a_tile_are_not_padded_to_the_tile():
    """What ``segment_window`` asks for: a thin window at the image's edge gets the padding of one pass."""
    net = LocalNet(3).eval()
    inputs = np.random.default_rng(4).random((2, 100, 330), dtype=np.float32)
    one = predict_maps(net, inputs, tile_size=None)
    thin = predict_maps(net, inputs, tile_size=128, overlap=48, pad_to_tile=False)
    np.testing.assert_allclose(thin, one, atol=1e-5)
    padded = predict_maps(net, inputs, tile_size=128, overlap=48)  # zeros down to row 128 reach rows 97-99
    assert np.abs(padded - one)[:, 97:].max() > 1e-3
    np.testing.assert_allclose(padded[:, :96], one[:, :96], atol=1e-5)


def test_one_pass_pads_each_axis_to_the_input_multiple_only():
    """Not to a square: a window at the image's edge then gets the padding a pass over the whole image gets."""
    net = GeneSegNet(gsn.core.network.unet.NetworkConfig(widths=(8, 8, 8, 8, 8))).eval()
    inputs = np.random.default_rng(2).random((2, 40, 90), dtype=np.float32)
    with torch.inference_mode():
        want = net.predict(torch.from_numpy(np.pad(inputs, ((0, 0), (0, 8), (0, 6))))[None])[0, :, :40, :90]
    np.testing.assert_allclose(predict_maps(net, inputs, tile_size=None), want.numpy(), atol=1e-5)


# --- the shipped model, the package defaults -------------------------------------------------------------------

# 640 and 768 px: 512 px blocks have windows that are not square at the image's edges.
TISSUES = {
    "14um": dict(shape=(640, 640), seed=41, cell_diameter_um=14.0),
    "20um": dict(shape=(768, 768), seed=42, cell_diameter_um=20.0),
}


def _matched(a: np.ndarray, b: np.ndarray, threshold: float = 0.9) -> float:
    """Fraction of the cells of ``a`` with a cell of ``b`` at IoU >= ``threshold``."""
    ia, _, _, iou = overlap_table(a, b)
    return len(np.unique(ia[iou >= threshold])) / max(len(np.unique(a[a > 0])), 1)


def _labels(tissue, model, **kwargs) -> np.ndarray:
    s = sd.SpatialData(images=dict(tissue.images), points=dict(tissue.points))
    gsn.tl.segment(s, model=model, **kwargs)
    return np.asarray(s.labels["gsn_labels"].values)


@pytest.fixture(scope="module", params=sorted(TISSUES))
def tissue_and_one_pass(request, model):
    """A tissue (cells of 14 or 20 um) and its cells from one network pass over the whole image."""
    tissue = gsn.datasets.synthetic_tissue(**TISSUES[request.param])
    one = _labels(tissue, model, block_size=1536)
    assert len(np.unique(one)) > 300
    return tissue, one


def test_256px_tiles_give_the_cells_of_one_pass(tissue_and_one_pass, model):
    tissue, one = tissue_and_one_pass
    tiled = _labels(tissue, model, block_size=1536, tile_size=256)
    assert _matched(tiled, one) >= 0.99
    assert _matched(one, tiled) >= 0.99


def test_512px_blocks_give_the_cells_of_one_block(tissue_and_one_pass, model):
    """Four 512 px blocks (edge windows not square) against one block of 1536 px holding the whole image."""
    tissue, one = tissue_and_one_pass
    blocks = _labels(tissue, model, block_size=512)
    assert _matched(blocks, one) >= 0.99
    assert _matched(one, blocks) >= 0.99
