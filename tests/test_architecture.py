"""docs/architecture.md names real code, and the layout rules of the package hold."""

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "gsn_spatial"
NAMES = sorted(set(re.findall(r"`(gsn_spatial(?:\.\w+)+)`", (ROOT / "docs" / "architecture.md").read_text())))


def _resolve(dotted: str):
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


def test_the_page_names_functions():
    assert len(NAMES) > 40


@pytest.mark.parametrize("dotted", NAMES)
def test_each_name_on_the_architecture_page_exists(dotted):
    assert _resolve(dotted) is not None


def test_core_has_its_sub_packages_and_no_flat_modules():
    subs = {p.name for p in (SRC / "core").iterdir() if (p / "__init__.py").is_file()}
    assert {"rna", "image", "network", "decode", "train", "slide", "assign", "metrics", "simulate"} <= subs
    assert [p.name for p in (SRC / "core").glob("*.py")] == ["__init__.py"]


def test_module_and_init_sizes():
    for path in SRC.rglob("*.py"):
        n = len(path.read_text().splitlines())
        assert n <= (80 if path.name == "__init__.py" else 400), (path.relative_to(SRC), n)


def _package(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    return rel.parts[0] if len(rel.parts) > 1 else ""


def test_no_package_imports_another_packages_private_module():
    """``a._b`` is ``a``'s own business; the top-level ``_sdata``, ``_constants`` and ``_settings`` are shared."""
    shared = {"_sdata", "_constants", "_settings"}
    for path in SRC.rglob("*.py"):
        own = _package(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gsn_spatial"):
                parts = node.module.split(".")[1:]
                names = [a.name for a in node.names]
                if not parts:  # from gsn_spatial import x
                    bad = [n for n in names if n.startswith("_") and n not in shared and n != "__version__"]
                else:
                    top = parts[0]
                    private = [p for p in parts[1:] if p.startswith("_")] + [n for n in names if n.startswith("_")]
                    bad = private if top != own and top not in shared else []
                assert not bad, (path.relative_to(SRC), node.module, bad)
