"""Sorted runs on disk: an external group-by for records too many to hold in memory.

Every producer (a partition of the transcripts, a block of the slide) writes one
*run*: its records sorted by an integer key, plus the offsets of each key in
the file. A consumer reads the records of one key (or a range of keys) from
all runs. Producers never touch the same file, so they can run in any order,
in several processes or on several machines sharing the directory, and a run
that is on disk is finished (it is written under a temporary name and renamed),
which is what makes an interrupted job resumable.

This is the disk layout of one pass of an external sort. dask's dataframe
shuffle does the same job but needs several passes and holds whole partitions;
a key-range read here touches only the bytes it needs.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


class SortedRuns:
    """A directory of runs of records of one ``dtype``, grouped by a key in ``[0, n_keys)``.

    Examples
    --------
    >>> import tempfile
    >>> runs = SortedRuns(tempfile.mkdtemp(), n_keys=3, dtype=[("v", "i4")])
    >>> runs.write("a", np.array([2, 0, 2]), np.array([(1,), (2,), (3,)], dtype=runs.dtype))
    >>> runs.write("b", np.array([0]), np.array([(4,)], dtype=runs.dtype))
    >>> runs.read(0)["v"].tolist(), runs.read(2)["v"].tolist(), runs.read(1)["v"].tolist()
    ([2, 4], [1, 3], [])
    """

    def __init__(self, directory: str | Path, n_keys: int, dtype: np.dtype | list):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.n_keys = int(n_keys)
        self.dtype = np.dtype(dtype)
        self._open: dict[str, tuple[int, np.ndarray]] = {}
        self._runs: list[str] | None = None

    def _paths(self, run: str) -> tuple[Path, Path]:
        return self.directory / f"{run}.records.npy", self.directory / f"{run}.bounds.npy"

    def has(self, run: str) -> bool:
        """Whether run ``run`` is complete on disk."""
        return self._paths(run)[1].exists()

    def write(self, run: str, keys: np.ndarray, records: np.ndarray) -> None:
        """Write run ``run``: ``records`` grouped by ``keys`` (each in ``[0, n_keys)``)."""
        keys = np.asarray(keys, dtype=np.int64)
        if len(keys) and (keys.min() < 0 or keys.max() >= self.n_keys):
            raise ValueError(f"Run keys must be in [0, {self.n_keys}).")
        order = np.argsort(keys, kind="stable")
        bounds = np.searchsorted(keys[order], np.arange(self.n_keys + 1)).astype(np.int64)
        rec_path, bounds_path = self._paths(run)
        # Bounds are written last and by rename: a run whose bounds exist is complete.
        for path, array in ((rec_path, np.asarray(records, dtype=self.dtype)[order]), (bounds_path, bounds)):
            tmp = path.with_name(path.name + ".tmp.npy")
            np.save(tmp, array)
            os.replace(tmp, path)
        self._runs = None

    def runs(self) -> list[str]:
        """Names of the complete runs (listed once; a later write refreshes the list)."""
        if self._runs is None:
            self._runs = sorted(p.name[: -len(".bounds.npy")] for p in self.directory.glob("*.bounds.npy"))
        return self._runs

    def _load(self, run: str) -> tuple[int, np.ndarray]:
        """Byte offset of the records in the run's file, and the run's key bounds."""
        if run not in self._open:
            rec_path, bounds_path = self._paths(run)
            with open(rec_path, "rb") as f:
                version = np.lib.format.read_magic(f)
                np.lib.format.read_array_header_1_0(f) if version == (1, 0) else np.lib.format.read_array_header_2_0(f)
                self._open[run] = (f.tell(), np.load(bounds_path))
        return self._open[run]

    def key_counts(self) -> np.ndarray:
        """Records per key over all runs (from the runs' bounds alone, no record is read)."""
        total = np.zeros(self.n_keys, dtype=np.int64)
        for run in self.runs():
            total += np.diff(self._load(run)[1])
        return total

    def read(self, key_start: int, key_stop: int | None = None) -> np.ndarray:
        """Records with key in ``[key_start, key_stop)`` (default one key) from every run."""
        key_stop = key_start + 1 if key_stop is None else key_stop
        parts = []
        for run in self.runs():
            offset, bounds = self._load(run)
            lo, hi = int(bounds[key_start]), int(bounds[key_stop])
            if hi > lo:
                # Plain reads of the byte range, not memory maps: mapped pages would stay resident in the
                # process and make its memory grow with the slide.
                parts.append(
                    np.fromfile(
                        self._paths(run)[0], dtype=self.dtype, count=hi - lo, offset=offset + lo * self.dtype.itemsize
                    )
                )
        return np.concatenate(parts) if parts else np.zeros(0, dtype=self.dtype)
