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
from gsn_spatial.core.train.fit import Augmentation, LossWeights, TrainingSample, fit
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


def recursive_training(
    network: GeneSegNet,
    inputs: np.ndarray,
    labels: np.ndarray,
    *,
    max_rounds: int = 3,
    epochs: int = 10,
    steps_per_epoch: int = 50,
    patch_size: int = 256,
    batch_size: int = 8,
    lr: float = 1e-3,
    weight_decay: float = 1e-5,
    loss_weights: LossWeights | None = None,
    augmentation: Augmentation | None = None,
    iou_stop: float = 0.93,
    val_fraction: float = 0.2,
    warm_start: bool = False,
    level_set: bool = True,
    level_set_image: str = "rna",
    max_growth: float = 15.0,
    keep_missed: bool = True,
    min_area: int = 10,
    predict: Callable[[GeneSegNet], np.ndarray] | None = None,
    min_kept: float = 0.5,
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
    warm_start
        Start each round from the previous round's weights (else from the
        weights the network had when this function was called, as the
        authors' code did by retraining from scratch).
    level_set
        Refine predicted cells with the level set before they become labels.
    level_set_image
        What the contours evolve on: ``"rna"`` (the RNA location map, default),
        ``"confidence"`` (the network's confidence map) or ``"mask"`` (each
        cell's own mask, the authors' code: shape smoothing only).
    max_growth
        Pixels a cell may grow per round in the level-set step (``"rna"`` and
        ``"confidence"``).
    keep_missed
        Carry over cells of the current labels that the prediction missed
        (no new cell overlaps them by IoU >= 0.1) into the new labels, where
        they do not collide with new cells. Without it a network that misses
        some cells in one round deletes them from all later rounds' labels, and
        the recursion can collapse (measured on the Xenium crop: 797 -> 229
        cells in three rounds).
    predict
        ``predict(network)`` gives the cells the trained network finds on the
        training image; default: :func:`~gsn_spatial.core.slide.blocks.segment_array`
        on ``inputs`` with the block windows of ``gsn.tl.segment`` (1024 px
        blocks, 96 px halo, one network pass per window), the path users get.
    min_kept
        A round whose cells number fewer than ``min_kept`` times its input
        labels' cells, or cover less than ``min_kept`` times their area, is
        degenerate: it is rejected with a warning (its record has
        ``accepted=False``), the network gets back the weights of the last
        accepted round (or the starting weights) and training stops.
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
    if max_rounds < 1:
        raise ValueError(f"`max_rounds` must be >= 1, got {max_rounds}.")
    if not 0 < iou_stop <= 1:
        raise ValueError(f"`iou_stop` must be in (0, 1], got {iou_stop}.")
    if level_set_image not in ("rna", "confidence", "mask"):
        raise ValueError(f"`level_set_image` must be 'rna', 'confidence' or 'mask', got {level_set_image!r}.")
    if not np.issubdtype(np.asarray(labels).dtype, np.integer):
        raise TypeError(f"Training labels must be integers, got dtype {np.asarray(labels).dtype}.")
    if not 0 <= min_kept < 1:
        raise ValueError(f"`min_kept` must be in [0, 1), got {min_kept}.")
    train_sl, val_sl = split_regions(labels.shape, val_fraction, patch_size)
    if predict is None:

        def predict(net: GeneSegNet) -> np.ndarray:
            options = WindowOptions(
                tile_size=None, device=device, autocast_dtype=autocast_dtype, decode={"min_area": min_area}
            )
            return segment_array(inputs, net, block_size=Defaults.BLOCK_SIZE, halo=Defaults.BLOCK_HALO, options=options)

    initial_state = copy.deepcopy(network.state_dict())
    good_state = copy.deepcopy(initial_state)
    history = list(history or [])
    produced: list[np.ndarray] = []
    current = np.asarray(labels).astype(np.int64)
    for rnd in range(start_round, max_rounds):
        t0 = time.perf_counter()
        if not warm_start:
            network.load_state_dict(initial_state)
        train = [TrainingSample(inputs[:, train_sl[0], train_sl[1]], current[train_sl])]
        val = [TrainingSample(inputs[:, val_sl[0], val_sl[1]], current[val_sl])] if val_sl else None
        result = fit(
            network,
            train,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            batch_size=batch_size,
            patch_size=patch_size,
            lr=lr,
            weight_decay=weight_decay,
            weights=loss_weights,
            augmentation=augmentation,
            val_samples=val,
            device=device,
            autocast_dtype=autocast_dtype,
            seed=seed + rnd,
            on_epoch=(lambda e, rec, r=rnd: on_epoch(r, e, rec)) if on_epoch else None,
            progress=progress,
        )
        predicted = np.asarray(predict(network)).astype(np.int64)
        if level_set:
            if level_set_image == "confidence":
                image = predict_maps(network, inputs, device=device, autocast_dtype=autocast_dtype)[0]
            else:
                image = {"rna": inputs[1], "mask": None}[level_set_image]
            new = refine_labels(predicted, image, max_growth=max_growth)
        else:
            new = predicted
        if keep_missed:
            new = _carry_over_missed(current, new)
        new = _prune_small(new, min_area)
        last = result.losses[-1]
        n_in, n_out = _n_cells(current), _n_cells(new)
        degenerate = n_out < min_kept * n_in or np.count_nonzero(new) < min_kept * np.count_nonzero(current)
        record = RoundRecord(
            round=rnd + 1,
            epochs=epochs,
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
        if record.iou_to_previous > iou_stop:
            break
    return history, produced
