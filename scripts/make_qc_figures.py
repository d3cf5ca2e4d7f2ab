"""Regenerate the QC figures and the comparison table of ``docs/qc.md``.

Simulates the demo tissue (``gsn.datasets.synthetic_tissue((1024, 1024), seed=2026)``, as
``gsn_spatial.demo`` does), segments it with GeneSegNet, runs the image-only baselines
(the paper's watershed, a plain nucleus watershed and nucleus expansion), prints
``gsn.qc.compare`` against the simulator's truth (``"cells"``) and writes one PNG per plot kind
and ``compare.csv`` into ``docs/figures/``.

    python scripts/make_qc_figures.py [--out docs/figures] [--size 1024] [--seed 2026]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import gsn_spatial as gsn  # noqa: E402
from gsn_spatial.qc._common import labels_array  # noqa: E402
from gsn_spatial.qc._counts import counts_for_labels  # noqa: E402

NAMES = {
    "gsn_labels": "GeneSegNet",
    "watershed": "watershed (paper's recipe)",
    "nuclei_watershed": "nucleus watershed",
    "expanded_nuclei": "nucleus expansion 3.5 um",
    "cells": "truth",
}


def marker_tables(sdata, *, n_types: int = 5, n_positive: int = 3, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Marker tables learnt from the truth: k-means cell types of the true cells' expression; the
    ``n_positive`` most enriched genes of a type are its positive markers, and the positive markers of
    other types expressed below a quarter of their average in this type are its negative markers."""
    from sklearn.cluster import KMeans

    _, labels = labels_array(sdata, "cells")
    counts = counts_for_labels(sdata, "cells", labels, points_key="transcripts")
    x = counts.counts.toarray().astype(float)
    x = x[x.sum(axis=1) >= 10]
    frac = x / x.sum(axis=1, keepdims=True)
    types = KMeans(n_types, n_init=10, random_state=seed).fit_predict(frac)
    mean = np.stack([frac[types == t].mean(axis=0) for t in range(n_types)])
    enrich = mean / frac.mean(axis=0)
    genes = counts.gene_names
    pos = np.zeros_like(mean, dtype=int)
    for t in range(n_types):
        pos[t, np.argsort(-enrich[t])[:n_positive]] = 1
    neg = np.zeros_like(pos)
    for t in range(n_types):
        others = pos[np.arange(n_types) != t].any(axis=0) & (pos[t] == 0)
        neg[t] = others & (enrich[t] < 0.25)
    index = [f"type{t}" for t in range(n_types)]
    return pd.DataFrame(pos, index=index, columns=genes), pd.DataFrame(neg, index=index, columns=genes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "figures")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    sdata = gsn.datasets.synthetic_tissue((args.size, args.size), seed=args.seed)
    t0 = time.perf_counter()
    gsn.tl.segment(sdata)
    print(f"GeneSegNet: {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    gsn.tl.watershed(sdata)
    gsn.tl.watershed_nuclei(sdata, labels_key_added="nuclei_watershed")
    gsn.tl.expand_nuclei(sdata, image_key="dapi", distance_um=3.5)  # a quarter of the 14 um cell diameter
    print(f"baselines: {time.perf_counter() - t0:.1f} s")

    pos, neg = marker_tables(sdata)
    methods = ["gsn_labels", "watershed", "nuclei_watershed", "expanded_nuclei"]
    t0 = time.perf_counter()
    table = gsn.qc.compare(
        sdata,
        labels_keys=methods,
        reference_key="cells",
        points_key="transcripts",
        positive_markers=pos,
        negative_markers=neg,
    )
    truth = gsn.qc.compare(
        sdata, labels_keys=["cells"], points_key="transcripts", positive_markers=pos, negative_markers=neg
    )
    print(f"compare: {time.perf_counter() - t0:.1f} s")
    both = pd.concat([table, truth])
    both.to_csv(args.out / "compare.csv", float_format="%.4g")
    with pd.option_context("display.max_columns", None, "display.width", 250, "display.precision", 3):
        print(both.T)

    keys = [*methods, "cells"]
    names = [NAMES[k] for k in keys]
    win = (300, 500, 300, 500)
    fig, axes = plt.subplots(1, 3, figsize=(15, 5.4))
    for ax, key in zip(axes, ["gsn_labels", "watershed", "expanded_nuclei"], strict=True):
        gsn.pl.segmentation_overlay(
            sdata,
            labels_key=key,
            reference_key="cells",
            points_key="transcripts",
            window=win,
            ax=ax,
            point_size=5,
            title=f"{NAMES[key]} (red) vs truth (cyan)",
        )
    fig.suptitle("transcripts inside cells light blue, outside yellow", y=0.02)
    fig.tight_layout()
    fig.savefig(args.out / "overlay.png", dpi=110)
    plt.close(fig)

    gsn.pl.metric_distributions(
        sdata,
        labels_keys=keys,
        names=names,
        points_key="transcripts",
        metrics=["area", "elongation", "convexity", "total_counts", "n_genes_by_counts"],
        save=args.out / "metric_distributions.png",
    )
    plt.close("all")
    gsn.pl.cell_calling_curve(
        sdata, labels_keys=keys, names=names, points_key="transcripts", save=args.out / "cell_calling.png"
    )
    plt.close("all")
    gsn.pl.intensity_capture(
        sdata, labels_keys=keys, names=names, points_key="transcripts", save=args.out / "intensity_capture.png"
    )
    plt.close("all")
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.6))
    for ax, key in zip(axes, ["gsn_labels", "expanded_nuclei", "cells"], strict=True):
        gsn.pl.correlation_scatter(sdata, labels_key=key, points_key="transcripts", ax=ax)
        ax.set_title(f"{NAMES[key]}\n{ax.get_title().split(': ', 1)[1]}", fontsize=9)
    fig.tight_layout()
    fig.savefig(args.out / "correlation_scatter.png", dpi=110)
    plt.close(fig)
    print(f"wrote {sorted(p.name for p in args.out.iterdir())}")


if __name__ == "__main__":
    main()
