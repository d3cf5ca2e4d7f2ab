"""8-bit integer inference of the network, for CPUs without native bfloat16.

On a CPU with AVX2 but neither AMX nor AVX-512 bf16, float32 is the only
float precision that runs at full speed, and the network's convolutions run
there near the rate of a float32 matrix product (``benchmarks/network_throughput.py``).
Static int8 quantization (PyTorch's FX graph mode, oneDNN kernels) does the
same arithmetic in 8-bit integers: weights per output channel, activations per
tensor with ranges fixed in advance from calibration inputs.

The activation ranges are part of a model (``GeneSegModel.int8_ranges``),
computed once by :func:`calibrate_int8` on the model's own training data
(``scripts/calibrate_int8.py``), because choosing them well (a histogram search
per activation) takes tens of seconds and should not depend on the slide at
hand. :func:`quantize_int8` turns a float network and those ranges into an
int8 network in under a second.

Activations use 7 of their 8 bits (``reduce_range``): CPUs without VNNI
multiply unsigned 8-bit activations by signed 8-bit weights in pairs summed
into 16 bits, which saturates with full-range activations. With 8 bits the
maps of the shipped default differed from float32 by 0.030 in mean confidence
on a simulated window, with 7 bits by 0.008 (every layer in int8; one-off comparison, 2026-12-06).
The full-resolution layers and the 1x1 output heads stay in float32
(``FLOAT_MODULES``: no slower, and closer to float32's cells).

``torch.ao.quantization`` is deprecated in favour of ``torchao`` (whose CPU
path goes through ``torch.compile``) but is present and works in the torch
versions this package supports; :func:`int8_available` says whether it does
here, and inference falls back to float32 where it does not.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import threading
import warnings
from collections.abc import Iterable, Iterator

import numpy as np
import torch
from torch import nn

from gsn_spatial.core.network.unet import GeneSegNet, weights_digest

ENGINE = "onednn"
# Kept in float32: the full-resolution layers (stem, last decoder scale, output norm) and the 1x1 heads. There the
# 16 channels are too few for oneDNN's int8 kernels (the convolutions ran at 184 GOPS against 300-380 at 32-128
# channels, the batch norms 4-5x slower per value), so a window ran as fast with them in float32 (0.89-0.93 s
# against 0.95-0.99 s, one-off script), and the cells there are drawn: on the Xenium crop (no labels used) 893
# cells against float32's 906 and F1 0.74 at IoU 0.9 to them, against 923 and 0.65 with everything in int8.
FLOAT_MODULES = ("stem", "decoder.3", "out_norm", "head_confidence", "head_centre", "head_offset")


def int8_available() -> bool:
    """Whether this torch build can run the int8 network (FX quantization and the oneDNN engine).

    Examples
    --------
    >>> isinstance(int8_available(), bool)
    True
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import torch.ao.quantization.quantize_fx  # noqa: F401
    except ImportError:
        return False
    return ENGINE in torch.backends.quantized.supported_engines


@contextlib.contextmanager
def _engine() -> Iterator[None]:
    """oneDNN as the quantized engine within the block (weights are packed for it), restored afterwards.

    Also no stack trace recorded per traced node: symbolizing them took 3.2 s of a 6.0 s first
    quantization in a process under cProfile (3.9 s without it, 0.76 s after; 2-core host), for
    debugging information nothing here reads.
    """
    import torch.fx.config as fx_config

    previous = torch.backends.quantized.engine, getattr(fx_config, "do_not_emit_stack_traces", None)
    torch.backends.quantized.engine = ENGINE
    if previous[1] is not None:
        fx_config.do_not_emit_stack_traces = True
    try:
        with warnings.catch_warnings():
            # The deprecation notice of torch.ao.quantization and notes on observer arguments, once per call.
            warnings.simplefilter("ignore")
            yield
    finally:
        torch.backends.quantized.engine = previous[0]
        if previous[1] is not None:
            fx_config.do_not_emit_stack_traces = previous[1]


def _prepared(network: GeneSegNet, observer: type, example: torch.Tensor) -> torch.fx.GraphModule:
    """``network`` (in eval mode) with an ``observer`` after every activation to be quantized."""
    from torch.ao.quantization import QConfig, QConfigMapping
    from torch.ao.quantization.observer import PerChannelMinMaxObserver
    from torch.ao.quantization.quantize_fx import prepare_fx

    qconfig = QConfig(
        activation=observer.with_args(reduce_range=True),
        weight=PerChannelMinMaxObserver.with_args(dtype=torch.qint8, qscheme=torch.per_channel_symmetric),
    )
    mapping = QConfigMapping().set_global(qconfig)
    for name in FLOAT_MODULES:
        mapping.set_module_name(name, None)
    return prepare_fx(copy.deepcopy(network).eval(), mapping, (example,))


def _activation_observers(prepared: torch.fx.GraphModule) -> dict[str, nn.Module]:
    from torch.ao.quantization.observer import ObserverBase

    return {name: m for name, m in prepared.named_children() if isinstance(m, ObserverBase)}


def calibrate_int8(network: GeneSegNet, inputs: Iterable[torch.Tensor]) -> dict[str, tuple[float, float]]:
    """Activation ranges for :func:`quantize_int8`, chosen on ``inputs`` (``(n, 2, h, w)`` network inputs).

    Each activation's range is the one that PyTorch's ``HistogramObserver``
    finds to minimise the quantization error over all ``inputs`` (outliers
    clipped). Use inputs like those the model will see: its training data.

    Examples
    --------
    >>> from gsn_spatial.core.network.unet import NetworkConfig
    >>> net = GeneSegNet(NetworkConfig(widths=(8, 8, 8, 8, 8))).eval()
    >>> ranges = calibrate_int8(net, [torch.rand(1, 2, 32, 32)])
    >>> all(lo <= 0 <= hi for lo, hi in ranges.values())
    True
    """
    from torch.ao.quantization.observer import HistogramObserver

    inputs = list(inputs)
    if not inputs:
        raise ValueError("`inputs` is empty: calibration needs at least one network input.")
    with _engine():
        prepared = _prepared(network, HistogramObserver, inputs[0])
        with torch.inference_mode():
            for x in inputs:
                prepared(x)
        ranges = {}
        for name, obs in _activation_observers(prepared).items():
            scale, zero_point = obs.calculate_qparams()
            scale, zero_point = float(scale), int(zero_point)
            # The range these parameters represent, which a MinMaxObserver given it maps back to them.
            ranges[name] = ((obs.quant_min - zero_point) * scale, (obs.quant_max - zero_point) * scale)
    return ranges


def calibration_windows(inputs: np.ndarray, *, n: int = 4, size: int = 512, seed: int = 0) -> list[torch.Tensor]:
    """Up to ``n`` windows of ``size`` px (at most the array) from a ``(2, h, w)`` network input, for calibration.

    Placed at random (``seed``) and zero-padded to the network's input
    multiple, as ``predict_maps`` pads.

    Examples
    --------
    >>> [tuple(w.shape) for w in calibration_windows(np.zeros((2, 100, 700), np.float32), n=2, size=512)]
    [(1, 2, 112, 512), (1, 2, 112, 512)]
    """
    rng = np.random.default_rng(seed)
    _, h, w = inputs.shape
    wh, ww = min(size, h), min(size, w)
    out = []
    for _ in range(n):
        y, x = int(rng.integers(0, h - wh + 1)), int(rng.integers(0, w - ww + 1))
        out.append(network_input(inputs[:, y : y + wh, x : x + ww]))
    return out


def network_input(inputs: np.ndarray) -> torch.Tensor:
    """A ``(2, h, w)`` array as a ``(1, 2, h', w')`` float32 tensor, zero-padded to the network's input multiple.

    Examples
    --------
    >>> tuple(network_input(np.zeros((2, 20, 33), np.float32)).shape)
    (1, 2, 32, 48)
    """
    m = GeneSegNet.INPUT_MULTIPLE
    h, w = inputs.shape[1:]
    padded = np.pad(inputs, ((0, 0), (0, -h % m), (0, -w % m)))  # zero padding, as predict_maps pads
    return torch.from_numpy(np.ascontiguousarray(padded, dtype=np.float32))[None]


class Int8GeneSegNet:
    """The int8 form of a :class:`GeneSegNet`: same inputs, same outputs, same :meth:`predict`; CPU only.

    Not an ``nn.Module``, so that ``dask.distributed`` ships it to workers by
    pickling, which sends the float network and the ranges and quantizes
    again where it is unpickled (a quantized FX graph does not pickle, and
    dask's serializer for modules walks into it). ``eval`` and ``to`` are
    there for the code that handles networks in general.
    """

    predict = GeneSegNet.predict

    def __init__(self, graph: torch.fx.GraphModule, source: GeneSegNet, ranges: dict[str, tuple[float, float]]):
        self.graph = graph
        self.config = source.config
        self._source = (source, ranges)

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.graph(x)

    def eval(self) -> Int8GeneSegNet:
        return self

    def to(self, *args, **kwargs) -> Int8GeneSegNet:
        """Itself: it is in inference mode on the CPU already; a memory format changes nothing."""
        for a in (*args, kwargs.get("device")):
            if isinstance(a, (str, torch.device)) and torch.device(a).type != "cpu":
                raise ValueError(f"The int8 network runs on the CPU only, not on {a!r}.")
        return self

    def __reduce__(self):
        return quantize_int8, self._source


_CACHE: collections.OrderedDict[str, Int8GeneSegNet] = collections.OrderedDict()
_CACHE_SIZE = 4
_cache_lock = threading.Lock()


def _key(network: GeneSegNet, ranges: dict[str, tuple[float, float]]) -> str:
    return weights_digest(network) + repr(sorted(ranges.items()))


def quantize_int8(network: GeneSegNet, ranges: dict[str, tuple[float, float]]) -> Int8GeneSegNet:
    """An int8 copy of ``network`` (fold its batch norms first) with the activation ranges of :func:`calibrate_int8`.

    ``ranges`` must come from the same architecture (and torch's naming of its
    activations); anything else raises ``ValueError``. The argument is left
    unchanged. Quantizing takes about 0.6 s for the shipped default (2-core
    CPU), as much as a 0.7 MP segment run's network, so the last few results are
    kept and a network with the same weights and ranges is returned again
    (it is used read-only).

    Examples
    --------
    >>> from gsn_spatial.core.network.unet import NetworkConfig
    >>> net = GeneSegNet(NetworkConfig(widths=(8, 8, 8, 8, 8))).eval()
    >>> x = torch.rand(1, 2, 32, 32)
    >>> q = quantize_int8(net, calibrate_int8(net, [x]))
    >>> float((q.predict(x) - net.predict(x))[:, :2].abs().max()) < 0.1
    True
    """
    key = _key(network, ranges)
    with _cache_lock:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    quantized = _quantize(network, ranges)
    with _cache_lock:
        _CACHE[key] = quantized
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return quantized


def _quantize(network: GeneSegNet, ranges: dict[str, tuple[float, float]]) -> Int8GeneSegNet:
    from torch.ao.quantization.observer import MinMaxObserver
    from torch.ao.quantization.quantize_fx import convert_fx

    m = GeneSegNet.INPUT_MULTIPLE
    with _engine():
        prepared = _prepared(network, MinMaxObserver, torch.zeros(1, network.config.in_channels, m, m))
        observers = _activation_observers(prepared)
        if set(observers) != set(ranges):
            raise ValueError(
                f"The int8 ranges name {len(ranges)} activations, this network has {len(observers)} "
                "(another architecture, or another torch version's naming); recalibrate with calibrate_int8."
            )
        for name, obs in observers.items():
            lo, hi = ranges[name]
            obs.min_val.resize_(()).fill_(lo)
            obs.max_val.resize_(()).fill_(hi)
        graph = convert_fx(prepared)
    return Int8GeneSegNet(graph.eval(), copy.deepcopy(network), dict(ranges))
