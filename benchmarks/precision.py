"""float32 vs bfloat16 inference: whole-cell F1 against the truth and segment time.

Usage: ``python benchmarks/precision.py``. Segments two simulated 1024 x 1024 px tissues with the
shipped model, once with ``gsn.settings.cpu_bf16 = False`` and once with ``True`` (bfloat16 autocast,
used only on CPUs with native bf16: AMX / AVX-512 bf16), and prints a table.
"""

from __future__ import annotations

import time

import gsn_spatial as gsn
from gsn_spatial.core.metrics.matching import match_scores
from gsn_spatial.core.network.device import cpu_supports_bf16


def main() -> None:
    model = gsn.models.load()
    print(f"CPU has native bf16: {cpu_supports_bf16()}")
    print("seed  precision  segment_s  F1@0.5  F1@0.75")
    for seed in (2026, 7):
        for bf16 in (False, True):
            gsn.settings.cpu_bf16 = bf16
            sdata = gsn.datasets.synthetic_tissue((1024, 1024), seed=seed)
            t0 = time.perf_counter()
            gsn.tl.segment(sdata, model=model)
            seconds = time.perf_counter() - t0
            truth, labels = sdata["cells"].values, sdata["gsn_labels"].values
            f5 = match_scores(truth, labels, threshold=0.5).f1
            f75 = match_scores(truth, labels, threshold=0.75).f1
            print(f"{seed:4d}  {'bfloat16' if bf16 else 'float32':9s}  {seconds:9.2f}  {f5:6.4f}  {f75:7.4f}")


if __name__ == "__main__":
    main()
