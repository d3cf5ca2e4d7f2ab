"""``gsn.tl.train``: recursive training from noisy labels (the paper's Algorithm 1)."""

from __future__ import annotations

import copy
import dataclasses
import datetime
import logging
import re
from pathlib import Path

import numpy as np
from spatialdata import SpatialData
from spatialdata.models import Labels2DModel
from spatialdata.transformations import get_transformation

from gsn_spatial import __version__, _sdata
from gsn_spatial._constants import Defaults, round_labels_key
from gsn_spatial._settings import progress_bar, settings
from gsn_spatial.core.network.device import resolve_device
from gsn_spatial.core.network.quantize import calibrate_int8, calibration_windows, int8_available
from gsn_spatial.core.network.unet import fold_batch_norms
from gsn_spatial.core.rna.controls import control_gene_mask
from gsn_spatial.core.rna.density import rna_density_window
from gsn_spatial.core.rna.local import density_ratio_window
from gsn_spatial.core.slide.blocks import WindowOptions, segment_array
from gsn_spatial.core.train.fit import FitOptions, LossWeights
from gsn_spatial.core.train.recursive import (
    RoundRecord,
    TrainingOptions,
    patch_size_for,
    recursive_training,
    steps_per_pass,
)
from gsn_spatial.models import GeneSegModel
from gsn_spatial.tl import _slide
from gsn_spatial.tl._alignment import check_alignment_in_memory
from gsn_spatial.tl._genes import check_gene_options
from gsn_spatial.tl._inputs import resolve_inputs, resolve_model
from gsn_spatial.tl._pixel_size import check_pixel_size

logger = logging.getLogger(__name__)

_ROUND_FILE = re.compile(r"round_(\d+)\.pt$")


def _labels_on_image_grid(sdata: SpatialData, labels_key: str, image_key: str, shape: tuple[int, int]) -> np.ndarray:
    if labels_key in sdata.shapes:
        logger.info("Drawing the %d cells of shapes %r onto image %r's grid.", len(sdata.shapes[labels_key]),
                    labels_key, image_key)  # fmt: skip
        return _sdata.shapes_to_labels(sdata, labels_key, image_key, shape).astype(np.int64)
    lab_el = sdata.labels[labels_key]
    lab = _sdata.scale0(lab_el)
    if tuple(lab.shape) != shape:
        raise ValueError(
            f"Labels {labels_key!r} {tuple(lab.shape)} are not on the pixel grid of image {image_key!r} {shape}; "
            "training needs labels on the image's grid."
        )
    t_lab = get_transformation(lab_el, get_all=True)
    t_img = get_transformation(sdata.images[image_key], get_all=True)
    shared = [cs for cs in t_lab if cs in t_img]
    for cs in shared:
        if not np.allclose(_sdata.affine_xy(t_lab[cs]), _sdata.affine_xy(t_img[cs])):
            raise ValueError(
                f"Labels {labels_key!r} and image {image_key!r} are placed differently in coordinate system {cs!r}; "
                "training needs labels on the image's grid."
            )
    values = np.asarray(lab.data)
    if not np.issubdtype(values.dtype, np.integer):
        raise TypeError(f"Labels {labels_key!r} must hold integer cell ids, got dtype {values.dtype}.")
    return values.astype(np.int64)


def _completed_rounds(checkpoint_dir: Path) -> int:
    rounds = [int(m.group(1)) for p in checkpoint_dir.glob("round_*.pt") if (m := _ROUND_FILE.search(p.name))]
    return max(rounds, default=0)


def train(
    sdata: SpatialData,
    *,
    labels_key: str,
    model: GeneSegModel | str | Path | None = None,
    image_key: str | None = None,
    points_key: str | None = None,
    gene_key: str | None = None,
    image_channel: int | str | None = None,
    pixel_size: float | None = None,
    max_rounds: int = 3,
    epochs: int = 10,
    steps_per_epoch: int | None = None,
    patch_size: int | None = None,
    batch_size: int = 8,
    lr: float = 1e-3,
    weight_decay: float = 1e-5,
    loss_weights: LossWeights | None = None,
    iou_stop: float = 0.93,
    val_fraction: float = 0.2,
    warm_start: bool = False,
    level_set: bool = True,
    level_set_image: str = "rna",
    max_growth: float = 15.0,
    keep_missed: bool = True,
    control_genes: str | None = Defaults.CONTROL_GENES,
    device: str | None = None,
    seed: int = 0,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    refined_labels_key: str | None = None,
    overwrite: bool = False,
    name: str = "custom",
) -> GeneSegModel:
    """Train GeneSegNet from noisy cell labels by recursive training with level-set refinement.

    Each round fits the network to the current labels (from a vendor
    segmentation, a nucleus watershed or expansion at first), predicts cells
    on the training image through the same blocks and windows as
    :func:`gsn_spatial.tl.segment`, refines them with the level set
    (Eqs. 13-14) and takes them as the next round's labels. Image, labels and
    transcripts are brought to the model's working scale first (as in
    ``segment``), so a model trained here works on any pixel size. A round
    whose cells number fewer than half its input labels' cells, or cover less
    than half their area, is rejected with a warning and training stops with
    the last good model. Training stops when the mean
    best-match IoU between consecutive rounds' labels (Eq. 16) exceeds
    ``iou_stop``, or after ``max_rounds``.

    Parameters
    ----------
    sdata
        SpatialData object with the image, the transcripts and the labels.
    labels_key
        Labels element with the initial (noisy) cells, on the image's pixel grid; or a shapes element of cell
        polygons or circles (MERSCOPE's or sopa's boundaries), drawn onto that grid through the transformations.
    model
        Starting model: ``None`` fine-tunes a copy of the shipped default
        model; a :class:`~gsn_spatial.models.GeneSegModel`, shipped name or
        file starts from a copy of that model. The input settings (RNA map
        sigma, intensity percentiles) come with the model. The argument is
        never modified.
    image_key, points_key, gene_key, image_channel
        As in :func:`gsn_spatial.tl.segment`.
    pixel_size
        Microns per image pixel; default: found as in
        :func:`gsn_spatial.tl.segment`.
    max_rounds, epochs
        Rounds of Algorithm 1 and epochs per round.
    steps_per_epoch
        Optimiser steps per epoch; default: enough ``patch_size`` patches to
        cover the training region once.
    patch_size, batch_size, lr, weight_decay
        Training patches (``patch_size`` in working pixels; default 256, or the image's shorter side where
        smaller) and AdamW settings (the paper's defaults).
    loss_weights
        Weights of the three terms of Eq. 15.
    iou_stop
        Stop when consecutive rounds' labels agree above this mean IoU.
    val_fraction
        Fraction of the image (a band along its longer side) held out for
        validation losses; 0 disables validation.
    warm_start
        Start each round from the previous round's weights. Default: restart
        every round from the starting model's weights, as the authors' code
        did; it measured better (docs/training.md).
    level_set
        Refine each round's predicted cells with the level set.
    level_set_image
        What the level-set contours evolve on: ``"rna"`` (the RNA location
        map: cells grow to where their transcripts are), ``"confidence"``
        (the network's confidence) or ``"mask"`` (the cell's own mask, as in
        the authors' code: smoothing only, never growth).
    max_growth
        Working pixels a cell may grow in one level-set step (into background
        closer to it than to any other cell).
    keep_missed
        Keep cells of the current labels that a round's prediction missed,
        so that the recursion cannot lose cells round after round.
    control_genes
        Control probes, left out of the RNA map as in :func:`~gsn_spatial.tl.segment`.
    device
        ``"auto"`` (CUDA when present, else CPU with bfloat16 autocast where
        the CPU supports it), ``"cpu"`` or ``"cuda"``; default
        ``gsn.settings.device``. A device that is not present raises.
    seed
        Seed for sampling and augmentation.
    checkpoint_dir
        If given, after each round the model (``round_<r>.pt``) and its
        labels (``round_<r>_labels.npy``, at the working scale) are written
        there.
    checkpoint_every
        With ``checkpoint_dir``, also write the model every this many epochs
        (``round_<r>_epoch_<e>.pt``), for inspection or as a ``model=`` to
        start from. Resuming is per round.
    resume
        Continue from the last completed round found in ``checkpoint_dir``.
    refined_labels_key
        If given, each round's labels are added as labels elements
        ``f"{refined_labels_key}_round<r>"`` on the image's pixel grid
        (written to the store when backed).
    overwrite
        Allow replacing those labels elements.
    name
        Name recorded in the model's ``meta``.

    Returns
    -------
    GeneSegModel
        The trained model; ``model.meta["history"]`` holds per round the
        training and validation losses, cells in and out, the IoU to the
        previous round, the time and whether the round was accepted;
        ``model.meta["params"]`` the pixel size used and how it was found;
        ``model.int8_ranges`` the activation ranges for int8 inference on CPUs
        without bf16, chosen on windows of the training slide (where this
        torch can quantize; :mod:`gsn_spatial.core.network.quantize`).

    Examples
    --------
    >>> import gsn_spatial as gsn
    >>> sdata = gsn.datasets.synthetic_tissue((256, 256), seed=1)
    >>> m = gsn.tl.train(sdata, labels_key="nuclei", max_rounds=1, epochs=1, steps_per_epoch=1,
    ...                  patch_size=128, batch_size=2, device="cpu")
    >>> len(m.meta["history"])
    1
    """
    if not isinstance(sdata, SpatialData):
        raise TypeError(f"`sdata` must be a SpatialData object, got {type(sdata).__name__}.")
    if not (isinstance(labels_key, str) and labels_key in sdata.shapes):
        _sdata.resolve_key(sdata, "labels", labels_key, parameter="labels_key")
    checked = [("max_rounds", max_rounds), ("epochs", epochs), ("batch_size", batch_size)]
    for pname, value in checked + ([("steps_per_epoch", steps_per_epoch)] if steps_per_epoch is not None else []):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"`{pname}` must be a positive integer, got {value!r}.")
    if patch_size is not None and (patch_size % 16 or patch_size < 32):
        raise ValueError(f"`patch_size` must be a multiple of 16 and >= 32, got {patch_size}.")
    if lr <= 0 or weight_decay < 0:
        raise ValueError(f"`lr` must be > 0 and `weight_decay` >= 0, got {lr} and {weight_decay}.")
    if checkpoint_every is not None and (not isinstance(checkpoint_every, int) or checkpoint_every < 1):
        raise ValueError(f"`checkpoint_every` must be a positive integer, got {checkpoint_every!r}.")
    check_pixel_size(pixel_size)
    check_gene_options(control_genes)
    options = TrainingOptions(  # validates the rounds' settings before any input is read
        max_rounds=max_rounds,
        iou_stop=iou_stop,
        val_fraction=val_fraction,
        warm_start=warm_start,
        level_set=level_set,
        level_set_image=level_set_image,
        max_growth=max_growth,
        keep_missed=keep_missed,
        min_area=Defaults.MIN_AREA,  # as segment's default
    )
    if resume and checkpoint_dir is None:
        raise ValueError("`resume=True` needs `checkpoint_dir`.")
    if refined_labels_key is not None:
        round_keys = {round_labels_key(refined_labels_key, r): "labels" for r in range(1, max_rounds + 1)}
        _sdata.check_new_keys(sdata, round_keys, overwrite=overwrite)
    start = resolve_model(model)
    gsn_model = GeneSegModel(copy.deepcopy(start.network), copy.deepcopy(start.input), {})
    torch_device, autocast = resolve_device(device or settings.device, cpu_bf16=True)
    spec = gsn_model.input
    inputs = resolve_inputs(
        sdata,
        image_key=image_key,
        points_key=points_key,
        gene_key=gene_key,
        image_channel=image_channel,
        spec=spec,
        pixel_size=pixel_size,
    )
    labels = inputs.to_working(_labels_on_image_grid(sdata, labels_key, inputs.image_key, inputs.image_shape))
    patch_size = patch_size_for(inputs.shape, patch_size)
    fit_options = FitOptions(
        epochs=epochs,
        steps_per_epoch=(
            steps_per_pass(inputs.shape, val_fraction, patch_size, batch_size)
            if steps_per_epoch is None
            else steps_per_epoch
        ),
        batch_size=batch_size,
        patch_size=patch_size,
        lr=lr,
        weight_decay=weight_decay,
        weights=loss_weights,
    )
    options = dataclasses.replace(options, fit=fit_options)
    # The RNA map (control probes and transcripts with no gene left out) and its level follow the local density as
    # segment's do. Code -1 (no gene name) must not index the mask: it would read the last gene's flag.
    control = control_gene_mask(inputs.points.gene_names, control_genes)
    codes = inputs.points.gene_codes
    xy = inputs.points.xy_pixels[(codes >= 0) & ~control[np.maximum(codes, 0)]]
    rna_sigma, rna_level, per_um2 = inputs.rna_settings(spec, xy)
    local = _slide.local_density(spec, rna_sigma, rna_level, xy, inputs.shape)
    level = rna_level if local is None else rna_level * density_ratio_window(xy, inputs.shape, local)
    rna = rna_density_window(
        xy, inputs.shape, sigma=rna_sigma, level=level, mode=spec.rna_mode, method=spec.rna_method
    )  # fmt: skip
    full = np.stack([inputs.working_image(), rna])
    alignment: dict = {}  # as segment, a warning before the rounds where the transcripts miss the nuclei
    check_alignment_in_memory(full[0], xy, spec, alignment, points_key=inputs.points_key, image_key=inputs.image_key)

    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    start_round, history = 0, []
    if ckpt is not None:
        ckpt.mkdir(parents=True, exist_ok=True)
        if resume and (done := _completed_rounds(ckpt)):
            saved = GeneSegModel.load(ckpt / f"round_{done}.pt")
            gsn_model.network.load_state_dict(saved.network.state_dict())
            history = [RoundRecord(**r) for r in saved.meta.get("history", [])]
            labels = np.load(ckpt / f"round_{done}_labels.npy")
            start_round = done
            logger.info("Resuming after round %d from %s", done, ckpt)

    params = {
        "labels_key": labels_key,
        "image_key": inputs.image_key,
        "points_key": inputs.points_key,
        "image_channel": inputs.channel,
        **inputs.pixel_size.to_params(),
        "working_pixel_size": spec.pixel_size,
        "rna_level": rna_level,
        "control_genes": [g for g, c in zip(inputs.points.gene_names, control, strict=True) if c],
        "rna_local": {} if local is None else _slide.local_density_params(local, spec),
        "transcripts_per_um2": per_um2,
        **alignment,
        "start_model": str(start.meta.get("name", "custom")),
        **{k: v for k, v in dataclasses.asdict(fit_options).items() if k not in ("weights", "augmentation")},
        **{k: v for k, v in dataclasses.asdict(options).items() if k != "fit"},
        "seed": seed,
        "device": str(torch_device),
        "precision": str(autocast).replace("torch.", "") if autocast else "float32",
    }

    base_decode = dict(start.meta.get("decode", {}))  # kept: the trained model decodes as its start did
    base_name = start.meta.get("name")

    def set_meta(hist: list[RoundRecord]) -> None:
        gsn_model.meta = {
            "name": name,
            "init": base_name,
            **({"decode": base_decode} if base_decode else {}),
            "trained_with": f"gsn_spatial {__version__} gsn.tl.train",
            "date": datetime.date.today().isoformat(),
            "params": params,
            "history": [r.to_dict() for r in hist],
        }

    def on_round(rnd: int, network, new_labels: np.ndarray, hist: list[RoundRecord]) -> None:
        if ckpt is not None:
            set_meta(hist)
            gsn_model.save(ckpt / f"round_{rnd}.pt")
            np.save(ckpt / f"round_{rnd}_labels.npy", new_labels)

    def on_epoch(rnd: int, epoch: int, record: dict) -> None:
        if ckpt is not None and checkpoint_every and epoch % checkpoint_every == 0:
            set_meta(history)
            gsn_model.save(ckpt / f"round_{rnd + 1}_epoch_{epoch}.pt")

    progress = progress_bar("epochs")

    # segment's defaults: blocks, halo, one network pass per window and the model's decoding thresholds.
    decode_kwargs = {"min_area": options.min_area, **start.decode_options(per_um2)}

    def predict(network) -> np.ndarray:
        window = WindowOptions(
            tile_size=None, batch_size=batch_size, device=torch_device, autocast_dtype=autocast, decode=decode_kwargs,
            reuse_memory=settings.reuse_memory,
        )  # fmt: skip
        # The inference copy segment runs (batch norms folded), so each round predicts what segment would.
        return segment_array(
            full, fold_batch_norms(network), block_size=Defaults.BLOCK_SIZE, halo=Defaults.BLOCK_HALO, options=window
        )

    hist, per_round = recursive_training(
        gsn_model.network, full, labels, options, predict=predict, device=torch_device, autocast_dtype=autocast,
        seed=seed, start_round=start_round, history=history, on_round=on_round, on_epoch=on_epoch, progress=progress,
    )  # fmt: skip
    set_meta(hist)
    gsn_model.network.eval()
    if int8_available():
        # Activation ranges for int8 inference on CPUs without bf16 (what segment runs there), chosen on the
        # slide the model was trained on: a few seconds (core.network.quantize).
        windows = calibration_windows(full, seed=seed)
        gsn_model.int8_ranges = calibrate_int8(fold_batch_norms(gsn_model.network), windows)
        gsn_model.meta["int8"] = {"calibration": f"{len(windows)} windows of the training slide, working scale"}
    if refined_labels_key is not None and per_round:
        tf = dict(get_transformation(inputs.image_element, get_all=True))
        elements = {
            round_labels_key(refined_labels_key, start_round + i + 1): Labels2DModel.parse(
                inputs.to_image(lab).astype(np.uint32), dims=("y", "x"), transformations=dict(tf)
            )
            for i, lab in enumerate(per_round)
        }
        _sdata.store_elements(sdata, elements, overwrite=overwrite)
    return gsn_model
