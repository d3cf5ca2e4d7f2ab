"""The history of a :func:`gsn_spatial.tl.train` run: losses and cell counts round by round."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gsn_spatial.models import GeneSegModel
from gsn_spatial.pl._common import finish


def _history(model: GeneSegModel | str | Path) -> list[dict]:
    if isinstance(model, (str, Path)):
        from gsn_spatial.models import load

        model = load(model)
    if not isinstance(model, GeneSegModel):
        raise TypeError(f"`model` must be a GeneSegModel or a model file, got {type(model).__name__}.")
    history = model.meta.get("history") or []
    if not history:
        raise ValueError(
            f"Model {model.meta.get('name', '')!r} has no training history: only models trained by "
            "`gsn.tl.train` record one (in `meta['history']`)."
        )
    return history


def training_history(
    model: GeneSegModel | str | Path,
    *,
    axes: Any = None,
    show: bool | None = None,
    save: str | Path | None = None,
) -> Any:
    """Losses, cell counts and agreement with the previous labels, per round of recursive training.

    Left: the training loss and, when training held out a validation band, the
    validation loss of each round. Right: cells in the round's input labels and
    in the labels it produced, and (second axis) the IoU of the new labels with
    the previous ones; a round that training rejected as degenerate (its labels
    and weights discarded) is marked with a cross.

    Parameters
    ----------
    model
        A model returned by :func:`gsn_spatial.tl.train`, or the path of one saved.
    axes
        Two matplotlib axes to draw into; default: a new figure.
    show, save
        Show the figure; save it to this path.

    Returns
    -------
    The two axes.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import gsn_spatial as gsn
    >>> sdata = gsn.datasets.synthetic_tissue((256, 256), seed=1)
    >>> m = gsn.tl.train(sdata, labels_key="nuclei", max_rounds=2, epochs=1, steps_per_epoch=1,
    ...                  patch_size=128, batch_size=2, device="cpu")
    >>> loss_ax, cells_ax = gsn.pl.training_history(m)
    >>> len(loss_ax.get_lines()[0].get_xdata()) == len(m.meta["history"])
    True
    """
    import matplotlib.pyplot as plt

    history = _history(model)
    rounds = np.array([r["round"] for r in history])  # counted from 1, as training logs them
    accepted = np.array([r.get("accepted", True) for r in history])
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    axes = np.ravel(axes)
    if len(axes) != 2:
        raise ValueError(f"`axes` must hold two axes (losses, cells), got {len(axes)}.")
    loss_ax, cells_ax = axes
    loss_ax.plot(rounds, [r["train_loss"] for r in history], marker="o", ms=4, label="training")
    val = np.array([np.nan if r.get("val_loss") is None else r["val_loss"] for r in history], dtype=float)
    if np.isfinite(val).any():
        loss_ax.plot(rounds, val, marker="o", ms=4, label="validation")
    loss_ax.set_xlabel("round")
    loss_ax.set_ylabel("loss")
    loss_ax.legend(frameon=False, fontsize=8)

    cells_ax.plot(rounds, [r["n_cells_in"] for r in history], marker="o", ms=4, label="cells in")
    cells_ax.plot(rounds, [r["n_cells_out"] for r in history], marker="o", ms=4, label="cells out")
    if (~accepted).any():
        out = np.array([r["n_cells_out"] for r in history], dtype=float)
        cells_ax.plot(rounds[~accepted], out[~accepted], "x", color="crimson", ms=9, mew=2, label="rejected")
    cells_ax.set_xlabel("round")
    cells_ax.set_ylabel("cells")
    most = max(max(r["n_cells_in"], r["n_cells_out"]) for r in history)
    cells_ax.set_ylim(0, 1.15 * most + 1)  # room above the lines, which often run level at the top
    iou_ax = cells_ax.twinx()
    iou_ax.plot(rounds, [r["iou_to_previous"] for r in history], color="0.5", ls="--", marker=".", label="IoU")
    iou_ax.set_ylabel("IoU with previous labels", color="0.4")
    iou_ax.set_ylim(0, 1.15)
    handles = cells_ax.get_legend_handles_labels()[0] + iou_ax.get_legend_handles_labels()[0]
    cells_ax.legend(handles=handles, frameon=False, fontsize=8, loc="lower left")
    for ax in (loss_ax, cells_ax):
        ax.set_xticks(rounds)
    loss_ax.figure.tight_layout()
    return finish(axes, show, save)
