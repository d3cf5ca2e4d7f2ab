"""What every plot shares: the paper's colours, saving and showing, labels-key checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

#: Colours of the paper's Fig. 2a: light blue for transcripts inside cells, yellow for those outside.
INSIDE_COLOUR = "#7fd4ff"


OUTSIDE_COLOUR = "#ffd400"


def finish(ax: Any, show: bool | None, save: str | Path | None) -> Any:
    import matplotlib.pyplot as plt

    fig = np.ravel(ax)[0].figure
    if save is not None:
        fig.savefig(save, dpi=150, bbox_inches="tight")
    if show:
        plt.show()
    return ax


def check_keys(labels_keys: Any, names: Any = None) -> tuple[list[str], list[str]]:
    """The labels keys and their display names (default: the keys), validated."""
    if isinstance(labels_keys, str) or not isinstance(labels_keys, (list, tuple)) or not labels_keys:
        raise TypeError("`labels_keys` must be a non-empty list of labels keys.")
    keys = list(labels_keys)
    names = list(names) if names is not None else keys
    if len(names) != len(keys):
        raise ValueError(f"`names` must have one entry per labels key ({len(keys)}), got {len(names)}.")
    return keys, names
