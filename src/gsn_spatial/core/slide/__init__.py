"""Whole slides out of core: the block grid, sorted runs on disk, and the steps of a run."""
