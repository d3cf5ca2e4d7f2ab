"""Fitting the network to instance labels (one round of the paper's Eq. 2).

Works on plain arrays: a list of normalised images, RNA maps and instance
labels. Random crops are drawn, flipped and transposed (the 8 symmetries of
the square, with the offset vectors transformed to match), the image channel
gets a random gain and gamma, and the loss of Eq. 15 is minimised with AdamW.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from gsn_spatial.core.network import GeneSegNet
from gsn_spatial.core.targets import make_targets

logger = logging.getLogger(__name__)


@dataclass
class LossWeights:
    """Weights of Eq. 15's terms (the paper sets all to 1 for its loss scaling).

    Our centre term is a mean over all pixels of a sparse heatmap and our
    offsets are in units of ``offset_scale`` pixels, so the defaults rebalance
    the terms to comparable magnitudes (as Panoptic-DeepLab does).
    """

    confidence: float = 1.0
    centre: float = 100.0
    offset: float = 1.0


@dataclass
class TrainingSample:
    """One training image: ``inputs`` (2, h, w) float32 and ``targets`` (4, h, w)."""

    inputs: np.ndarray
    targets: np.ndarray

    @classmethod
    def from_labels(cls, image: np.ndarray, rna: np.ndarray, labels: np.ndarray, centre_sigma: float = 2.0):
        return cls(np.stack([image, rna]).astype(np.float32), make_targets(labels, centre_sigma=centre_sigma))


def dihedral(inputs: np.ndarray, targets: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Apply symmetry ``k`` in 0..7 (bit 0: flip rows, bit 1: flip cols, bit 2:
    transpose) to ``(c, h, w)`` inputs and targets, keeping offsets consistent."""
    x, t = inputs, targets.copy()
    if k & 4:
        x = x.transpose(0, 2, 1)
        t = t.transpose(0, 2, 1)[[0, 1, 3, 2]]  # dy <-> dx
    if k & 1:
        x, t = x[:, ::-1], t[:, ::-1]
        t[2] = -t[2]
    if k & 2:
        x, t = x[:, :, ::-1], t[:, :, ::-1]
        t[3] = -t[3]
    return np.ascontiguousarray(x), np.ascontiguousarray(t)


def sample_batch(
    samples: list[TrainingSample], rng: np.random.Generator, batch_size: int, patch_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ts = [], []
    for _ in range(batch_size):
        s = samples[rng.integers(len(samples))]
        h, w = s.inputs.shape[1:]
        y0 = rng.integers(0, h - patch_size + 1)
        x0 = rng.integers(0, w - patch_size + 1)
        sl = (slice(None), slice(y0, y0 + patch_size), slice(x0, x0 + patch_size))
        x, t = dihedral(s.inputs[sl], s.targets[sl], int(rng.integers(8)))
        x = x.copy()
        x[0] = np.clip(x[0] * rng.uniform(0.7, 1.3), 0, 1) ** rng.uniform(0.8, 1.25)
        xs.append(x)
        ts.append(t)
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ts))


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
    losses: list[dict[str, float]] = field(default_factory=list)


def fit(
    network: GeneSegNet,
    samples: list[TrainingSample],
    *,
    steps: int = 1000,
    batch_size: int = 8,
    patch_size: int = 128,
    lr: float = 1e-3,
    weight_decay: float = 1e-5,
    weights: LossWeights | None = None,
    device: torch.device | str = "cpu",
    autocast_dtype: torch.dtype | None = None,
    seed: int = 0,
    log_every: int = 50,
) -> FitResult:
    """Train ``network`` in place for ``steps`` optimiser steps.

    Uses AdamW (the paper's optimiser and defaults), a 5 % linear warm-up and a
    cosine decay, since the paper's 500 constant-rate epochs are a GPU budget.
    """
    if not samples:
        raise ValueError("No training samples.")
    for s in samples:
        if min(s.inputs.shape[1:]) < patch_size:
            raise ValueError(f"Training image {s.inputs.shape[1:]} is smaller than `patch_size`={patch_size}.")
    weights = weights or LossWeights()
    device = torch.device(device)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    network.to(device).train()
    opt = torch.optim.AdamW(network.parameters(), lr=lr, weight_decay=weight_decay)
    warmup = max(1, steps // 20)

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + np.cos(np.pi * (step - warmup) / max(1, steps - warmup)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    result = FitResult(steps=steps, seconds=0.0)
    t0 = time.perf_counter()
    running: dict[str, float] = {}
    for step in range(steps):
        x, t = sample_batch(samples, rng, batch_size, patch_size)
        x, t = x.to(device), t.to(device)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            out = network(x)
        losses = segmentation_loss(out, t, network.config.offset_scale, weights)
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        opt.step()
        sched.step()
        for k, v in losses.items():
            running[k] = running.get(k, 0.0) + float(v.detach())
        if (step + 1) % log_every == 0 or step + 1 == steps:
            n = (step + 1) % log_every or log_every
            mean = {k: v / n for k, v in running.items()}
            mean["step"] = step + 1
            result.losses.append(mean)
            logger.info("step %d: %s", step + 1, {k: round(v, 4) for k, v in mean.items()})
            running = {}
    result.seconds = time.perf_counter() - t0
    network.eval()
    return result
