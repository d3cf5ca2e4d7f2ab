"""The ``gsn`` command: segment, train, qc and demo on SpatialData zarr stores.

Fit for pipelines (Snakemake, Nextflow): exit code 0 on success, 2 on a usage
error (bad or missing options), 1 on a data error (missing store or element,
bad values), with a one-line message on stderr; ``--verbose`` adds the
traceback and INFO logs. Results are written into the store (``segment``,
``train --refined-labels-key``) or to ``--out``; progress bars and one-line
summaries go to stderr, so ``gsn qc`` without ``--out`` writes a clean CSV to
stdout.

Examples
--------
.. code-block:: bash

    gsn segment sample.zarr --image-key morphology_focus --points-key transcripts --image-channel DAPI
    gsn train sample.zarr --labels-key cell_labels --out model.pt --epochs 10
    gsn segment sample.zarr --model model.pt --labels-key-added gsn_trained
    gsn qc sample.zarr --labels-keys gsn_labels gsn_trained --reference-key cell_labels --out qc.csv
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
import warnings
from pathlib import Path
from typing import Any

from gsn_spatial._constants import Keys, run_keys

PROG = "gsn"
_DEFAULT_RUN = run_keys(Keys.LABELS)


def _channel(value: str) -> int | str:
    """``--image-channel``: an index when the value is an integer, else a channel name."""
    try:
        return int(value)
    except ValueError:
        return value


def _positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from err
    if n <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return n


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}") from None
    if not (number > 0 and number < float("inf")):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}")
    return number


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("output and logging")
    g.add_argument("-v", "--verbose", action="store_true", help="INFO logs, warnings and tracebacks on errors")
    g.add_argument("--no-progress", action="store_true", help="no progress bars (they go to stderr)")


def _store_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("store", type=Path, help="SpatialData zarr store (read, and written to in place)")


def _inputs(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("inputs (each may be omitted when the store has exactly one such element)")
    g.add_argument("--image-key", metavar="KEY", help="image element (the nucleus stain)")
    g.add_argument("--points-key", metavar="KEY", help="points element (the transcripts)")
    g.add_argument("--gene-key", metavar="COLUMN", help="gene column of the points (default: the points' feature_key)")
    g.add_argument(
        "--image-channel",
        type=_channel,
        metavar="CHANNEL",
        help="channel of the nucleus stain, by name or index (required when the image has several)",
    )
    g.add_argument(
        "--device", metavar="DEVICE", help="'auto', 'cpu', 'cuda' or 'cuda:N' (default: gsn.settings.device)"
    )
    g.add_argument(
        "--pixel-size",
        type=_positive_float,
        metavar="UM",
        help="microns per image pixel (default: from a micron coordinate system, else estimated from the nuclei)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``gsn`` (also used to render the CLI reference)."""
    from gsn_spatial import __version__

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="GeneSegNet cell segmentation (nucleus stain + transcripts) on SpatialData zarr stores.",
        epilog="Exit codes: 0 success, 1 data error, 2 usage error. 'gsn <command> --help' for each command.",
    )
    parser.add_argument("--version", action="version", version=f"gsn_spatial {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>", required=True)

    p = sub.add_parser(
        "segment",
        help="segment cells; writes labels, a cell x gene table and the transcript assignment into the store",
        description=(
            "Segment cells with a GeneSegNet model (gsn.tl.segment) and write labels, a cell x gene table and "
            "the transcripts with their cell id into the store."
        ),
    )
    _store_arg(p)
    _inputs(p)
    p.add_argument(
        "--model",
        default=None,
        metavar="MODEL",
        help="shipped model name or path to a .pt file (default: 'generalist')",
    )
    g = p.add_argument_group("outputs")
    g.add_argument(
        "--labels-key-added",
        metavar="KEY",
        default=Keys.LABELS,
        help="labels element to write; the run's table, boundaries and assignment are named from it (default: "
        f"{_DEFAULT_RUN.labels} -> {_DEFAULT_RUN.table}, {_DEFAULT_RUN.boundaries}, {_DEFAULT_RUN.assignment}; "
        "run_b -> run_b_table, ...)",
    )
    g.add_argument(
        "--table-key-added", metavar="KEY", default=None, help="override the table's derived name (rarely needed)"
    )
    g.add_argument(
        "--assignment-key-added",
        metavar="KEY",
        default=None,
        help="override the name of the points element with cell ids (rarely needed)",
    )
    g.add_argument(
        "--table-annotates",
        choices=["labels", "boundaries"],
        default="labels",
        help="element the table annotates (default: labels; boundaries for sopa / Xenium Explorer workflows)",
    )
    g.add_argument(
        "--assignment",
        choices=["expression", "mask"],
        default=None,
        help="transcripts near cell boundaries go to the nearby cell whose expression fits them (default: "
        "expression), or strictly to the cell under them (mask)",
    )
    g.add_argument("--overwrite", action="store_true", help="replace existing elements of those names")
    g = p.add_argument_group("tiling and decoding")
    g.add_argument("--tile-size", type=_positive_int, default=None, help="network window in working pixels")
    g.add_argument("--tile-overlap", type=int, default=None, help="overlap of network windows in working pixels")
    g.add_argument("--block-size", type=_positive_int, default=None, help="decoding block core in working pixels")
    g.add_argument("--block-halo", type=int, default=None, help="context around each block in working pixels")
    g.add_argument("--batch-size", type=_positive_int, default=None, help="network windows per batch")
    g.add_argument("--min-area", type=int, default=None, help="smallest cell kept, in working pixels")
    g.add_argument(
        "--labels-grid",
        choices=("image", "working"),
        default=None,
        help="labels on the image's pixel grid (default) or at the model's working scale",
    )
    g.add_argument(
        "--compile",
        action="store_true",
        help="compile the network with torch.compile (gsn.settings.compile): a one-off wait of tens of seconds, "
        "then a faster network; pays on large slides",
    )
    _common(p)
    p.set_defaults(func=_segment)

    p = sub.add_parser(
        "train",
        help="train a model from noisy labels in the store (recursive training); saves a .pt file",
        description=(
            "Train GeneSegNet from noisy cell labels (a vendor segmentation, a nucleus expansion) by recursive "
            "training with level-set refinement (gsn.tl.train), and save the model to --out."
        ),
    )
    _store_arg(p)
    p.add_argument("--labels-key", required=True, metavar="KEY", help="labels element with the initial (noisy) cells")
    p.add_argument("--out", type=Path, required=True, help="where to save the trained model (.pt)")
    _inputs(p)
    p.add_argument(
        "--model",
        default=None,
        metavar="MODEL",
        help="starting model: shipped name or .pt path (default: 'generalist')",
    )
    g = p.add_argument_group("training")
    g.add_argument("--max-rounds", type=_positive_int, default=3, help="recursive rounds (default: 3)")
    g.add_argument("--epochs", type=_positive_int, default=10, help="epochs per round (default: 10)")
    g.add_argument("--steps-per-epoch", type=_positive_int, default=None, help="batches per epoch")
    g.add_argument(
        "--patch-size", type=_positive_int, default=256, help="training patch side in working pixels (default: 256)"
    )
    g.add_argument("--batch-size", type=_positive_int, default=8, help="patches per batch (default: 8)")
    g.add_argument("--lr", type=float, default=1e-3, help="learning rate (default: 1e-3)")
    g.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    g.add_argument("--name", default="custom", help="name recorded in the model file (default: custom)")
    g.add_argument("--checkpoint-dir", type=Path, default=None, help="folder for per-round checkpoints")
    g.add_argument("--resume", action="store_true", help="resume from --checkpoint-dir")
    g.add_argument(
        "--refined-labels-key",
        metavar="KEY",
        default=None,
        help="also write each round's labels to the store, as <KEY>_round<N>",
    )
    g.add_argument("--overwrite", action="store_true", help="replace existing <KEY>_round<N> elements")
    _common(p)
    p.set_defaults(func=_train)

    p = sub.add_parser(
        "qc",
        help="compare segmentations in the store (against a reference); writes a CSV table",
        description=(
            "Quality-control metrics of one or more segmentations (labels elements) of the store, optionally "
            "against a reference segmentation: one row per segmentation, one column per metric."
        ),
    )
    _store_arg(p)
    p.add_argument("--labels-keys", nargs="+", required=True, metavar="KEY", help="labels elements to score")
    p.add_argument("--reference-key", default=None, metavar="KEY", help="labels element to compare against")
    p.add_argument("--points-key", default=None, metavar="KEY", help="points element for transcript metrics")
    p.add_argument("--image-key", default=None, metavar="KEY", help="image element for intensity metrics")
    p.add_argument(
        "--pixel-size",
        type=_positive_float,
        metavar="UM",
        help="microns per pixel of the labels (default: from a micron coordinate system)",
    )
    p.add_argument("--out", type=Path, default=None, help="CSV (or .tsv) to write; default: stdout")
    _common(p)
    p.set_defaults(func=_qc)

    p = sub.add_parser(
        "demo",
        help="simulate a tissue, segment it and compare with image-only baselines",
        description="The demo (python -m gsn_spatial.demo): writes <out>/demo.zarr and <out>/demo_overlay.png.",
    )
    p.add_argument("--out", type=Path, default=Path("demo_output"), help="output folder (default: demo_output)")
    p.add_argument("--size", type=_positive_int, default=1024, help="image side in pixels (default: 1024)")
    p.add_argument("--seed", type=int, default=2026, help="random seed (default: 2026)")
    _common(p)
    p.set_defaults(func=_demo)
    return parser


class DataError(Exception):
    """An error in the data or its values (exit code 1)."""


def _open(store: Path) -> Any:
    import spatialdata as sd

    from gsn_spatial import _sdata

    if not store.exists():
        raise DataError(f"no SpatialData zarr store at {str(store)!r}")
    try:
        with _sdata.quiet_ome_zarr():
            return sd.read_zarr(store)
    except Exception as err:  # noqa: BLE001 - any reader failure is a data error
        raise DataError(f"cannot read {str(store)!r} as a SpatialData zarr store: {err}") from err


def _say(message: str) -> None:
    print(f"{PROG} {message}", file=sys.stderr)


def _given(args: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    return {n: getattr(args, n) for n in names if getattr(args, n) is not None}


def _segment(args: argparse.Namespace) -> None:
    import gsn_spatial as gsn

    sdata = _open(args.store)
    kwargs = _given(
        args,
        ["image_key", "points_key", "gene_key", "image_channel", "model", "assignment_key_added", "assignment"]
        + ["device"]
        + ["tile_size", "tile_overlap", "block_size", "block_halo", "batch_size", "min_area"]
        + ["pixel_size", "labels_grid"],
    )
    previous = gsn.settings.compile
    gsn.settings.compile = previous or args.compile
    try:
        gsn.tl.segment(
            sdata,
            labels_key_added=args.labels_key_added,
            table_key_added=args.table_key_added,
            table_annotates=args.table_annotates,
            overwrite=args.overwrite,
            **kwargs,
        )
    finally:
        gsn.settings.compile = previous
    keys = gsn.run_keys(args.labels_key_added)
    table_key = args.table_key_added or keys.table
    n = sdata.tables[table_key].n_obs
    _say(
        f"segment: {n} cells -> labels {keys.labels!r}, table {table_key!r}, boundaries {keys.boundaries!r} "
        f"in {args.store}"
    )


def _train(args: argparse.Namespace) -> None:
    import gsn_spatial as gsn

    if args.resume and args.checkpoint_dir is None:
        raise DataError("--resume needs --checkpoint-dir")
    sdata = _open(args.store)
    kwargs = _given(
        args,
        ["image_key", "points_key", "gene_key", "image_channel", "model", "device", "steps_per_epoch", "pixel_size"],
    )
    kwargs.update(_given(args, ["checkpoint_dir", "refined_labels_key"]))
    model = gsn.tl.train(
        sdata,
        labels_key=args.labels_key,
        max_rounds=args.max_rounds,
        epochs=args.epochs,
        patch_size=args.patch_size,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        name=args.name,
        resume=args.resume,
        overwrite=args.overwrite,
        **kwargs,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    model.save(args.out)
    _say(f"train: model {args.name!r} saved to {args.out}")


def _qc_table(sdata: Any, args: argparse.Namespace) -> Any:
    import pandas as pd

    import gsn_spatial as gsn

    compare = getattr(gsn.qc, "compare", None)
    if compare is not None:
        return compare(
            sdata,
            labels_keys=list(args.labels_keys),
            reference_key=args.reference_key,
            points_key=args.points_key,
            image_key=args.image_key,
            pixel_size=args.pixel_size,
        )
    if args.reference_key is None:
        raise DataError("--reference-key is required with this version of gsn.qc")
    rows = {
        key: gsn.qc.match_reference(sdata, labels_key=key, reference_key=args.reference_key) for key in args.labels_keys
    }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("labels_key")


def _qc(args: argparse.Namespace) -> None:
    sdata = _open(args.store)
    table = _qc_table(sdata, args)
    if args.out is None:
        table.to_csv(sys.stdout)
        return
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, sep="\t" if args.out.suffix == ".tsv" else ",")
    _say(f"qc: {len(table)} segmentations x {table.shape[1]} metrics -> {args.out}")


def _demo(args: argparse.Namespace) -> None:
    from gsn_spatial.demo import run

    run(args.out, size=args.size, seed=args.seed)


def main(argv: list[str] | None = None) -> int:
    """Run ``gsn`` with ``argv`` (default: ``sys.argv[1:]``) and return the exit code.

    Examples
    --------
    >>> main(["--version"])  # doctest: +SKIP
    gsn_spatial 0.1.0
    0
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version (0) and usage errors (2)
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else 2
    from gsn_spatial._settings import settings

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr)
    previous_progress = settings.progress
    settings.progress = False if args.no_progress else None  # None: bars when stderr is a terminal
    try:
        with warnings.catch_warnings():
            if not args.verbose:
                warnings.simplefilter("ignore", FutureWarning)
                warnings.simplefilter("ignore", DeprecationWarning)
                warnings.filterwarnings("ignore", message=".*zarr.*")
            args.func(args)
    except KeyboardInterrupt:
        _say(f"{args.command}: interrupted")
        return 130
    except Exception as err:  # noqa: BLE001 - every failure becomes exit code 1 with a one-line message
        if args.verbose:
            traceback.print_exc()
        message = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
        kind = "" if isinstance(err, DataError) else f"{type(err).__name__}: "
        _say(f"{args.command}: error: {kind}{' '.join(message.split())}")
        return 1
    finally:
        settings.progress = previous_progress
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
