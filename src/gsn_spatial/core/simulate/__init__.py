"""Simulated tissue whose truth is known by construction."""
