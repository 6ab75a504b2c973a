"""Which nodes the int8 build keeps float: the detection heads and a -inf Pad, on a small graph."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from detectflow.models.quantize import head_nodes, stem_nodes, unquantizable_nodes


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
