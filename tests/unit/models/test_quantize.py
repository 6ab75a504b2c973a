"""Which nodes the int8 build keeps float (the detection heads and a -inf Pad, on a small graph); its calibration size."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from detectflow.models.quantize import at_one_size, head_nodes, stem_nodes, unquantizable_nodes


def _graph():
    """x -> Conv(c1) -> Pad(-inf) -> MaxPool -> Conv(c2) -> [Conv(cls) -> Sigmoid -> scores, Conv(reg) -> boxes]."""
    w = numpy_helper.from_array(np.ones((1, 1, 1, 1), np.float32), "w")
    pads = numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads")
    value = numpy_helper.from_array(np.array(-np.inf, np.float32), "value")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["a"], name="c1"),
        helper.make_node("Pad", ["a", "pads", "value"], ["p"], name="pad"),
        helper.make_node("MaxPool", ["p"], ["m"], name="pool", kernel_shape=[3, 3]),
        helper.make_node("Conv", ["m", "w"], ["f"], name="c2"),
        helper.make_node("Conv", ["f", "w"], ["s"], name="cls"),
        helper.make_node("Sigmoid", ["s"], ["scores"], name="sig"),
        helper.make_node("Conv", ["f", "w"], ["boxes"], name="reg"),
    ]
    vi = lambda n: helper.make_tensor_value_info(n, TensorProto.FLOAT, None)  # noqa: E731
    graph = helper.make_graph(nodes, "g", [vi("x")], [vi("scores"), vi("boxes")], [w, pads, value])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_head_nodes_are_the_last_conv_before_each_output_and_what_follows() -> None:
    assert sorted(head_nodes(_graph())) == ["cls", "reg", "sig"]


def test_unquantizable_nodes_are_a_non_finite_pad_and_its_readers() -> None:
    assert unquantizable_nodes(_graph()) == ["pad", "pool"]


def test_stem_nodes_are_the_leading_convs_and_their_activations() -> None:
    model = _graph()
    relu = helper.make_node("LeakyRelu", ["a"], ["a2"], name="act1")
    model.graph.node.insert(1, relu)
    assert stem_nodes(model, 1) == ["c1", "act1"]
    assert stem_nodes(model, 2) == ["c1", "c2", "act1"]
    assert stem_nodes(model, 0) == []


def test_at_one_size_letterboxes_every_image_to_the_size_with_black_borders() -> None:
    # Given a wide, a tall and an exact-size white image
    images = {n: np.full((h, w, 3), 255, np.uint8) for n, (h, w) in {"wide": (100, 400), "tall": (300, 100),
                                                                      "exact": (48, 64)}.items()}
    # When they are brought to 48x64 (height, width)
    out = at_one_size(images, (48, 64))
    # Then every one has that shape, in the same order; the aspect is kept, the rest is black
    assert list(out) == list(images) and {img.shape for img in out.values()} == {(48, 64, 3)}
    assert (out["wide"][:, :, 0] == 255).sum() == 64 * 16 and out["wide"][0, 0, 0] == 0  # 64x16, centred
    assert (out["tall"][:, :, 0] == 255).sum() == 16 * 48 and out["tall"][:, 0, 0].max() == 0  # 16x48
    assert (out["exact"] == 255).all()
