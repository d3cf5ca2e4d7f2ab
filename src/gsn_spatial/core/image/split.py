"""Touching nuclei split apart in a binary segmentation, long nuclei kept whole (array level).

A watershed of the distance transform (EDT) from its maxima splits a clump of touching nuclei at the
necks between them. A long nucleus has no neck, but the ridge of its EDT is nearly flat along its length,
and a jagged outline puts small bumps on it: each bump seeds a piece, so a 3:1 nucleus comes out as two to
four round ones (measured on the second simulator's aligned stroma, ``benchmarks/foreign_tissue.py
--tissues elongated``: 209-274 objects for 170 nuclei, the diameter read 15-30 % too small).

So, after the watershed, two adjacent pieces are merged back where nothing in their shape says they are
two nuclei:

- no neck: the EDT where they meet is at least ``NECK_RATIO`` of the lower of their two peaks (two discs
  that touch meet at a neck much narrower than either; a long nucleus cut across is as wide at the cut
  as anywhere);
- no notch: their union is convex to within ``NOTCH_RATIO`` of the larger peak (the deepest point of the
  union's convex hull that it does not cover, as an EDT radius). Two nuclei pressed flat against each
  other have a wide contact, so no neck, but they leave notches where their outlines meet.

Both ratios were chosen on the DSB 2018 training images and the second simulator's tissues
(``benchmarks/size_estimate.py --split train``, docs/units.md); nothing was chosen on the held-out DSB images.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import convex_hull_image
from skimage.segmentation import relabel_sequential, watershed

__all__ = ["split_touching"]

SEED_DISTANCE = 0.5  # watershed seeds at least this fraction of the typical diameter apart
NECK_RATIO = 0.8  # pieces meeting where the EDT is at least this share of the lower peak have no neck
NOTCH_RATIO = 0.35  # a union whose hull gap is at most this share of the larger peak (EDT radii) is convex


def split_touching(objects: np.ndarray, n: int) -> tuple[np.ndarray, float]:
    """Split touching nuclei of a labelled mask, keeping long ones whole.

    Parameters
    ----------
    objects
        Labels ``1..n`` of connected foreground objects (0: background).
    n
        Number of objects.

    Returns
    -------
    labels, typical
        The split labels, and the typical nucleus diameter (px) that spaced the seeds: the median
        diameter of the largest disk inside each object, which a clump does not inflate (0 if there
        is no object at least 4 px across; the labels are then ``objects`` unchanged).

    Examples
    --------
    >>> import numpy as np
    >>> yy, xx = np.mgrid[:60, :100]
    >>> two = ((yy - 30) ** 2 + (xx - 30) ** 2 <= 15**2) | ((yy - 30) ** 2 + (xx - 55) ** 2 <= 15**2)
    >>> long = ((yy - 30) / 8.0) ** 2 + ((xx - 50) / 40.0) ** 2 <= 1
    >>> [int(split_touching(m.astype(np.int32), 1)[0].max()) for m in (two, long)]
    [2, 1]
    """
    if n == 0:
        return objects, 0.0
    mask = objects > 0
    edt = ndi.distance_transform_edt(mask)
    inscribed = 2.0 * _label_max(edt, objects, n)[1:]
    inscribed = inscribed[inscribed >= 4.0]
    if inscribed.size == 0:
        return objects, 0.0
    typical = float(np.median(inscribed))
    # Seeds are numbered sparsely (per group and object); 1..k keeps the per-label arrays small.
    pieces = relabel_sequential(watershed(-edt, _seeds(edt, objects, n, typical), mask=mask))[0]
    return _merge_without_neck_or_notch(pieces, edt), typical


def _seeds(edt: np.ndarray, objects: np.ndarray, n: int, typical: float) -> np.ndarray:
    """Watershed seeds: EDT maxima about ``SEED_DISTANCE * typical`` apart, one at least per object."""
    spacing = max(2, int(SEED_DISTANCE * typical))
    peaks = (edt > 0) & (edt == ndi.maximum_filter(edt, size=2 * spacing + 1))
    # Equal maxima closer than the spacing (plateaus, ridges) make one seed: group them by a dilation,
    # per object so that two objects never share a seed.
    groups, _ = ndi.label(ndi.binary_dilation(peaks, iterations=max(1, spacing // 2)), structure=np.ones((3, 3)))
    seeds = np.where(peaks, groups.astype(np.int64) * (n + 1) + objects, 0)
    # A small object next to a larger one can lose its maximum to it; seed it at its own maximum.
    missing = np.setdiff1d(np.arange(1, n + 1), objects[peaks])
    boxes = ndi.find_objects(objects) if missing.size else []
    for j, obj in enumerate(missing, start=int(seeds.max()) + 1):
        box = boxes[obj - 1]
        local = np.where(objects[box] == obj, edt[box], -1.0)
        seeds[box][np.unravel_index(np.argmax(local), local.shape)] = j
    return seeds


def _label_max(values: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    """Maximum of ``values`` per label ``0..n`` (0 where a label is absent)."""
    # ufunc.at over the labelled pixels: much faster than ndimage.maximum, which sorts the image.
    out = np.zeros(n + 1, dtype=np.float64)
    inside = labels > 0
    np.maximum.at(out, labels[inside], values[inside])
    return out


def _contacts(labels: np.ndarray, edt: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Adjacent label pairs ``a < b`` (4-connectivity) and the highest EDT along their contact."""
    pairs, heights = [], []
    for la, lb, ea, eb in (
        (labels[:, :-1], labels[:, 1:], edt[:, :-1], edt[:, 1:]),
        (labels[:-1], labels[1:], edt[:-1], edt[1:]),
    ):
        touch = (la != lb) & (la > 0) & (lb > 0)
        pairs.append(np.sort(np.stack([la[touch], lb[touch]], axis=1), axis=1))
        heights.append(np.minimum(ea[touch], eb[touch]))
    pair = np.concatenate(pairs).astype(np.int64)
    if pair.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    key, inverse = np.unique(pair[:, 0] * (n + 1) + pair[:, 1], return_inverse=True)
    height = np.zeros(key.size)
    np.maximum.at(height, inverse, np.concatenate(heights))
    return key // (n + 1), key % (n + 1), height


def _notch_depth(union: np.ndarray) -> float:
    """Radius of the largest disk in the part of ``union``'s convex hull that it does not cover (px)."""
    gap = convex_hull_image(union) & ~union
    return float(ndi.distance_transform_edt(np.pad(gap, 1)).max()) if gap.any() else 0.0


def _merge_without_neck_or_notch(labels: np.ndarray, edt: np.ndarray) -> np.ndarray:
    """Adjacent pieces merged where their contact is no neck and their union has no notch (module docstring)."""
    n = int(labels.max())
    if n < 2:
        return labels
    peak = _label_max(edt, labels, n)
    a, b, height = _contacts(labels, edt, n)
    merge = height >= NECK_RATIO * np.minimum(peak[a], peak[b])
    if not merge.any():
        return labels
    # Greedy, the flattest contacts first, and each merge tested on the whole of the two groups it joins: a
    # chain of pairwise-convex pieces (a row of touching nuclei) must not become one object.
    boxes = ndi.find_objects(labels)
    group = np.arange(n + 1)
    members: dict[int, list[int]] = {}
    order = np.flatnonzero(merge)[np.argsort(-(height / np.minimum(peak[a], peak[b]))[merge], kind="stable")]
    for k in order:
        ga, gb = group[a[k]], group[b[k]]
        if ga == gb:
            continue
        ids = members.get(ga, [ga]) + members.get(gb, [gb])
        y0, y1, x0, x1 = (
            min(boxes[i - 1][0].start for i in ids),
            max(boxes[i - 1][0].stop for i in ids),
            min(boxes[i - 1][1].start for i in ids),
            max(boxes[i - 1][1].stop for i in ids),
        )
        union = np.isin(labels[y0:y1, x0:x1], ids)
        if _notch_depth(union) > NOTCH_RATIO * peak[ids].max():
            continue
        for i in members.pop(gb, [gb]):
            group[i] = ga
        members[ga] = ids
    _, new = np.unique(group, return_inverse=True)
    return new.astype(labels.dtype)[labels]
