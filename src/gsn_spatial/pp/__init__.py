"""Preprocessing: the RNA location map as an image element, labels from a transcript
assignment, lazy rescaling."""

from gsn_spatial.pp._labels import labels_from_assignment
from gsn_spatial.pp._rescale import rescale_image
from gsn_spatial.pp._rna import rna_density

__all__ = ["rna_density", "labels_from_assignment", "rescale_image"]
