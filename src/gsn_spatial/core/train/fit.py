"""Fitting the network to instance labels (one round of the paper's Eq. 2).

Works on plain arrays: normalised images, RNA maps and instance labels.
Patches are drawn with the paper's augmentation (random scale in
[0.75, 1.25], rotation, horizontal flip, crop) applied to the *labels*, and the
targets (Eqs. 10-12) are computed after the warp, so offsets are consistent
with the warped geometry by construction. Targets are computed on a margin
around the patch so cells cut by the patch border keep their true centre.
The image channel also gets a random gain and gamma. The loss of Eq. 15 is
minimised with AdamW.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage as ndi

from gsn_spatial.core.network.unet import GeneSegNet
from gsn_spatial.core.train.targets import make_targets

logger = logging.getLogger(__name__)


@dataclass
class LossWeights:
    """Weights of Eq. 15's terms.

    Our centre term is a mean over all pixels of a sparse heatmap and our
    offsets are in units of ``offset_scale`` pixels, so the defaults rebalance
    the terms to comparable magnitudes (as Panoptic-DeepLab does).
    """

    confidence: float = 1.0
    centre: float = 100.0
    offset: float = 1.0


@dataclass
class TrainingSample:
    """One training region: ``inputs`` (2, h, w) float32 ``[image, rna]`` and instance ``labels`` (h, w).

    Patches are drawn from a sample with probability proportional to
    ``weight`` times its area, so ``weight`` balances data sources.
    """

    inputs: np.ndarray
    labels: np.ndarray
    weight: float = 1.0

    def __post_init__(self) -> None:
        if self.inputs.ndim != 3 or self.inputs.shape[1:] != self.labels.shape:
            raise ValueError(f"inputs {self.inputs.shape} and labels {self.labels.shape} do not match.")
        if not np.issubdtype(self.labels.dtype, np.integer):
            raise TypeError(f"Training labels must be integers, got dtype {self.labels.dtype}.")
        if not self.weight > 0:
            raise ValueError(f"Sample weight must be > 0, got {self.weight}.")


@dataclass
class Augmentation:
    """Random geometry and intensity changes of training patches.

    The defaults are the paper's "Training Details" (scale, rotation, flip)
    with a random gain and gamma. :meth:`stain_looks` adds what makes a
    nucleus stain look different from one microscope to the next: contrast,
    detector saturation, uneven illumination, blur, read noise and JPEG
    compression, each drawn per patch.
    """

    scale_range: tuple[float, float] = (0.75, 1.25)
    rotate: bool = True
    flip: bool = True
    gain_range: tuple[float, float] = (0.7, 1.3)
    gamma_range: tuple[float, float] = (0.8, 1.25)
    contrast_range: tuple[float, float] = (1.0, 1.0)
    saturation_prob: float = 0.0  # clip the brightest part (a saturated detector) and rescale
    illumination: float = 0.0  # max relative amplitude of a smooth illumination field
    blur_max: float = 0.0  # max Gaussian blur sigma, px
    noise_max: float = 0.0  # max std of additive noise (image in [0, 1])
    jpeg_prob: float = 0.0  # probability of JPEG compression at quality 25-90

    @classmethod
    def stain_looks(cls, scale_range: tuple[float, float] = (0.5, 2.0)) -> Augmentation:
        """The randomisation used to train the generalist model (scale 0.5-2x around the working scale)."""
        return cls(
            scale_range=scale_range,
            gain_range=(0.5, 1.5),
            gamma_range=(0.6, 1.6),
            contrast_range=(0.6, 1.4),
            saturation_prob=0.15,
            illumination=0.5,
            blur_max=1.5,
            noise_max=0.08,
            jpeg_prob=0.2,
        )


def augment_image(x: np.ndarray, rng: np.random.Generator, aug: Augmentation) -> np.ndarray:
    """Apply the intensity part of ``aug`` to one normalised image channel (values in [0, 1])."""
    x = np.clip(x * rng.uniform(*aug.gain_range), 0, 1) ** rng.uniform(*aug.gamma_range)
    if aug.contrast_range != (1.0, 1.0):
        m = float(x.mean())
        x = np.clip((x - m) * rng.uniform(*aug.contrast_range) + m, 0, 1)
    if aug.saturation_prob and rng.random() < aug.saturation_prob:
        top = rng.uniform(0.4, 0.9)
        x = np.minimum(x, top) / top
    if aug.illumination:
        h, w = x.shape
        # A smooth field over the patch: a low-order random surface, up to +-illumination.
        yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
        a = rng.uniform(-1, 1, 5)
        field = a[0] * yy + a[1] * xx + a[2] * yy * xx + a[3] * (yy - 0.5) ** 2 + a[4] * (xx - 0.5) ** 2
        field = field / max(1e-6, float(np.abs(field).max()))
        x = np.clip(x * (1 + rng.uniform(0, aug.illumination) * field), 0, 1)
    if aug.blur_max and rng.random() < 0.5:
        x = ndi.gaussian_filter(x, rng.uniform(0.3, aug.blur_max))
    if aug.noise_max:
        x = np.clip(x + rng.uniform(0, aug.noise_max) * rng.standard_normal(x.shape), 0, 1)
    if aug.jpeg_prob and rng.random() < aug.jpeg_prob:
        x = _jpeg(x, int(rng.integers(25, 91)))
    return x.astype(np.float32)


def _jpeg(x: np.ndarray, quality: int) -> np.ndarray:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.round(x * 255).astype(np.uint8)).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return np.asarray(Image.open(buf), dtype=np.float32) / 255.0


def warp_patch(
    sample: TrainingSample,
    centre: tuple[float, float],
    patch_size: int,
    *,
    scale: float = 1.0,
    angle: float = 0.0,
    flip: bool = False,
    margin: int = 32,
    centre_sigma: float = 2.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``(2, p, p)`` and targets ``(4, p, p)`` of a rotated, scaled, flipped patch.

    The output pixel ``o`` samples the input at ``centre + A (o - o_c)`` with
    ``A = R(angle) F / scale``. Inputs are interpolated bilinearly, labels by
    nearest neighbour; the targets are made from the warped labels on a
    ``margin`` around the patch and then cropped.
    """
    size = patch_size + 2 * margin
    c, s = math.cos(angle), math.sin(angle)
    a = np.array([[c, -s], [s, c]]) / scale
    if flip:
        a = a @ np.diag([1.0, -1.0])
    oc = (size - 1) / 2.0
    offset = np.asarray(centre, dtype=float) - a @ np.array([oc, oc])
    labels = ndi.affine_transform(sample.labels, a, offset, output_shape=(size, size), order=0, mode="constant")
    inputs = np.stack(
        [
            ndi.affine_transform(ch, a, offset, output_shape=(size, size), order=1, mode="constant")
            for ch in sample.inputs
        ]
    )
    targets = make_targets(labels, centre_sigma=centre_sigma)
    inner = (slice(None), slice(margin, margin + patch_size), slice(margin, margin + patch_size))
    return inputs[inner].astype(np.float32), targets[inner]


def sample_batch(
    samples: list[TrainingSample],
    rng: np.random.Generator,
    batch_size: int,
    patch_size: int,
    augmentation: Augmentation | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A random batch of augmented patches as tensors ``(b, 2, p, p)`` and ``(b, 4, p, p)``."""
    aug = augmentation or Augmentation()
    weights = np.array([s.labels.size * s.weight for s in samples], dtype=float)
    xs, ts = [], []
    for _ in range(batch_size):
        sample = samples[rng.choice(len(samples), p=weights / weights.sum())]
        h, w = sample.labels.shape
        scale = rng.uniform(*aug.scale_range)
        half = patch_size / (2 * scale)  # half extent of the patch in input pixels (before rotation)
        cy = rng.uniform(min(half, h / 2), max(h - half, h / 2))
        cx = rng.uniform(min(half, w / 2), max(w - half, w / 2))
        angle = rng.uniform(0, 2 * np.pi) if aug.rotate else 0.0
        flip = bool(aug.flip and rng.random() < 0.5)
        x, t = warp_patch(sample, (cy, cx), patch_size, scale=scale, angle=angle, flip=flip)
        x[0] = augment_image(x[0], rng, aug)
        xs.append(x)
        ts.append(t)
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ts))


def grid_batches(
    samples: list[TrainingSample], patch_size: int, batch_size: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Fixed, non-augmented patches on a regular grid (for validation losses)."""
    pairs = []
    for s in samples:
        h, w = s.labels.shape
        for y in range(0, max(1, h - patch_size + 1), patch_size):
            for x in range(0, max(1, w - patch_size + 1), patch_size):
                x_, t_ = warp_patch(s, (y + (patch_size - 1) / 2, x + (patch_size - 1) / 2), patch_size)
                pairs.append((x_, t_))
    return [
        (
            torch.from_numpy(np.stack([p[0] for p in pairs[i : i + batch_size]])),
            torch.from_numpy(np.stack([p[1] for p in pairs[i : i + batch_size]])),
        )
        for i in range(0, len(pairs), batch_size)
    ]


def segmentation_loss(
    out: dict[str, torch.Tensor], targets: torch.Tensor, offset_scale: float, weights: LossWeights
) -> dict[str, torch.Tensor]:
    """Eq. 15: cross-entropy on confidence, L2 on centre and on offsets (cell pixels only)."""
    conf_t, centre_t, offset_t = targets[:, 0], targets[:, 1], targets[:, 2:4]
    l_conf = F.binary_cross_entropy_with_logits(out["confidence"].float(), conf_t)
    l_centre = F.mse_loss(torch.sigmoid(out["centre"].float()), centre_t)
    inside = conf_t[:, None] > 0.5
    diff = (out["offset"].float() - offset_t / offset_scale) ** 2
    l_off = (diff * inside).sum() / inside.sum().clamp(min=1) / 2
    total = weights.confidence * l_conf + weights.centre * l_centre + weights.offset * l_off
    return {"loss": total, "confidence": l_conf, "centre": l_centre, "offset": l_off}


@dataclass
class FitResult:
    steps: int
    seconds: float
    losses: list[dict[str, float]] = field(default_factory=list)  # per epoch: train and val losses


@dataclass(frozen=True)
class FitOptions:
    """What one :func:`fit` draws and how it steps.

    Attributes
    ----------
    epochs, steps_per_epoch
        ``epochs * steps_per_epoch`` optimiser steps.
    batch_size, patch_size
        Patches per step and their side in (working) pixels.
    lr, weight_decay
        AdamW settings (the paper's defaults).
    weights
        Weights of the loss terms (Eq. 15); default ``LossWeights()``.
    augmentation
        How patches are augmented; default ``Augmentation()``.

    Examples
    --------
    >>> FitOptions(epochs=2, steps_per_epoch=5).epochs * 5
    10
    """

    epochs: int = 10
    steps_per_epoch: int = 100
    batch_size: int = 8
    patch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-5
    weights: LossWeights | None = None
    augmentation: Augmentation | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.steps_per_epoch < 1:
            raise ValueError(
                f"`epochs` and `steps_per_epoch` must be >= 1, got {self.epochs} and {self.steps_per_epoch}."
            )


def fit(
    network: GeneSegNet,
    samples: list[TrainingSample],
    options: FitOptions | None = None,
    *,
    val_samples: list[TrainingSample] | None = None,
    device: torch.device | str = "cpu",
    autocast_dtype: torch.dtype | None = None,
    seed: int = 0,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    progress: Callable | None = None,
    checkpoint: str | Path | None = None,
) -> FitResult:
    """Train ``network`` in place for ``epochs * steps_per_epoch`` optimiser steps.

    AdamW with the paper's defaults (lr 1e-3, weight decay 1e-5), a 5 % linear
    warm-up and a cosine decay to zero, since the paper's 500 constant-rate
    epochs per round are a GPU budget. ``on_epoch(epoch, losses)`` is called
    after every epoch (for logs).

    With ``checkpoint``, the network, optimiser, schedule, random states and
    losses are saved to that file after every epoch, and a run that finds the
    file resumes after its last epoch: the same call continues a training
    that was stopped, across sessions. A checkpoint from a run with another
    ``epochs * steps_per_epoch`` is refused.
    """
    if not samples:
        raise ValueError("No training samples.")
    o = options or FitOptions()
    weights = o.weights or LossWeights()
    device = torch.device(device)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    network.to(device)
    opt = torch.optim.AdamW(network.parameters(), lr=o.lr, weight_decay=o.weight_decay)
    steps = o.epochs * o.steps_per_epoch
    warmup = max(1, steps // 20)

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    val_batches = grid_batches(val_samples, o.patch_size, o.batch_size) if val_samples else []
    result = FitResult(steps=steps, seconds=0.0)
    first_epoch, elapsed = 0, 0.0
    if checkpoint is not None and Path(checkpoint).exists():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        if state["steps"] != steps:
            raise ValueError(
                f"Checkpoint {checkpoint} is of a run with {state['steps']} steps, this one has {steps}; "
                "delete it or pass the same epochs and steps_per_epoch."
            )
        network.load_state_dict(state["network"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        first_epoch, elapsed, result.losses = state["epoch"], state["seconds"], state["losses"]
        logger.info("resumed from %s after epoch %d", checkpoint, first_epoch)
    t0 = time.perf_counter() - elapsed
    epoch_iter = range(first_epoch, o.epochs) if progress is None else progress(range(first_epoch, o.epochs))
    for epoch in epoch_iter:
        network.train()
        running: dict[str, float] = {}
        for _ in range(o.steps_per_epoch):
            x, t = sample_batch(samples, rng, o.batch_size, o.patch_size, o.augmentation)
            x, t = x.to(device), t.to(device)
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                out = network(x)
            losses = segmentation_loss(out, t, network.config.offset_scale, weights)
            opt.zero_grad(set_to_none=True)
            losses["loss"].backward()
            opt.step()
            sched.step()
            for k, v in losses.items():
                running[k] = running.get(k, 0.0) + float(v.detach()) / o.steps_per_epoch
        record = {"epoch": epoch + 1, **{f"train_{k}": v for k, v in running.items()}}
        if val_batches:
            network.eval()
            total = 0.0
            with torch.no_grad():
                for x, t in val_batches:
                    x, t = x.to(device), t.to(device)
                    with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                        out = network(x)
                    total += float(segmentation_loss(out, t, network.config.offset_scale, weights)["loss"])
            record["val_loss"] = total / len(val_batches)
        result.losses.append(record)
        logger.info("epoch %d: %s", epoch + 1, {k: round(v, 4) for k, v in record.items()})
        if checkpoint is not None:
            tmp = Path(f"{checkpoint}.tmp")
            torch.save(
                {
                    "steps": steps,
                    "epoch": epoch + 1,
                    "seconds": time.perf_counter() - t0,
                    "losses": result.losses,
                    "network": network.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "rng": rng.bit_generator.state,
                    "torch_rng": torch.get_rng_state(),
                },
                tmp,
            )
            tmp.replace(checkpoint)  # atomic: a run killed mid-save keeps the previous checkpoint
        if on_epoch is not None:
            on_epoch(epoch + 1, record)
    result.seconds = time.perf_counter() - t0
    network.eval()
    return result
