"""Add int8 activation ranges to a model file, chosen on the model's own training data.

Usage::

    python scripts/calibrate_int8.py --model generalist --out src/gsn_spatial/models/weights/generalist_v2.pt
    python scripts/calibrate_int8.py --model generalist_small \\
        --out src/gsn_spatial/models/weights/generalist_small_v1.pt

The calibration inputs are network inputs at the model's working scale from the training splits of
``scripts/train_generalist_model.py`` (``benchmarks/heldout.py``; nothing held out is read): domain-randomised
simulator tissues of the first training seeds, DSB 2018 training images (image only) and the training columns of
the Xenium and CosMx crops. The weights are written back unchanged; ``meta["int8"]`` records the data.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT.parent / "benchmarks"))

import heldout  # noqa: E402
import train_generalist_model as recipe  # noqa: E402

from gsn_spatial.core.network.quantize import calibrate_int8, network_input  # noqa: E402
from gsn_spatial.models import load  # noqa: E402


def calibration_inputs(spec, n_sim: int, n_dsb: int) -> list[np.ndarray]:
    rng = np.random.default_rng(11)
    sim = [s.inputs for _, s in recipe.simulator_samples(list(heldout.SIM_TRAIN_SEEDS)[:n_sim], spec, rng)]
    dsb = [s.inputs for *_, s in recipe.dsb_samples(heldout.dsb_split("train")[:n_dsb], spec, rng)]
    crops = [recipe.crop_sample(c, spec).inputs for c in (heldout.xenium_crop(), heldout.cosmx_crop())]
    return sim + dsb + crops


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="generalist", help="a shipped name or a model file")
    ap.add_argument("--out", required=True, help="where to write the model with its int8 ranges")
    ap.add_argument("--n-sim", type=int, default=12)
    ap.add_argument("--n-dsb", type=int, default=12)
    args = ap.parse_args()
    model = load(args.model)
    inputs = calibration_inputs(model.input, args.n_sim, args.n_dsb)
    t0 = time.perf_counter()
    model.int8_ranges = calibrate_int8(model.inference_network(), (network_input(x) for x in inputs))
    seconds = time.perf_counter() - t0
    model.meta["int8"] = {
        "calibration": (
            f"{args.n_sim} simulator training tissues, {args.n_dsb} DSB training images, the Xenium and CosMx "
            "training columns; working scale; HistogramObserver ranges, activations 7 bit, "
            "full-resolution layers and heads float32"
        ),
        "date": datetime.date.today().isoformat(),
        "torch": str(torch.__version__),
    }
    model.save(args.out)
    print(f"{len(inputs)} inputs, {len(model.int8_ranges)} activation ranges in {seconds:.0f} s; saved {args.out}")


if __name__ == "__main__":
    main()
