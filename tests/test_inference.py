"""Inference speed-ups change nothing but speed: decoder order, one-tile windows, votes, label statistics, compile."""

import numpy as np
import pytest
import torch

import gsn_spatial as gsn
from gsn_spatial.core.network.tiling import predict_maps
from gsn_spatial.core.network.unet import GeneSegNet, NetworkConfig, fold_batch_norms


def random_net(seed: int = 0) -> GeneSegNet:
    """A small network whose batch norms have non-trivial statistics and affine parameters."""
    torch.manual_seed(seed)
    net = GeneSegNet(NetworkConfig(widths=(8, 12, 16, 16, 24)))
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(-1.5, 1.5)  # negative scales too
            m.bias.data.uniform_(-0.5, 0.5)
    return net.eval()


def test_one_tile_is_the_network_output():
    net = random_net(2)
    inputs = np.random.default_rng(0).random((2, 40, 56), dtype=np.float32)
    maps = predict_maps(net, inputs, tile_size=64, overlap=0)
    padded = torch.from_numpy(np.pad(inputs, ((0, 0), (0, 24), (0, 8))))[None]
    with torch.inference_mode():
        want = net.predict(padded)[0, :, :40, :56].numpy()
    assert maps.shape == (4, 40, 56)
    np.testing.assert_allclose(maps, want, atol=1e-5)


@pytest.mark.slow  # 9 s of torch.compile (gsn.settings.compile, off by default); see tests/test_scale.py
def test_segment_with_compiled_network_matches_eager():
    # torch.compile (gsn.settings.compile): the cells must be the same as eager's. Four 128 px blocks of a 256 px
    # image give four 160 px windows (each block with its halo on the two inner sides), so one shape is compiled:
    # each shape costs a compile of 30-40 s on a 2-core host, and more shapes test torch's recompiles, not ours.
    sdata = gsn.datasets.synthetic_tissue((256, 256), seed=4)
    gsn.settings.cpu_int8 = False  # a compiled network runs in float, so the eager one here as well
    try:
        gsn.tl.segment(sdata, block_size=128, block_halo=32)
    finally:
        gsn.settings.cpu_int8 = True
    gsn.settings.compile = True
    try:
        gsn.tl.segment(sdata, block_size=128, block_halo=32, labels_key_added="compiled", table_key_added="t2",
                       assignment_key_added="a2")  # fmt: skip
    finally:
        gsn.settings.compile = False
    assert sdata.tables["t2"].uns["gsn"]["params"]["compiled"] is True
    scores = gsn.qc.match_reference(sdata, labels_key="compiled", reference_key="gsn_labels", iou_threshold=0.9)
    assert sdata.tables["gsn_table"].n_obs > 50
    assert scores["f1"] >= 0.99


def test_binned_and_exact_rna_maps_give_the_same_cells(monkeypatch):
    import dataclasses

    import gsn_spatial.core.slide.blocks as blocks

    used = []
    real = blocks.rna_density_window
    monkeypatch.setattr(blocks, "rna_density_window", lambda *a, **k: used.append(k["method"]) or real(*a, **k))
    sdata = gsn.datasets.synthetic_tissue((512, 512), seed=5)
    model = gsn.models.load("synthetic")
    assert model.input.rna_method == "binned"  # model files without the field load with the default
    exact = dataclasses.replace(model, input=dataclasses.replace(model.input, rna_method="exact"))
    gsn.tl.segment(sdata, model=model)
    gsn.tl.segment(sdata, model=exact, labels_key_added="exact", table_key_added="t2", assignment_key_added="a2")
    assert used == ["binned", "exact"]
    assert sdata.tables["t2"].uns["gsn"]["params"]["rna_method"] == "exact"
    f1 = {k: gsn.qc.match_reference(sdata, labels_key=k, reference_key="cells")["f1"] for k in ("gsn_labels", "exact")}
    assert f1["gsn_labels"] >= f1["exact"] - 0.01, f1


def test_label_stats_dense_and_sparse_ids_agree():
    from gsn_spatial.core.slide.blocks import label_stats

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 40, size=(64, 48)).astype(np.uint32) + 5000  # a narrow id range: bincount path
    labels[rng.random(labels.shape) < 0.3] = 0
    sparse = labels.astype(np.int64) * 10**6  # the same cells with ids far apart: np.unique path
    a, b = label_stats(labels, origin=(3, 4)), label_stats(sparse, origin=(3, 4))
    np.testing.assert_array_equal(a[0] * 10**6, b[0])
    for x, y in zip(a[1:], b[1:], strict=True):
        np.testing.assert_allclose(x, y)
    assert a[1].sum() == np.count_nonzero(labels)


def test_decoder_projects_before_upsampling_as_if_after():
    # Projection (1x1, no bias) and bilinear up-sampling commute; the decoder does the cheaper order.
    import torch.nn.functional as F

    dec = next(d for d in random_net(4).decoder if isinstance(d.project, torch.nn.Conv2d))
    z = torch.rand(1, dec.project.in_channels, 9, 7)
    with torch.inference_mode():
        a = F.interpolate(dec.project(z), size=(18, 14), mode="bilinear", align_corners=False)
        b = dec.project(F.interpolate(z, size=(18, 14), mode="bilinear", align_corners=False))
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def _assign_by_tree(confidence, offset, centres, threshold, bound):
    """The definition: every foreground pixel's vote looked up in a k-d tree."""
    from scipy.spatial import cKDTree

    out = np.zeros(confidence.shape, dtype=np.int64)
    r, c = np.nonzero(confidence >= threshold)
    votes = np.stack([r + offset[0, r, c], c + offset[1, r, c]], axis=1)
    d, i = cKDTree(centres).query(votes, distance_upper_bound=bound)
    out[r[np.isfinite(d)], c[np.isfinite(d)]] = i[np.isfinite(d)] + 1
    return out


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("bound", [10.0, np.inf])
def test_vote_assignment_equals_tree_lookup(seed, bound):
    from gsn_spatial.core.decode.cells import assign_pixels

    rng = np.random.default_rng(seed)
    h, w = 96, 120
    centres = np.unique(rng.integers(0, [h, w], size=(60, 2)), axis=0)
    if seed == 3:
        centres = centres[:1]  # one centre: every vote is certain
    # Votes scattered around the centres and over Voronoi boundaries, some far outside the window.
    target = centres[rng.integers(0, len(centres), size=(h, w))]
    rows, cols = np.indices((h, w))
    offset = np.stack([target[..., 0] - rows, target[..., 1] - cols]).astype(np.float32)
    offset += rng.normal(0, 6, size=offset.shape).astype(np.float32)
    offset[:, :5] += 200
    confidence = rng.random((h, w), dtype=np.float32)
    got = assign_pixels(confidence, offset, centres, confidence_threshold=0.3, max_vote_distance=bound)
    want = _assign_by_tree(confidence, offset, centres, 0.3, bound)
    assert (want > 0).mean() > 0.3
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("model", [None, "generalist"])
def test_folded_batch_norms_give_the_same_maps(model):
    # Random batch-norm statistics, or a shipped model's trained ones.
    net = random_net(3) if model is None else gsn.models.load(model).network
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.rand(2, 2, 64, 96, generator=torch.Generator().manual_seed(0))
    folded = fold_batch_norms(net)
    with torch.inference_mode():
        a, b = net.eval().predict(x), folded.predict(x)
    assert torch.allclose(a, b, atol=1e-4, rtol=1e-4), (a - b).abs().max()
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules()) == 21
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())  # the argument is unchanged
