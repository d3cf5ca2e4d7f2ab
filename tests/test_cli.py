"""The ``gsn`` command on zarr stores written by spatialdata: exit codes, messages, new elements."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import spatialdata as sd

import gsn_spatial as gsn
from gsn_spatial.cli import build_parser, main
from gsn_spatial.core.network.quantize import int8_available

FAST = ["--tile-size", "128", "--tile-overlap", "16", "--block-size", "256", "--no-progress"]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """A synthetic tissue written by spatialdata (read-only for the tests: copy before changing)."""
    path = tmp_path_factory.mktemp("cli") / "tissue.zarr"
    gsn.datasets.synthetic_tissue((256, 256), seed=21).write(path)
    return path


@pytest.fixture(scope="module")
def segmented(store, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli_seg") / "tissue.zarr"
    shutil.copytree(store, path)
    assert main(["segment", str(path), "--image-key", "dapi", "--points-key", "transcripts", *FAST]) == 0
    return path


@pytest.fixture
def copy(tmp_path):
    def _copy(src: Path) -> Path:
        dst = tmp_path / src.name
        shutil.copytree(src, dst)
        return dst

    return _copy


@pytest.mark.parametrize("command", [[], ["segment"], ["train"], ["qc"], ["demo"]])
def test_help(command, capsys):
    assert main([*command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: gsn {' '.join(command)}".rstrip())
    assert "--verbose" in out or not command


def test_version(capsys):
    assert main(["--version"]) == 0
    assert gsn.__version__ in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["nope"],
        ["qc", "x.zarr"],  # --labels-keys missing
        ["train", "x.zarr", "--out", "m.pt"],  # --labels-key missing
        ["segment", "x.zarr", "--tile-size", "-3"],
        ["segment", "x.zarr", "--unknown"],
    ],
)
def test_usage_errors_exit_2(argv, capsys):
    assert main(argv) == 2
    assert "usage: gsn" in capsys.readouterr().err


def test_data_errors_exit_1_with_one_line(store, tmp_path, capsys):
    assert main(["segment", str(tmp_path / "absent.zarr")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gsn segment: error: no SpatialData zarr store")
    assert main(["qc", str(store), "--labels-keys", "cells", "--reference-key", "missing"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing" in err and "Traceback" not in err
    assert main(["segment", str(store), "--image-key", "nope", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope" in err and "dapi" in err  # names the parameter's candidates
    # --verbose adds the traceback.
    assert main(["segment", str(store), "--image-key", "nope", "--verbose", "--no-progress"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_segment_writes_elements_to_store(segmented, capsys):
    back = sd.read_zarr(segmented)
    assert "gsn_labels" in back.labels and "gsn_table" in back.tables and "gsn_transcripts" in back.points
    assert back.tables["gsn_table"].n_obs > 20
    assert gsn.qc.match_reference(back, labels_key="gsn_labels", reference_key="cells")["f1"] > 0.8
    # A second run refuses to overwrite without --overwrite (data error), and succeeds with it.
    assert main(["segment", str(segmented), "--image-key", "dapi", *FAST]) == 1
    assert "gsn_labels" in capsys.readouterr().err


@pytest.mark.slow  # 12-15 s; the default suite reached 595 s of its 600 in fresh-clone CI
def test_segment_overwrite_and_new_keys(segmented, copy, capsys):
    path = copy(segmented)
    assert main(["segment", str(path), "--overwrite", "--labels-key-added", "gsn_labels", *FAST]) == 0
    assert "% of the image's transcripts -> labels 'gsn_labels'" in capsys.readouterr().err
    argv = ["segment", str(path), "--labels-key-added", "second", "--table-key-added", "second_table"]
    assert main([*argv, "--assignment-key-added", "second_tx", "--image-channel", "DAPI", *FAST]) == 0
    back = sd.read_zarr(path)
    assert {"gsn_labels", "second"} <= set(back.labels) and "second_table" in back.tables
    assert "second_tx" in back.points


# Slow (6 s): wiring only; the compiled network's cells are tests/test_inference.py's (slow too).
@pytest.mark.slow
def test_segment_compile_flag(segmented, copy, monkeypatch):
    # The wiring of --compile; that a compiled network gives the eager cells is tests/test_inference.py's
    # (a real compile here cost another 40 s of the suite on an AVX2 host).
    import torch

    compiled = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **kw: compiled.append(gsn.settings.compile))
    path = copy(segmented)
    argv = ["segment", str(path), "--labels-key-added", "compiled", "--table-key-added", "compiled_table"]
    # The block geometry of tests/test_inference.py, so one compiled shape serves both.
    argv += ["--assignment-key-added", "compiled_tx", "--block-size", "256", "--block-halo", "32", "--compile"]
    assert main(argv) == 0
    assert compiled == [True]  # the network was compiled once, while the setting was on
    assert gsn.settings.compile is False  # restored after the command
    back = sd.read_zarr(path)
    assert back.tables["compiled_table"].uns["gsn"]["params"]["compiled"] is True
    assert back.tables["gsn_table"].uns["gsn"]["params"]["compiled"] is False
    assert gsn.qc.match_reference(back, labels_key="compiled", reference_key="cells")["f1"] > 0.8


# Slow (8 s): wiring only; float32 against int8 cells is tests/test_quantize.py's.
@pytest.mark.slow
def test_segment_float32_flag(segmented, copy):
    path = copy(segmented)
    argv = ["segment", str(path), "--labels-key-added", "f32", "--table-key-added", "f32_table"]
    assert main([*argv, "--assignment-key-added", "f32_tx", *FAST, "--float32"]) == 0
    assert gsn.settings.cpu_int8 is True  # restored after the command
    back = sd.read_zarr(path)
    # int8 where the CPU has no bf16 (the default model carries int8 ranges), float32 with the flag.
    default = back.tables["gsn_table"].uns["gsn"]["params"]["precision"]
    assert default in (("int8", "bfloat16") if int8_available() else ("float32", "bfloat16"))
    assert back.tables["f32_table"].uns["gsn"]["params"]["precision"] == (
        "bfloat16" if default == "bfloat16" else "float32"
    )


def test_qc_table(segmented, tmp_path, capsys):
    out = tmp_path / "qc" / "table.csv"
    argv = ["qc", str(segmented), "--labels-keys", "gsn_labels", "nuclei", "--reference-key", "cells"]
    assert main([*argv, "--out", str(out)]) == 0
    table = pd.read_csv(out, index_col=0)
    assert len(table) == 2 and list(table.index) == ["gsn_labels", "nuclei"]
    f1 = next(c for c in table.columns if "f1" in c.lower())
    assert table.loc["gsn_labels", f1] > table.loc["nuclei", f1]
    capsys.readouterr()
    assert main(argv) == 0  # no --out: CSV on stdout
    assert capsys.readouterr().out.splitlines()[1].startswith("gsn_labels")


# 18-19 s each, the two heaviest here: `slow` since the default suite reached 582 s of its 600 in CI (2026-12-07);
# the in-process tests above run the same commands, and tests/test_train.py trains.
@pytest.mark.slow
def test_train_then_segment_with_the_model(store, copy, tmp_path, capsys):
    path = copy(store)
    model = tmp_path / "models" / "tiny.pt"
    argv = ["train", str(path), "--labels-key", "nuclei", "--out", str(model), "--max-rounds", "1"]
    argv += ["--epochs", "1", "--steps-per-epoch", "2", "--patch-size", "64", "--batch-size", "2", "--no-progress"]
    assert main([*argv, "--refined-labels-key", "refined", "--name", "tiny"]) == 0
    assert "gsn train: round 1: loss " in capsys.readouterr().err  # the history, round by round
    assert model.is_file() and gsn.models.load(model).meta.get("name") == "tiny"
    assert "refined_round1" in sd.read_zarr(path).labels
    assert main(["segment", str(path), "--model", str(model), "--labels-key-added", "gsn_tiny", *FAST]) == 0
    assert "gsn_tiny" in sd.read_zarr(path).labels


def test_train_prints_each_round_and_says_which_were_rejected():
    from gsn_spatial.cli._commands import history_lines

    rounds = [
        dict(round=1, train_loss=0.5, val_loss=0.75, n_cells_in=90, n_cells_out=12, iou_to_previous=0.1, seconds=3.0,
             accepted=False),
        dict(round=2, train_loss=0.4, val_loss=0.5, n_cells_in=90, n_cells_out=91, iou_to_previous=0.8, seconds=3.0),
    ]  # fmt: skip
    first, second = history_lines(rounds)
    assert first.startswith("round 1: loss 0.500 (validation 0.750), cells 90 -> 12") and "rejected" in first
    assert second == "round 2: loss 0.400 (validation 0.500), cells 90 -> 91, IoU to previous 0.800, 3 s"


def test_train_resume_needs_checkpoint_dir(store, tmp_path, capsys):
    argv = ["train", str(store), "--labels-key", "nuclei", "--out", str(tmp_path / "m.pt"), "--resume"]
    assert main(argv) == 1
    assert "--checkpoint-dir" in capsys.readouterr().err


def test_parser_documents_every_command():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(sub.choices) == {"segment", "train", "qc", "demo"}


@pytest.mark.slow  # the console script in a subprocess (18 s); see above
def test_subprocess_segment(store, copy):
    """The installed console script (or ``python -m gsn_spatial.cli``) as a pipeline would call it."""
    path = copy(store)
    script = Path(sys.executable).with_name("gsn")
    cmd = [str(script)] if script.is_file() else [sys.executable, "-m", "gsn_spatial.cli"]
    done = subprocess.run(
        [*cmd, "segment", str(path), "--labels-key-added", "from_shell", *FAST],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "from_shell" in sd.read_zarr(path).labels
    bad = subprocess.run([*cmd, "segment", str(path / "nope")], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1 and bad.stderr.strip().count("\n") == 0 and "Traceback" not in bad.stderr


def test_segment_pixel_size_and_labels_grid(store, copy):
    path = copy(store)
    argv = ["segment", str(path), "--pixel-size", "0.25", "--labels-grid", "working", *FAST]
    assert main(argv) == 0
    back = sd.read_zarr(path)
    params = back.tables["gsn_table"].uns["gsn"]["params"]
    assert params["pixel_size"] == 0.25 and params["pixel_size_source"] == "argument"
    assert back.labels["gsn_labels"].shape == (128, 128)  # 256 px at 0.25 um = 128 px at the working 0.5 um
    assert main(["segment", str(path), "--pixel-size", "-1", "--overwrite", *FAST]) == 2  # a usage error


def test_segment_control_genes(store, copy):
    path = copy(store)
    assert main(["segment", str(path), "--control-genes", "Gene0[01]$", *FAST]) == 0
    table = sd.read_zarr(path).tables["gsn_table"]
    assert list(table.uns["gsn"]["params"]["control_genes"]) == ["Gene00", "Gene01"]
    assert "Gene00" not in table.var_names and "n_control_transcripts" in table.obs
    assert build_parser().parse_args(["segment", str(path), "--control-genes", ""]).control_genes == ""  # -> None
    assert build_parser().parse_args(["segment", str(path), "--min-qv", "0"]).min_qv == 0.0
