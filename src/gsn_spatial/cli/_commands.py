"""What each ``gsn`` sub-command does, and how failures become exit codes and one-line messages."""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
import warnings
from pathlib import Path
from typing import Any

from gsn_spatial.cli._parser import PROG, build_parser


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
        + ["tile_size", "tile_overlap", "block_size", "block_halo", "batch_size", "min_area", "rna_normalisation"]
        + ["pixel_size", "labels_grid", "min_qv"],
    )
    if args.control_genes is not None:
        kwargs["control_genes"] = args.control_genes or None  # '' names no control probe
    previous, previous_int8 = gsn.settings.compile, gsn.settings.cpu_int8
    gsn.settings.compile = previous or args.compile
    gsn.settings.cpu_int8 = previous_int8 and not args.float32
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
        gsn.settings.compile, gsn.settings.cpu_int8 = previous, previous_int8
    keys = gsn.run_keys(args.labels_key_added)
    table_key = args.table_key_added or keys.table
    table = sdata.tables[table_key]
    share = table.uns["gsn"]["params"].get("fraction_assigned")
    in_cells = "" if share is None else f" holding {100 * share:.1f}% of the image's transcripts"
    _say(
        f"segment: {table.n_obs} cells{in_cells} -> labels {keys.labels!r}, table {table_key!r}, "
        f"boundaries {keys.boundaries!r} in {args.store}"
    )


def history_lines(history: list[dict]) -> list[str]:
    """One line per round of a training history (``model.meta["history"]``), for the end of ``gsn train``.

    Examples
    --------
    >>> history_lines([dict(round=1, train_loss=0.51, val_loss=None, n_cells_in=90, n_cells_out=88,
    ...                     iou_to_previous=0.712, seconds=12.3, accepted=True)])
    ['round 1: loss 0.510, cells 90 -> 88, IoU to previous 0.712, 12 s']
    """
    lines = []
    for r in history:
        loss = f"loss {r['train_loss']:.3f}"
        if r.get("val_loss") is not None:
            loss += f" (validation {r['val_loss']:.3f})"
        line = (
            f"round {r['round']}: {loss}, cells {r['n_cells_in']} -> {r['n_cells_out']}, "
            f"IoU to previous {r['iou_to_previous']:.3f}, {r['seconds']:.0f} s"
        )
        if not r.get("accepted", True):
            line += ", rejected (degenerate: its labels and weights were discarded)"
        lines.append(line)
    return lines


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
    for line in history_lines(model.meta.get("history", [])):
        _say(f"train: {line}")
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


# The sub-commands of the parser (``dest="command"``) and what runs each.
COMMANDS = {"segment": _segment, "train": _train, "qc": _qc, "demo": _demo}


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
            COMMANDS[args.command](args)
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
