"""Metrics on arrays: matching against a reference, cell shape, the paper's slide-level QC."""
