"""dlib's serialised face-recognition ResNet read in pure Python and written as an ONNX graph."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import onnx

__all__ = [
    "DEFAULT_OPSET",
    "DLIB_RESNET_V1",
    "INPUT_NAME",
    "OUTPUT_NAME",
    "DlibFormatError",
    "DlibLayer",
    "DlibNetwork",
    "LayerSpec",
    "dlib_resnet_v1_layers",
    "parse_dlib_network",
    "to_onnx",
]

#: ONNX opset of the converted graph.
DEFAULT_OPSET = 17
#: Names of the graph's input ([N, 3, 150, 150] normalised RGB) and output ([N, 128]).
INPUT_NAME = "chip"
OUTPUT_NAME = "embedding"


class DlibFormatError(ValueError):
    """The bytes are not the dlib network they are expected to be."""


@dataclass(frozen=True, slots=True)
class LayerSpec:
    """One layer of a dlib network type, as written in its C++ template.

    ``kind`` is ``con``, ``affine``, ``relu``, ``add_prev``, ``avg_pool``, ``max_pool``, ``fc``,
    ``tag`` or ``skip``; ``args`` holds the template arguments (for ``con``: filters, rows,
    columns, stride; pools: rows, columns, stride; ``fc``: outputs; ``tag``/``skip``/``add_prev``:
    the tag id).
    """

    kind: str
    args: tuple[int, ...] = ()


def _block(n: int, stride: int) -> list[LayerSpec]:
    # block = BN<con<N,3,3,1,1,relu<BN<con<N,3,3,stride,stride,SUBNET>>>>>, outermost first
    return [LayerSpec("affine"), LayerSpec("con", (n, 3, 3, 1)), LayerSpec("relu"),
            LayerSpec("affine"), LayerSpec("con", (n, 3, 3, stride))]


def _ares(n: int) -> list[LayerSpec]:
    # relu<add_prev1<block<N,affine,1,tag1<SUBNET>>>>
    return [LayerSpec("relu"), LayerSpec("add_prev", (1,)), *_block(n, 1), LayerSpec("tag", (1,))]


def _ares_down(n: int) -> list[LayerSpec]:
    # relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,affine,2,tag1<SUBNET>>>>>>>
    return [LayerSpec("relu"), LayerSpec("add_prev", (2,)), LayerSpec("avg_pool", (2, 2, 2)),
            LayerSpec("skip", (1,)), LayerSpec("tag", (2,)), *_block(n, 2), LayerSpec("tag", (1,))]


def dlib_resnet_v1_layers() -> list[LayerSpec]:
    """The layers of ``anet_type`` in dlib's ``examples/dnn_face_recognition_ex.cpp``, outermost first.

    ``loss_metric<fc_no_bias<128, avg_pool_everything<alevel0<alevel1<alevel2<alevel3<alevel4<
    max_pool<3,3,2,2, relu<affine<con<32,7,7,2,2, input_rgb_image_sized<150>>>>>>>>>>>>>``
    (the loss and the input layer are not in the list).
    """
    level0 = _ares_down(256)
    level1 = _ares(256) + _ares(256) + _ares_down(256)
    level2 = _ares(128) + _ares(128) + _ares_down(128)
    level3 = _ares(64) + _ares(64) + _ares(64) + _ares_down(64)
    level4 = _ares(32) + _ares(32) + _ares(32)
    return [
        LayerSpec("fc", (128,)), LayerSpec("avg_pool", (0, 0, 1)),
        *level0, *level1, *level2, *level3, *level4,
        LayerSpec("max_pool", (3, 3, 2)), LayerSpec("relu"), LayerSpec("affine"), LayerSpec("con", (32, 7, 7, 2)),
    ]


#: The face-recognition network's layer list.
DLIB_RESNET_V1 = tuple(dlib_resnet_v1_layers())


@dataclass(slots=True)
class DlibLayer:
    """A parsed layer: its spec and what the file stores for it (weights as float32 arrays)."""

    spec: LayerSpec
    params: dict[str, np.ndarray] = field(default_factory=dict)
    #: Padding (rows, columns) for convolutions and pools.
    padding: tuple[int, int] = (0, 0)


@dataclass(slots=True)
class DlibNetwork:
    """A parsed network: input layer, layers outermost first, loss details, bytes read."""

    input_size: tuple[int, int]
    input_mean_rgb: tuple[float, float, float]
    layers: list[DlibLayer]
    loss: dict[str, float]
    bytes_read: int


class _Reader:
    """Cursor over dlib's serialisation primitives (dlib/serialize.h, dlib/dnn/tensor.h)."""

    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.pos = 0

    def _take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise DlibFormatError(f"unexpected end of data at byte {self.pos} (wanted {n} more)")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def int(self) -> int:
        # control byte: low 4 bits the byte count, 0x80 the sign; then little-endian magnitude
        ctrl = self._take(1)[0]
        size = ctrl & 0x0F
        if size > 8 or ctrl & 0x70:
            raise DlibFormatError(f"bad integer control byte 0x{ctrl:02x} at byte {self.pos - 1}")
        value = int.from_bytes(self._take(size), "little")
        return -value if ctrl & 0x80 else value

    def float(self) -> float:
        # float_details: mantissa (int64) and exponent (int16), value = mantissa * 2**exponent
        if self.pos < len(self.data) and self.data[self.pos] & 0x70:
            raise DlibFormatError(f"old ASCII float format at byte {self.pos} is not supported")
        mantissa, exponent = self.int(), self.int()
        if exponent in (32000, 32001, 32002):
            return {32000: float("inf"), 32001: float("-inf"), 32002: float("nan")}[exponent]
        return float(np.ldexp(np.float64(mantissa), exponent))

    def bool(self) -> bool:
        ch = bytes(self._take(1))
        if ch not in (b"0", b"1"):
            raise DlibFormatError(f"bad bool {ch!r} at byte {self.pos - 1}")
        return ch == b"1"

    def string(self) -> str:
        n = self.int()
        return bytes(self._take(n)).decode("latin-1")

    def tensor(self) -> np.ndarray:
        version = self.int()
        if version != 2:
            raise DlibFormatError(f"tensor version {version} at byte {self.pos} (expected 2)")
        shape = tuple(self.int() for _ in range(4))
        count = int(np.prod(shape))
        values = np.frombuffer(self._take(4 * count), dtype="<f4").astype(np.float32)
        return values.reshape(shape)

    def alias(self) -> tuple[int, int, int, int]:
        version = self.int()
        if version != 1:
            raise DlibFormatError(f"alias_tensor version {version} at byte {self.pos} (expected 1)")
        return tuple(self.int() for _ in range(4))

    def expect(self, value, what: str, got=None) -> None:
        if got != value:
            raise DlibFormatError(f"{what}: expected {value!r}, found {got!r} (before byte {self.pos})")


def _slices(params: np.ndarray, *shapes: tuple[int, ...]) -> list[np.ndarray]:
    """Consecutive alias_tensor views of a flat params tensor."""
    flat = params.reshape(-1)
    out, offset = [], 0
    for shape in shapes:
        n = int(np.prod(shape))
        out.append(flat[offset:offset + n].reshape(shape))
        offset += n
    if offset != flat.size:
        raise DlibFormatError(f"params hold {flat.size} values, aliases use {offset}")
    return out


def _details(r: _Reader, spec: LayerSpec) -> DlibLayer:
    layer = DlibLayer(spec)
    kind = spec.kind
    version = r.string()
    if kind == "con":
        r.expect("con_4", "convolution version", version)
        params = r.tensor()
        filters, nr, nc, sy, sx, py, px = (r.int() for _ in range(7))
        n, kr, kc, stride = spec.args
        r.expect((n, kr, kc, stride, stride), "convolution shape", (filters, nr, nc, sy, sx))
        w_shape, b_shape = r.alias(), r.alias()
        for _ in range(4):
            r.float()  # learning-rate and weight-decay multipliers
        w, b = _slices(params, w_shape, b_shape)
        if w_shape[0] != n or b_shape != (1, n, 1, 1):
            raise DlibFormatError(f"convolution aliases {w_shape} / {b_shape} do not fit {n} filters")
        layer.params = {"weight": w, "bias": b.reshape(n)}
        layer.padding = (py, px)
    elif kind == "affine":
        if version != "affine_":
            raise DlibFormatError(f"affine version {version!r} (only 'affine_' is supported, e.g. not bn_con2)")
        params = r.tensor()
        g_shape, b_shape = r.alias(), r.alias()
        mode = r.int()
        r.expect(0, "affine mode (0: CONV_MODE)", mode)
        gamma, beta = _slices(params, g_shape, b_shape)
        layer.params = {"gamma": gamma.reshape(-1), "beta": beta.reshape(-1)}
    elif kind in ("relu", "add_prev"):
        r.expect(f"{kind}_", f"{kind} version", version)
    elif kind in ("avg_pool", "max_pool"):
        r.expect(f"{kind}_2", f"{kind} version", version)
        nr, nc, sy, sx, py, px = (r.int() for _ in range(6))
        kr, kc, stride = spec.args
        r.expect((kr, kc, stride, stride), f"{kind} shape", (nr, nc, sy, sx))
        layer.padding = (py, px)
    elif kind == "fc":
        r.expect("fc_2", "fc version", version)
        outputs, inputs = r.int(), r.int()
        r.expect(spec.args[0], "fc outputs", outputs)
        params = r.tensor()
        w_shape, b_shape = r.alias(), r.alias()
        bias_mode = r.int()
        r.expect(1, "fc bias mode (1: FC_NO_BIAS)", bias_mode)
        for _ in range(4):
            r.float()
        r.expect((inputs, outputs, 1, 1), "fc weights alias", w_shape)
        (w,) = _slices(params, (inputs, outputs))
        layer.params = {"weight": w}
    else:  # pragma: no cover - a programming error in the spec
        raise ValueError(kind)
    return layer


def parse_dlib_network(data: bytes, layers: tuple[LayerSpec, ...] = DLIB_RESNET_V1) -> DlibNetwork:
    """Parse a network serialised by dlib's ``serialize(net, out)`` for the known network type.

    dlib writes the loss layer, then the version integer of every nested layer from the outermost
    in, then the input layer, then each layer's details from the innermost out (tags and skips
    store nothing but their version). The layer types are not in the stream, so ``layers``
    says what each one is; every name, shape and stride read is checked against it.

    Parameters
    ----------
    data
        The whole ``.dat`` file.
    layers
        The network's layers, outermost first (default: the face-recognition ResNet).

    Returns
    -------
    DlibNetwork
        Weights as float32 arrays, the input layer's mean and size, and the loss settings.

    Raises
    ------
    DlibFormatError
        When the bytes do not match ``layers``, or do not end exactly where the network ends.
    """
    r = _Reader(data)
    r.expect(1, "add_loss_layer version", r.int())
    loss_version = r.string()
    loss: dict[str, float] = {}
    if loss_version == "loss_metric_2":
        loss = {"margin": r.float(), "dist_thresh": r.float()}
    elif loss_version != "loss_metric_":
        raise DlibFormatError(f"loss {loss_version!r} is not dlib's loss_metric")

    versions = []
    for i, spec in enumerate(layers):
        v = r.int()
        innermost = i == len(layers) - 1
        allowed = (1,) if spec.kind in ("tag", "skip") else (2, 3) if innermost else (1, 2)
        if v not in allowed:
            raise DlibFormatError(f"layer {i} ({spec.kind}): version {v}, expected one of {allowed}")
        versions.append(v)

    r.expect("input_rgb_image_sized", "input layer", r.string())
    mean = (r.float(), r.float(), r.float())
    size = (r.int(), r.int())

    parsed: list[DlibLayer] = []
    for i in range(len(layers) - 1, -1, -1):
        spec = layers[i]
        if spec.kind in ("tag", "skip"):
            parsed.append(DlibLayer(spec))
            continue
        parsed.append(_details(r, spec))
        for _ in range(3):
            r.bool()  # setup called, gradient stale, output disabled
        r.tensor()  # x_grad
        r.tensor()  # cached output
        if i == len(layers) - 1:
            r.tensor()  # grad_final
            if versions[i] >= 3:
                r.int()  # sample expansion factor
        elif versions[i] == 2:
            r.tensor()  # params_grad
    if r.pos != len(data):
        raise DlibFormatError(f"parse ended at byte {r.pos} of {len(data)}: the layer list does not fit the file")
    parsed.reverse()
    return DlibNetwork(input_size=size, input_mean_rgb=mean, layers=parsed, loss=loss, bytes_read=r.pos)


# --- ONNX -----------------------------------------------------------------------------------


class _Graph:
    """Accumulates nodes and initializers with static shapes (batch axis symbolic)."""

    def __init__(self) -> None:
        self.nodes: list = []
        self.inits: list = []
        self._n = 0

    def name(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}_{self._n}"

    def const(self, prefix: str, array: np.ndarray) -> str:
        from onnx import numpy_helper

        name = self.name(prefix)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op: str, inputs: list[str], **attrs) -> str:
        from onnx import helper

        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out


def _pool_out(size: int, k: int, stride: int, pad: int) -> int:
    return 1 + (size + 2 * pad - k) // stride


def _pad_to(g: _Graph, x: str, shape: tuple[int, int, int], target: tuple[int, int, int]) -> str:
    """Zero-pad a [N, C, H, W] tensor at the end of C, H and W up to ``target``."""
    if shape == target:
        return x
    pads = np.array([0, 0, 0, 0, 0, target[0] - shape[0], target[1] - shape[1], target[2] - shape[2]], np.int64)
    return g.node("Pad", [x, g.const("pads", pads)], mode="constant")


def to_onnx(net: DlibNetwork, opset: int = DEFAULT_OPSET, doc: str = "") -> onnx.ModelProto:
    """The ONNX graph of a parsed network: ``chip [N, 3, H, W]`` (normalised RGB) -> ``embedding [N, 128]``.

    Only standard ops: Conv, Mul, Add, Relu, MaxPool, AveragePool, Pad, GlobalAveragePool,
    Flatten and MatMul. dlib's ``add_prev`` adds tensors of different shapes by zero-padding
    both to the larger shape, top-left aligned; that becomes Pad (at the end of each axis) + Add.

    Parameters
    ----------
    net
        From :func:`parse_dlib_network`.
    opset
        ONNX opset to declare.
    doc
        Doc string of the model (source and licence).
    """
    import onnx
    from onnx import TensorProto, helper

    g = _Graph()
    h, w = net.input_size
    x, shape = INPUT_NAME, (3, h, w)  # (C, H, W) of the current tensor
    tags: dict[int, tuple[str, tuple[int, int, int]]] = {}
    for layer in reversed(net.layers):  # input side first
        spec, p = layer.spec, layer.params
        if spec.kind == "con":
            n, k, _, stride = spec.args
            py, px = layer.padding
            x = g.node("Conv", [x, g.const("w", p["weight"]), g.const("b", p["bias"])],
                       kernel_shape=[k, k], strides=[stride, stride], pads=[py, px, py, px])
            shape = (n, _pool_out(shape[1], k, stride, py), _pool_out(shape[2], k, stride, px))
        elif spec.kind == "affine":
            c = shape[0]
            x = g.node("Mul", [x, g.const("gamma", p["gamma"].reshape(1, c, 1, 1))])
            x = g.node("Add", [x, g.const("beta", p["beta"].reshape(1, c, 1, 1))])
        elif spec.kind == "relu":
            x = g.node("Relu", [x])
        elif spec.kind in ("avg_pool", "max_pool"):
            k, _, stride = spec.args
            if k == 0:  # avg_pool_everything
                x = g.node("GlobalAveragePool", [x])
                shape = (shape[0], 1, 1)
                continue
            py, px = layer.padding
            op = "AveragePool" if spec.kind == "avg_pool" else "MaxPool"
            attrs = {"count_include_pad": 0} if op == "AveragePool" else {}
            x = g.node(op, [x], kernel_shape=[k, k], strides=[stride, stride], pads=[py, px, py, px], **attrs)
            shape = (shape[0], _pool_out(shape[1], k, stride, py), _pool_out(shape[2], k, stride, px))
        elif spec.kind == "tag":
            tags[spec.args[0]] = (x, shape)
        elif spec.kind == "skip":
            x, shape = tags[spec.args[0]]
        elif spec.kind == "add_prev":
            other, other_shape = tags[spec.args[0]]
            target = tuple(max(a, b) for a, b in zip(shape, other_shape))
            x = g.node("Add", [_pad_to(g, x, shape, target), _pad_to(g, other, other_shape, target)])
            shape = target
        elif spec.kind == "fc":
            x = g.node("Flatten", [x], axis=1)
            weight = p["weight"]
            if weight.shape[0] != int(np.prod(shape)):
                raise DlibFormatError(f"fc takes {weight.shape[0]} inputs, the network gives {shape}")
            x = g.node("MatMul", [x, g.const("fc", weight)])
            shape = (weight.shape[1],)
        else:  # pragma: no cover
            raise ValueError(spec.kind)
    g.nodes[-1].output[0] = OUTPUT_NAME
    graph = helper.make_graph(
        g.nodes, "dlib_face_recognition_resnet_model_v1",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", 3, h, w])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", shape[0]])],
        initializer=g.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="detectflow", doc_string=doc)
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model

