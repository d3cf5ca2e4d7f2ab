import numpy as np
import pytest
import torch

import gsn_spatial as gsn
from gsn_spatial.core.network.unet import GeneSegNet, NetworkConfig
from gsn_spatial.core.rna.density import rna_density_window
from gsn_spatial.models import GeneSegModel, InputSpec


def test_network_shapes_and_ranges():
    net = GeneSegNet(NetworkConfig(widths=(8, 8, 16, 16, 16)))
    x = torch.rand(2, 2, 48, 64)
    out = net.predict(x)
    assert out.shape == (2, 4, 48, 64)
    assert out[:, :2].min() >= 0 and out[:, :2].max() <= 1
    with pytest.raises(ValueError, match="widths"):
        GeneSegNet(NetworkConfig(widths=(8, 8)))


def test_paper_architecture_defaults():
    net = GeneSegNet()
    assert net.config.widths[0] == 32  # 32-channel full-resolution feature map (Eq. 9)
    assert len(net.encoder) == 4 and len(net.decoder) == 4
    assert all(len(list(e.children())) == 3 for e in net.encoder)  # projection + two residual blocks
    assert net.head_offset.out_channels == 2


def test_save_load_round_trip(tmp_path):
    m = GeneSegModel.new(NetworkConfig(widths=(8, 8, 8, 8, 8)), InputSpec(rna_sigma_um=1.5))
    m.meta = {"name": "t"}
    m.network.eval()  # compare with running statistics, as a loaded model is used
    path = m.save(tmp_path / "m.pt")
    back = GeneSegModel.load(path)
    assert back.input == m.input and back.meta == {"name": "t"}
    x = torch.rand(1, 2, 32, 32)
    # Weights are stored in float16: outputs agree to that precision.
    torch.testing.assert_close(back.network.predict(x), m.network.predict(x), atol=2e-2, rtol=2e-2)


def test_load_rejects_non_models(tmp_path):
    bad = tmp_path / "x.pt"
    bad.write_text("not a model")
    with pytest.raises(ValueError, match="not a gsn_spatial model"):
        GeneSegModel.load(bad)
    torch.save({"a": 1}, tmp_path / "y.pt")
    with pytest.raises(ValueError, match="not a gsn_spatial model"):
        GeneSegModel.load(tmp_path / "y.pt")
    with pytest.raises(FileNotFoundError):
        gsn.models.load(tmp_path / "missing.pt")


def test_shipped_models_record_their_units():
    m = gsn.models.load()
    assert m.meta["name"] == "generalist" and m.input.rna_mode == "sum" and m.input.rna_norm == "density"
    assert m.input.pixel_size == 0.5 and 3 < m.input.nucleus_diameter_um < m.input.cell_diameter_um < 30
    v2 = gsn.models.load("synthetic").input
    assert gsn.models.load("xenium_breast").input == v2  # fine-tuned from it: the same inputs
    assert (v2.rna_sigma_um, v2.rna_norm, v2.percentiles) == (
        m.input.rna_sigma_um,
        m.input.rna_norm,
        m.input.percentiles,
    )
    old = gsn.models.load("synthetic_v1").input  # before units: 0.5 um/px and Eq. 5's clipped sum
    assert (old.pixel_size, old.rna_sigma_um, old.rna_norm, old.rna_sigma) == (0.5, 0.75, "clip", 1.5)


def test_pp_rna_density_is_lazy_and_exact(tissue):
    gsn.pp.rna_density(tissue, sigma=3.0, chunk_size=100)
    el = tissue.images["gsn_rna_density"]
    assert el.data.chunks[1] == (100, 100, 56)
    got = el.values[0]
    pts = tissue.points["transcripts"].compute()[["x", "y"]].to_numpy()
    from gsn_spatial._sdata import points_to_pixels

    m = points_to_pixels(tissue, "transcripts", "dapi")
    want = rna_density_window(pts @ m[:2, :2].T + m[:2, 2], (256, 256), sigma=3.0)
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_overlay_draws(tissue, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    ax = gsn.pl.segmentation_overlay(tissue, labels_key="cells", reference_key="nuclei", window=(0, 100, 0, 120))
    assert len(ax.images) == 3 and len(ax.collections) == 1
    ax.figure.savefig(tmp_path / "o.png")
    assert (tmp_path / "o.png").stat().st_size > 1000


def test_progress_bars_follow_settings(capsys, model):
    sdata = gsn.datasets.synthetic_tissue((128, 128), seed=2)
    gsn.settings.progress = True
    try:
        gsn.tl.segment(sdata, model=model)
    finally:
        gsn.settings.progress = None
    assert "segment" in capsys.readouterr().err
    gsn.tl.segment(sdata, model=model, overwrite=True)  # default: no bars when stderr is not a terminal
    assert "segment" not in capsys.readouterr().err


def test_progress_bars_default_on_for_a_person_off_in_ci(monkeypatch):
    from gsn_spatial._settings import someone_watching

    class Terminal:
        def isatty(self):
            return True

    monkeypatch.setattr("sys.stderr", Terminal())
    monkeypatch.delenv("CI", raising=False)
    assert someone_watching()
    monkeypatch.setenv("CI", "true")
    assert not someone_watching()
