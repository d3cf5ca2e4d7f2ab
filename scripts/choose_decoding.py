"""Choose a trained model's decoding settings again on the validation data, and write the model with them.

Usage::

    python scripts/choose_decoding.py --model generalist --out src/gsn_spatial/models/weights/generalist_v2.pt

The same grid and score as at the end of ``scripts/train_generalist_model.py`` (``decode_grid`` on
``validation_samples``): confidence and centre thresholds, peak spacing and vote reach that maximise
(F1@0.5 + mean matched IoU) / 2, each kind of validation data weighing the same. Only ``meta["decode"]``,
``meta["decode_grid"]`` and a record of this choice change; the weights are written as they were read.
Nothing held out is read. ``meta["decode"]`` is written afresh, without a confidence threshold per transcript
density: choose that again after this (``scripts/choose_confidence_by_density.py``), since it is chosen against
the threshold set here.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_generalist_model import CONFIDENCE_GRID, decode_grid, validation_samples  # noqa: E402

import gsn_spatial as gsn  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="generalist", help="a shipped model's name or a model file")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    model = gsn.models.load(args.model)
    val = validation_samples(model.input)
    decode, grid = decode_grid(model.network, val)
    print(f"before: {model.meta.get('decode')}\nchosen: {decode}")
    model.meta["decode"] = decode
    model.meta["decode_grid"] = grid
    model.meta["decode_chosen"] = {
        "date": datetime.date.today().isoformat(),
        "script": "scripts/choose_decoding.py",
        "validation": dict(collections.Counter(kind for kind, _ in val)),
        "confidence_grid": list(CONFIDENCE_GRID),
    }
    model.save(args.out)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
