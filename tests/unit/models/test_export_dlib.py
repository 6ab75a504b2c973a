"""dlib's serialisation parsed from a tiny stream written here, and its ONNX graph against a numpy forward pass."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from detectflow.models.export_dlib import (
    DLIB_RESNET_V1,
    DlibFormatError,
    LayerSpec,
    _Reader,
    parse_dlib_network,
    to_onnx,
)

# --- a writer for dlib's format (dlib/serialize.h), enough for the layers of the embedder ------


def pack_int(value: int) -> bytes:
    mag = abs(value)
    body = mag.to_bytes(max(1, (mag.bit_length() + 7) // 8), "little")
    return bytes([len(body) | (0x80 if value < 0 else 0)]) + body


def pack_float(value: float) -> bytes:
    mantissa, exponent = np.frexp(np.float64(value))
    return pack_int(int(np.ldexp(mantissa, 53))) + pack_int(int(exponent) - 53)


def pack_str(text: str) -> bytes:
    return pack_int(len(text)) + text.encode()


def pack_tensor(array: np.ndarray) -> bytes:
    shape = tuple(array.shape) + (1,) * (4 - array.ndim)
    return pack_int(2) + b"".join(pack_int(d) for d in shape) + np.asarray(array, "<f4").tobytes()


def pack_alias(*shape: int) -> bytes:
    return pack_int(1) + b"".join(pack_int(d) for d in shape)


def pack_add_layer_tail(innermost: bool = False) -> bytes:
    empty = pack_tensor(np.zeros((0, 0, 0, 0), np.float32))
    return b"100" + empty * 3 + (pack_int(1) if innermost else b"")  # bools, grads, cached output


# A tiny residual_down network, outermost first: fc_no_bias<2, avg_pool_everything<affine<relu<
# add_prev2<avg_pool<2,2,2,2, skip1<tag2<con<3,3,3,2,2, tag1<con<2,3,3,1,1, input 8x8>>>>>>>>>>>
TINY = (
    LayerSpec("fc", (2,)), LayerSpec("avg_pool", (0, 0, 1)), LayerSpec("affine"), LayerSpec("relu"),
    LayerSpec("add_prev", (2,)), LayerSpec("avg_pool", (2, 2, 2)), LayerSpec("skip", (1,)), LayerSpec("tag", (2,)),
    LayerSpec("con", (3, 3, 3, 2)), LayerSpec("tag", (1,)), LayerSpec("con", (2, 3, 3, 1)),
)
MEAN = (122.782, 117.001, 104.298)


def tiny_weights(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "w1": rng.normal(0, 0.5, (2, 3, 3, 3)).astype(np.float32), "b1": rng.normal(0, 0.1, 2).astype(np.float32),
        "w2": rng.normal(0, 0.5, (3, 2, 3, 3)).astype(np.float32), "b2": rng.normal(0, 0.1, 3).astype(np.float32),
        "gamma": rng.uniform(0.5, 1.5, 3).astype(np.float32), "beta": rng.normal(0, 0.1, 3).astype(np.float32),
        "fc": rng.normal(0, 1, (3, 2)).astype(np.float32),
    }


def _con(w: np.ndarray, b: np.ndarray, stride: int, pad: int) -> bytes:
    n, k, r, c = w.shape
    params = np.concatenate([w.ravel(), b.ravel()])
    return (pack_str("con_4") + pack_tensor(params[:, None, None, None])
            + b"".join(pack_int(v) for v in (n, r, c, stride, stride, pad, pad))
            + pack_alias(n, k, r, c) + pack_alias(1, n, 1, 1) + pack_float(1) * 2 + pack_float(1) + pack_float(0))


def _pool(kind: str, k: int, stride: int) -> bytes:
    return pack_str(f"{kind}_2") + b"".join(pack_int(v) for v in (k, k, stride, stride, 0, 0))


def tiny_stream(wt: dict[str, np.ndarray], input_version: int = 3) -> bytes:
    versions = [1 if s.kind in ("tag", "skip") else 2 for s in TINY]
    versions[-1] = input_version
    out = pack_int(1) + pack_str("loss_metric_2") + pack_float(0.04) + pack_float(0.6)
    out += b"".join(pack_int(v) for v in versions)
    out += pack_str("input_rgb_image_sized") + b"".join(pack_float(m) for m in MEAN) + pack_int(8) + pack_int(8)
    tail = pack_add_layer_tail()
    out += _con(wt["w1"], wt["b1"], 1, 1) + (b"100" + pack_tensor(np.zeros((0, 0, 0, 0))) * 3
                                            + (pack_int(1) if input_version == 3 else b""))
    out += _con(wt["w2"], wt["b2"], 2, 0) + tail
    out += _pool("avg_pool", 2, 2) + tail
    out += pack_str("add_prev_") + tail
    out += pack_str("relu_") + tail
    gb = np.concatenate([wt["gamma"], wt["beta"]])
    out += pack_str("affine_") + pack_tensor(gb[:, None, None, None]) + pack_alias(1, 3, 1, 1) * 2 + pack_int(0) + tail
    out += _pool("avg_pool", 0, 1) + tail
    out += (pack_str("fc_2") + pack_int(2) + pack_int(3) + pack_tensor(wt["fc"]) + pack_alias(3, 2, 1, 1)
            + pack_alias(0, 0, 0, 0) + pack_int(1) + pack_float(1) * 4 + tail)
    return out


# --- a direct numpy forward pass of the tiny network -------------------------------------------


def _conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, pad: int) -> np.ndarray:
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    n, _, k, _ = w.shape
    oh, ow = (x.shape[1] - k) // stride + 1, (x.shape[2] - k) // stride + 1
    out = np.empty((n, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = x[:, i * stride:i * stride + k, j * stride:j * stride + k]
            out[:, i, j] = (w * patch).sum(axis=(1, 2, 3)) + b
    return out


def _avg_pool2(x: np.ndarray) -> np.ndarray:
    oh, ow = (x.shape[1] - 2) // 2 + 1, (x.shape[2] - 2) // 2 + 1
    return np.stack([[x[:, 2 * i:2 * i + 2, 2 * j:2 * j + 2].mean(axis=(1, 2)) for j in range(ow)]
                     for i in range(oh)]).transpose(2, 0, 1)


def _add_padded(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.zeros(tuple(max(p, q) for p, q in zip(a.shape, b.shape)))
    out[:a.shape[0], :a.shape[1], :a.shape[2]] += a
    out[:b.shape[0], :b.shape[1], :b.shape[2]] += b
    return out


def tiny_forward(x: np.ndarray, wt: dict[str, np.ndarray]) -> np.ndarray:
    t1 = _conv(x, wt["w1"], wt["b1"], 1, 1)  # 2 x 8 x 8
    t2 = _conv(t1, wt["w2"], wt["b2"], 2, 0)  # 3 x 3 x 3
    y = _add_padded(_avg_pool2(t1), t2)  # 2 x 4 x 4 + 3 x 3 x 3 -> 3 x 4 x 4
    y = np.maximum(y, 0) * wt["gamma"][:, None, None] + wt["beta"][:, None, None]
    return y.mean(axis=(1, 2)) @ wt["fc"]


# --- tests ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "encoded"), [(0, b"\x01\x00"), (1, b"\x01\x01"), (300, b"\x02\x2c\x01"),
                                                (-5, b"\x81\x05"), (2**40, b"\x06" + (2**40).to_bytes(6, "little"))])
def test_reader_int_reads_dlibs_control_byte_encoding(value: int, encoded: bytes) -> None:
    assert pack_int(value) == encoded
    r = _Reader(encoded)
    assert r.int() == value and r.pos == len(encoded)


def test_reader_float_reads_mantissa_and_exponent() -> None:
    # 0.04 as dlib writes it in the real model: mantissa 0xa3d70a, exponent -28
    r = _Reader(b"\x03\x0a\xd7\xa3\x81\x1c" + pack_float(-122.782))
    assert r.float() == pytest.approx(0.04, rel=1e-7)
    assert r.float() == pytest.approx(-122.782, rel=1e-15)


def test_parse_dlib_network_reads_every_layer_and_ends_at_the_end() -> None:
    # Given a stream written the way dlib serialises the tiny network
    wt = tiny_weights(np.random.default_rng(0))
    data = tiny_stream(wt)
    # When it is parsed
    net = parse_dlib_network(data, TINY)
    # Then every value comes back where it belongs, and the whole stream was used
    assert net.bytes_read == len(data)
    assert net.input_size == (8, 8)
    assert net.input_mean_rgb == pytest.approx(MEAN)
    assert net.loss == pytest.approx({"margin": 0.04, "dist_thresh": 0.6})
    assert [layer.spec for layer in net.layers] == list(TINY)
    by_kind = {}
    for layer in net.layers:
        by_kind.setdefault(layer.spec.kind, []).append(layer)
    inner, outer = by_kind["con"][1], by_kind["con"][0]
    np.testing.assert_array_equal(inner.params["weight"], wt["w1"])
    np.testing.assert_array_equal(inner.params["bias"], wt["b1"])
    np.testing.assert_array_equal(outer.params["weight"], wt["w2"])
    assert inner.padding == (1, 1) and outer.padding == (0, 0)
    np.testing.assert_array_equal(by_kind["affine"][0].params["gamma"], wt["gamma"])
    np.testing.assert_array_equal(by_kind["fc"][0].params["weight"], wt["fc"])


def test_parse_dlib_network_accepts_the_older_input_add_layer_version() -> None:
    wt = tiny_weights(np.random.default_rng(1))
    data = tiny_stream(wt, input_version=2)  # no sample-expansion factor
    assert parse_dlib_network(data, TINY).bytes_read == len(data)


def test_parse_dlib_network_rejects_trailing_bytes() -> None:
    data = tiny_stream(tiny_weights(np.random.default_rng(0))) + b"\x01\x00"
    with pytest.raises(DlibFormatError, match="parse ended at byte"):
        parse_dlib_network(data, TINY)


def test_parse_dlib_network_rejects_a_truncated_stream() -> None:
    data = tiny_stream(tiny_weights(np.random.default_rng(0)))
    with pytest.raises(DlibFormatError, match="unexpected end"):
        parse_dlib_network(data[:-10], TINY)


def test_parse_dlib_network_rejects_a_stream_of_another_network() -> None:
    # the face-recognition layer list does not fit the tiny stream: the first mismatch is named
    with pytest.raises(DlibFormatError):
        parse_dlib_network(tiny_stream(tiny_weights(np.random.default_rng(0))), DLIB_RESNET_V1)
    wrong_stride = TINY[:8] + (LayerSpec("con", (3, 3, 3, 1)),) + TINY[9:]
    with pytest.raises(DlibFormatError, match="convolution shape"):
        parse_dlib_network(tiny_stream(tiny_weights(np.random.default_rng(0))), wrong_stride)


def test_to_onnx_matches_a_direct_forward_pass_with_zero_padded_add_prev() -> None:
    # Given the tiny network (its add_prev adds 2x4x4 to 3x3x3) converted to ONNX
    wt = tiny_weights(np.random.default_rng(2))
    model = to_onnx(parse_dlib_network(tiny_stream(wt), TINY))
    ops = {n.op_type for n in model.graph.node}
    assert ops <= {"Conv", "Mul", "Add", "Relu", "AveragePool", "Pad", "GlobalAveragePool", "Flatten", "MatMul"}
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    # When a batch of three inputs runs through it (the batch axis is dynamic)
    x = np.random.default_rng(3).normal(0, 1, (3, 3, 8, 8)).astype(np.float32)
    (out,) = session.run(None, {"chip": x})
    # Then it equals the numpy forward pass, sample by sample
    expected = np.stack([tiny_forward(xi.astype(np.float64), wt) for xi in x])
    assert out.shape == (3, 2)
    np.testing.assert_allclose(out, expected, atol=1e-5)
