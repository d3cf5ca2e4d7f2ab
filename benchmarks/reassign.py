"""How the expression-aware assignment's reach and spatial decay were chosen (validation data only).

Usage::

    python benchmarks/reassign.py [--seeds 30000 30001 30002] [--xenium]

The default model segments the simulator's validation tissues (``heldout.SIM_VAL_SEEDS``, 256 x 256 um at
0.5 um/px) with ``assignment="mask"``; on the same labels, ``core.assign.expression.reassign_by_expression`` runs
with each reach (radius) and decay length of a grid, and the table gives the gain in transcript accuracy
(``core.metrics.matching.transcript_agreement`` against the simulator's truth) over the mask. ``--xenium`` does the
same on the Xenium crop's training columns (left of ``heldout.XENIUM_HELDOUT_COLS``), where the score is
MECR and the share of transcripts assigned (no truth). The held-out figures are ``benchmarks/generalist.py``'s.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import heldout  # noqa: E402

import gsn_spatial as gsn  # noqa: E402
from gsn_spatial import _sdata  # noqa: E402
from gsn_spatial.core.assign.counts import count_matrix, lookup_cells  # noqa: E402
from gsn_spatial.core.assign.expression import ExpressionProfiles, reassign_by_expression  # noqa: E402
from gsn_spatial.core.metrics import expression as expression_metrics  # noqa: E402
from gsn_spatial.core.metrics.matching import transcript_agreement  # noqa: E402

RADII_UM = (1.0, 2.0, 3.0)
LENGTHS_UM = (0.5, 1.0, 2.0)


def _on_labels(sdata, labels_key: str):
    """Transcripts on the labels' pixel grid: ``(labels, xy, gene codes, gene names, frame)``."""
    tx = sdata.points["transcripts"].compute()
    a = _sdata.points_to_pixels(sdata, "transcripts", labels_key)
    xy = tx[["x", "y"]].to_numpy() @ a[:2, :2].T + a[:2, 2]
    names, codes = np.unique(tx["gene"].astype(str).to_numpy(), return_inverse=True)
    return np.asarray(sdata.labels[labels_key].data), xy, codes, names, tx


def _grid(labels, xy, codes, n_genes, pixel_size):
    own = lookup_cells(labels, xy)
    ids = np.unique(own[own > 0])
    profiles = ExpressionProfiles.from_counts(ids, count_matrix(own, codes, ids, n_genes))
    for r, length in itertools.product(RADII_UM, LENGTHS_UM):
        yield (
            r,
            length,
            own,
            reassign_by_expression(labels, xy, codes, profiles, radius=r / pixel_size, length=length / pixel_size),
        )


def simulator(seeds: list[int]) -> None:
    gains: dict[tuple[float, float], list[float]] = {}
    for seed in seeds:
        sdata = gsn.datasets.synthetic_tissue((512, 512), seed=seed)
        gsn.tl.segment(sdata, assignment="mask", pixel_size=0.5)
        labels, xy, codes, names, tx = _on_labels(sdata, "gsn_labels")
        truth = tx["cell_id"].to_numpy()
        for r, length, own, new in _grid(labels, xy, codes, len(names), 0.5):
            base = transcript_agreement(truth, own).fraction_same
            gains.setdefault((r, length), []).append(transcript_agreement(truth, new).fraction_same - base)
    print(f"simulator validation seeds {seeds}: transcript accuracy gain over the mask")
    print("| radius um | length um | " + " | ".join(f"seed {s}" for s in seeds) + " | mean |")
    print("|---|---|" + "---|" * (len(seeds) + 1))
    for (r, length), g in gains.items():
        print(f"| {r:g} | {length:g} | " + " | ".join(f"{v:+.4f}" for v in g) + f" | {np.mean(g):+.4f} |")


def xenium() -> None:
    import spatialdata as sd

    full = gsn.io.read_xenium_crop(heldout.DATA / "xenium_breast_crop")
    image_key = next(iter(full.images))
    cs = next(k for k, t in sd.transformations.get_transformation(full.images[image_key], get_all=True).items()
              if isinstance(t, sd.transformations.Identity))  # fmt: skip
    stop = heldout.XENIUM_HELDOUT_COLS[0] - round(heldout.GUARD_UM / heldout.XENIUM_PIXEL_SIZE)  # Crop.train_cols
    sdata = sd.bounding_box_query(
        full, axes=("x", "y"), min_coordinate=[0, 0], max_coordinate=[stop, 1200],
        target_coordinate_system=cs, filter_table=False,
    )  # fmt: skip
    gsn.tl.segment(sdata, assignment="mask")
    labels, xy, codes, names, _ = _on_labels(sdata, "gsn_labels")
    from gsn_spatial.qc._common import read_markers

    markers = heldout.DATA / "xenium_breast_crop" / "sc_references" / "sc_breast_markers_pos.csv"
    _, pos = read_markers(str(markers), list(names), parameter="positive_markers")

    def score(cell):
        ids = np.unique(cell[cell > 0])
        return (cell > 0).mean(), expression_metrics.mecr(count_matrix(cell, codes, ids, len(names)), pos)[0]

    print(f"Xenium training columns 0-{stop}: share assigned, MECR")
    print("| radius um | length um | assigned | MECR |")
    print("|---|---|---|---|")
    first = True
    for r, length, own, new in _grid(labels, xy, codes, len(names), heldout.XENIUM_PIXEL_SIZE):
        if first:
            print("| mask | | {:.3f} | {:.4f} |".format(*score(own)))
            first = False
        print(f"| {r:g} | {length:g} | " + "{:.3f} | {:.4f} |".format(*score(new)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=list(heldout.SIM_VAL_SEEDS)[:3])
    ap.add_argument("--xenium", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if any(s not in heldout.SIM_VAL_SEEDS for s in args.seeds):
        raise SystemExit("choose settings on validation seeds only (heldout.SIM_VAL_SEEDS)")
    simulator(args.seeds)
    if args.xenium:
        xenium()


if __name__ == "__main__":
    main()
