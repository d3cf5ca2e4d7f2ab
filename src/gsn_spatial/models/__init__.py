"""Trained GeneSegNet models: the network plus the input settings it was trained with.

A model file is a ``torch.save`` dictionary with ``format``, the network
configuration, the input settings (RNA map sigma and mode, intensity
percentiles), free-form ``meta`` (data, training, scores) and the weights.
Weights are stored in float16 to keep shipped files small; they are loaded as
float32.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from gsn_spatial.core.network import GeneSegNet, NetworkConfig

MODEL_FORMAT = "gsn_spatial.model/1"
SHIPPED_MODELS = {"synthetic": "synthetic_v1.pt", "xenium_breast": "xenium_breast_v1.pt"}
DEFAULT_MODEL = "synthetic"


@dataclass
class InputSpec:
    """How inputs are prepared; must match between training and inference."""

    rna_sigma: float = 7.0  # pixels; the paper's sigma
    rna_mode: str = "sum"  # Eq. 5; "max" is what the authors' code did
    # "binned": per-pixel counts and one separable Gaussian filter, ~9x faster than "exact" and the same F1
    # (benchmarks/speed.py); model files saved before this field existed load with it too.
    rna_method: str = "binned"
    percentiles: tuple[float, float] = (1.0, 99.5)


@dataclass
class GeneSegModel:
    """A GeneSegNet network with the input settings it expects.

    Examples
    --------
    >>> m = GeneSegModel.new(NetworkConfig(widths=(8, 8, 8, 8, 8)))
    >>> m.input.rna_mode
    'sum'
    """

    network: GeneSegNet
    input: InputSpec = field(default_factory=InputSpec)
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def new(cls, config: NetworkConfig | None = None, input: InputSpec | None = None) -> GeneSegModel:
        return cls(GeneSegNet(config or NetworkConfig()), input or InputSpec())

    def save(self, path: str | Path) -> Path:
        """Write the model to ``path`` (conventionally ``.pt``)."""
        path = Path(path)
        state = {k: v.half() if v.is_floating_point() else v for k, v in self.network.state_dict().items()}
        torch.save(
            {
                "format": MODEL_FORMAT,
                "network": self.network.config.to_dict(),
                "input": asdict(self.input),
                "meta": self.meta,
                "state_dict": state,
            },
            path,
        )
        return path

    @classmethod
    def load(cls, path: str | Path) -> GeneSegModel:
        """Read a model written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"No model file at {str(path)!r}.")
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises several types for non-model files
            raise ValueError(f"{str(path)!r} is not a gsn_spatial model file: {err}") from err
        if not isinstance(blob, dict) or blob.get("format") != MODEL_FORMAT:
            raise ValueError(f"{str(path)!r} is not a gsn_spatial model file (expected format {MODEL_FORMAT!r}).")
        net = GeneSegNet(NetworkConfig.from_dict(blob["network"]))
        net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in blob["state_dict"].items()})
        net.eval()
        spec = dict(blob["input"])
        spec["percentiles"] = tuple(spec["percentiles"])
        return cls(net, InputSpec(**spec), dict(blob.get("meta", {})))


def load(name_or_path: str | Path = DEFAULT_MODEL) -> GeneSegModel:
    """Load a shipped model by name (``"synthetic"``) or a model file by path.

    Examples
    --------
    >>> m = load("synthetic")
    >>> m.meta["name"]
    'synthetic'
    """
    if isinstance(name_or_path, str) and name_or_path in SHIPPED_MODELS:
        ref = resources.files("gsn_spatial.models") / "weights" / SHIPPED_MODELS[name_or_path]
        with resources.as_file(ref) as p:
            return GeneSegModel.load(p)
    return GeneSegModel.load(name_or_path)


__all__ = ["GeneSegModel", "InputSpec", "NetworkConfig", "load", "SHIPPED_MODELS", "DEFAULT_MODEL"]
