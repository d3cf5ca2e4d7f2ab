"""Two models on validation tissues stretched as one aligned bundle (elongated cells and nuclei).

Usage::

    python scripts/compare_on_stretched_tissue.py generalist_v1 generalist

Seeds 30040-30047 of the simulator's validation split (``benchmarks/heldout.py``; nothing held out, never trained
on), drawn by the training script's ``simulator_samples`` with every tissue stretched 1.5-4x
(``bundle_share=1``, ``TissueParameters.bundle_stretch``). Each model decodes with its file's settings (without
the transcript-density table); the score is the decoding choice's, (F1@0.5 + mean matched IoU) / 2, and the
paired gain of the second model over the first is printed with its standard error. This chose version 2 of
``generalist`` (docs/models.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from train_generalist_model import bundle_stretch, simulator_samples  # noqa: E402

from gsn_spatial.core.decode.cells import decode_cells  # noqa: E402
from gsn_spatial.core.metrics.matching import match_scores, mean_best_iou  # noqa: E402
from gsn_spatial.core.network.tiling import predict_maps  # noqa: E402
from gsn_spatial.models import load  # noqa: E402

SEEDS = range(30040, 30048)


def main() -> None:
    names = sys.argv[1:] or ["generalist_v1", "generalist"]
    if len(names) != 2:
        raise SystemExit("give two models (names or files)")
    models = {name: load(name) for name in names}
    scores = {name: [] for name in names}
    print("| seed | stretch | " + " | ".join(f"{n}: score / F1@0.5 / IoU / cells" for n in names) + " | true cells |")
    print("|---" * (3 + len(names)) + "|")
    # The same tissues for each model, each with its own input settings.
    samples = {
        n: simulator_samples(SEEDS, m.input, np.random.default_rng(7), bundle_share=1.0) for n, m in models.items()
    }
    if any(len(s) != len(SEEDS) for s in samples.values()):
        raise SystemExit("a validation tissue came out empty; choose other seeds")
    for k, seed in enumerate(SEEDS):
        tissue = samples[names[0]][k][0]
        cells = []
        for name, model in models.items():
            decode = {key: v for key, v in model.meta["decode"].items() if key != "confidence_by_density"}
            labels, _ = decode_cells(predict_maps(model.network, samples[name][k][1].inputs), **decode, min_area=10)
            f1 = match_scores(tissue.cells, labels, threshold=0.5).f1
            iou = mean_best_iou(tissue.cells, labels)
            scores[name].append((f1 + iou) / 2)
            cells.append(f"{scores[name][-1]:.3f} / {f1:.3f} / {iou:.3f} / {int(labels.max())}")
        print(
            f"| {seed} | {bundle_stretch(seed, 1.0):.2f} | " + " | ".join(cells) + f" | {int(tissue.cells.max())} |",
            flush=True,
        )
    a, b = (np.array(scores[n]) for n in names)
    gain = b - a
    print(f"mean score {names[0]} {a.mean():.4f}, {names[1]} {b.mean():.4f}; paired gain {gain.mean():+.4f} "
          f"(s.e. {gain.std(ddof=1) / np.sqrt(len(gain)):.4f})")  # fmt: skip


if __name__ == "__main__":
    main()
