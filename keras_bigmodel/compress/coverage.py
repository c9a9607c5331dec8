"""`op_coverage`: which share of a converted file's multiply-adds runs in int8 kernels.

Counted per operator from the file itself (shapes from the graph, an unknown batch
counted as 1): convolutions, matrix products and recurrent cells. A node runs "int8"
when its inputs are int8 (LiteRT) or arrive through `DequantizeLinear` with int8
weights (ONNX QDQ, which onnxruntime fuses into one int8 kernel, or `QLinear*` /
`*Integer` nodes); "dynamic" when the weights are int8 and the activations are
quantized on the fly (LiteRT's hybrid kernels, onnxruntime's `DynamicQuantize*`);
"float" otherwise.
"""

from __future__ import annotations

import os

import numpy as np

from keras_bigmodel.validation import check_path

__all__ = ["op_coverage"]

_INT8_KINDS = ("int8", "dynamic")


def _summary(ops: list[dict]) -> dict:
    total = sum(o["macs"] for o in ops)
    by_kind = {
        k: sum(o["macs"] for o in ops if o["kind"] == k) for k in ("int8", "dynamic", "float")
    }
    return {
        "macs": total,
        "int8_macs": by_kind["int8"],
        "dynamic_macs": by_kind["dynamic"],
        "float_macs": by_kind["float"],
        "int8_share": (by_kind["int8"] + by_kind["dynamic"]) / total if total else 0.0,
        "static_int8_share": by_kind["int8"] / total if total else 0.0,
        "uncounted": sorted({o["type"] for o in ops if o["kind"] == "uncounted"}),
        "ops": ops,
    }


def op_coverage(path: str | os.PathLike) -> dict:
    """The multiply-adds of an `.onnx` or `.tflite` file by the kind of kernel.

    Args:
        path: A file from `export_onnx` or `export_tflite`.

    Returns:
        A dict: `macs` (multiply-adds of one example), `int8_macs` (in int8
        kernels with int8 activations), `dynamic_macs` (int8 weights, activations
        quantized on the fly), `float_macs`, `int8_share` (int8 + dynamic over
        all), `static_int8_share` (int8 over all) and `ops`, one dict per counted
        operator (`name`, `type`, `macs`, `kind`), and `uncounted`: the types of
        control-flow operators (a rolled LSTM's `WHILE` / `Loop`) whose bodies
        are not counted.

    Raises:
        ValueError: A path that does not end in `.onnx` or `.tflite`.
        FileNotFoundError: No file at `path`.
    """
    path = check_path("path", path)
    if not path.endswith((".onnx", ".tflite")):
        raise ValueError(f"`path` must end in '.onnx' or '.tflite'. Received: path={path!r}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No model file at {path!r}")
    return _summary(_onnx_ops(path) if path.endswith(".onnx") else _tflite_ops(path))


# ------------------------------------------------------------------------- ONNX
def _onnx_ops(path: str) -> list[dict]:
    import onnx
    from onnx import numpy_helper, shape_inference

    model = onnx.load(path)
    try:
        model = shape_inference.infer_shapes(model)
    except Exception:  # shapes already present are used as they are
        pass
    graph = model.graph
    shapes: dict[str, list[int]] = {}
    for info in list(graph.input) + list(graph.value_info) + list(graph.output):
        dims = info.type.tensor_type.shape.dim
        shapes[info.name] = [d.dim_value if d.dim_value > 0 else 1 for d in dims]
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for t in consts:
        shapes[t] = list(consts[t].shape)
    producer = {o: n for n in graph.node for o in n.output}
    for n in graph.node:
        if n.op_type == "Constant" and n.output:
            for a in n.attribute:
                if a.name == "value":
                    consts[n.output[0]] = numpy_helper.to_array(a.t)
                    shapes[n.output[0]] = list(consts[n.output[0]].shape)

    def dequantized(name: str) -> bool:
        node = producer.get(name)
        return node is not None and node.op_type == "DequantizeLinear"

    def weight_shape(name: str):
        node = producer.get(name)
        if node is not None and node.op_type in ("DequantizeLinear", "Transpose", "Identity"):
            return weight_shape(node.input[0])
        return shapes.get(name)

    ops = []
    for node in graph.node:
        t = node.op_type
        out = shapes.get(node.output[0]) if node.output else None
        macs, kind = None, "float"
        if t in ("Conv", "ConvInteger", "QLinearConv"):
            w = weight_shape(node.input[3 if t == "QLinearConv" else 1])
            if out and w:
                macs = int(np.prod(out)) * int(np.prod(w[1:]))
        elif t in (
            "MatMul",
            "Gemm",
            "MatMulInteger",
            "QLinearMatMul",
            "DynamicQuantizeMatMul",
            "QGemm",
        ):
            b = weight_shape(node.input[3 if t in ("QLinearMatMul", "QGemm") else 1])
            if out and b:
                trans_b = any(a.name == "transB" and a.i for a in node.attribute)
                k = b[-1] if trans_b else (b[-2] if len(b) >= 2 else b[0])
                macs = int(np.prod(out)) * int(k)
        elif t in ("LSTM", "DynamicQuantizeLSTM"):
            x, w, r = (shapes.get(node.input[i]) for i in range(3))
            if x and w and r:
                macs = int(x[0] * x[1] * w[0] * w[1] * (w[2] + r[2]))
        if macs is None:
            if t in ("Loop", "Scan", "If"):
                ops.append({"name": node.name, "type": t, "macs": 0, "kind": "uncounted"})
            continue
        if t in ("ConvInteger", "MatMulInteger"):
            source = producer.get(node.input[0])
            dynamic = source is not None and source.op_type == "DynamicQuantizeLinear"
            kind = "dynamic" if dynamic else "int8"
        elif t in ("QLinearConv", "QLinearMatMul", "QGemm"):
            kind = "int8"
        elif t in ("DynamicQuantizeMatMul", "DynamicQuantizeLSTM"):
            kind = "dynamic"
        elif t in ("Conv", "MatMul", "Gemm") and all(dequantized(i) for i in node.input[:2]):
            kind = "int8"
        ops.append({"name": node.name, "type": t, "macs": macs, "kind": kind})
    return ops


# ----------------------------------------------------------------------- LiteRT
def _tflite_ops(path: str) -> list[dict]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path)
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}

    def shape(i):
        return [int(d) if d > 0 else 1 for d in tensors[i]["shape"]] if i in tensors else None

    def dtype(i):
        return np.dtype(tensors[i]["dtype"]) if i in tensors else None

    ops = []
    for op in interpreter._get_ops_details():
        name, inputs, outputs = op["op_name"], list(op["inputs"]), list(op["outputs"])
        macs = None
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "CONV_3D"):
            w_index = inputs[1]
            out, w = shape(outputs[0]), shape(w_index)
            if out and w:
                if name == "DEPTHWISE_CONV_2D":
                    per_output = int(np.prod(w[1:3]))
                elif name == "FULLY_CONNECTED":
                    per_output = int(w[-1])
                else:
                    per_output = int(np.prod(w[1:]))
                macs = int(np.prod(out)) * per_output
            activation, weight = dtype(inputs[0]), dtype(w_index)
        elif name == "BATCH_MATMUL":
            a, out = shape(inputs[0]), shape(outputs[0])
            if a and out:
                macs = int(np.prod(out)) * int(a[-1])
            activation, weight = dtype(inputs[0]), dtype(inputs[1])
        elif name == "UNIDIRECTIONAL_SEQUENCE_LSTM":
            x, w, r = shape(inputs[0]), shape(inputs[2]), shape(inputs[6])
            if x and w and r:  # x (batch, time, in); 4 gates of (cell, in) and (cell, out)
                macs = int(x[0] * x[1]) * 4 * int(w[0]) * int(w[1] + r[1])
            activation, weight = dtype(inputs[0]), dtype(inputs[2])
        if macs is None:
            if name in ("WHILE", "IF", "CALL_ONCE"):
                ops.append(
                    {"name": f"{name}:{op['index']}", "type": name, "macs": 0, "kind": "uncounted"}
                )
            continue
        if activation in (np.dtype("int8"), np.dtype("int16")):
            kind = "int8"
        elif weight == np.dtype("int8"):
            kind = "dynamic"
        else:
            kind = "float"
        ops.append({"name": f"{name}:{op['index']}", "type": name, "macs": macs, "kind": kind})
    return ops
