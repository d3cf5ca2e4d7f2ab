"""Forward throughput of the GeneSegNet network, in megapixels per second, per width and precision.

Usage: ``python benchmarks/network_throughput.py [--window 1216]``. Runs batches of 4 tiles of
256 x 256 px (or, with ``--window``, one channels-last window of that side, as ``segment`` runs a
1024 px block with its 96 px halo) through the network in inference mode (after a warm-up pass) and
prints a table, for the shipped widths, the paper's and two narrower candidates.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from gsn_spatial.core.network.device import cpu_supports_bf16
from gsn_spatial.core.network.unet import GeneSegNet, NetworkConfig


def throughput(net: GeneSegNet, x: torch.Tensor, dtype: torch.dtype | None, repeats: int = 3) -> float:
    with torch.inference_mode(), torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
        net(x)
        t0 = time.perf_counter()
        for _ in range(repeats):
            net(x)
        seconds = (time.perf_counter() - t0) / repeats
    return x.shape[0] * x.shape[2] * x.shape[3] / 1e6 / seconds


WIDTHS = ((16, 32, 64, 128, 128), (32, 64, 128, 256, 256), (12, 24, 48, 96, 96), (8, 16, 32, 64, 64))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--window", type=int, default=None, help="one window of this side instead of 4 x 256 px tiles")
    args = ap.parse_args()
    if args.window:
        x = torch.rand(1, 2, args.window, args.window).contiguous(memory_format=torch.channels_last)
    else:
        x = torch.rand(4, 2, 256, 256)
    print(f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, input {tuple(x.shape)}")
    print("widths                    parameters  fp32 MP/s  bf16 MP/s")
    for widths in WIDTHS:
        net = GeneSegNet(NetworkConfig(widths=widths)).eval()
        if args.window:
            net = net.to(memory_format=torch.channels_last)
        n = sum(p.numel() for p in net.parameters())
        fp32 = throughput(net, x, None)
        bf16 = throughput(net, x, torch.bfloat16) if cpu_supports_bf16() else float("nan")
        print(f"{str(widths):24s}  {n:10d}  {fp32:9.2f}  {bf16:9.2f}")


if __name__ == "__main__":
    main()
