"""Pieces of the generalist model's training: randomised simulator, stain augmentation, sample weights, resumable fit,
the fixed held-out splits, and the model's own decoding thresholds."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import gsn_spatial as gsn
from gsn_spatial.core.network.unet import GeneSegNet, NetworkConfig
from gsn_spatial.core.simulate.tissue import TissueParameters, simulate_tissue
from gsn_spatial.core.train.fit import Augmentation, FitOptions, TrainingSample, augment_image, fit, sample_batch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import heldout  # noqa: E402


def test_dim_nuclei_are_dim_and_the_default_tissue_is_unchanged():
    a = simulate_tissue((160, 160), seed=4)
    b = simulate_tissue((160, 160), TissueParameters(dim_nucleus_fraction=0.0), seed=4)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.points_xy, b.points_xy)
    dim = simulate_tissue((160, 160), TissueParameters(dim_nucleus_fraction=1.0), seed=4)
    assert np.array_equal(dim.cells, a.cells)  # the same cells, only their stain changes
    inside = a.nuclei > 0
    assert dim.image[inside].mean() < 0.6 * a.image[inside].mean()
    with pytest.raises(ValueError, match="dim_nucleus_fraction"):
        TissueParameters(dim_nucleus_fraction=1.5)


def test_stain_looks_stay_in_range_and_vary():
    rng = np.random.default_rng(0)
    x = simulate_tissue((96, 96), seed=1).image.astype(np.float32)
    x = x / x.max()
    outs = [augment_image(x, rng, Augmentation.stain_looks()) for _ in range(20)]
    assert all(o.shape == x.shape and o.dtype == np.float32 and o.min() >= 0 and o.max() <= 1 for o in outs)
    # Different looks of the same image, each still correlated with it.
    assert np.std([o.mean() for o in outs]) > 0.01
    assert min(np.corrcoef(o.ravel(), x.ravel())[0, 1] for o in outs) > 0.3
    # The default augmentation draws only gain and gamma: contrast and the rest are off.
    plain = Augmentation()
    assert (plain.contrast_range, plain.jpeg_prob, plain.illumination) == ((1.0, 1.0), 0.0, 0.0)


def test_sample_weight_sets_how_often_a_sample_is_drawn():
    a = TrainingSample(np.zeros((2, 64, 64), np.float32), np.zeros((64, 64), np.int64), weight=9.0)
    b = TrainingSample(np.ones((2, 64, 64), np.float32), np.zeros((64, 64), np.int64), weight=1.0)
    rng = np.random.default_rng(0)
    aug = Augmentation(gain_range=(1, 1), gamma_range=(1, 1), scale_range=(1, 1), rotate=False)
    x, _ = sample_batch([a, b], rng, 400, 16, aug)
    from_b = float((x[:, 1].mean(dim=(1, 2)) > 0.5).float().mean())
    assert 0.05 < from_b < 0.16  # expected 0.10
    with pytest.raises(ValueError, match="weight"):
        TrainingSample(np.zeros((2, 8, 8), np.float32), np.zeros((8, 8), np.int64), weight=0.0)


def _fit(net, samples, checkpoint=None, on_epoch=None):
    options = FitOptions(epochs=3, steps_per_epoch=2, batch_size=2, patch_size=32)
    return fit(net, samples, options, checkpoint=checkpoint, on_epoch=on_epoch)


def test_fit_resumes_from_its_checkpoint_exactly(tmp_path):
    t = simulate_tissue((96, 96), seed=2)
    img = t.image.astype(np.float32) / t.image.max()
    samples = [TrainingSample(np.stack([img, np.zeros_like(img)]), t.cells.astype(np.int64))]
    config = NetworkConfig(widths=(4, 4, 4, 4, 4))
    torch.manual_seed(0)
    start = GeneSegNet(config).state_dict()

    whole = GeneSegNet(config)
    whole.load_state_dict(start)
    _fit(whole, samples)

    class Stop(Exception):
        pass

    def stop_after_2(epoch, record):
        if epoch == 2:
            raise Stop

    ckpt = tmp_path / "run.ckpt"
    first = GeneSegNet(config)
    first.load_state_dict(start)
    with pytest.raises(Stop):
        _fit(first, samples, checkpoint=ckpt, on_epoch=stop_after_2)
    resumed = GeneSegNet(config)
    resumed.load_state_dict(start)
    result = _fit(resumed, samples, checkpoint=ckpt)
    assert [r["epoch"] for r in result.losses] == [1, 2, 3]
    for k, v in whole.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k
    with pytest.raises(ValueError, match="steps"):
        longer = FitOptions(epochs=5, steps_per_epoch=2, batch_size=2, patch_size=32)
        fit(GeneSegNet(config), samples, longer, checkpoint=ckpt)


def test_held_out_splits_are_disjoint_and_fixed():
    train, val, test = (set(heldout.dsb_split(s)) for s in ("train", "val", "test"))
    assert not (train & val) and not (train & test) and not (val & test)
    assert len(train | val | test) == 541 and len(test) == 108
    for crop_cols, px in ((heldout.XENIUM_HELDOUT_COLS, heldout.XENIUM_PIXEL_SIZE),
                          (heldout.COSMX_HELDOUT_COLS, heldout.COSMX_PIXEL_SIZE)):  # fmt: skip
        guard = round(heldout.GUARD_UM / px)
        assert crop_cols[0] - guard > 0
    assert not set(heldout.SIM_TRAIN_SEEDS) & set(heldout.SIM_TEST_SEEDS)
    assert not set(heldout.SIM_VAL_SEEDS) & set(heldout.SIM_TEST_SEEDS)


def test_segment_decodes_with_the_models_own_thresholds():
    sdata = gsn.datasets.synthetic_tissue((128, 128), seed=3)
    model = gsn.models.load()
    model.meta = {**model.meta, "decode": {"confidence_threshold": 0.35, "centre_threshold": 0.25}}
    gsn.tl.segment(sdata, model=model)
    params = sdata.tables["gsn_table"].uns["gsn"]["params"]
    assert (params["confidence_threshold"], params["centre_threshold"]) == (0.35, 0.25)
    gsn.tl.segment(sdata, model=model, confidence_threshold=0.6, labels_key_added="l2", table_key_added="t2",
                   assignment_key_added="a2")  # fmt: skip
    assert sdata.tables["t2"].uns["gsn"]["params"]["confidence_threshold"] == 0.6
