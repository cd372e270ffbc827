#!/usr/bin/env python3
"""Writes a small ONNX MLP with fixed weights, plus one input and the output of onnx's
reference evaluator for it, for the encrypted-model loading tests.

usage: make_onnx.py OUT.onnx   (also writes OUT.onnx.json: {"input": [...], "output": [...]})
"""
import json
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator


def main(out: str) -> None:
    rng = np.random.default_rng(20240501)
    dims = [64, 256, 128, 10]
    nodes, inits = [], []
    prev = "x"
    for i, (n_in, n_out) in enumerate(zip(dims, dims[1:])):
        w = (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(np.float32)
        b = (rng.standard_normal(n_out) * 0.1).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes.append(helper.make_node("MatMul", [prev, f"w{i}"], [f"mm{i}"]))
        last = i == len(dims) - 2
        nodes.append(helper.make_node("Add", [f"mm{i}", f"b{i}"], ["y" if last else f"h{i}"]))
        if not last:
            nodes.append(helper.make_node("Relu", [f"h{i}"], [f"r{i}"]))
            prev = f"r{i}"
    graph = helper.make_graph(
        nodes,
        "edgeward_test_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, dims[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, dims[-1]])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, out)
    x = rng.standard_normal((1, dims[0])).astype(np.float32)
    y = ReferenceEvaluator(model).run(None, {"x": x})[0]
    with open(out + ".json", "w") as f:
        json.dump({"input": x.flatten().tolist(), "output": y.flatten().tolist()}, f)


if __name__ == "__main__":
    main(sys.argv[1])
