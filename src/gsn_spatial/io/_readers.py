"""Readers for the vendors' raw files of the shared crops, built on ``from_image_and_transcripts``.

Each reader applies the coordinate mapping verified in the crop's README (none is an
identity) and keeps the vendor's segmentation or cell assignment as a reference.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from spatialdata import SpatialData

from gsn_spatial.io._build import from_image_and_transcripts


def _folder(folder: str | Path, what: str) -> Path:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"No {what} folder at {str(folder)!r}.")
    return folder


def _file(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"Missing file {str(path)!r}.")
    return path


def read_xenium_crop(folder: str | Path) -> SpatialData:
    """The Xenium breast crop (``shared/data/xenium_breast_crop``): DAPI and transcripts.

    Transcripts are in microns of the full slide, the image a 1200 x 2400 px
    crop at 0.2125 um / px; the verified mapping is
    ``col = x / 0.2125 - 5000``, ``row = y / 0.2125 - 1000``.

    Parameters
    ----------
    folder
        Folder holding ``morphology_mip.tif`` and ``transcripts.csv.gz``.

    Returns
    -------
    SpatialData
        - image ``"morphology_mip"``, channel ``"DAPI"``, coordinate systems
          ``"global"`` (pixels) and ``"microns"``;
        - points ``"transcripts"`` (``x``, ``y`` in microns, ``gene``) with the
          vendor's assignment as ``vendor_cell_id`` (int, 0 = unassigned; the
          string cell ids numbered in order of appearance), ``overlaps_nucleus``
          and ``qv``.
    """
    import tifffile

    folder = _folder(folder, "Xenium crop")
    image = tifffile.imread(_file(folder / "morphology_mip.tif"))
    tx = pd.read_csv(_file(folder / "transcripts.csv.gz"))
    cell = tx["cell_id"].astype(str)
    codes, _ = pd.factorize(cell)
    unassigned = cell.isin(["-1", "UNASSIGNED"])
    tx["vendor_cell_id"] = np.where(unassigned, 0, codes + 1).astype(np.int64)
    return from_image_and_transcripts(
        image,
        tx,
        x="x_location",
        y="y_location",
        gene="feature_name",
        pixel_size=0.2125,
        offset_px=(-5000.0, -1000.0),
        extra_columns=["vendor_cell_id", "overlaps_nucleus", "qv"],
        image_key="morphology_mip",
        channel_names=["DAPI"],
    )


def read_cosmx(
    folder: str | Path,
    *,
    fov: int,
    crop_origin_px: tuple[float, float] = (0.0, 0.0),
    microns_per_pixel: float | None = 0.18,
    negative_probes: bool = True,
) -> SpatialData:
    """One field of view of a CosMx SMI flat-file export: composite image, cell labels, transcripts.

    CosMx's local pixel coordinates have the y axis pointing up while image
    rows point down, and put pixel centres at integer coordinates (SpatialData
    puts them at ``+ 0.5``), so the transcripts map to the image's grid by
    ``col = x_local_px - crop_origin_x + 0.5`` and
    ``row = crop_origin_y + height - y_local_px + 0.5``, where ``height`` is
    the image's number of rows and ``crop_origin_px`` the ``(x, y)`` local
    pixel position of the image's bottom-left corner (``(0, 0)`` for a whole
    field of view). Verified on the shared crop (:func:`read_cosmx_crop`):
    the vendor label under every assigned transcript (9,847 of 9,847) is its
    ``cell_ID``; without the half-pixel shift (the crop README's ``floor``
    mapping) 98.9 %.

    Parameters
    ----------
    folder
        Folder holding ``*tx_file.csv[.gz]``, ``CellComposite/CellComposite_F<fov>.jpg``
        and ``CellLabels/CellLabels_F<fov>.tif``.
    fov
        Field of view number.
    crop_origin_px
        Local pixel position ``(x, y)`` of the image's bottom-left corner.
    microns_per_pixel
        Pixel size for the ``"microns"`` system; NanoString's usual 0.18 is not
        stated in the files. ``None``: no ``"microns"`` system.
    negative_probes
        Keep the negative-control probes (``NegPrb*`` targets) among the points.

    Returns
    -------
    SpatialData
        - image ``"composite"`` ``(c, y, x)`` uint8, channels ``"red"``,
          ``"green"``, ``"DAPI"`` (the composite's blue channel);
        - labels ``"cell_labels"``: the vendor segmentation (membrane and
          nuclear stains), ids equal to ``cell_ID``;
        - points ``"transcripts"`` (``x``, ``y`` local pixels, y up; ``gene``)
          with ``vendor_cell_id`` (``cell_ID``, 0 = not in a cell),
          ``CellComp`` and ``z_plane`` (the focal plane).
    """
    import tifffile
    from PIL import Image

    folder = _folder(folder, "CosMx")
    if isinstance(fov, bool) or not isinstance(fov, int | np.integer):
        raise TypeError(f"`fov` must be an int, got {fov!r}.")
    tx_files = sorted(folder.glob("*tx_file.csv*"))
    if len(tx_files) != 1:
        raise FileNotFoundError(f"Expected one '*tx_file.csv[.gz]' in {str(folder)!r}, found {len(tx_files)}.")
    with Image.open(_file(folder / "CellComposite" / f"CellComposite_F{fov:03d}.jpg")) as im:
        rgb = np.asarray(im.convert("RGB"))
    labels = tifffile.imread(_file(folder / "CellLabels" / f"CellLabels_F{fov:03d}.tif"))
    labels = np.rint(labels).astype(np.uint32)
    if labels.shape != rgb.shape[:2]:
        raise ValueError(f"CellLabels {labels.shape} and CellComposite {rgb.shape[:2]} differ in shape.")
    tx = pd.read_csv(tx_files[0])
    tx = tx[tx["fov"] == fov]
    if tx.empty:
        raise ValueError(f"No transcripts of fov {fov} in {tx_files[0].name!r}.")
    if not negative_probes:
        tx = tx[~tx["target"].astype(str).str.startswith("NegPrb")]
    # "z" would be read as a third coordinate by SpatialData: it is CosMx's focal plane index.
    tx = tx.assign(vendor_cell_id=tx["cell_ID"].astype(np.int64), z_plane=tx["z"])
    x0, y0 = crop_origin_px
    return from_image_and_transcripts(
        np.moveaxis(rgb, -1, 0),
        tx,
        x="x_local_px",
        y="y_local_px",
        gene="target",
        pixel_size=1.0,
        offset_px=(0.5 - float(x0), float(y0) + labels.shape[0] + 0.5),
        flip_y=True,
        microns_per_pixel=microns_per_pixel,
        extra_columns=["vendor_cell_id", "CellComp", "z_plane"],
        labels={"cell_labels": labels},
        image_key="composite",
        channel_names=["red", "green", "DAPI"],
    )


def read_cosmx_crop(folder: str | Path, **kwargs) -> SpatialData:
    """The CosMx lung crop (``shared/data/cosmx_lung_fov2``): FOV 2 of Lung12, local x 4800-5472, y 3000-3648 px.

    ``read_cosmx(folder, fov=2, crop_origin_px=(4800, 3000))``, i.e. the verified
    mapping ``row = round(3648 - y_local_px)``, ``col = round(x_local_px - 4800)``. Further
    keyword arguments go to :func:`read_cosmx`.
    """
    return read_cosmx(folder, fov=2, crop_origin_px=(4800.0, 3000.0), **kwargs)


def read_iss_ca1(folder: str | Path) -> SpatialData:
    """The ISS mouse hippocampus CA1 set (``shared/data/iss_ca1``, Qian et al. 2020): spots and cell labels.

    There is no image: the label image (DAPI-based segmentation of the
    original study, 3,481 cells) gives the pixel grid, and the spots are in it
    (``row = y``, ``col = x``: integer coordinates are pixel centres, so the
    points map to the grid by a half-pixel translation). Pixel size is not stated in the files, so
    there is no ``"microns"`` system.

    Returns
    -------
    SpatialData
        Labels ``"cell_labels"`` (uint32, 5471 x 7602) and points
        ``"transcripts"`` (``x``, ``y`` pixels, ``gene``).
    """
    import scipy.sparse as sp

    folder = _folder(folder, "ISS CA1")
    labels = sp.load_npz(_file(folder / "label_image.coo.npz")).toarray().astype(np.uint32)
    spots = pd.read_csv(_file(folder / "spots.csv"))
    return from_image_and_transcripts(
        None, spots, x="x", y="y", gene="Gene", offset_px=(0.5, 0.5), labels={"cell_labels": labels}
    )


def read_dsb_nuclei(folder: str | Path) -> SpatialData:
    """The DSB 2018 nuclei crop (``shared/data/dsb2018_nuclei``): a fluorescence image and its nuclei.

    No transcripts (a test of the image branch only) and no pixel size.

    Returns
    -------
    SpatialData
        Image ``"image"`` ``(1, 512, 512)`` uint16, channel ``"DAPI"``, and labels
        ``"nuclei"`` (hand-annotated, 125 nuclei, ids kept), coordinate system
        ``"global"``.
    """
    import tifffile
    from spatialdata.models import Image2DModel, Labels2DModel
    from spatialdata.transformations import Identity

    folder = _folder(folder, "DSB nuclei")
    img = tifffile.imread(_file(folder / "img2d.tif"))
    mask = tifffile.imread(_file(folder / "mask2d.tif")).astype(np.uint32)
    if img.shape != mask.shape:
        raise ValueError(f"Image {img.shape} and mask {mask.shape} differ in shape.")
    tf = {"global": Identity()}
    return SpatialData(
        images={"image": Image2DModel.parse(img[None], dims=("c", "y", "x"), c_coords=["DAPI"], transformations=tf)},
        labels={"nuclei": Labels2DModel.parse(mask, dims=("y", "x"), transformations=dict(tf))},
    )
