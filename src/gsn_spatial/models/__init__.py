"""Trained GeneSegNet models: the network plus the input settings it was trained with.

A model file is a ``torch.save`` dictionary with ``format``, the network
configuration, the input settings (:class:`InputSpec`: working pixel size,
nucleus and cell diameters of the training data, RNA map settings, intensity
percentiles), free-form ``meta`` (data, training, scores) and the weights.
Weights are stored in float16 to keep shipped files small; they are loaded as
float32. Files written before the input settings had physical units load as
models at 0.5 um/px with the RNA map they were trained with.
"""

from gsn_spatial.core.network.unet import NetworkConfig
from gsn_spatial.models._model import MODEL_FORMAT, GeneSegModel, InputSpec, confidence_for_density
from gsn_spatial.models._shipped import DEFAULT_MODEL, SHIPPED_MODELS, load

__all__ = [
    "GeneSegModel",
    "InputSpec",
    "NetworkConfig",
    "load",
    "SHIPPED_MODELS",
    "DEFAULT_MODEL",
    "MODEL_FORMAT",
    "confidence_for_density",
]
