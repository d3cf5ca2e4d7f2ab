"""The models shipped with the package, loaded by name."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from gsn_spatial.models._model import GeneSegModel

# Model names and their files; older files stay loadable by name: generalist_v1 and generalist_small_v1 (until
# 2026-12-07, before elongated nuclei were in their training data), synthetic_v1 and xenium_breast_v1 (before
# physical units: RNA map clipped at 1, 0.5 um/px assumed).
SHIPPED_MODELS = {
    "generalist": "generalist_v2.pt",
    "generalist_v1": "generalist_v1.pt",
    "generalist_small": "generalist_small_v2.pt",  # a quarter of the parameters: for CPUs without bf16
    "generalist_small_v1": "generalist_small_v1.pt",
    "synthetic": "synthetic_v2.pt",
    "xenium_breast": "xenium_breast_v2.pt",
    "synthetic_v1": "synthetic_v1.pt",
    "xenium_breast_v1": "xenium_breast_v1.pt",
}


DEFAULT_MODEL = "generalist"


def load(name_or_path: str | Path = DEFAULT_MODEL) -> GeneSegModel:
    """Load a shipped model by name (``"synthetic"``) or a model file by path.

    Examples
    --------
    >>> m = load()  # the default, "generalist"
    >>> m.meta["name"]
    'generalist'
    """
    if isinstance(name_or_path, str) and name_or_path in SHIPPED_MODELS:
        ref = resources.files("gsn_spatial.models") / "weights" / SHIPPED_MODELS[name_or_path]
        with resources.as_file(ref) as p:
            return GeneSegModel.load(p)
    return GeneSegModel.load(name_or_path)
