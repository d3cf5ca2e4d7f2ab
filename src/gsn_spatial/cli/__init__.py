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

from gsn_spatial.cli._commands import DataError, main
from gsn_spatial.cli._parser import PROG, build_parser

__all__ = ["PROG", "DataError", "build_parser", "main"]
