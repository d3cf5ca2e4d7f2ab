"""gsn_spatial: GeneSegNet cell segmentation from a nucleus stain and transcript locations, for SpatialData.

>>> import gsn_spatial as gsn
>>> sdata = gsn.datasets.synthetic_tissue()   # doctest: +SKIP
>>> gsn.tl.segment(sdata)                     # doctest: +SKIP
"""

__version__ = "0.1.0"

from gsn_spatial import datasets, io, models, pl, pp, qc, tl  # noqa: E402
from gsn_spatial._constants import run_keys  # noqa: E402
from gsn_spatial._settings import settings  # noqa: E402

__all__ = ["datasets", "io", "models", "pl", "pp", "qc", "tl", "settings", "run_keys", "__version__"]
