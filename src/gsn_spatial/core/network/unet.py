"""The GeneSegNet U-Net (paper, Methods: "Detailed Architecture", Eqs. 6-9).

Input: a 2-channel map ``[image, rna_density]``. A 3x3 stem lifts it to the
first width at full resolution; the encoder then works at four scales, each a
2x2 max-pool followed by two pre-activation residual blocks
(BN-ReLU-Conv3x3 twice, identity added). The decoder mirrors it: a 1x1
projection where the width changes, bilinear 2x up-sampling and two residual
blocks, the first of which adds the encoder feature map of the same scale
between its two convolutions (Eq. 8). The
full-resolution output has ``widths[0]`` (32 in the paper) channels and feeds
three 1x1 heads: confidence, centre and 2-channel offset.

The heads return logits for confidence and centre (sigmoid is applied by
:meth:`GeneSegNet.predict`, and inside the losses for numerical stability) and
offsets in units of ``offset_scale`` pixels; :meth:`GeneSegNet.predict`
returns offsets in pixels, as ``(dy, dx)`` pointing from a pixel to its
cell's centre.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class NetworkConfig:
    """Architecture hyper-parameters, saved with every model."""

    widths: tuple[int, ...] = (32, 64, 128, 256, 256)  # full resolution, then the 4 encoder scales
    in_channels: int = 2
    offset_scale: float = 8.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["widths"] = list(self.widths)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> NetworkConfig:
        d = dict(d)
        d["widths"] = tuple(d["widths"])
        return cls(**d)


def _bn_relu_conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm2d(c_in), nn.ReLU(inplace=True), nn.Conv2d(c_in, c_out, 3, padding=1, bias=False))


class ResidualBlock(nn.Module):
    """``x + f2(f1(x) + skip)``, with ``f = BN-ReLU-Conv3x3`` (Eqs. 7 and 8)."""

    def __init__(self, channels: int, *, takes_skip: bool = False):
        super().__init__()
        self.f1 = _bn_relu_conv(channels, channels)
        self.f2 = _bn_relu_conv(channels, channels)
        # Whether forward() gets a skip: without one, f2's batch norm reads f1's convolution alone and can be
        # folded into it for inference (fold_batch_norms).
        self.takes_skip = takes_skip

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        h = self.f1(x)
        if skip is not None:
            h = h + skip
        return x + self.f2(h)


class EncoderScale(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        # A 1x1 projection where the width changes, so the identity path type-checks.
        self.project = nn.Conv2d(c_in, c_out, 1, bias=False) if c_in != c_out else nn.Identity()
        self.block1 = ResidualBlock(c_out)
        self.block2 = ResidualBlock(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.project(F.max_pool2d(x, 2))
        return self.block2(self.block1(x))


class DecoderScale(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.project = nn.Conv2d(c_in, c_out, 1, bias=False) if c_in != c_out else nn.Identity()
        self.block1 = ResidualBlock(c_out, takes_skip=True)
        self.block2 = ResidualBlock(c_out)

    def forward(self, z: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        # Project, then up-sample: both are linear and act on different axes (channels, space), so the order
        # does not change the result, and the 1x1 convolution and the interpolation see half the channels
        # or a quarter of the pixels (5-8 % faster network, benchmarks/levers.py).
        z = F.interpolate(self.project(z), size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.block2(self.block1(z, skip))


class GeneSegNet(nn.Module):
    """GeneSegNet U-Net. Input height and width must be multiples of ``INPUT_MULTIPLE``.

    Examples
    --------
    >>> net = GeneSegNet(NetworkConfig(widths=(8, 8, 8, 8, 8)))
    >>> out = net(torch.zeros(1, 2, 32, 32))
    >>> sorted(out), tuple(out["offset"].shape)
    (['centre', 'confidence', 'offset'], (1, 2, 32, 32))
    """

    INPUT_MULTIPLE = 16  # four 2x2 poolings

    def __init__(self, config: NetworkConfig | None = None):
        super().__init__()
        self.config = config or NetworkConfig()
        w = self.config.widths
        if len(w) != 5:
            raise ValueError(f"`widths` needs 5 entries (full resolution + 4 scales), got {w}.")
        self.stem = nn.Conv2d(self.config.in_channels, w[0], 3, padding=1, bias=False)
        self.encoder = nn.ModuleList(EncoderScale(w[i], w[i + 1]) for i in range(4))
        self.decoder = nn.ModuleList(DecoderScale(w[i + 1], w[i]) for i in reversed(range(4)))
        self.out_norm = nn.Sequential(nn.BatchNorm2d(w[0]), nn.ReLU(inplace=True))
        self.head_confidence = nn.Conv2d(w[0], 1, 1)
        self.head_centre = nn.Conv2d(w[0], 1, 1)
        self.head_offset = nn.Conv2d(w[0], 2, 1)
        # Start with few cells and few centres predicted, which eases early training.
        nn.init.constant_(self.head_centre.bias, -4.0)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        skips = [self.stem(x)]
        for enc in self.encoder:
            skips.append(enc(skips[-1]))
        z = skips.pop()
        for dec in self.decoder:
            z = dec(z, skips.pop())
        z = self.out_norm(z)
        return {
            "confidence": self.head_confidence(z)[:, 0],
            "centre": self.head_centre(z)[:, 0],
            "offset": self.head_offset(z),
        }

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Probabilities and pixel offsets stacked as ``(n, 4, h, w)``:
        confidence, centre, offset dy, offset dx."""
        out = self(x)  # through __call__, so that a compiled module (``Module.compile``) is used
        return torch.cat(
            [
                torch.sigmoid(out["confidence"].float())[:, None],
                torch.sigmoid(out["centre"].float())[:, None],
                out["offset"].float() * self.config.offset_scale,
            ],
            dim=1,
        )


def fold_batch_norms(network: GeneSegNet) -> GeneSegNet:
    """An inference copy of ``network`` with a third of its batch norms folded into convolutions.

    In a residual block without a skip input, ``f2``'s batch norm is an affine
    map of ``f1``'s convolution output and nothing else, so in eval mode it
    becomes that convolution's weights and bias. The copy computes the same
    maps (to float rounding) with 12 of the 33 normalisations gone, about 12 %
    faster on a CPU (2.43 -> 2.13 s per 1216 px window of the shipped widths,
    float32, 2-core AVX2 host, 2026-12-06), where those memory-bound passes
    cost as much as a small convolution. The copy is for inference only; the
    argument is left unchanged.

    Examples
    --------
    >>> net = GeneSegNet(NetworkConfig(widths=(8, 8, 8, 8, 8))).eval()
    >>> x = torch.rand(1, 2, 32, 32)
    >>> folded = fold_batch_norms(net)
    >>> bool(torch.allclose(net.predict(x), folded.predict(x), atol=1e-5))
    True
    >>> def norms(n):
    ...     return sum(isinstance(m, nn.BatchNorm2d) for m in n.modules())
    >>> norms(net), norms(folded)
    (33, 21)
    """
    folded = copy.deepcopy(network).eval()
    for block in folded.modules():
        if not isinstance(block, ResidualBlock) or block.takes_skip or not isinstance(block.f2[0], nn.BatchNorm2d):
            continue
        norm, conv = block.f2[0], block.f1[2]
        with torch.no_grad():
            scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
            shift = norm.bias - norm.running_mean * scale
            conv.weight.mul_(scale[:, None, None, None])
            conv.bias = nn.Parameter(shift if conv.bias is None else conv.bias * scale + shift)
        block.f2[0] = nn.Identity()
    return folded


def weights_digest(network: nn.Module) -> str:
    """SHA-256 of a network's state (names and values): the same digest means the same weights.

    Examples
    --------
    >>> a = GeneSegNet(NetworkConfig(widths=(8, 8, 8, 8, 8)))
    >>> weights_digest(a) == weights_digest(copy.deepcopy(a))
    True
    """
    h = hashlib.sha256()
    for name, tensor in network.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
