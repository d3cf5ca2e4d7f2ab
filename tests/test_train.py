"""gsn.tl.train and the pieces of Algorithm 1: level set, stopping rule, checkpoints, resume."""

import numpy as np
import pytest
import torch

import gsn_spatial as gsn
from gsn_spatial.core.metrics.matching import mean_best_iou
from gsn_spatial.core.network.quantize import int8_available
from gsn_spatial.core.network.unet import NetworkConfig
from gsn_spatial.core.simulate.tissue import simulate_tissue
from gsn_spatial.core.train.fit import FitOptions
from gsn_spatial.core.train.levelset import refine_cell, refine_labels
from gsn_spatial.core.train.recursive import TrainingOptions, recursive_training, split_regions
from gsn_spatial.models import GeneSegModel, InputSpec

TINY = dict(max_rounds=2, epochs=1, steps_per_epoch=2, patch_size=64, batch_size=2, device="cpu")


def test_level_set_smooths_protrusions_and_notches():
    m = np.zeros((40, 40), bool)
    m[10:30, 10:30] = True
    m[20, 30:36] = True  # a one-pixel spur
    m[15, 10:13] = False  # a notch
    r = refine_cell(m)
    assert not r[20, 33] and r[15, 11]
    # The bulk of the cell stays.
    assert (r & m).sum() / m.sum() > 0.95


def test_level_set_never_takes_other_cells_pixels():
    lab = np.zeros((30, 30), int)
    lab[5:15, 5:15] = 1
    lab[5:15, 15:25] = 2
    lab[14, 25:29] = 2  # spur of cell 2
    out = refine_labels(lab)
    assert out[14, 27] == 0  # spur removed
    assert np.all(out[lab == 1] != 2) and np.all(out[lab == 2] != 1)
    assert mean_best_iou(lab, out) > 0.9


def test_stopping_rule_is_eq16():
    a = np.zeros((10, 10), int)
    a[:5] = 1
    a[5:] = 2
    assert mean_best_iou(a, a) == 1.0
    b = np.zeros_like(a)
    b[:5] = 7  # cell 2 vanished
    assert mean_best_iou(a, b) == 0.5


def test_split_regions_band():
    tr, va = split_regions((300, 200), 0.3, 64)
    assert tr == (slice(0, 210), slice(0, 200)) and va == (slice(210, 300), slice(0, 200))
    tr, va = split_regions((100, 100), 0.2, 64)  # band too thin: no validation
    assert va is None
    with pytest.raises(ValueError, match="patch_size"):
        split_regions((50, 50), 0.2, 64)


def _tiny_model():
    return GeneSegModel.new(NetworkConfig(widths=(8, 8, 8, 8, 8)), InputSpec(rna_sigma_um=0.75))


def test_recursion_stops_when_labels_converge():
    """With an oracle network that predicts the current labels perfectly, round 1 already agrees."""
    t = simulate_tissue((128, 128), seed=2)
    inputs = np.stack([t.image / t.image.max(), np.zeros(t.image.shape)]).astype(np.float32)
    fit_options = FitOptions(epochs=1, steps_per_epoch=1, patch_size=64, batch_size=2)
    kwargs = dict(max_rounds=3, fit=fit_options, val_fraction=0, keep_missed=False, level_set=False)
    oracle = dict(predict=lambda net: t.cells.astype(np.int64))
    hist, per_round = recursive_training(
        _tiny_model().network, inputs, t.cells.astype(np.int64), TrainingOptions(iou_stop=0.93, **kwargs), **oracle
    )
    assert len(hist) == 1 and hist[0].iou_to_previous > 0.93
    options = TrainingOptions(iou_stop=1.0, **kwargs)
    hist, _ = recursive_training(_tiny_model().network, inputs, t.cells.astype(np.int64), options, **oracle)
    assert [r.round for r in hist] == [1, 2, 3]


def test_train_writes_history_labels_and_checkpoints(tmp_path):
    sdata = gsn.datasets.synthetic_tissue((160, 160), seed=4)
    before = sdata.labels["nuclei"].values.copy()
    m = gsn.tl.train(
        sdata,
        labels_key="nuclei",
        model=_tiny_model(),
        iou_stop=1.0,
        checkpoint_dir=tmp_path,
        refined_labels_key="refined",
        name="tiny",
        **TINY,
    )
    assert [r["round"] for r in m.meta["history"]] == [1, 2]
    for r in m.meta["history"]:
        assert set(r) >= {"train_loss", "val_loss", "n_cells_out", "iou_to_previous", "seconds"}
    assert {"refined_round1", "refined_round2"} <= set(sdata.labels)
    np.testing.assert_array_equal(sdata.labels["nuclei"].values, before)  # input untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "round_1.pt",
        "round_1_labels.npy",
        "round_2.pt",
        "round_2_labels.npy",
    ]
    saved = GeneSegModel.load(tmp_path / "round_2.pt")
    assert saved.meta["name"] == "tiny" and len(saved.meta["history"]) == 2
    # The trained model segments, in int8 on a CPU without bf16: train chose its activation ranges.
    gsn.tl.segment(sdata, model=m, device="cpu")
    assert "gsn_labels" in sdata.labels
    if int8_available():
        assert m.int8_ranges and GeneSegModel.load(m.save(tmp_path / "m.pt")).int8_ranges == m.int8_ranges
        assert sdata.tables["gsn_table"].uns["gsn"]["params"]["precision"] in ("int8", "bfloat16")


def test_resume_continues_after_last_round(tmp_path):
    sdata = gsn.datasets.synthetic_tissue((160, 160), seed=4)
    args = dict(TINY, max_rounds=1)
    gsn.tl.train(sdata, labels_key="nuclei", model=_tiny_model(), iou_stop=1.0, checkpoint_dir=tmp_path, **args)
    args["max_rounds"] = 2
    m = gsn.tl.train(
        sdata, labels_key="nuclei", model=_tiny_model(), iou_stop=1.0, checkpoint_dir=tmp_path, resume=True, **args
    )
    assert [r["round"] for r in m.meta["history"]] == [1, 2]
    assert (tmp_path / "round_2.pt").exists()


def test_train_is_reproducible_and_leaves_start_model_alone():
    sdata = gsn.datasets.synthetic_tissue((160, 160), seed=4)
    start = _tiny_model()
    before = {k: v.clone() for k, v in start.network.state_dict().items()}
    a = gsn.tl.train(sdata, labels_key="nuclei", model=start, seed=3, **dict(TINY, max_rounds=1))
    b = gsn.tl.train(sdata, labels_key="nuclei", model=start, seed=3, **dict(TINY, max_rounds=1))
    for (k, va), (_, vb) in zip(a.network.state_dict().items(), b.network.state_dict().items(), strict=True):
        assert np.array_equal(va.numpy(), vb.numpy()), k
    for k, v in start.network.state_dict().items():
        assert np.array_equal(v.numpy(), before[k].numpy()), k
    changed = [k for k, v in a.network.state_dict().items() if not np.array_equal(v.numpy(), before[k].numpy())]
    assert changed  # training did move the weights


def test_transcripts_with_no_gene_are_left_out_of_the_training_rna_map():
    # As in segment. Their code is -1, which used to index the control-probe mask from its end: the last gene's flag
    # (here not a control probe) put them in the map.
    import dask.dataframe as dd
    import pandas as pd
    from spatialdata.models import PointsModel
    from spatialdata.transformations import get_transformation

    plain = gsn.datasets.synthetic_tissue((160, 160), seed=4)
    extra = gsn.datasets.synthetic_tissue((160, 160), seed=4)
    frame = extra.points["transcripts"].compute()
    rng = np.random.default_rng(0)
    x0, y0 = frame["x"].min(), frame["y"].min()  # a corner of the tissue, in the points' own coordinates
    corner = pd.DataFrame({"x": x0 + rng.uniform(0, 20, 3000), "y": y0 + rng.uniform(0, 20, 3000)})
    corner["gene"] = pd.Categorical([np.nan] * len(corner), categories=frame["gene"].cat.categories)
    both = pd.concat([frame, corner.assign(cell_id=0)[frame.columns]], ignore_index=True)
    transformations = get_transformation(extra.points["transcripts"], get_all=True)
    del extra.points["transcripts"]
    extra.points["transcripts"] = PointsModel.parse(
        dd.from_pandas(both, npartitions=1), feature_key="gene", transformations=transformations
    )
    assert not str(frame["gene"].cat.categories[-1]).lower().startswith(("neg", "blank", "unassigned"))
    start = _tiny_model()
    a = gsn.tl.train(plain, labels_key="nuclei", model=start, seed=3, **dict(TINY, max_rounds=1))
    b = gsn.tl.train(extra, labels_key="nuclei", model=start, seed=3, **dict(TINY, max_rounds=1))
    assert b.meta["params"]["transcripts_per_um2"] == a.meta["params"]["transcripts_per_um2"]
    for (k, va), (_, vb) in zip(a.network.state_dict().items(), b.network.state_dict().items(), strict=True):
        assert np.array_equal(va.numpy(), vb.numpy()), k


def test_cells_given_as_polygons_in_microns_train_as_their_labels(outlines_in_microns):
    # MERSCOPE's and sopa's cells are polygons; train draws them onto the image's grid through the transformations.
    sdata = gsn.datasets.synthetic_tissue((160, 160), seed=4)
    n_nuclei = len(np.unique(np.asarray(sdata.labels["nuclei"].data))) - 1
    sdata.shapes["nuclei_outlines"] = outlines_in_microns(sdata, "nuclei")
    start = _tiny_model()
    a = gsn.tl.train(sdata, labels_key="nuclei", model=start, seed=3, **dict(TINY, max_rounds=1))
    b = gsn.tl.train(sdata, labels_key="nuclei_outlines", model=start, seed=3, **dict(TINY, max_rounds=1))
    assert a.meta["history"][0]["n_cells_in"] == b.meta["history"][0]["n_cells_in"] == n_nuclei
    for (k, va), (_, vb) in zip(a.network.state_dict().items(), b.network.state_dict().items(), strict=True):
        assert np.array_equal(va.numpy(), vb.numpy()), k


def test_trained_model_keeps_the_start_models_decoding_settings():
    # The decoding settings were chosen on validation data for the start model; the trained model must decode
    # the same way (a model that lost them decoded at 0.5 / 0.5 and found a third of the cells).
    sdata = gsn.datasets.synthetic_tissue((160, 160), seed=4)
    start = _tiny_model()
    # A threshold per transcript density too: train's predictions take the one for this tissue, as segment does.
    decode = {"confidence_threshold": 0.55, "centre_threshold": 0.2, "confidence_by_density": [[0.1, 0.4], [1, 0.5]]}
    start.meta = {"name": "start", "decode": decode}
    m = gsn.tl.train(sdata, labels_key="nuclei", model=start, **dict(TINY, max_rounds=1))
    assert m.meta["decode"] == start.meta["decode"] and m.meta["init"] == "start"


def test_train_validates_inputs():
    sdata = gsn.datasets.synthetic_tissue((160, 160), seed=4)
    with pytest.raises(KeyError, match="labels_key"):
        gsn.tl.train(sdata, labels_key="nope", **TINY)
    with pytest.raises(ValueError, match="no CUDA"):
        gsn.tl.train(sdata, labels_key="nuclei", **dict(TINY, device="cuda"))
    with pytest.raises(ValueError, match="resume"):
        gsn.tl.train(sdata, labels_key="nuclei", resume=True, **TINY)
    with pytest.raises(ValueError, match="steps_per_epoch"):  # 0 is not "one pass per epoch" (None is)
        gsn.tl.train(sdata, labels_key="nuclei", **dict(TINY, steps_per_epoch=0))
    with pytest.raises(ValueError, match="level_set_image"):
        gsn.tl.train(sdata, labels_key="nuclei", level_set_image="dapi", **TINY)
    from spatialdata.models import Labels2DModel

    sdata["small"] = Labels2DModel.parse(np.zeros((80, 80), np.uint32), dims=("y", "x"))
    with pytest.raises(ValueError, match="pixel grid"):
        gsn.tl.train(sdata, labels_key="small", **TINY)


def test_degenerate_round_is_rejected_and_the_last_good_model_kept():
    """A round that loses most cells (here: predicts none) is rejected; the network keeps its starting weights."""
    t = simulate_tissue((128, 128), seed=2)
    inputs = np.stack([t.image / t.image.max(), np.zeros(t.image.shape)]).astype(np.float32)
    net = _tiny_model().network
    start = {k: v.clone() for k, v in net.state_dict().items()}
    fit_options = FitOptions(epochs=1, steps_per_epoch=2, patch_size=64, batch_size=2)
    options = TrainingOptions(max_rounds=3, fit=fit_options, val_fraction=0, keep_missed=False, level_set=False)
    hist, per_round = recursive_training(
        net, inputs, t.cells.astype(np.int64), options, predict=lambda net: np.zeros(t.cells.shape, np.int64)
    )
    assert len(hist) == 1 and not hist[0].accepted and hist[0].n_cells_out == 0
    assert per_round == []
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, start[k])


def test_train_works_at_the_working_scale_and_returns_labels_on_the_image_grid():
    """An image at 0.25 um/px is trained on at 0.5 um/px; the refined labels come back on the image's grid."""
    sdata = gsn.datasets.synthetic_tissue((320, 320), seed=4, pixel_size=0.25)
    m = gsn.tl.train(sdata, labels_key="nuclei", model=_tiny_model(), refined_labels_key="refined", **TINY)
    assert m.meta["params"]["pixel_size"] == 0.25 and m.meta["params"]["working_pixel_size"] == 0.5
    assert sdata.labels["refined_round1"].shape == (320, 320)
    # Nuclei brought to the working grid by nearest neighbour: a nucleus thinner than two pixels may vanish.
    n_native = len(np.unique(sdata.labels["nuclei"].values)) - 1
    assert 0.95 * n_native <= m.meta["history"][0]["n_cells_in"] <= n_native


def test_a_crop_smaller_than_the_default_patch_trains_with_patches_cut_to_it():
    """A CosMx field of view is about 240 working px across: `train` with its default patch size (256) raised on it.
    The default now fits the image; an explicit size that does not fit is refused with the size that would."""
    from gsn_spatial.core.train.recursive import patch_size_for

    sdata = gsn.datasets.synthetic_tissue((200, 200), seed=4)  # 200 working px at 0.5 um/px
    tiny = {k: v for k, v in TINY.items() if k != "patch_size"}
    m = gsn.tl.train(sdata, labels_key="nuclei", model=_tiny_model(), **tiny)
    assert m.meta["params"]["patch_size"] == 192 and len(m.meta["history"]) == 1
    with pytest.raises(ValueError, match=r"`patch_size`=256 working px does not fit .* <= 192"):
        gsn.tl.train(sdata, labels_key="nuclei", model=_tiny_model(), **dict(tiny, patch_size=256))
    assert patch_size_for((2000, 1000)) == 256 and patch_size_for((100, 70)) == 64
    with pytest.raises(ValueError, match="too small to train on"):
        patch_size_for((60, 300))


def test_compiled_chan_vese_gives_scikit_images_masks():
    # core.train.levelset.chan_vese ports skimage's evolution into one compiled loop: the same masks, pixel for pixel,
    # on cells refined on their own masks and on data, as training does.
    from scipy import ndimage as ndi
    from skimage.segmentation import chan_vese as skimage_chan_vese

    from gsn_spatial.core.train.levelset import chan_vese

    t = simulate_tissue((160, 160), seed=5)
    image = t.image / t.image.max()
    compared = 0
    for cid, sl in list(enumerate(ndi.find_objects(t.nuclei), start=1))[:12]:
        if sl is None:
            continue
        y0, y1, x0, x1 = max(0, sl[0].start - 6), sl[0].stop + 6, max(0, sl[1].start - 6), sl[1].stop + 6
        own = t.nuclei[y0:y1, x0:x1] == cid
        phi0 = ndi.distance_transform_edt(own) - ndi.distance_transform_edt(~own)
        for data in (own.astype(float), image[y0:y1, x0:x1]):
            want = skimage_chan_vese(data, mu=1.0, lambda1=1.0, lambda2=1.0, max_num_iter=150, dt=0.5,
                                     init_level_set=phi0)  # fmt: skip
            got = chan_vese(data, phi0, mu=1.0, max_iter=150, dt=0.5)
            np.testing.assert_array_equal(got, want)
            compared += 1
    assert compared >= 20
    with pytest.raises(ValueError, match="differ in shape"):
        chan_vese(np.zeros((4, 4)), np.zeros((4, 5)))
