"""Training: targets from labels, fitting, recursive rounds from noisy labels, level-set refinement."""
