"""Transcripts to cells: by the mask, then by expression near boundaries; the count matrix."""
