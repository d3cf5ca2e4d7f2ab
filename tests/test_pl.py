"""gsn.pl: every plot returns its axes, draws what it says, and saves with save=."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import gsn_spatial as gsn  # noqa: E402


@pytest.fixture(scope="module")
def small():
    return gsn.datasets.synthetic_tissue((160, 160), seed=4)


def test_overlay_colours_inside_and_outside(small, tmp_path):
    out = tmp_path / "o.png"
    ax = gsn.pl.segmentation_overlay(small, labels_key="cells", window=(20, 120, 10, 150), save=out)
    assert out.stat().st_size > 0
    colours = ax.collections[0].get_facecolors()[:, :3]
    inside = np.isclose(colours, matplotlib.colors.to_rgb(gsn.pl.INSIDE_COLOUR)).all(axis=1)
    # The simulator puts 5 % of transcripts outside cells (ambient), the rest inside.
    assert 0.85 < inside.mean() < 0.99
    assert ax.get_xlim() == (10, 150) and ax.get_ylim() == (120, 20)
    with pytest.raises(ValueError, match="window"):
        gsn.pl.segmentation_overlay(small, labels_key="cells", window=(300, 400, 0, 10))
    plt.close("all")


def test_overlay_of_a_large_image_is_strided_and_its_points_sampled(small):
    # A whole slide must not be drawn pixel by pixel nor every transcript: memory stays bounded.
    full = gsn.pl.segmentation_overlay(small, labels_key="cells")
    n_points = len(small.points["transcripts"])
    assert full.images[0].get_array().shape == (160, 160) and len(full.collections[0].get_offsets()) == n_points
    ax = gsn.pl.segmentation_overlay(small, labels_key="cells", max_pixels=40 * 40, max_points=100)
    assert ax.images[0].get_array().shape == (40, 40) and ax.images[1].get_array().shape[:2] == (40, 40)
    assert len(ax.collections[0].get_offsets()) == 100
    assert ax.get_xlim() == (0, 160) and ax.get_ylim() == (160, 0)
    with pytest.raises(ValueError, match="max_pixels"):
        gsn.pl.segmentation_overlay(small, labels_key="cells", max_pixels=0)
    plt.close("all")


def test_overlay_draws_labels_of_another_grid_where_they_belong():
    # segment(labels_grid="working") writes labels coarser than a fine image, under a Scale: drawn on the image's grid.
    from gsn_spatial.pl._overlay import _labels_at

    sdata = gsn.datasets.synthetic_tissue((256, 256), seed=5, imaged_at=0.25, global_frame="microns")
    gsn.tl.segment(sdata, labels_key_added="fine")
    gsn.tl.segment(sdata, labels_key_added="coarse", labels_grid="working")
    fine = np.asarray(sdata.labels["fine"].data)
    assert sdata.labels["coarse"].shape != fine.shape
    centres = np.arange(fine.shape[0]) + 0.5
    drawn = _labels_at(sdata, "coarse", "dapi", centres, np.arange(fine.shape[1]) + 0.5)
    assert (drawn == fine).mean() > 0.999
    ax = gsn.pl.segmentation_overlay(sdata, labels_key="coarse", window=(0, 128, 0, 128))
    assert ax.images[1].get_array().shape[:2] == (128, 128)
    plt.close("all")


def test_metric_distributions(small, tmp_path):
    axes = gsn.pl.metric_distributions(
        small, labels_keys=["cells", "nuclei"], metrics=["area", "n_genes_by_counts"], save=tmp_path / "d.png"
    )
    assert axes.shape == (2,) and [t.get_text() for t in axes[0].get_xticklabels()] == ["cells", "nuclei"]
    with pytest.raises(KeyError, match="nope"):
        gsn.pl.metric_distributions(small, labels_keys=["cells"], metrics=["nope"])
    with pytest.raises(TypeError, match="labels_keys"):
        gsn.pl.metric_distributions(small, labels_keys="cells")
    assert not small.tables  # nothing written
    plt.close("all")


def test_cell_calling_curve_matches_qc(small):
    ax = gsn.pl.cell_calling_curve(small, labels_keys=["cells"], deltas=[3, 5, 7])
    y = ax.get_lines()[0].get_ydata()
    cc = gsn.qc.cell_calling(small, labels_key="cells")
    assert np.allclose(y, cc["cell_calling"].to_numpy())
    plt.close("all")


def test_intensity_capture_and_correlation_scatter(small):
    axes = gsn.pl.intensity_capture(small, labels_keys=["cells", "nuclei"], bins=4)
    assert len(axes[0].get_lines()) == 2 and len(axes[1].get_lines()) == 2
    ax = gsn.pl.correlation_scatter(small, labels_key="cells")
    r = gsn.qc.correlation_reproducibility(small, labels_key="cells")["reproducibility"]
    assert f"r = {r:.3f}" in ax.get_title()
    plt.close("all")


def test_training_history_draws_every_round_and_marks_rejected_ones(tmp_path):
    from gsn_spatial.core.network.unet import NetworkConfig

    model = gsn.models.GeneSegModel.new(NetworkConfig(widths=(8, 8, 8, 8, 8)))
    with pytest.raises(ValueError, match="no training history"):
        gsn.pl.training_history(model)
    rounds = [
        dict(round=1, epochs=2, train_loss=2.0, val_loss=None, n_cells_in=100, n_cells_out=90, iou_to_previous=0.6,
             seconds=1.0),
        dict(round=2, epochs=2, train_loss=1.5, val_loss=None, n_cells_in=90, n_cells_out=20, iou_to_previous=0.2,
             seconds=1.0, accepted=False),
        dict(round=3, epochs=2, train_loss=1.2, val_loss=None, n_cells_in=90, n_cells_out=95, iou_to_previous=0.9,
             seconds=1.0),
    ]  # fmt: skip
    model.meta["history"] = rounds
    path = model.save(tmp_path / "m.pt")
    out = tmp_path / "h.png"
    loss_ax, cells_ax = gsn.pl.training_history(path, save=out)  # a saved model's path works too
    assert out.stat().st_size > 0
    # No validation band: one loss line, the training loss of each round.
    assert [list(line.get_ydata()) for line in loss_ax.get_lines()] == [[2.0, 1.5, 1.2]]
    labels = [line.get_label() for line in cells_ax.get_lines()]
    assert labels == ["cells in", "cells out", "rejected"]
    rejected = cells_ax.get_lines()[2]
    assert list(rejected.get_xdata()) == [2] and list(rejected.get_ydata()) == [20]
    with_val = [{**r, "val_loss": float(r["round"])} for r in rounds]
    model.meta["history"] = with_val
    loss_ax, _ = gsn.pl.training_history(model)
    assert len(loss_ax.get_lines()) == 2 and list(loss_ax.get_lines()[1].get_ydata()) == [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="two axes"):
        gsn.pl.training_history(model, axes=[loss_ax])
    plt.close("all")
