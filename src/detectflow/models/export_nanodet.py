"""Export NanoDet (TF.js graph model) to ONNX: run by the build venv's python, never imported."""

# Standalone on purpose: it imports nothing from detectflow. Steps: tf2onnx conversion (opset 17),
# canonicalization, onnxruntime basic offline optimization, a dynamic batch axis, batch parity,
# parity against TensorFlow running the original graph, fp16 GPU variant (onnxconverter-common, fp32 inputs/outputs) and its drift, and a
# JSON report that build.py turns into the model card.

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

import numpy as np

# tf2onnx 1.17's TF.js reader still calls NumPy 1 aliases removed in NumPy 2.
for _old, _new in (("product", "prod"), ("cumproduct", "cumprod"), ("alltrue", "all"), ("sometrue", "any")):
    if not hasattr(np, _old):
        setattr(np, _old, getattr(np, _new))

OPSET = 17
_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _convert(tfjs: Path, out: Path) -> list[str]:
    """tf2onnx's TF.js conversion with its own graph optimizer switched off.

    That optimizer visits nodes in an order that changes from run to run, so equivalent but
    different graphs come out; onnxruntime's basic offline optimization does the same clean-up
    (transposes, identities, constant folding) deterministically afterwards.
    """
    from tf2onnx import convert, optimizer

    argv = ["tf2onnx.convert", "--tfjs", str(tfjs), "--output", str(out), "--opset", str(OPSET)]
    saved, sys.argv = sys.argv, argv
    saved_optimize = optimizer.optimize_graph
    optimizer.optimize_graph = lambda graph, *args, **kwargs: graph
    try:
        convert.main()
    finally:
        sys.argv = saved
        optimizer.optimize_graph = saved_optimize
    return argv


def _canonicalize(model):
    """Same graph, deterministic bytes: tf2onnx's node order and generated names vary from run to run.

    Tensors are named by a hash of what computes them (initializers by content), identical nodes
    are merged, nodes are sorted topologically with ties broken by that hash, then everything is
    renamed in order (t0, t1, ...; graph inputs and outputs keep their names).
    """
    import heapq

    g = model.graph
    keep = {i.name for i in g.input} | {o.name for o in g.output}
    canon: dict[str, str] = {n: n for n in keep} | {"": ""}
    inits = {}
    for t in g.initializer:
        h = hashlib.sha256(t.SerializeToString(deterministic=True).replace(t.name.encode(), b"")).hexdigest()
        canon[t.name] = "w" + h[:24]
        t.name = canon[t.name]
        inits[t.name] = t
    nodes: dict[str, object] = {}
    for node in g.node:  # already topologically sorted
        attrs = b"".join(a.SerializeToString(deterministic=True) for a in node.attribute)
        key = hashlib.sha256(
            "|".join([node.domain, node.op_type, *(canon[i] for i in node.input)]).encode() + attrs
        ).hexdigest()[:24]
        if key in nodes and not keep.intersection(node.output):
            for a, b in zip(node.output, nodes[key].output):  # a duplicate: reuse the first one's outputs
                canon[a] = b
            continue
        while key in nodes:
            key += "+"
        for k, out in enumerate(node.output):
            canon[out] = out if out in keep or not out else f"n{key}:{k}"
        node.input[:] = [canon[i] for i in node.input]
        node.output[:] = [canon[o] for o in node.output]
        nodes[key] = node
    producers = {o: k for k, n in nodes.items() for o in n.output if o}
    deps = {k: {producers[i] for i in n.input if i in producers} for k, n in nodes.items()}
    users: dict[str, list[str]] = {k: [] for k in nodes}
    for k, ds in deps.items():
        for d in ds:
            users[d].append(k)
    ready = [k for k, ds in deps.items() if not ds]
    heapq.heapify(ready)
    order, waiting = [], {k: len(ds) for k, ds in deps.items()}
    while ready:
        k = heapq.heappop(ready)
        order.append(nodes[k])
        for u in users[k]:
            waiting[u] -= 1
            if waiting[u] == 0:
                heapq.heappush(ready, u)
    short: dict[str, str] = {}

    def rename(name: str) -> str:
        if name in keep or not name:
            return name
        return short.setdefault(name, f"t{len(short)}")

    for i, node in enumerate(order):
        node.input[:] = [rename(x) for x in node.input]
        node.output[:] = [rename(x) for x in node.output]
        node.name = f"{node.op_type}_{i}"
    new_inits = [t for t in inits.values() if t.name in short]  # drops unused ones
    for t in new_inits:
        t.name = short[t.name]
    del g.node[:]
    g.node.extend(order)
    del g.initializer[:]
    g.initializer.extend(sorted(new_inits, key=lambda t: int(t.name[1:])))
    del g.value_info[:]
    # tf2onnx writes the source's absolute path here; keep only its name.
    g.doc_string = " ".join(w if "/" not in w else Path(w).name for w in g.doc_string.split(" "))
    return model


def _dynamic_batch(model):
    """Same graph with a dynamic batch axis ``N``: the TF.js graph fixes it at 1.

    Run on the optimized graph, where the head Reshapes' target shapes are folded into constants
    ``[1, C, -1]``: those are its only batch-bound constants. ``0``
    (copy the input's dimension; ``allowzero`` is 0) makes them batch-agnostic without changing
    what a batch of 1 computes. Every other op (Conv, Concat and Split on axis 1, Pad of H and W,
    Resize by scales, Transpose) is batch-agnostic already.
    """
    from onnx import numpy_helper

    g = model.graph
    inits = {t.name: t for t in g.initializer}
    for node in g.node:  # tf2onnx may write them as Constant nodes
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    inits[node.output[0]] = a.t
    producer = {o: n for n in g.node for o in n.output}
    for node in g.node:
        if node.op_type != "Reshape":
            continue
        src = node.input[1]
        while src in producer and producer[src].op_type == "Cast":  # TF.js keeps int32 shapes: Cast to int64
            src = producer[src].input[0]
        if src not in inits:
            continue
        if any(a.name == "allowzero" and a.i for a in node.attribute):
            raise ValueError(f"{node.name}: allowzero=1, 0 would not copy the batch")
        t = inits[src]
        shape = numpy_helper.to_array(t)
        if shape.ndim == 1 and len(shape) >= 2 and shape[0] == 1:
            fixed = shape.copy()
            fixed[0] = 0
            t.CopyFrom(numpy_helper.from_array(fixed, t.name))
    for v in list(g.input) + list(g.output):
        dim = v.type.tensor_type.shape.dim[0]
        dim.ClearField("dim_value")
        dim.dim_param = "N"
    del g.value_info[:]
    return model


def _batch_parity(path: Path, x: np.ndarray, names: list[str]) -> float:
    """Largest difference between a batch of 3 (the probe, mirrored, halved) and each image run alone."""
    batch = np.concatenate([x, x[..., ::-1], x * 0.5]).astype(np.float32)
    together = _run_onnx(path, np.ascontiguousarray(batch), names)
    worst = 0.0
    for i in range(len(batch)):
        alone = _run_onnx(path, np.ascontiguousarray(batch[i : i + 1]), names)
        worst = max(worst, *(float(np.abs(a[i : i + 1] - b).max()) for a, b in zip(together, alone)))
    return worst


def _optimize(src: Path, dest: Path) -> None:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    opts.optimized_model_filepath = str(dest)
    opts.intra_op_num_threads = 1
    ort.InferenceSession(str(src), opts, providers=["CPUExecutionProvider"])


def _tf_reference(tfjs: Path, x: np.ndarray, outputs: list[str]) -> list[np.ndarray]:
    """Run the original TF.js graph in TensorFlow: its topology is a GraphDef; weights fill the Consts."""
    import tensorflow as tf
    from google.protobuf import json_format
    from tensorflow.core.framework import graph_pb2

    model = json.loads(tfjs.read_text())
    weights: dict[str, np.ndarray] = {}
    for group in model["weightsManifest"]:
        blob = b"".join((tfjs.parent / p).read_bytes() for p in group["paths"])
        offset = 0
        for w in group["weights"]:
            dtype = np.dtype(_DTYPES[w["dtype"]])
            n = int(np.prod(w["shape"])) if w["shape"] else 1
            q = w.get("quantization")
            # TF.js weight quantization: float16 storage, or uint8/uint16 with value = q * scale + min.
            stored = np.dtype(q["dtype"]) if q else dtype
            arr = np.frombuffer(blob, stored, n, offset)
            offset += n * stored.itemsize
            if q and "scale" in q:
                arr = arr.astype(dtype) * q["scale"] + q["min"]
            weights[w["name"]] = arr.astype(dtype).reshape(w["shape"])
    graph = graph_pb2.GraphDef()
    json_format.ParseDict(model["modelTopology"], graph, ignore_unknown_fields=True)
    for node in graph.node:
        if node.op == "Const" and node.name in weights:
            # TF.js stores int64 constants as int32: restore the graph's own dtype.
            want = tf.as_dtype(node.attr["dtype"].type).as_numpy_dtype
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(weights[node.name].astype(want)))
    with tf.Graph().as_default() as g:
        tf.graph_util.import_graph_def(graph, name="")
        with tf.compat.v1.Session(graph=g) as sess:
            return sess.run(outputs, {"input_1:0": x})


def _run_onnx(path: Path, x: np.ndarray, names: list[str]) -> list[np.ndarray]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return sess.run(names, {sess.get_inputs()[0].name: x})


def _diffs(a, b, names) -> dict[str, float]:
    return {n: float(np.abs(p.astype(np.float64) - q.astype(np.float64)).max()) for n, p, q in zip(names, a, b)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tfjs", type=Path, required=True)
    ap.add_argument("--cpu", type=Path, required=True)
    ap.add_argument("--gpu", type=Path, required=True)
    ap.add_argument("--probe", type=Path, required=True, help=".npy input tensor [1,3,416,416]")
    ap.add_argument("--report", type=Path, required=True)
    ap.add_argument("--tolerance", type=json.loads, required=True)
    args = ap.parse_args()

    import onnx
    from onnxconverter_common import float16

    model = json.loads(args.tfjs.read_text())
    signature = model["signature"]["outputs"]
    input_name = next(iter(model["signature"]["inputs"]))
    # Per stride (most cells first): class scores (C = 80) and distance distributions (44).
    by_cells = sorted(signature.values(), key=lambda o: -int(o["tensorShape"]["dim"][1]["size"]))
    scores = [o["name"] for o in by_cells if o["tensorShape"]["dim"][2]["size"] == "80"]
    dists = [o["name"] for o in by_cells if o["tensorShape"]["dim"][2]["size"] == "44"]
    names = scores + dists

    x = np.load(args.probe).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.onnx"
        argv = _convert(args.tfjs, raw)
        onnx.save(_canonicalize(onnx.load(str(raw))), str(raw))
        cpu_tmp, gpu_tmp = Path(tmp) / "cpu.onnx", Path(tmp) / "gpu.onnx"
        _optimize(raw, cpu_tmp)
        onnx.save(_dynamic_batch(onnx.load(str(cpu_tmp))), str(cpu_tmp))  # on the folded shape constants
        onnx.save(float16.convert_float_to_float16(onnx.load(str(cpu_tmp)), keep_io_types=True), str(gpu_tmp))

        ref = _tf_reference(args.tfjs, x, names)
        raw_out = _run_onnx(raw, x, names)
        ours = _run_onnx(cpu_tmp, x, names)
        half = _run_onnx(gpu_tmp, x, names)
        parity = _diffs(ref, ours, names)
        parity_raw = _diffs(ref, raw_out, names)
        drift = _diffs(ours, half, names)
        batch_parity = _batch_parity(cpu_tmp, x, names)
        if batch_parity > 1e-4:
            raise SystemExit(f"batch of 3 differs from single images by {batch_parity}")
        kinds = {n: "score" for n in scores} | {n: "regression" for n in dists}
        fp16_ok = all(drift[n] <= args.tolerance[kinds[n]] for n in names)
        if not fp16_ok:
            shutil.copyfile(cpu_tmp, gpu_tmp)
        shutil.copyfile(cpu_tmp, args.cpu)
        shutil.copyfile(gpu_tmp, args.gpu)

    sess_input = onnx.load(str(args.cpu)).graph.input[0].name
    report = {
        "input_name": sess_input,
        "signature_input": input_name,
        "outputs": {"scores": scores, "distributions": dists},
        "parity_reference": f"TensorFlow {version('tensorflow-cpu')} running the original TF.js graph (GraphDef + weights)",
        "parity_max_abs_diff": parity,
        "parity_max_abs_diff_unoptimized": parity_raw,
        "fp16_max_abs_diff": drift,
        "batch_parity_max_abs_diff": batch_parity,
        "gpu_precision": "fp16" if fp16_ok else "fp32",
        "source_sha256": ", ".join(f"{p.name}:{_sha256(p)}" for p in (args.tfjs, args.tfjs.with_suffix(".bin"))),
        "export": " ".join(["python -m", argv[0], *[a if "/" not in a else Path(a).name for a in argv[1:]]])
        + " (tf2onnx graph optimizer off; graph canonicalized; dynamic batch axis; onnxruntime basic offline optimization)",
        "tools": {
            "python": sys.version.split()[0],
            **{p: version(p) for p in ("tensorflow-cpu", "tf2onnx", "onnx", "onnxruntime", "onnxconverter-common", "numpy")},
        },
    }
    args.report.write_text(json.dumps(report, indent=2))
    print(json.dumps({"parity": parity, "fp16": drift}))


if __name__ == "__main__":
    main()
