"""gsn.tl.segment on an object with a nucleus stain and no transcripts: cells from the image alone."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import spatialdata as sd
from spatialdata import SpatialData

import gsn_spatial as gsn


def _stain_only(seed: int = 7, **imaging) -> SpatialData:
    tissue = gsn.datasets.synthetic_tissue((256, 256), seed=seed, **imaging)
    return SpatialData(images={"dapi": tissue.images["dapi"]}, labels={"nuclei": tissue.labels["nuclei"]})


# Without a micron system the scale comes from the nuclei: measured 0.2916 / 0.5764 / 1.1372 um/px for the three.
@pytest.mark.parametrize("imaged_at", [0.25, 0.5, 1.0])
def test_a_stain_without_transcripts_is_segmented_from_the_image(caplog, imaged_at):
    sdata = _stain_only(imaged_at=imaged_at, global_frame="pixels", microns_system=False)
    image_before = sdata.images["dapi"]
    with caplog.at_level(logging.WARNING, logger="gsn_spatial"):
        gsn.tl.segment(sdata)
    assert "No points element" in caplog.text and "the table has no genes" in caplog.text
    assert "transformations suggest" not in caplog.text  # the empty points are no cue to the scale
    assert sdata.images["dapi"] is image_before and not sdata.points  # no assignment element, the input kept
    table = sdata.tables["gsn_table"]
    params = table.uns["gsn"]["params"]
    assert table.n_vars == 0 and params["image_only"] and params["points_key"] is None
    assert "assignment" not in table.uns["gsn"]["keys"] and "gsn_boundaries" in sdata.shapes
    assert params["pixel_size_source"] == "nucleus size" and abs(params["pixel_size"] / imaged_at - 1) < 0.25
    # Without RNA a cell is drawn about its nucleus: the simulator's nuclei are found (F1 0.99-1.0 on seeds 7-9 at
    # 0.5 um/px with a micron system; 0.973 / 0.991 / 0.942 at 0.25 / 0.5 / 1.0 um/px from the nuclei's scale).
    scores = gsn.qc.match_reference(sdata, labels_key="gsn_labels", reference_key="nuclei")
    assert scores["f1"] > 0.9
    assert set(np.unique(sdata.labels["gsn_labels"].values)) - {0} == set(table.obs["cell_id"].astype(int))


def test_an_image_only_run_writes_to_the_store_all_or_nothing(tmp_path):
    _stain_only().write(tmp_path / "s.zarr")
    backed = sd.read_zarr(tmp_path / "s.zarr")
    gsn.tl.segment(backed)
    back = sd.read_zarr(tmp_path / "s.zarr")
    assert "gsn_labels" in back.labels and back.tables["gsn_table"].n_vars == 0 and not back.points
    # An existing output is refused before anything runs, as in a run with transcripts.
    with pytest.raises(ValueError, match="overwrite=True"):
        gsn.tl.segment(backed)
    gsn.tl.segment(backed, overwrite=True, labels_key_added="second")
    assert "second_table" in sd.read_zarr(tmp_path / "s.zarr").tables


def test_naming_points_that_do_not_exist_is_still_an_error():
    with pytest.raises(KeyError, match="No points element .transcripts."):
        gsn.tl.segment(_stain_only(), points_key="transcripts")
