"""Image and labels elements as arrays: the full-resolution level, one channel, windows read lazily."""

from __future__ import annotations

import logging
import re
from typing import Any

import numpy as np
import xarray as xr

from gsn_spatial._constants import Keys

logger = logging.getLogger(__name__)


def scale0(element: Any) -> xr.DataArray:
    """Full-resolution DataArray of a single- or multi-scale raster element."""
    if isinstance(element, xr.DataTree):
        return next(iter(element["scale0"].values()))
    return element


def select_channel(image: xr.DataArray, channel: int | str | None, *, image_key: str) -> xr.DataArray:
    """The ``(y, x)`` plane of one channel of a ``(c, y, x)`` or ``(c, z, y, x)`` image.

    Without ``channel``: the only channel, or else the one channel whose name
    reads as a nucleus stain (``Keys.NUCLEUS_STAIN_PATTERN``: "DAPI",
    "Hoechst", ...), or else the blue channel of an RGB composite (channels
    ``0, 1, 2`` or ``r, g, b``; a warning); a ValueError otherwise. A z-stack
    is brought to its maximum projection along z, lazily (a nucleus is in
    focus in some plane, and a section is segmented in its plane, as its
    transcripts are); to segment one plane, pass an image of that plane.
    Non-finite pixels of a float image (no data) are read as background
    (:func:`~gsn_spatial.core.image.intensity.fill_non_finite`, chunk by chunk).
    """
    plane = _select_channel(image, channel, image_key=image_key)
    if plane.dtype.kind == "f":  # NaN marks pixels with no data in float mosaics: read them as background
        from gsn_spatial.core.image.intensity import fill_non_finite

        data = plane.data
        lazy = hasattr(data, "map_blocks")  # a dask array: each chunk filled when it is read
        plane = plane.copy(data=data.map_blocks(fill_non_finite, dtype=data.dtype) if lazy else fill_non_finite(data))
    return plane


def stain_channels(image: xr.DataArray) -> list[str]:
    """The channel names of ``image`` that read as a nucleus stain (``Keys.NUCLEUS_STAIN_PATTERN``).

    >>> import numpy as np, xarray as xr
    >>> stain_channels(xr.DataArray(np.zeros((2, 4, 4)), dims=("c", "y", "x"), coords={"c": ["DAPI", "PolyT"]}))
    ['DAPI']
    """
    names = image.coords["c"].values.tolist() if "c" in image.coords else []
    return [n for n in names if isinstance(n, str) and re.search(Keys.NUCLEUS_STAIN_PATTERN, n, re.IGNORECASE)]


#: Channel names of an RGB composite (lower case), whose blue channel is taken as the nucleus stain.
RGB_NAMES = (["0", "1", "2"], ["r", "g", "b"], ["red", "green", "blue"])


def _select_channel(image: xr.DataArray, channel: int | str | None, *, image_key: str) -> xr.DataArray:
    if "z" in image.dims:
        logger.info("Image %r is a z-stack of %d planes: using its maximum projection.", image_key, image.sizes["z"])
        image = image.max("z", keep_attrs=True)
    names = image.coords["c"].values.tolist() if "c" in image.coords else list(range(image.sizes.get("c", 1)))
    if channel is None:
        if len(names) == 1:
            return image.isel(c=0)
        stains = stain_channels(image)
        if not stains and [str(n).lower() for n in names] in RGB_NAMES:
            from gsn_spatial.core.image.intensity import bright_ground

            if bright_ground(image.isel(c=2).data):
                raise ValueError(
                    f"Image {image_key!r} is an RGB image on a bright ground (brightfield, such as H&E), not a "
                    "fluorescence nucleus stain; pass `image_key=` naming the nucleus-stain image (DAPI), or "
                    "`image_channel=` to segment one of its channels anyway."
                )
            # Fluorescence composites show DAPI in blue (CosMx's CellComposite among them; spatialdata-io reads
            # its channels as 0, 1, 2): a convention, so said as a warning.
            logger.warning(
                "Image %r is an RGB composite with no channel named as a nucleus stain: using its blue channel "
                "%r, where composites show DAPI (pass `image_channel=` to choose another).", image_key, names[2],
            )  # fmt: skip
            return image.isel(c=2)
        if len(stains) != 1:
            raise ValueError(
                f"Image {image_key!r} has {len(names)} channels {names}, "
                f"{'none' if not stains else 'several'} named as a nucleus stain (DAPI, Hoechst, ...); "
                "pass `image_channel=` with the nucleus stain."
            )
        logger.info(
            "Image %r: using channel %r as the nucleus stain (pass `image_channel=` to choose).", image_key, stains[0]
        )
        return image.isel(c=names.index(stains[0]))
    if isinstance(channel, (int, np.integer)) and not isinstance(channel, bool):
        if not -len(names) <= channel < len(names):
            raise ValueError(
                f"`image_channel`={channel} is out of range for image {image_key!r} with channels {names}."
            )
        return image.isel(c=int(channel))
    if channel not in names:
        raise ValueError(f"Image {image_key!r} has no channel {channel!r}; channels are {names}.")
    return image.isel(c=names.index(channel))


class ArrayWindows:
    """Windows of a lazy 2-D array, optionally resampled and intensity-normalised (picklable).

    With ``zoom`` != 1 a window ``(y0, y1, x0, x1)`` is in pixels of the
    working scale (``zoom`` working pixels per array pixel) and is computed
    from the array pixels around it alone
    (:func:`~gsn_spatial.core.image.resample.resample_window`).
    """

    def __init__(self, array: Any, intensity_range: tuple[float, float] | None = None, zoom: float = 1.0):
        self.array = array
        self.intensity_range = intensity_range
        self.zoom = float(zoom)

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Window of the array itself, at its own resolution."""
        window = self.array[y0:y1, x0:x1]
        # Synchronous as an argument, not a config change: this runs in dask's worker threads too.
        return np.asarray(window.compute(scheduler="synchronous") if hasattr(window, "compute") else window)

    def __call__(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        from gsn_spatial.core.image.resample import is_identity, resample_window

        if is_identity(self.zoom):
            window = self.read(y0, y1, x0, x1)
        else:
            shape = (int(self.array.shape[0]), int(self.array.shape[1]))
            window = resample_window(self.read, shape, (y0, y1, x0, x1), self.zoom)
        if self.intensity_range is None:
            return window
        from gsn_spatial.core.image.intensity import normalise_intensity

        return normalise_intensity(window, *self.intensity_range)
