"""Two models on validation tissues of one kind the training simulator draws only for a share of its tissues.

Usage::

    python scripts/compare_on_tissue_kind.py generalist_v1 generalist --kind stretched
    python scripts/compare_on_tissue_kind.py generalist ft3.pt --kind thin

Kinds, each on 8 seeds of the simulator's validation split (``benchmarks/heldout.py``; nothing held out, never
trained on), drawn by the training script's ``simulator_samples`` with every tissue of the kind:

- ``stretched`` (seeds 30040-30047): stretched 1.5-4x as one aligned bundle, elongated cells and nuclei
  (``bundle_stretch``). This chose version 2 of ``generalist`` (docs/models.md).
- ``thin`` (seeds 30050-30057): cells barely larger than their nuclei (``thin_cytoplasm``). This measured the
  candidate version 3, which gained here and was not shipped (docs/models.md).

Each model decodes with its file's settings (without the transcript-density table); the score is the decoding
choice's, (F1@0.5 + mean matched IoU) / 2, and the paired gain of the second model over the first is printed
with its standard error, with the best nucleus expansion's mean matched IoU per tissue for scale.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from skimage.segmentation import expand_labels

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from train_generalist_model import PIXEL_SIZE, bundle_stretch, simulator_samples, thin_cytoplasm  # noqa: E402

from gsn_spatial.core.decode.cells import decode_cells  # noqa: E402
from gsn_spatial.core.metrics.matching import match_scores, mean_best_iou  # noqa: E402
from gsn_spatial.core.network.tiling import predict_maps  # noqa: E402
from gsn_spatial.models import load  # noqa: E402

KINDS = {
    # seeds, the draw's shares (bundle, thin), what the kind's column shows
    "stretched": (range(30040, 30048), {"bundle_share": 1.0}, lambda s: f"{bundle_stretch(s, 1.0):.2f}"),
    "thin": (
        range(30050, 30058),
        {"bundle_share": 0.0, "thin_share": 1.0},
        lambda s: f"{thin_cytoplasm(s, 1.0)['cell_diameter_px'] * PIXEL_SIZE:.1f} um",
    ),
}
EXPANSIONS_PX = (0, 1, 2, 4, 8, 12)  # working px (PIXEL_SIZE um each)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs=2, help="two models (names or files)")
    ap.add_argument("--kind", choices=sorted(KINDS), default="stretched")
    args = ap.parse_args()
    seeds, shares, describe = KINDS[args.kind]
    names = args.models
    models = {name: load(name) for name in names}
    scores = {name: [] for name in names}
    print(
        f"| seed | {args.kind} | "
        + " | ".join(f"{n}: score / F1@0.5 / IoU / cells" for n in names)
        + " | best expansion IoU | true cells |"
    )
    print("|---" * (4 + len(names)) + "|")
    # The same tissues for each model, each with its own input settings.
    samples = {n: simulator_samples(seeds, m.input, np.random.default_rng(7), **shares) for n, m in models.items()}
    if any(len(s) != len(seeds) for s in samples.values()):
        raise SystemExit("a validation tissue came out empty; choose other seeds")
    for k, seed in enumerate(seeds):
        tissue = samples[names[0]][k][0]
        cells = []
        for name, model in models.items():
            decode = {key: v for key, v in model.meta["decode"].items() if key != "confidence_by_density"}
            labels, _ = decode_cells(predict_maps(model.network, samples[name][k][1].inputs), **decode, min_area=10)
            f1 = match_scores(tissue.cells, labels, threshold=0.5).f1
            iou = mean_best_iou(tissue.cells, labels)
            scores[name].append((f1 + iou) / 2)
            cells.append(f"{scores[name][-1]:.3f} / {f1:.3f} / {iou:.3f} / {int(labels.max())}")
        best = max(mean_best_iou(tissue.cells, expand_labels(tissue.nuclei, d)) for d in EXPANSIONS_PX)
        print(
            f"| {seed} | {describe(seed)} | " + " | ".join(cells) + f" | {best:.3f} | {int(tissue.cells.max())} |",
            flush=True,
        )
    a, b = (np.array(scores[n]) for n in names)
    gain = b - a
    print(f"mean score {names[0]} {a.mean():.4f}, {names[1]} {b.mean():.4f}; paired gain {gain.mean():+.4f} "
          f"(s.e. {gain.std(ddof=1) / np.sqrt(len(gain)):.4f})")  # fmt: skip


if __name__ == "__main__":
    main()
