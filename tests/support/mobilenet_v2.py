"""MobileNetV2 (width 1.0, 224x224, 1000 classes) as a float ONNX model, built in code with
seeded random weights: the architecture of torchvision's `mobilenet_v2` (Sandler et al.,
2018) with its BatchNorms folded into the convolutions, so the tests need no torch.

Inverted residual blocks: a 1x1 expansion (t times the channels, ReLU6), a 3x3 depthwise
conv (stride s, ReLU6), a 1x1 projection, and a residual Add where the shape is kept.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["SHAPE", "mobilenet_v2"]

SHAPE = (1, 3, 224, 224)

# (expansion t, output channels c, repeats n, first stride s), as in the paper's Table 2.
BLOCKS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def mobilenet_v2(seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    nodes, weights = [], {}

    def conv(x: str, out: int, c_in: int, kernel: int, stride: int, groups: int, relu6: bool):
        name = f"conv{len(weights) // 2}"
        fan_in = c_in // groups * kernel * kernel
        weights[f"{name}_w"] = rng.normal(
            0, np.sqrt(2 / fan_in), (out, c_in // groups, kernel, kernel)
        ).astype(np.float32)
        weights[f"{name}_b"] = rng.normal(0, 0.05, out).astype(np.float32)
        pad = kernel // 2
        nodes.append(
            helper.make_node(
                "Conv",
                [x, f"{name}_w", f"{name}_b"],
                [name],
                name=name,
                strides=[stride, stride],
                pads=[pad] * 4,
                group=groups,
            )
        )
        if not relu6:
            return name
        nodes.append(helper.make_node("Clip", [name, "zero", "six"], [f"{name}_r"]))
        return f"{name}_r"

    x = conv("x", 32, 3, 3, 2, 1, relu6=True)
    channels = 32
    for t, c, n, s in BLOCKS:
        for repeat in range(n):
            stride = s if repeat == 0 else 1
            hidden = channels * t
            y = x if t == 1 else conv(x, hidden, channels, 1, 1, 1, relu6=True)
            y = conv(y, hidden, hidden, 3, stride, hidden, relu6=True)
            y = conv(y, c, hidden, 1, 1, 1, relu6=False)
            if stride == 1 and channels == c:
                nodes.append(helper.make_node("Add", [x, y], [f"{y}_add"]))
                y = f"{y}_add"
            x, channels = y, c
    x = conv(x, 1280, channels, 1, 1, 1, relu6=True)
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pooled"]))
    nodes.append(helper.make_node("Flatten", ["pooled"], ["flat"], axis=1))
    weights["fc_w"] = rng.normal(0, np.sqrt(1 / 1280), (1000, 1280)).astype(np.float32)
    weights["fc_b"] = np.zeros(1000, np.float32)
    nodes.append(helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["y"], transB=1))
    weights["zero"] = np.array(0, np.float32)
    weights["six"] = np.array(6, np.float32)
    graph = helper.make_graph(
        nodes,
        "mobilenet_v2",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, (1, 1000))],
        [numpy_helper.from_array(value, name) for name, value in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
