"""Whole-slide scale: wall time, throughput and peak memory of ``gsn.tl.segment`` as the slide grows.

For synthetic slides of about 16, 64 and 256 megapixels (written once to
``--data-dir`` by :func:`gsn_spatial.datasets.write_synthetic_slide`, about
0.19 transcripts per pixel: ~50 M transcripts at 256 MP), each run happens in a
fresh process on the zarr store, so peak RSS is that run's alone. With
``--assign N`` it also times :func:`gsn_spatial.tl.assign_transcripts` alone
for N million uniformly placed transcripts against the 256 MP slide's labels.

    python benchmarks/scale.py                       # 16, 64, 256 MP
    python benchmarks/scale.py --sides 4096 --assign 10
    python benchmarks/scale.py --sides 4096 --fine 0.1   # also the same tissue imaged at 0.1 um/px

With ``--fine P`` each slide is also written imaged at ``P`` um per pixel (the 0.5 um/px image
upsampled lazily by ``gsn.pp.rescale_image``, the same points and coordinate systems, so the tissue
area is the same and ``segment`` reads the pixel size from the micron system) and segmented the same way.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

CHILD = """
import json, sys, time
import spatialdata as sd, gsn_spatial as gsn

def peak_rss_gb():
    # VmHWM belongs to this process's memory map; ru_maxrss would also count the parent's peak before exec.
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20

sdata = sd.read_zarr(sys.argv[1])
t = time.perf_counter()
{call}
wall = time.perf_counter() - t
rss = peak_rss_gb()
table = sdata.tables["{table}"]
# The stored per-transcript assignment must hold the same assignments as the table's counts.
in_points = int((sdata.points["{assignment}"]["cell_id"] > 0).sum().compute())
if in_points != int(table.X.sum()):
    sys.exit(f"assignment element has {{in_points}} assigned transcripts, the table {{int(table.X.sum())}}")
print(json.dumps({{"wall": wall, "cells": table.n_obs, "assigned": in_points, "rss_gb": rss}}))
"""
SEGMENT_OUTPUTS = {
    "labels": "gsn_labels",
    "table": "gsn_table",
    "assignment": "gsn_transcripts",
    "boundaries": "gsn_boundaries",
}
ASSIGN_OUTPUTS = {"table": "cells_table", "assignment": "uniform_cells"}
CHILD_SEGMENT = CHILD.format(
    call='gsn.tl.segment(sdata, image_key="dapi", points_key="transcripts")',
    table=SEGMENT_OUTPUTS["table"],
    assignment=SEGMENT_OUTPUTS["assignment"],
)
CHILD_ASSIGN = CHILD.format(
    call='gsn.tl.assign_transcripts(sdata, labels_key="cells", points_key="uniform")',
    table=ASSIGN_OUTPUTS["table"],
    assignment=ASSIGN_OUTPUTS["assignment"],
)


def ensure_slide(data_dir: Path, side: int) -> Path:
    from gsn_spatial.datasets import write_synthetic_slide

    path = data_dir / f"slide_{side}.zarr"
    if not path.exists():
        t = time.perf_counter()
        write_synthetic_slide(path, (side, side), seed=side, progress=True)
        print(f"wrote {path} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    return path


def ensure_fine_slide(store: Path, pixel_size: float) -> Path:
    """The slide of ``store`` (0.5 um/px) imaged at ``pixel_size``: its image upsampled, the rest as it is."""
    import spatialdata as sd

    import gsn_spatial as gsn

    path = store.with_name(f"{store.stem}_at{pixel_size:g}.zarr")
    if path.exists():
        return path
    t = time.perf_counter()
    src = sd.read_zarr(store)
    gsn.pp.rescale_image(src, image_key="dapi", factor=pixel_size / 0.5, key_added="fine", chunk_size=2048)
    fine = sd.SpatialData(images={"dapi": src.images["fine"]}, points={"transcripts": src.points["transcripts"]})
    fine.write(path)
    print(f"wrote {path} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    return path


def add_uniform_points(store: Path, n_million: int, per_partition: int = 1_000_000) -> int:
    """Add points ``"uniform"``: ``n_million`` M transcripts placed uniformly over the slide."""
    import dask.dataframe as dd
    import numpy as np
    import pandas as pd
    import spatialdata as sd
    from spatialdata.models import PointsModel
    from spatialdata.transformations import get_transformation

    sdata = sd.read_zarr(store)
    if "uniform" in sdata.points and len(sdata.points["uniform"]) == n_million * 1_000_000:
        return n_million * 1_000_000
    ref = sdata.points["transcripts"]
    x0, x1 = float(ref["x"].min().compute()), float(ref["x"].max().compute())
    y0, y1 = float(ref["y"].min().compute()), float(ref["y"].max().compute())
    genes = list(ref["gene"].cat.as_known().cat.categories)
    n_parts = n_million * 1_000_000 // per_partition

    def part(i: int) -> pd.DataFrame:
        rng = np.random.default_rng(i)
        return pd.DataFrame(
            {
                "x": rng.uniform(x0, x1, per_partition),
                "y": rng.uniform(y0, y1, per_partition),
                "gene": pd.Categorical.from_codes(rng.integers(0, len(genes), per_partition), categories=genes),
            }
        )

    frame = dd.from_map(part, range(n_parts))
    el = PointsModel.parse(
        frame,
        coordinates={"x": "x", "y": "y"},
        feature_key="gene",
        transformations=dict(get_transformation(ref, get_all=True)),
    )
    if "uniform" in sdata.points:
        sdata.delete_element_from_disk("uniform")
        del sdata["uniform"]
    sdata["uniform"] = el
    sdata.write_element("uniform")
    return n_parts * per_partition


def remove_outputs(store: Path, names: Iterable[str]) -> None:
    """Delete a previous run's outputs from the store.

    Each run then starts from the inputs alone: SpatialData reads tables into memory, so a previous
    run's tables would otherwise count in the next run's peak RSS (0.32 GB for the two tables of
    the 268 MP store, seen as run-to-run variation before this was done), and its outputs would be
    written twice (``overwrite=True`` in the object's own store).
    """
    import spatialdata as sd

    sdata = sd.read_zarr(store)
    for name in names:
        if name in sdata:
            del sdata[name]  # a lazily read element still backed by the files cannot be deleted from disk
            sdata.delete_element_from_disk(name)


def run_child(code: str, store: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", code, str(store)], capture_output=True, text=True, check=False)
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sides", type=int, nargs="+", default=[4096, 8192, 16384])
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/gsn_scale"))
    parser.add_argument("--assign", type=int, default=0, help="million uniform transcripts for the assignment run")
    parser.add_argument("--fine", type=float, default=None, help="also each slide imaged at this many um/px")
    args = parser.parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)

    import dask.dataframe as dd

    rows = []
    for side in args.sides:
        store = ensure_slide(args.data_dir, side)
        n_tx = len(dd.read_parquet(str(store / "points" / "transcripts" / "points.parquet")))
        remove_outputs(store, SEGMENT_OUTPUTS.values())
        r = run_child(CHILD_SEGMENT, store)
        mp = side * side / 1e6
        rows.append((f"segment {side}x{side}", mp, n_tx, r))
        print(f"done {side}: {r}", file=sys.stderr)
        if args.fine:
            fine = ensure_fine_slide(store, args.fine)
            remove_outputs(fine, SEGMENT_OUTPUTS.values())
            r = run_child(CHILD_SEGMENT, fine)
            f_side = round(side * 0.5 / args.fine)
            rows.append((f"segment {f_side}x{f_side} at {args.fine:g} um/px", f_side**2 / 1e6, n_tx, r))
            print(f"done {side} at {args.fine:g} um/px: {r}", file=sys.stderr)
    if args.assign:
        store = ensure_slide(args.data_dir, max(args.sides))
        n_tx = add_uniform_points(store, args.assign)
        remove_outputs(store, ASSIGN_OUTPUTS.values())
        r = run_child(CHILD_ASSIGN, store)
        rows.append((f"assign_transcripts {n_tx / 1e6:.0f} M", max(args.sides) ** 2 / 1e6, n_tx, r))

    print("| run | megapixels | transcripts (M) | cells | wall (s) | MP/s | M transcripts/s | peak RSS (GB) |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|")
    for name, mp, n_tx, r in rows:
        print(
            f"| {name} | {mp:.0f} | {n_tx / 1e6:.1f} | {r['cells']} | {r['wall']:.0f} | {mp / r['wall']:.2f} | "
            f"{n_tx / 1e6 / r['wall']:.2f} | {r['rss_gb']:.2f} |"
        )
    seg = [r for name, _, _, r in rows if name.startswith("segment") and " at " not in name]
    if len(seg) > 1:
        print(f"peak RSS largest / smallest slide: {seg[-1]['rss_gb'] / seg[0]['rss_gb']:.2f}")


if __name__ == "__main__":
    main()
