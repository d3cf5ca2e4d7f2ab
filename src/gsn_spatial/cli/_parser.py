"""The ``gsn`` command's arguments: one sub-command per task, options grouped as in the Python API."""

from __future__ import annotations

import argparse
from pathlib import Path

from gsn_spatial._constants import Keys, run_keys
from gsn_spatial.models import DEFAULT_MODEL

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
        help="channel of the nucleus stain, by name or index (default: the only one, or the one named DAPI, Hoechst)",
    )
    g.add_argument(
        "--device", metavar="DEVICE", help="'auto', 'cpu', 'cuda' or 'cuda:N' (default: gsn.settings.device)"
    )
    g.add_argument(
        "--pixel-size",
        type=_positive_float,
        metavar="UM",
        help="microns per image pixel (default: as gsn.tl.segment finds it: a micron coordinate system, else the "
        "nuclei's size checked against the transcripts' transformations)",
    )


def _model_arg(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--model", default=None, metavar="MODEL", help=f"{what} (default: '{DEFAULT_MODEL}')")


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
    _model_arg(p, "shipped model name or path to a .pt file")
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
        "--rna-normalisation",
        choices=("local", "slide"),
        default=None,
        help="the RNA map's level and the confidence threshold follow the transcript density within ~40 um "
        "(default: local) or are one per slide",
    )
    g.add_argument(
        "--control-genes",
        default=None,
        metavar="REGEX",
        help="gene names (matched at their start, case-insensitive) of control probes, which make no RNA map and "
        "are no genes of the table (default: the vendors' negative probes and blank codewords; '' for none)",
    )
    g.add_argument(
        "--min-qv",
        type=float,
        default=None,
        metavar="QV",
        help="calls of lower quality (the points' qv column, Xenium) count apart, not as their gene (default: 20; "
        "0 counts every call)",
    )
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
    g.add_argument(
        "--float32",
        action="store_true",
        help="on a CPU without native bf16, run the network in float32 instead of int8 (gsn.settings.cpu_int8 = "
        "False): slower, for comparing with earlier runs",
    )
    _common(p)

    p = sub.add_parser(
        "train",
        help="train a model from noisy labels in the store (recursive training); saves a .pt file",
        description=(
            "Train GeneSegNet from noisy cell labels (a vendor segmentation, a nucleus expansion) by recursive "
            "training with level-set refinement (gsn.tl.train), and save the model to --out."
        ),
    )
    _store_arg(p)
    p.add_argument(
        "--labels-key",
        required=True,
        metavar="KEY",
        help="labels element with the initial (noisy) cells, or a shapes element of cell polygons or circles",
    )
    p.add_argument("--out", type=Path, required=True, help="where to save the trained model (.pt)")
    _inputs(p)
    _model_arg(p, "starting model: shipped name or .pt path")
    g = p.add_argument_group("training")
    g.add_argument("--max-rounds", type=_positive_int, default=3, help="recursive rounds (default: 3)")
    g.add_argument("--epochs", type=_positive_int, default=10, help="epochs per round (default: 10)")
    g.add_argument("--steps-per-epoch", type=_positive_int, default=None, help="batches per epoch")
    g.add_argument(
        "--patch-size",
        type=_positive_int,
        default=None,
        help="training patch side in working pixels (default: 256, or the image's shorter side where smaller)",
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
    p.add_argument("--reference-key", default=None, metavar="KEY", help="labels (or cell shapes) to compare against")
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

    p = sub.add_parser(
        "demo",
        help="simulate a tissue, segment it and compare with image-only baselines",
        description="The demo (python -m gsn_spatial.demo): writes <out>/demo.zarr and <out>/demo_overlay.png.",
    )
    p.add_argument("--out", type=Path, default=Path("demo_output"), help="output folder (default: demo_output)")
    p.add_argument("--size", type=_positive_int, default=1024, help="image side in pixels (default: 1024)")
    p.add_argument("--seed", type=int, default=2026, help="random seed (default: 2026)")
    _common(p)
    return parser
