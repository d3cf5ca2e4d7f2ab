"""Choose a model's confidence threshold per transcript density on validation data, and write the model with it.

Usage::

    python scripts/choose_confidence_by_density.py --model generalist \\
        --out src/gsn_spatial/models/weights/generalist_v2.pt

Where transcripts are sparse the network is less sure how far a cell reaches, so its confidence falls off
sooner at the cell's edge and one threshold for all densities leaves sparse tissue's cells too small. This
script scores the thresholds ``CONFIDENCE_GRID`` at three transcript densities (0.1, 0.3 and 1 per um^2 on
20 domain-randomised validation tissues; the simulator's default tissue at 16, 80 and 400 transcripts per
cell on 4 more validation seeds), the other decoding settings as the model has them, by the score of
``scripts/choose_decoding.py``: (F1@0.5 + mean matched IoU) / 2, the two kinds of tissue weighing the same.
A density's best threshold replaces the model's single one
only where its gain, paired per tissue, is more than twice its standard error (elsewhere the scores are flat
and the top one is noise). The thresholds are stored with the tissue density measured as ``segment`` measures it
(``core.rna.density.rna_map_settings``) in ``meta["decode"]["confidence_by_density"]``; ``segment`` and
``train`` interpolate it in log density (:func:`gsn_spatial.models.confidence_for_density`). Validation seeds
30011-30034 only (``benchmarks/heldout.py``); nothing held out is read.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_generalist_model import PIXEL_SIZE, default_tissue, normalised, rna_map, simulator_params  # noqa: E402

import gsn_spatial as gsn  # noqa: E402
from gsn_spatial.core.decode.cells import decode_cells  # noqa: E402
from gsn_spatial.core.metrics.matching import match_scores, mean_best_iou  # noqa: E402
from gsn_spatial.core.network.tiling import predict_maps  # noqa: E402
from gsn_spatial.core.rna.density import rna_map_settings  # noqa: E402
from gsn_spatial.core.simulate.tissue import TissueParameters, simulate_tissue  # noqa: E402

CONFIDENCE_GRID = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6)
RANDOMISED_SEEDS = range(30_011, 30_031)  # validation seeds (benchmarks/heldout.py SIM_VAL_SEEDS)
DEFAULT_TISSUE_SEEDS = range(30_031, 30_035)
PER_UM2 = (0.1, 0.3, 1.0)  # randomised tissues
PER_CELL = (16.0, 80.0, 400.0)  # the default tissue: 0.2x, 1x, 5x its density


def measured_density(xy: np.ndarray, shape: tuple[int, int], spec) -> float:
    """Transcripts per um^2 of tissue, as ``segment`` measures it."""
    return rna_map_settings(
        xy, shape, pixel_size=PIXEL_SIZE, sigma_um=spec.rna_sigma_um, norm=spec.rna_norm, bin_um=spec.density_bin_um
    )[2]


def validation_tissues(spec):
    """``(kind, density step, measured per um^2, inputs, labels)`` for every validation tissue."""
    rng = np.random.default_rng(11)
    for seed in RANDOMISED_SEEDS:
        shape, params = simulator_params(rng)
        cell_um = params["cell_diameter_px"] * PIXEL_SIZE
        for step, per_um2 in enumerate(PER_UM2):
            p = {**params, "transcripts_per_cell": per_um2 * np.pi * (cell_um / 2) ** 2}
            t = simulate_tissue(shape, TissueParameters(**p), seed=seed)
            if t.cells.max() == 0:
                continue
            inputs = np.stack([normalised(t.image, spec), rna_map(t.points_xy, t.image.shape, spec)])
            yield "randomised", step, measured_density(t.points_xy, shape, spec), inputs, t.cells
    for seed in DEFAULT_TISSUE_SEEDS:
        for step, per_cell in enumerate(PER_CELL):
            image, xy, cells = default_tissue(seed, per_cell)
            inputs = np.stack([normalised(image, spec), rna_map(xy, image.shape, spec)])
            yield "default tissue", step, measured_density(xy, image.shape, spec), inputs, cells


def _row(scores, digits: int) -> str:
    return " ".join(f"{c}:{s:.{digits}f}" for c, s in zip(CONFIDENCE_GRID, scores, strict=True))


def choose(model) -> tuple[list[list[float]], list[dict]]:
    decode = {k: v for k, v in model.meta.get("decode", {}).items() if k != "confidence_by_density"}
    scores: dict[tuple[int, str], list[np.ndarray]] = {}
    densities: dict[int, list[float]] = {}
    for kind, step, per_um2, inputs, truth in validation_tissues(model.input):
        maps = predict_maps(model.network, inputs)
        row = []
        for conf in CONFIDENCE_GRID:
            labels, _ = decode_cells(maps, **{**decode, "confidence_threshold": conf})
            row.append(0.5 * match_scores(truth, labels).f1 + 0.5 * mean_best_iou(truth, labels))
        scores.setdefault((step, kind), []).append(np.array(row))
        densities.setdefault(step, []).append(per_um2)
        print(f"{kind} step {step} ({per_um2:.3f} /um^2): " + _row(row, 3))
    table, rows = [], []
    base = CONFIDENCE_GRID.index(decode["confidence_threshold"])
    for step in sorted(densities):
        kinds = [np.array(v) for (s, _), v in scores.items() if s == step]
        mean = np.mean([k.mean(axis=0) for k in kinds], axis=0)
        # Gain of each threshold over the model's single one, paired per tissue; its standard error with each kind
        # weighing the same. A threshold replaces the model's only where it gains more than twice that: where the
        # scores are flat, which threshold comes out on top is noise.
        gain = mean - mean[base]
        se = np.sqrt(sum((k - k[:, [base]]).var(axis=0, ddof=1) / len(k) for k in kinds)) / len(kinds)
        best = int(np.argmax(mean))
        chosen = CONFIDENCE_GRID[best] if gain[best] > 2 * se[best] else CONFIDENCE_GRID[base]
        density = float(np.median(densities[step]))
        table.append([round(density, 4), chosen])
        rows.append({
            "per_um2": round(density, 4),
            "scores": dict(zip(CONFIDENCE_GRID, np.round(mean, 4).tolist(), strict=True)),
            "gain_se": dict(zip(CONFIDENCE_GRID, np.round(se, 4).tolist(), strict=True)),
        })  # fmt: skip
        print(
            f"step {step}: median {density:.3f} /um^2, chosen {chosen} (best {CONFIDENCE_GRID[best]}, gain "
            f"{gain[best]:+.4f}, s.e. {se[best]:.4f}), " + _row(mean, 4)
        )
    return table, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="generalist", help="a shipped model's name or a model file")
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = gsn.models.load(args.model)
    table, rows = choose(model)
    model.meta["decode"] = {**model.meta.get("decode", {}), "confidence_by_density": table}
    model.meta["confidence_by_density_chosen"] = {
        "date": datetime.date.today().isoformat(),
        "script": "scripts/choose_confidence_by_density.py",
        "confidence_grid": list(CONFIDENCE_GRID),
        "scores": rows,
    }
    model.save(args.out)
    print(f"chosen {table}; saved {args.out}")


if __name__ == "__main__":
    main()
