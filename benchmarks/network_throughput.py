"""Forward throughput of the GeneSegNet network, in megapixels per second, per width and precision.

Usage: ``python benchmarks/network_throughput.py [--window 1216]``. Runs batches of 4 tiles of
256 x 256 px (or, with ``--window``, one channels-last window of that side, as ``segment`` runs a
1024 px block with its 96 px halo) through the network in inference mode (after a warm-up pass), with
batch norms folded and the heap reused as ``segment`` runs it, and prints a table for the shipped
widths, the paper's and two narrower candidates. The table also gives the convolutions' arithmetic per
megapixel of input and the rate it is done at (GFLOP/s, float32), next to a large float32 matrix
product's: where the two are close, only a network with less arithmetic runs faster.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from gsn_spatial.core.network.device import cpu_supports_bf16
from gsn_spatial.core.network.memory import keep_freed_memory, network_allocations
from gsn_spatial.core.network.unet import GeneSegNet, NetworkConfig, fold_batch_norms


def throughput(net: GeneSegNet, x: torch.Tensor, dtype: torch.dtype | None, repeats: int = 3) -> float:
    # As segment runs it: batch norms folded, large tensors from the heap that keeps them between passes.
    net = fold_batch_norms(net)
    with (
        keep_freed_memory(),
        network_allocations(),
        torch.inference_mode(),
        torch.autocast("cpu", dtype=dtype, enabled=dtype is not None),
    ):
        net(x)
        t0 = time.perf_counter()
        for _ in range(repeats):
            net(x)
        seconds = (time.perf_counter() - t0) / repeats
    return x.shape[0] * x.shape[2] * x.shape[3] / 1e6 / seconds


def matmul_gflops(n: int = 4096, repeats: int = 3) -> float:
    """Rate of a float32 matrix product: close to what this CPU can do at all."""
    a, b = torch.rand(n, n), torch.rand(n, n)
    a @ b
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - t0) / 1e9


def conv_gflop_per_megapixel(net: GeneSegNet, x: torch.Tensor) -> float:
    """Floating-point operations of the network's convolutions (2 per multiply-add), per megapixel of ``x``."""
    flops = []

    def count(module: torch.nn.Conv2d, _inputs, output: torch.Tensor) -> None:
        kh, kw = module.kernel_size
        flops.append(2 * output.numel() * (module.in_channels // module.groups) * kh * kw)

    hooks = [m.register_forward_hook(count) for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.inference_mode():
        net(x)
    for h in hooks:
        h.remove()
    return sum(flops) / 1e9 / (x.shape[0] * x.shape[2] * x.shape[3] / 1e6)


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
    print(f"float32 matrix product ({torch.get_num_threads()} threads): {matmul_gflops():.0f} GFLOP/s")
    print("widths                    parameters  conv GFLOP/MP  fp32 MP/s  fp32 conv GFLOP/s  bf16 MP/s")
    for widths in WIDTHS:
        net = GeneSegNet(NetworkConfig(widths=widths)).eval()
        if args.window:
            net = net.to(memory_format=torch.channels_last)
        n = sum(p.numel() for p in net.parameters())
        gflop = conv_gflop_per_megapixel(net, x)
        fp32 = throughput(net, x, None)
        bf16 = throughput(net, x, torch.bfloat16) if cpu_supports_bf16() else float("nan")
        print(f"{str(widths):24s}  {n:10d}  {gflop:13.1f}  {fp32:9.2f}  {gflop * fp32:17.0f}  {bf16:9.2f}")


if __name__ == "__main__":
    main()
