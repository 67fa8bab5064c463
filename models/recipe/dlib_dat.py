"""Parse dlib's ``dlib_face_recognition_resnet_model_v1.dat`` without dlib.

The file is dlib's serialisation of the ``anet_type`` network from
``dnn_face_recognition_ex.cpp``. It stores no layer-type tags for the wrapper
objects, so the parser walks the known template and insists on consuming every
byte: a file with any other shape is rejected rather than half-read.

Encoding facts (checked against dlib's output, not only its comments):

* integers: one control byte (low 4 bits = byte count, bit 0x80 = negative),
  then the little-endian magnitude;
* float/double scalars: int64 mantissa, then int16 exponent (value = m * 2**e);
* strings: integer length, then bytes; bools: ASCII ``'0'``/``'1'``;
* tensors: version 2, then N, K, NR, NC, then raw little-endian float32 (NCHW);
* alias tensors: version 1, then N, K, NR, NC (a view into the params tensor).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class DatFormatError(ValueError):
    """The .dat file does not have the shape of dlib's face recognition ResNet."""


@dataclass(frozen=True)
class Layer:
    """One layer in forward order.

    kind: ``input | con | affine | relu | max_pool | avg_pool | add_prev | tag | skip | fc``.
    For ``con``: ``weights`` (N, K, R, C) float32 and ``bias`` (N,); for ``affine``:
    ``gamma`` and ``beta`` (K,); for ``fc``: ``weights`` (in, out). ``tag``/``skip``/``add_prev``
    carry the tag number in ``tag``.
    """

    kind: str
    tag: int = 0
    filters: int = 0
    size: tuple[int, int] = (0, 0)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    weights: np.ndarray | None = None
    bias: np.ndarray | None = None
    gamma: np.ndarray | None = None
    beta: np.ndarray | None = None
    mean_rgb: tuple[float, float, float] = (0.0, 0.0, 0.0)


@dataclass
class Network:
    """The parsed network: layers in forward order plus the loss settings."""

    layers: list[Layer] = field(default_factory=list)
    margin: float = 0.0
    distance_threshold: float = 0.0

    @property
    def parameter_count(self) -> int:
        total = 0
        for layer in self.layers:
            for arr in (layer.weights, layer.bias, layer.gamma, layer.beta):
                if arr is not None:
                    total += int(arr.size)
        return total


def template() -> list[tuple[str, dict]]:
    """dlib's ``anet_type`` unrolled in forward order as (kind, args)."""
    ops: list[tuple[str, dict]] = [
        ("input", {}),
        ("con", {"filters": 32, "size": 7, "stride": 2}),
        ("affine", {}),
        ("relu", {}),
        ("max_pool", {"size": 3, "stride": 2}),
    ]

    def ares(n: int) -> None:
        ops.extend([
            ("tag", {"tag": 1}),
            ("con", {"filters": n, "size": 3, "stride": 1}), ("affine", {}), ("relu", {}),
            ("con", {"filters": n, "size": 3, "stride": 1}), ("affine", {}),
            ("add_prev", {"tag": 1}), ("relu", {}),
        ])

    def ares_down(n: int) -> None:
        ops.extend([
            ("tag", {"tag": 1}),
            ("con", {"filters": n, "size": 3, "stride": 2}), ("affine", {}), ("relu", {}),
            ("con", {"filters": n, "size": 3, "stride": 1}), ("affine", {}),
            ("tag", {"tag": 2}), ("skip", {"tag": 1}),
            ("avg_pool", {"size": 2, "stride": 2}),
            ("add_prev", {"tag": 2}), ("relu", {}),
        ])

    for _ in range(3):
        ares(32)
    ares_down(64)
    for _ in range(3):
        ares(64)
    ares_down(128)
    for _ in range(2):
        ares(128)
    ares_down(256)
    for _ in range(2):
        ares(256)
    ares_down(256)
    ops.append(("avg_pool", {"size": 0, "stride": 1}))  # avg_pool_everything
    ops.append(("fc", {"outputs": 128}))
    return ops


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def integer(self) -> int:
        if self.pos >= len(self.data):
            raise DatFormatError("unexpected end of file")
        control = self.data[self.pos]
        count = control & 0x0F
        if control & 0x70 or count > 8:
            raise DatFormatError(f"bad integer control byte {control:#x} at offset {self.pos}")
        start = self.pos + 1
        value = int.from_bytes(self.data[start:start + count], "little")
        self.pos = start + count
        return -value if control & 0x80 else value

    def expect_int(self, want: int, what: str) -> None:
        at = self.pos
        got = self.integer()
        if got != want:
            raise DatFormatError(f"{what}: expected {want}, found {got} at offset {at}")

    def real(self) -> float:
        mantissa = self.integer()
        exponent = self.integer()
        return float(mantissa) * 2.0 ** exponent

    def string(self) -> str:
        n = self.integer()
        raw = self.data[self.pos:self.pos + n]
        self.pos += n
        return raw.decode("ascii", errors="replace")

    def expect_str(self, want: str) -> None:
        at = self.pos
        got = self.string()
        if got != want:
            raise DatFormatError(f"expected layer {want!r}, found {got!r} at offset {at}")

    def boolean(self) -> bool:
        ch = self.data[self.pos:self.pos + 1]
        if ch not in (b"0", b"1"):
            raise DatFormatError(f"expected a bool at offset {self.pos}, found {ch!r}")
        self.pos += 1
        return ch == b"1"

    def tensor(self) -> np.ndarray:
        self.expect_int(2, "tensor version")
        dims = tuple(self.integer() for _ in range(4))
        count = int(np.prod(dims))
        end = self.pos + 4 * count
        if end > len(self.data):
            raise DatFormatError("tensor runs past the end of the file")
        arr = np.frombuffer(self.data, dtype="<f4", count=count, offset=self.pos).reshape(dims)
        self.pos = end
        return arr.astype(np.float32)

    def alias(self) -> tuple[int, ...]:
        self.expect_int(1, "alias tensor version")
        return tuple(self.integer() for _ in range(4))


def _read_con(r: _Reader, spec: dict) -> Layer:
    r.expect_str("con_4")
    params = r.tensor().ravel()
    filters, nr, nc = r.integer(), r.integer(), r.integer()
    stride = (r.integer(), r.integer())
    padding = (r.integer(), r.integer())
    wshape = r.alias()
    bshape = r.alias()
    for _ in range(4):  # learning-rate and weight-decay multipliers
        r.real()
    if (filters, nr, stride[0]) != (spec["filters"], spec["size"], spec["stride"]) or nr != nc:
        raise DatFormatError(f"convolution {filters}x{nr}x{nc}/{stride} does not fit the template {spec}")
    nw = int(np.prod(wshape))
    weights = params[:nw].reshape(wshape[0], wshape[1], wshape[2], wshape[3])
    bias = params[nw:nw + int(np.prod(bshape))].copy()
    return Layer("con", filters=filters, size=(nr, nc), stride=stride, padding=padding,
                 weights=weights.copy(), bias=bias)


def _read_affine(r: _Reader) -> Layer:
    r.expect_str("affine_")
    params = r.tensor().ravel()
    g = r.alias()
    r.alias()
    mode = r.integer()
    if mode != 0:
        raise DatFormatError(f"affine layer in mode {mode}; the template has convolution mode 0")
    n = int(np.prod(g))
    return Layer("affine", gamma=params[:n].copy(), beta=params[n:2 * n].copy())


def _read_pool(r: _Reader, name: str, kind: str, spec: dict) -> Layer:
    r.expect_str(name)
    nr, nc, sy, sx, py, px = (r.integer() for _ in range(6))
    if (nr, sy) != (spec["size"], spec["stride"]) or nr != nc:
        raise DatFormatError(f"{name} {nr}x{nc}/{sy} does not fit the template {spec}")
    return Layer(kind, size=(nr, nc), stride=(sy, sx), padding=(py, px))


def _read_fc(r: _Reader, spec: dict) -> Layer:
    r.expect_str("fc_2")
    outputs, inputs = r.integer(), r.integer()
    params = r.tensor().ravel()
    wshape = r.alias()
    r.alias()
    r.integer()  # bias mode
    for _ in range(4):
        r.real()
    if outputs != spec["outputs"]:
        raise DatFormatError(f"fc layer has {outputs} outputs, template wants {spec['outputs']}")
    weights = params[: inputs * outputs].reshape(wshape[0], wshape[1]).copy()
    return Layer("fc", filters=outputs, weights=weights)


def _read_details(r: _Reader, kind: str, spec: dict) -> Layer:
    if kind == "con":
        return _read_con(r, spec)
    if kind == "affine":
        return _read_affine(r)
    if kind == "relu":
        r.expect_str("relu_")
        return Layer("relu")
    if kind == "max_pool":
        return _read_pool(r, "max_pool_2", kind, spec)
    if kind == "avg_pool":
        return _read_pool(r, "avg_pool_2", kind, spec)
    if kind == "add_prev":
        r.expect_str("add_prev_")
        return Layer("add_prev", tag=spec["tag"])
    if kind == "fc":
        return _read_fc(r, spec)
    raise DatFormatError(f"no reader for {kind}")


def _read_add_layer_tail(r: _Reader) -> None:
    for _ in range(3):  # setup-called, gradient-stale, output-disabled
        r.boolean()
    for _ in range(3):  # x_grad, cached_output, grad_final: empty in a saved model
        t = r.tensor()
        if t.size:
            raise DatFormatError("a saved network should carry no cached tensors")


def parse(data: bytes) -> Network:
    """Parse the whole file; raise :class:`DatFormatError` unless every byte fits."""
    ops = template()
    r = _Reader(data)
    r.expect_int(1, "loss layer version")
    r.expect_str("loss_metric_2")
    net = Network(margin=r.real(), distance_threshold=r.real())
    # Wrapper versions are written outermost first: add_layer=2, tag/skip=1; the
    # add_layer that sits directly on the input layer is a specialisation with version 3.
    for kind, _ in reversed(ops[2:]):
        r.expect_int(1 if kind in ("tag", "skip") else 2, f"{kind} wrapper version")
    r.expect_int(3, "input add_layer version")
    r.expect_str("input_rgb_image_sized")
    mean = (r.real(), r.real(), r.real())
    if (r.integer(), r.integer()) != (150, 150):
        raise DatFormatError("input layer is not sized 150x150")
    net.layers.append(Layer("input", mean_rgb=mean))
    for index, (kind, spec) in enumerate(ops[1:]):
        if kind in ("tag", "skip"):
            net.layers.append(Layer(kind, tag=spec["tag"]))
            continue
        net.layers.append(_read_details(r, kind, spec))
        _read_add_layer_tail(r)
        if index == 0:
            # The version-3 input add_layer ends with one more integer (always 1 here).
            r.expect_int(1, "input add_layer trailer")
    if r.pos != len(data):
        raise DatFormatError(f"{len(data) - r.pos} bytes left over after the template")
    return net


def load(path: Path) -> Network:
    return parse(Path(path).read_bytes())
