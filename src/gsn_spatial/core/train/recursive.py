"""Recursive training from noisy labels (the paper's Algorithm 1), on arrays.

Round ``t``: fit the network to the current labels (Eq. 2), predict on the
training image, decode cells (Eq. 4), refine each cell with the level set
(Eqs. 13-14) and use the result as the next round's labels (Eq. 3). Stop when
the mean best-match IoU between consecutive rounds' labels (Eq. 16) exceeds
``iou_stop``, or after ``max_rounds``.

The training image is split into a training region and a validation region
(a band along the longer axis), so validation losses come from pixels never
trained on.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch

from gsn_spatial._constants import Defaults
from gsn_spatial.core.metrics.matching import mean_best_iou, overlap_table
from gsn_spatial.core.network.tiling import predict_maps
from gsn_spatial.core.network.unet import GeneSegNet
from gsn_spatial.core.slide.blocks import WindowOptions, segment_array
from gsn_spatial.core.train.fit import FitOptions, TrainingSample, fit
from gsn_spatial.core.train.levelset import refine_labels

logger = logging.getLogger(__name__)


@dataclass
class RoundRecord:
    """What one round did; kept on the model as its training history."""

    round: int
    epochs: int
    train_loss: float
    val_loss: float | None
    n_cells_in: int
    n_cells_out: int
    iou_to_previous: float
    seconds: float
    accepted: bool = True  # False: a degenerate round, whose labels and weights were discarded

    def to_dict(self) -> dict:
        return asdict(self)


def split_regions(shape: tuple[int, int], val_fraction: float, patch_size: int) -> tuple[tuple, tuple | None]:
    """Train and validation slices: the validation region is the last band along the longer axis.

    Examples
    --------
    >>> split_regions((100, 400), 0.25, 64)
    ((slice(0, 100, None), slice(0, 300, None)), (slice(0, 100, None), slice(300, 400, None)))
    """
    if not 0 <= val_fraction < 1:
        raise ValueError(f"`val_fraction` must be in [0, 1), got {val_fraction}.")
    h, w = shape
    if min(h, w) < patch_size:
        raise ValueError(f"The training image {shape} is smaller than `patch_size`={patch_size}.")
    axis = 1 if w >= h else 0
    n = shape[axis]
    n_val = int(round(n * val_fraction))
    if val_fraction == 0 or n_val < patch_size or n - n_val < patch_size:
        if val_fraction > 0:
            logger.warning(
                "Image too small for a %.0f%% validation band of >= %d px; no validation.",
                100 * val_fraction,
                patch_size,
            )
        return (slice(0, h), slice(0, w)), None
    cut = n - n_val
    if axis == 1:
        return (slice(0, h), slice(0, cut)), (slice(0, h), slice(cut, w))
    return (slice(0, cut), slice(0, w)), (slice(cut, h), slice(0, w))


def _n_cells(labels: np.ndarray) -> int:
    return int(len(np.unique(labels)) - (labels == 0).any())


def _prune_small(labels: np.ndarray, min_area: int) -> np.ndarray:
    area = np.bincount(labels.ravel())
    small = area < min_area
    small[0] = False
    return np.where(small[labels], 0, labels)


def _carry_over_missed(previous: np.ndarray, new: np.ndarray, min_iou: float = 0.1) -> np.ndarray:
    """Add cells of ``previous`` that no cell of ``new`` matches (IoU < ``min_iou``) to ``new``.

    Examples
    --------
    >>> prev = np.zeros((6, 6), int); prev[0:2, 0:2] = 1; prev[3:6, 3:6] = 2
    >>> new = np.zeros((6, 6), int); new[3:6, 3:6] = 1
    >>> out = _carry_over_missed(prev, new)
    >>> sorted(np.unique(out).tolist()), int(out[0, 0]) == int(out.max())
    ([0, 1, 2], True)
    """
    r, _, _, iou = overlap_table(previous, new)
    ids = np.unique(previous)
    ids = ids[ids > 0]
    best = np.zeros(int(previous.max()) + 1 if previous.size else 1)
    np.maximum.at(best, r, iou)
    missed = ids[best[ids] < min_iou]
    out = new.copy()
    next_id = int(new.max()) + 1
    for cid in missed:
        free = (previous == cid) & (out == 0)
        if free.any():
            out[free] = next_id
            next_id += 1
    return out


@dataclass(frozen=True)
class TrainingOptions:
    """How the rounds of :func:`recursive_training` fit, refine and stop.

    Attributes
    ----------
    max_rounds, iou_stop
        Stop after ``max_rounds``, or once the mean best-match IoU between
        consecutive rounds' labels (Eq. 16) exceeds ``iou_stop``.
    fit
        Each round's fit (:func:`~gsn_spatial.core.train.fit.fit`); sizes in
        working pixels. :func:`steps_per_pass` gives the steps of about one
        pass over the training region per epoch.
    val_fraction
        Share of the image (a band along its longer axis) held out for the
        validation loss.
    warm_start
        Start each round from the previous round's weights (else from the
        weights the network had when training began, as the authors' code did
        by retraining from scratch).
    level_set, level_set_image, max_growth
        Refine predicted cells with the level set before they become labels;
        the contours evolve on ``"rna"`` (the RNA location map, default),
        ``"confidence"`` (the network's confidence map) or ``"mask"`` (each
        cell's own mask, the authors' code: shape smoothing only), growing a
        cell by at most ``max_growth`` pixels per round.
    keep_missed
        Carry over cells of the current labels that the prediction missed
        (no new cell overlaps them by IoU >= 0.1) into the new labels, where
        they do not collide with new cells. Without it a network that misses
        some cells in one round deletes them from all later rounds' labels, and
        the recursion can collapse (measured on the Xenium crop: 797 -> 229
        cells in three rounds).
    min_area
        Smaller cells (pixels) are dropped from each round's labels.
    min_kept
        A round whose cells number fewer than ``min_kept`` times its input
        labels' cells, or cover less than ``min_kept`` times their area, is
        degenerate: it is rejected with a warning (its record has
        ``accepted=False``), the network gets back the weights of the last
        accepted round (or the starting weights) and training stops.

    Examples
    --------
    >>> TrainingOptions(max_rounds=2, fit=FitOptions(epochs=3)).fit.patch_size
    128
    """

    max_rounds: int = 3
    fit: FitOptions = FitOptions(patch_size=256, steps_per_epoch=50)
    iou_stop: float = 0.93
    val_fraction: float = 0.2
    warm_start: bool = False
    level_set: bool = True
    level_set_image: str = "rna"
    max_growth: float = 15.0
    keep_missed: bool = True
    min_area: int = 10
    min_kept: float = 0.5

    def __post_init__(self) -> None:
        if self.max_rounds < 1:
            raise ValueError(f"`max_rounds` must be >= 1, got {self.max_rounds}.")
        if not 0 < self.iou_stop <= 1:
            raise ValueError(f"`iou_stop` must be in (0, 1], got {self.iou_stop}.")
        if self.level_set_image not in ("rna", "confidence", "mask"):
            raise ValueError(f"`level_set_image` must be 'rna', 'confidence' or 'mask', got {self.level_set_image!r}.")
        if not 0 <= self.min_kept < 1:
            raise ValueError(f"`min_kept` must be in [0, 1), got {self.min_kept}.")


#: Training patch side (working px) when none is asked for, and the least that a small image may cut it down to.
DEFAULT_PATCH_SIZE, MIN_PATCH_SIZE = 256, 64


def patch_size_for(
    shape: tuple[int, int], requested: int | None = None, multiple: int = GeneSegNet.INPUT_MULTIPLE
) -> int:
    """The training patch side for an image of ``shape`` (working px): ``requested``, or by default
    ``DEFAULT_PATCH_SIZE`` cut down to the image's shorter side (a multiple of ``multiple``), so that a small crop
    (a CosMx field of view is about 240 working px across) trains without asking for a patch size.

    Examples
    --------
    >>> patch_size_for((1020, 510)), patch_size_for((233, 242)), patch_size_for((233, 242), 128)
    (256, 224, 128)
    """
    side = min(shape)
    fits = side // multiple * multiple
    if requested is None:
        if fits < MIN_PATCH_SIZE:
            raise ValueError(
                f"The training image ({shape[0]} x {shape[1]} working px) is too small to train on: patches need at "
                f"least {MIN_PATCH_SIZE} working px."
            )
        return min(DEFAULT_PATCH_SIZE, fits)
    if requested > side:
        raise ValueError(
            f"`patch_size`={requested} working px does not fit the training image ({shape[0]} x {shape[1]} working "
            f"px); pass `patch_size` <= {fits}, or leave it out to fit it to the image."
        )
    return requested


def steps_per_pass(shape: tuple[int, int], val_fraction: float, patch_size: int, batch_size: int) -> int:
    """Optimiser steps whose patches cover the training region of an image of ``shape`` about once.

    Examples
    --------
    >>> steps_per_pass((256, 256), 0.0, 64, 2)
    8
    """
    train_sl, _ = split_regions(shape, val_fraction, patch_size)
    pixels = (train_sl[0].stop - train_sl[0].start) * (train_sl[1].stop - train_sl[1].start)
    return max(1, math.ceil(pixels / patch_size**2 / batch_size))


def recursive_training(
    network: GeneSegNet,
    inputs: np.ndarray,
    labels: np.ndarray,
    options: TrainingOptions | None = None,
    *,
    predict: Callable[[GeneSegNet], np.ndarray] | None = None,
    device: torch.device | str = "cpu",
    autocast_dtype: torch.dtype | None = None,
    seed: int = 0,
    start_round: int = 0,
    history: list[RoundRecord] | None = None,
    on_round: Callable[[int, GeneSegNet, np.ndarray, list[RoundRecord]], None] | None = None,
    on_epoch: Callable[[int, int, dict], None] | None = None,
    progress: Callable | None = None,
) -> tuple[list[RoundRecord], list[np.ndarray]]:
    """Run Algorithm 1 on one image; ``network`` is trained in place.

    Parameters
    ----------
    inputs
        ``(2, h, w)`` float32 ``[image, rna_density]``, both in ``[0, 1]``.
    labels
        ``(h, w)`` integer initial (noisy) cell labels.
    options
        The rounds' settings (defaults: ``TrainingOptions()``).
    predict
        ``predict(network)`` gives the cells the trained network finds on the
        training image; default: :func:`~gsn_spatial.core.slide.blocks.segment_array`
        on ``inputs`` with the block windows of ``gsn.tl.segment`` (1024 px
        blocks, 96 px halo, one network pass per window), the path users get.
    start_round, history
        Resume after ``start_round`` completed rounds with their history.
    on_round
        Called after each round with ``(round, network, new_labels, history)``,
        for checkpoints.

    Returns
    -------
    history, labels_per_round
        One record per round run here, and the labels each accepted round
        produced.
    """
    o = options or TrainingOptions()
    if not np.issubdtype(np.asarray(labels).dtype, np.integer):
        raise TypeError(f"Training labels must be integers, got dtype {np.asarray(labels).dtype}.")
    train_sl, val_sl = split_regions(labels.shape, o.val_fraction, o.fit.patch_size)
    if predict is None:

        def predict(net: GeneSegNet) -> np.ndarray:
            window = WindowOptions(
                tile_size=None, device=device, autocast_dtype=autocast_dtype, decode={"min_area": o.min_area}
            )
            return segment_array(inputs, net, block_size=Defaults.BLOCK_SIZE, halo=Defaults.BLOCK_HALO, options=window)

    initial_state = copy.deepcopy(network.state_dict())
    good_state = copy.deepcopy(initial_state)
    history = list(history or [])
    produced: list[np.ndarray] = []
    current = np.asarray(labels).astype(np.int64)
    for rnd in range(start_round, o.max_rounds):
        t0 = time.perf_counter()
        if not o.warm_start:
            network.load_state_dict(initial_state)
        train = [TrainingSample(inputs[:, train_sl[0], train_sl[1]], current[train_sl])]
        val = [TrainingSample(inputs[:, val_sl[0], val_sl[1]], current[val_sl])] if val_sl else None
        result = fit(
            network,
            train,
            o.fit,
            val_samples=val,
            device=device,
            autocast_dtype=autocast_dtype,
            seed=seed + rnd,
            on_epoch=(lambda e, rec, r=rnd: on_epoch(r, e, rec)) if on_epoch else None,
            progress=progress,
        )
        predicted = np.asarray(predict(network)).astype(np.int64)
        if o.level_set:
            if o.level_set_image == "confidence":
                image = predict_maps(network, inputs, device=device, autocast_dtype=autocast_dtype)[0]
            else:
                image = {"rna": inputs[1], "mask": None}[o.level_set_image]
            new = refine_labels(predicted, image, max_growth=o.max_growth)
        else:
            new = predicted
        if o.keep_missed:
            new = _carry_over_missed(current, new)
        new = _prune_small(new, o.min_area)
        last = result.losses[-1]
        n_in, n_out = _n_cells(current), _n_cells(new)
        degenerate = n_out < o.min_kept * n_in or np.count_nonzero(new) < o.min_kept * np.count_nonzero(current)
        record = RoundRecord(
            round=rnd + 1,
            epochs=o.fit.epochs,
            train_loss=float(last["train_loss"]),
            val_loss=float(last["val_loss"]) if "val_loss" in last else None,
            n_cells_in=n_in,
            n_cells_out=n_out,
            iou_to_previous=mean_best_iou(current, new),
            seconds=time.perf_counter() - t0,
            accepted=not degenerate,
        )
        history.append(record)
        if degenerate:
            logger.warning(
                "Round %d is degenerate (%d cells covering %d px from %d cells covering %d px): rejected; training "
                "stops with the model of the last accepted round.",
                rnd + 1, n_out, np.count_nonzero(new), n_in, np.count_nonzero(current),
            )  # fmt: skip
            network.load_state_dict(good_state)
            break
        good_state = copy.deepcopy(network.state_dict())
        produced.append(new)
        logger.info("round %d: %s", rnd + 1, record)
        if on_round is not None:
            on_round(rnd + 1, network, new, history)
        current = new
        if record.iou_to_previous > o.iou_stop:
            break
    return history, produced
