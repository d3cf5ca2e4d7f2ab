"""Transcripts as an image: the RNA location map (the paper's Eq. 5)."""
