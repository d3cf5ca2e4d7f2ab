"""A model: the network, the input settings it was trained with, and its file format."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from gsn_spatial.core.network.quantize import Int8GeneSegNet, int8_available, quantize_int8
from gsn_spatial.core.network.unet import GeneSegNet, NetworkConfig, fold_batch_norms
from gsn_spatial.core.rna.local import threshold_for_density

MODEL_FORMAT = "gsn_spatial.model/1"


@dataclass
class InputSpec:
    """How inputs are prepared; must match between training and inference.

    Every spatial quantity is in micrometres, or in pixels of the working
    scale ``pixel_size``: the network sees images resampled to it, whatever
    the input's own pixel size.

    Attributes
    ----------
    pixel_size
        Working scale, um per pixel.
    nucleus_diameter_um, cell_diameter_um
        Median diameters (``sqrt(4 area / pi)``) of the nuclei and cells of
        the training data. An input without a known pixel size is brought to
        the working scale by comparing its estimated nucleus diameter with
        ``nucleus_diameter_um``.
    rna_sigma_um
        Gaussian width of the RNA location map (Eq. 5).
    rna_norm
        ``"density"``: the sum of Gaussians divided by a per-slide level
        (:func:`~gsn_spatial.core.rna.density.density_level`), so the map reads
        the same at 0.1 and 2 transcripts per um^2; ``"clip"``: Eq. 5 as
        written, the sum clipped at 1 (its level grows with the density).
    rna_mode, rna_method
        ``"sum"`` (Eq. 5) or ``"max"`` (the authors' code); ``"binned"``
        (per-pixel counts and a separable filter, ~9x faster than ``"exact"``
        with the same F1, ``benchmarks/speed.py``) or ``"exact"``.
    density_bin_um
        Bin side for the slide's transcript density
        (:func:`~gsn_spatial.core.rna.density.transcript_density`), about a cell.
    percentiles
        Intensity percentiles mapped to 0 and 1.
    """

    pixel_size: float = 0.5
    nucleus_diameter_um: float | None = None
    cell_diameter_um: float | None = None
    rna_sigma_um: float = 1.5
    rna_norm: str = "density"
    rna_mode: str = "sum"
    rna_method: str = "binned"
    density_bin_um: float = 10.0
    percentiles: tuple[float, float] = (1.0, 99.5)

    @property
    def rna_sigma(self) -> float:
        """RNA map sigma in working pixels."""
        return self.rna_sigma_um / self.pixel_size

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InputSpec:
        """Input settings from a model file, old ones (sigma in pixels, no pixel size) included."""
        d = dict(d)
        if "pixel_size" not in d:  # gsn_spatial.model/1 files before units: 0.5 um/px, the sum clipped at 1
            d = {
                "pixel_size": 0.5,
                "rna_sigma_um": float(d.pop("rna_sigma")) * 0.5,
                "rna_norm": "clip",
                **{k: v for k, v in d.items() if k in ("rna_mode", "rna_method", "percentiles")},
            }
        d["percentiles"] = tuple(d.get("percentiles", (1.0, 99.5)))
        return cls(**d)


def confidence_for_density(table: list[list[float]] | list[tuple[float, float]], per_um2: float) -> float:
    """The confidence threshold for a tissue of ``per_um2`` transcripts per um^2, from a model's table.

    ``table`` holds ``(transcripts per um^2, threshold)`` pairs chosen on
    validation data (``meta["decode"]["confidence_by_density"]``,
    ``scripts/choose_confidence_by_density.py``): linear in log density between
    them, the end values beyond them.

    Examples
    --------
    >>> table = [[0.1, 0.4], [1.0, 0.6]]
    >>> [round(confidence_for_density(table, d), 3) for d in (0.05, 0.316, 3.0)]
    [0.4, 0.5, 0.6]
    """
    return float(threshold_for_density(table, per_um2 if per_um2 > 0 else 0.0))


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
    #: Activation ranges for int8 inference on CPUs (:func:`~gsn_spatial.core.network.quantize.calibrate_int8`,
    #: on the model's training data); ``None``: the model runs in float32 there.
    int8_ranges: dict[str, tuple[float, float]] | None = None

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
                **({"int8_ranges": {k: list(v) for k, v in self.int8_ranges.items()}} if self.int8_ranges else {}),
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
        ranges = blob.get("int8_ranges")
        ranges = {k: (float(lo), float(hi)) for k, (lo, hi) in ranges.items()} if ranges else None
        return cls(net, InputSpec.from_dict(blob["input"]), dict(blob.get("meta", {})), ranges)

    def decode_options(self, per_um2: float | None = None) -> dict[str, Any]:
        """The decoding settings chosen on the model's validation data (``meta["decode"]``) for this tissue.

        Where the model has a confidence threshold per transcript density
        (``confidence_by_density``), the threshold for ``per_um2`` transcripts
        per um^2 (:func:`confidence_for_density`); ``None``: the model's
        single threshold.

        Examples
        --------
        >>> m = GeneSegModel.new(NetworkConfig(widths=(8, 8, 8, 8, 8)))
        >>> m.meta["decode"] = {"confidence_threshold": 0.5, "confidence_by_density": [[0.1, 0.4], [1.0, 0.6]]}
        >>> m.decode_options(0.1), m.decode_options()
        ({'confidence_threshold': 0.4}, {'confidence_threshold': 0.5})
        """
        decode = dict(self.meta.get("decode", {}))
        table = decode.pop("confidence_by_density", None)
        if table and per_um2 is not None:
            decode["confidence_threshold"] = confidence_for_density(table, per_um2)
        return decode

    def inference_network(self, *, int8: bool = False) -> GeneSegNet | Int8GeneSegNet:
        """A copy of the network for inference, batch norms folded (:func:`fold_batch_norms`).

        ``int8=True``: in 8-bit integers (:mod:`gsn_spatial.core.network.quantize`) where the model carries
        :attr:`int8_ranges` and this torch can; otherwise float32. The model itself is left unchanged.

        Examples
        --------
        >>> m = GeneSegModel.new(NetworkConfig(widths=(8, 8, 8, 8, 8)))
        >>> type(m.inference_network(int8=True)).__name__  # no int8 ranges: float32
        'GeneSegNet'
        """
        folded = fold_batch_norms(self.network)
        if int8 and self.int8_ranges and int8_available():
            return quantize_int8(folded, self.int8_ranges)
        return folded
