"""Forward throughput of the GeneSegNet network, in megapixels per second, per width and precision.

Usage: ``python benchmarks/network_throughput.py``. Runs batches of 4 tiles of 256 x 256 px through
the network in inference mode (after a warm-up pass) and prints a table.
"""

from __future__ import annotations

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


def main() -> None:
    x = torch.rand(4, 2, 256, 256)
    print(f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print("widths                    parameters  fp32 MP/s  bf16 MP/s")
    for widths in ((16, 32, 64, 128, 128), (32, 64, 128, 256, 256)):
        net = GeneSegNet(NetworkConfig(widths=widths)).eval()
        n = sum(p.numel() for p in net.parameters())
        fp32 = throughput(net, x, None)
        bf16 = throughput(net, x, torch.bfloat16) if cpu_supports_bf16() else float("nan")
        print(f"{str(widths):24s}  {n:10d}  {fp32:9.2f}  {bf16:9.2f}")


if __name__ == "__main__":
    main()
