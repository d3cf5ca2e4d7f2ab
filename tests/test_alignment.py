"""Do the transcripts sit on the nuclei? The check that warns of a wrong transformation before a run."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from spatialdata.transformations import Sequence, Translation, get_transformation, set_transformation

import gsn_spatial as gsn
from gsn_spatial._sdata import points_to_pixels
from gsn_spatial.core.metrics.alignment import misalignment, rna_image_alignment

VERDICT = {"pixel_size": 0.5, "min_offset_um": 3.0, "min_correlation": 0.2, "max_ratio": 0.8}


def _maps(transcripts_per_cell: float) -> tuple[np.ndarray, np.ndarray]:
    """A simulated tissue at 0.5 um/px: its stain scaled to [0, 1] and its transcripts in its pixels."""
    sdata = gsn.datasets.synthetic_tissue((384, 384), seed=31, transcripts_per_cell=transcripts_per_cell)
    image = np.asarray(sdata.images["dapi"].data, dtype=np.float64)[0]
    image = (image - image.min()) / (image.max() - image.min())
    m = points_to_pixels(sdata, "transcripts", "dapi")
    xy = sdata.points["transcripts"][["x", "y"]].compute().to_numpy(float) @ m[:2, :2].T + m[:2, 2]
    return image, xy


@pytest.mark.parametrize("transcripts_per_cell", [8, 80, 400])  # 0.1x, 1x and 5x the simulator's density
def test_offsets_are_found_at_any_density(transcripts_per_cell):
    image, xy = _maps(transcripts_per_cell)
    as_given = rna_image_alignment(image, xy, sigma=6, max_shift=60)
    # Within a pixel (the simulator's transcripts are spread about each cell's centre, its nucleus off-centre).
    assert np.abs(as_given.offset).max() <= 1 and misalignment(as_given, **VERDICT) is None
    for shift in ((20, 0), (-9, 14)):  # 10 um and 8.3 um at 0.5 um/px
        moved = rna_image_alignment(image, xy + np.array(shift), sigma=6, max_shift=60)
        assert np.abs(np.subtract(moved.offset, np.add(shift, as_given.offset))).max() <= 2
        assert "lie (" in misalignment(moved, **VERDICT)
    small = rna_image_alignment(image, xy + np.array([2, 0]), sigma=6, max_shift=60)  # 1 um: not reported
    assert misalignment(small, **VERDICT) is None
    flipped = xy * np.array([1, -1]) + np.array([0, image.shape[0]])
    assert "do not follow" in misalignment(rna_image_alignment(image, flipped, sigma=6, max_shift=60), **VERDICT)


@pytest.mark.parametrize("pixel_size", [0.25, 1.0])
def test_segment_warns_of_points_offset_from_the_image(pixel_size, caplog):
    sdata = gsn.datasets.synthetic_tissue((256, 256), seed=32, imaged_at=pixel_size, global_frame="microns")
    with caplog.at_level(logging.WARNING, logger="gsn_spatial"):
        gsn.tl.segment(sdata, labels_key_added="as_given")
    assert "transcripts lie" not in caplog.text
    found = sdata.tables["as_given_table"].uns["gsn"]["params"]["rna_image_alignment"]
    assert np.abs(found["offset_um"]).max() <= 1.0  # within two working pixels
    # The points' transformation moved by 10 um in x: a mistake that gives no error and poorer cells.
    moved = {cs: Sequence([Translation([10.0, 0.0], axes=("x", "y")), t])
             for cs, t in get_transformation(sdata["transcripts"], get_all=True).items()}  # fmt: skip
    set_transformation(sdata["transcripts"], moved, set_all=True)
    with caplog.at_level(logging.WARNING, logger="gsn_spatial"):
        gsn.tl.segment(sdata, labels_key_added="moved")
    assert "transcripts lie (+" in caplog.text and "'transcripts'" in caplog.text
    found = sdata.tables["moved_table"].uns["gsn"]["params"]["rna_image_alignment"]
    np.testing.assert_allclose(found["offset_um"], [10.0, 0.0], atol=1.5)


def test_train_warns_of_points_offset_from_the_image(caplog):
    # train reads its inputs whole (no work directory), so the check runs on the densest window of them instead.
    from gsn_spatial.core.network.unet import NetworkConfig
    from gsn_spatial.models import GeneSegModel, InputSpec

    sdata = gsn.datasets.synthetic_tissue((256, 256), seed=32, imaged_at=0.25, global_frame="microns")
    start = GeneSegModel.new(NetworkConfig(widths=(8, 8, 8, 8, 8)), InputSpec(rna_sigma_um=0.75))
    tiny = dict(max_rounds=1, epochs=1, steps_per_epoch=1, patch_size=64, batch_size=2, device="cpu")
    with caplog.at_level(logging.WARNING, logger="gsn_spatial"):
        m = gsn.tl.train(sdata, labels_key="nuclei", model=start, **tiny)
    assert "transcripts lie" not in caplog.text
    assert np.abs(m.meta["params"]["rna_image_alignment"]["offset_um"]).max() <= 1.0
    moved = {cs: Sequence([Translation([0.0, -10.0], axes=("x", "y")), t])
             for cs, t in get_transformation(sdata["transcripts"], get_all=True).items()}  # fmt: skip
    set_transformation(sdata["transcripts"], moved, set_all=True)
    with caplog.at_level(logging.WARNING, logger="gsn_spatial"):
        m = gsn.tl.train(sdata, labels_key="nuclei", model=start, **tiny)
    assert "transcripts lie (" in caplog.text and "'transcripts'" in caplog.text
    np.testing.assert_allclose(m.meta["params"]["rna_image_alignment"]["offset_um"], [0.0, -10.0], atol=1.5)
