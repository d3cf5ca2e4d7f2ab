"""int8 inference on CPUs (core.network.quantize): close to float32, stored with the model, used by segment."""

import pickle

import numpy as np
import pytest
import torch

import gsn_spatial as gsn
from gsn_spatial.core.image.intensity import normalise_intensity, sample_percentiles
from gsn_spatial.core.network.quantize import calibrate_int8, int8_available, quantize_int8
from gsn_spatial.core.network.tiling import predict_maps
from gsn_spatial.core.network.unet import GeneSegNet, NetworkConfig, fold_batch_norms
from gsn_spatial.core.rna.density import rna_density_window, rna_map_settings
from gsn_spatial.models import GeneSegModel

needs_int8 = pytest.mark.skipif(not int8_available(), reason="this torch has no oneDNN quantized engine")


@pytest.fixture(scope="module")
def trained():
    """The shipped default's network and a few of its real inputs (a simulated tissue at the working scale)."""
    model = gsn.models.load()
    sdata = gsn.datasets.synthetic_tissue((256, 256), seed=3)
    inputs = []
    net = model.inference_network()
    hook = net.register_forward_pre_hook(lambda _m, a: inputs.append(a[0].clone()))
    spec = model.input
    image = np.asarray(sdata.images["dapi"].data[0], dtype=np.float32)
    image = normalise_intensity(image, *sample_percentiles(image, spec.percentiles))
    xy = sdata.points["transcripts"][["x", "y"]].compute().to_numpy()
    sigma, level, _ = rna_map_settings(
        xy, image.shape, pixel_size=spec.pixel_size, sigma_um=spec.rna_sigma_um, norm=spec.rna_norm,
        bin_um=spec.density_bin_um,
    )  # fmt: skip
    rna = rna_density_window(xy, image.shape, sigma=sigma, level=level, mode=spec.rna_mode, method=spec.rna_method)
    predict_maps(net, np.stack([image, rna.astype(np.float32)]), tile_size=None)
    hook.remove()
    return model, net, inputs


@needs_int8
def test_int8_maps_are_close_to_float(trained):
    model, net, inputs = trained
    q = quantize_int8(net, model.int8_ranges)
    with torch.inference_mode():
        want, got = net.predict(inputs[0]), q.predict(inputs[0])
    conf = (want[:, 0] - got[:, 0]).abs()
    # Measured 2026-12-06 (AVX2 host): confidence off by 0.003 on average, 0.036 at the 99th percentile, 0.094 at
    # most; offsets by a median 0.15 px.
    assert float(conf.mean()) < 0.01 and float(conf.quantile(0.99)) < 0.08
    assert float((want[:, 2:] - got[:, 2:]).abs().median()) < 0.3
    # Fewer bits than float, so not identical: the comparison above is not vacuous.
    assert float(conf.max()) > 0


@needs_int8
def test_calibration_ranges_round_trip_through_a_model_file(tmp_path):
    torch.manual_seed(0)
    # Saved once first, so that its weights are already the float16 values a file holds.
    model = GeneSegModel.load(GeneSegModel.new(NetworkConfig(widths=(8, 8, 8, 8, 8))).save(tmp_path / "a.pt"))
    net = model.inference_network()
    x = torch.rand(1, 2, 48, 48)
    ranges = calibrate_int8(net, [x, torch.rand(1, 2, 32, 64)])
    model.int8_ranges = ranges
    loaded = GeneSegModel.load(model.save(tmp_path / "m.pt"))
    assert set(loaded.int8_ranges) == set(ranges)
    assert all(loaded.int8_ranges[k] == pytest.approx(v) for k, v in ranges.items())
    with torch.inference_mode():
        a = quantize_int8(net, ranges).predict(x)
        b = loaded.inference_network(int8=True).predict(x)
    assert torch.equal(a, b)


@needs_int8
def test_ranges_of_another_architecture_are_refused():
    small = fold_batch_norms(GeneSegNet(NetworkConfig(widths=(8, 8, 8, 8, 8))).eval())
    ranges = calibrate_int8(small, [torch.rand(1, 2, 32, 32)])
    with pytest.raises(ValueError, match="recalibrate"):
        quantize_int8(small, dict(list(ranges.items())[:-1]))


@needs_int8
def test_int8_network_pickles_for_workers(trained):
    model, net, inputs = trained
    q = quantize_int8(net, model.int8_ranges)
    again = pickle.loads(pickle.dumps(q))
    with torch.inference_mode():
        assert torch.equal(q.predict(inputs[0]), again.predict(inputs[0]))


def test_model_without_ranges_stays_float():
    m = GeneSegModel.new(NetworkConfig(widths=(8, 8, 8, 8, 8)))
    assert isinstance(m.inference_network(int8=True), GeneSegNet)
    assert gsn.models.load("synthetic").int8_ranges is None


@needs_int8
@pytest.mark.parametrize("pixel_size", [0.25])
def test_segment_in_int8_finds_the_float_cells(pixel_size):
    """The default call on a CPU without bf16 runs int8; its cells are float32's (gsn.settings.cpu_int8=False)."""
    sdata = gsn.datasets.synthetic_tissue((400, 400), seed=9, imaged_at=pixel_size)
    gsn.settings.cpu_int8 = False
    try:
        gsn.tl.segment(sdata, labels_key_added="f32", table_key_added="t32", assignment_key_added="a32")
    finally:
        gsn.settings.cpu_int8 = True
    gsn.tl.segment(sdata)
    bf16 = sdata.tables["gsn_table"].uns["gsn"]["params"]["precision"] == "bfloat16"  # hosts with native bf16
    assert sdata.tables["gsn_table"].uns["gsn"]["params"]["precision"] == ("bfloat16" if bf16 else "int8")
    assert sdata.tables["t32"].uns["gsn"]["params"]["precision"] in ("float32", "bfloat16")
    scores = gsn.qc.match_reference(sdata, labels_key="gsn_labels", reference_key="f32", iou_threshold=0.9)
    # Measured 2026-12-06 (AVX2 host): 252 cells both ways, F1 1.0 at IoU 0.9, at both pixel sizes.
    assert sdata.tables["gsn_table"].n_obs > 100 and scores["f1"] >= 0.97
