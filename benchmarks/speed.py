"""Speed of each stage and of ``gsn.tl.segment`` end to end, next to Cellpose 3.1's ``eval``, in one process.

On one synthetic 2048 x 2048 tissue (about 0.44 M transcripts) it prints megapixels/s of
(a) the network alone (one pass per 1152 px block window, as ``segment`` runs it:
batch norms folded, channels-last, bf16 where the CPU has it; also float32, int8
(where the model carries int8 ranges) and compiled with ``torch.compile``), (b) the RNA location map (binned, the
default, and exact), (c) decoding, (d) transcript assignment and
(e) ``gsn.tl.segment`` end to end (defaults: int8 on a CPU without bf16; float32 when they are int8;
and with ``gsn.settings.compile``);
then the same image through Cellpose 3.1's ``CellposeModel(pretrained_model=False).eval`` (random weights: its timing,
not its masks, is what is compared) and the ratio. It also checks that the
speed-ups leave quality unchanged: F1 against the truth of the default
(bf16 where the CPU has it, one pass per window, binned RNA map) and of the
float32, 50 %-overlap tiled reference with the exact RNA map.

Cellpose 3.1 pins numpy < 2.1, so it lives in its own environment:

    python3 -m venv /tmp/venv-cp
    /tmp/venv-cp/bin/pip install torch==2.13.0 -e . "cellpose==3.1.1.3"
    /tmp/venv-cp/bin/python benchmarks/speed.py

Without cellpose installed the Cellpose rows are skipped.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import tempfile
import time

import numpy as np
import torch

import gsn_spatial as gsn
from gsn_spatial import _sdata
from gsn_spatial.core.assign.counts import lookup_cells
from gsn_spatial.core.decode.cells import decode_cells
from gsn_spatial.core.network.device import resolve_device
from gsn_spatial.core.network.quantize import int8_available
from gsn_spatial.core.network.tiling import predict_maps
from gsn_spatial.core.network.unet import fold_batch_norms
from gsn_spatial.core.rna.density import rna_density_window
from gsn_spatial.core.slide.blocks import BlockGrid
from gsn_spatial.core.slide.steps import assign_slide
from gsn_spatial.core.slide.workdir import WorkDir


def timed(fn, repeats: int = 1, warmup: bool = True) -> float:
    """Best wall time of ``repeats`` calls, after one warm-up call (``warmup=False``: none)."""
    if warmup:
        fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def f1s(sdata) -> tuple[float, float]:
    return tuple(
        gsn.qc.match_reference(sdata, labels_key="gsn_labels", reference_key="cells", iou_threshold=t)["f1"]
        for t in (0.5, 0.75)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--model", default=gsn.models.DEFAULT_MODEL, help="shipped model name or file")
    args = parser.parse_args()
    n = args.size
    mp = n * n / 1e6
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, model {args.model!r}")

    sdata = gsn.datasets.synthetic_tissue((n, n), seed=args.seed)
    model = gsn.models.load(args.model)
    net = fold_batch_norms(model.network)  # as segment runs it in float
    device, autocast = resolve_device("cpu", cpu_bf16=gsn.settings.cpu_bf16)
    image = np.asarray(sdata.images["dapi"].values[0], dtype=np.float32)
    lo, hi = np.percentile(image, model.input.percentiles)
    image = np.clip((image - lo) / (hi - lo), 0, 1).astype(np.float32)
    m = _sdata.points_to_pixels(sdata, "transcripts", "dapi")
    xy = sdata.points["transcripts"][["x", "y"]].compute().to_numpy() @ m[:2, :2].T + m[:2, 2]
    genes = sdata.points["transcripts"]["gene"].compute().cat.codes.to_numpy()
    rows = []

    # (b) RNA map of the whole image: the default (binned) and the exact sum of Gaussians.
    spec = model.input
    for method in ("binned", "exact"):
        t_rna = timed(
            lambda m=method: rna_density_window(xy, (n, n), sigma=spec.rna_sigma, mode=spec.rna_mode, method=m)
        )
        rows.append((f"(b) RNA location map, {method}", mp / t_rna))
    rna = rna_density_window(xy, (n, n), sigma=spec.rna_sigma, mode=spec.rna_mode, method=spec.rna_method)
    inputs = np.stack([image, rna])

    # (a) Network alone: one pass per 1152 px window, as segment's default blocks (1024 + 2 * 64 halo).
    window = inputs[:, :1152, :1152]
    t_net = timed(
        lambda: predict_maps(net, window, tile_size=1152, overlap=0, batch_size=1, autocast_dtype=autocast), 2
    )
    rows.append((f"(a) network, {'bf16' if autocast else 'float32'}, channels-last", 1152 * 1152 / 1e6 / t_net))
    t_net32 = timed(lambda: predict_maps(net, window, tile_size=1152, overlap=0, batch_size=1), 1)
    rows.append(("(a) network, float32, channels-last", 1152 * 1152 / 1e6 / t_net32))
    if model.int8_ranges and int8_available():  # what segment runs on a CPU without bf16 (gsn.settings.cpu_int8)
        net8 = model.inference_network(int8=True)
        t_net8 = timed(lambda: predict_maps(net8, window, tile_size=1152, overlap=0, batch_size=1), 2)
        rows.append(("(a) network, int8, channels-last", 1152 * 1152 / 1e6 / t_net8))
    compiled = copy.deepcopy(net)
    compiled.compile(dynamic=False)
    t0 = time.perf_counter()
    predict_maps(compiled, window, tile_size=1152, overlap=0, batch_size=1, autocast_dtype=autocast)
    t_compile = time.perf_counter() - t0
    t_netc = timed(
        lambda: predict_maps(compiled, window, tile_size=1152, overlap=0, batch_size=1, autocast_dtype=autocast),
        2,
        warmup=False,
    )
    rows.append((f"(a) network, {'bf16' if autocast else 'float32'}, torch.compile", 1152 * 1152 / 1e6 / t_netc))

    # (c) Decoding the maps of the whole image.
    maps = predict_maps(net, inputs, tile_size=1024, overlap=64, batch_size=1, autocast_dtype=autocast)
    t_dec = timed(lambda: decode_cells(maps))
    rows.append(("(c) decoding", mp / t_dec))

    # (d) Transcript assignment, out of core (bin, label statistics, look-up, counts).
    truth = np.asarray(sdata.labels["cells"].values)

    class Parts:
        n_partitions = 4

        def __call__(self, p):
            idx = np.array_split(np.arange(len(xy)), 4)[p]
            return xy[idx], genes[idx]

    def assign():
        with tempfile.TemporaryDirectory() as d:
            work = WorkDir(d, BlockGrid((n, n), 1024, 0), 4)
            assign_slide(work, labels=lambda y0, y1, x0, x1: truth[y0:y1, x0:x1], points=Parts())

    t_asg = timed(assign)
    rows.append((f"(d) transcript assignment ({len(xy) / t_asg / 1e6:.1f} M transcripts/s)", mp / t_asg))
    assert (lookup_cells(truth, xy) >= 0).all()

    # (e) End to end, with the defaults (int8 on a CPU without bf16), and in float.
    t_seg = timed(lambda: gsn.tl.segment(sdata, model=model, overwrite=True))
    precision = sdata.tables["gsn_table"].uns["gsn"]["params"]["precision"]
    rows.append((f"(e) gsn.tl.segment end to end (defaults: {precision})", mp / t_seg))
    f1_default = f1s(sdata)
    f1_float = None
    if precision == "int8":
        gsn.settings.cpu_int8 = False
        try:
            t_seg32 = timed(lambda: gsn.tl.segment(sdata, model=model, overwrite=True), warmup=False)
        finally:
            gsn.settings.cpu_int8 = True
        rows.append(("(e) gsn.tl.segment end to end, float32 (gsn.settings.cpu_int8 = False)", mp / t_seg32))
        f1_float = f1s(sdata)
    gsn.settings.compile = True
    try:
        t_segc = timed(lambda: gsn.tl.segment(sdata, model=model, overwrite=True))  # the warm-up compiles
    finally:
        gsn.settings.compile = False
    rows.append(("(e) gsn.tl.segment end to end, gsn.settings.compile (after compiling)", mp / t_segc))
    f1_compiled = f1s(sdata)

    # Quality reference: float32, exact RNA map, 256 px tiles with the paper's 50 % overlap.
    exact = dataclasses.replace(model, input=dataclasses.replace(model.input, rna_method="exact"))
    gsn.settings.cpu_bf16 = gsn.settings.cpu_int8 = False
    try:
        t_ref = timed(
            lambda: gsn.tl.segment(sdata, model=exact, tile_size=256, tile_overlap=128, overwrite=True), warmup=False
        )
    finally:
        gsn.settings.cpu_bf16 = gsn.settings.cpu_int8 = True
    rows.append(("(e') segment, float32, exact RNA map, 256 px tiles, 50 % overlap (reference)", mp / t_ref))
    f1_ref = f1s(sdata)

    cellpose_rate = None
    try:
        from cellpose import models as cp_models
    except ImportError:
        print("cellpose not installed: Cellpose rows skipped (see the module docstring)")
    else:
        raw = np.asarray(sdata.images["dapi"].values[0])
        cp = cp_models.CellposeModel(gpu=False, pretrained_model=False)
        t_cp = timed(lambda: cp.eval(raw, channels=[0, 0], diameter=30.0), warmup=False)
        cellpose_rate = mp / t_cp
        rows.append(("Cellpose 3.1 CellposeModel(pretrained_model=False).eval", cellpose_rate))

    print(f"\n{n} x {n} px ({mp:.1f} MP), {len(xy) / 1e6:.2f} M transcripts\n")
    print("| stage | megapixels/s |")
    print("|---|--:|")
    for name, rate in rows:
        print(f"| {name} | {rate:.2f} |")
    print(f"\ntorch.compile of the network: {t_compile:.1f} s once per process")
    if cellpose_rate:
        print(f"segment end to end / Cellpose eval: {mp / t_seg / cellpose_rate:.1f}x")
    print(
        f"\nF1@0.5 / F1@0.75 against the truth: defaults {f1_default[0]:.4f} / {f1_default[1]:.4f}; "
        + (f"float32 {f1_float[0]:.4f} / {f1_float[1]:.4f}; " if f1_float else "")
        + f"compiled {f1_compiled[0]:.4f} / {f1_compiled[1]:.4f}; "
        f"float32 50 %-overlap reference {f1_ref[0]:.4f} / {f1_ref[1]:.4f}; "
        f"differences {f1_default[0] - f1_ref[0]:+.4f} / {f1_default[1] - f1_ref[1]:+.4f}"
    )


if __name__ == "__main__":
    main()
