"""Wall time of each step of ``gsn.tl.segment`` on one simulated tissue, for finding what to speed up next.

Usage::

    python benchmarks/stage_times.py [--model generalist_small] [--size 2048] [--seed 21] [--block-size 1024]

Timers wrap the step functions that ``tl._segment`` calls (``segment_slide`` with its per-block steps,
``reassign_slide``, the boundaries, the table); a warm-up run comes first. What the table does not
name (writing the elements, validation) is the difference to the total.
"""

from __future__ import annotations

import argparse
import collections
import functools
import time

import gsn_spatial as gsn
import gsn_spatial.core.slide.steps as steps
import gsn_spatial.tl._segment as segment_module
import gsn_spatial.tl._slide as slide_module

SECONDS: dict[str, float] = collections.defaultdict(float)


def _timed(name: str, fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            SECONDS[name] += time.perf_counter() - t0

    return wrapper


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=gsn.models.DEFAULT_MODEL)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--block-size", type=int, default=None, help="working px (default: segment's)")
    args = ap.parse_args()
    run_tasks = steps.run_tasks
    steps.run_tasks = lambda fn, *a, **k: _timed(f"  step {fn.__name__}", run_tasks)(fn, *a, **k)
    for module, name in [
        (segment_module, "segment_slide"),
        (segment_module, "reassign_slide"),
        (segment_module, "build_table"),
        (slide_module, "boundaries_element"),
    ]:
        setattr(module, name, _timed(name, getattr(module, name)))
    sdata = gsn.datasets.synthetic_tissue((args.size, args.size), seed=args.seed)
    options = {} if args.block_size is None else {"block_size": args.block_size}
    gsn.tl.segment(sdata, model=args.model, labels_key_added="warm_up", **options)
    SECONDS.clear()
    t0 = time.perf_counter()
    gsn.tl.segment(sdata, model=args.model, labels_key_added="timed", **options)
    total = time.perf_counter() - t0
    print(f"model {args.model!r}, {args.size} x {args.size} px: {total:.2f} s, {args.size**2 / 1e6 / total:.3f} MP/s")
    print("| step | s |\n|---|--:|")
    for name, seconds in SECONDS.items():
        print(f"| {name} | {seconds:.2f} |")


if __name__ == "__main__":
    main()
