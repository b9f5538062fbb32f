"""The host side of a Program: its inputs' quantization and outputs' post-processing, as
JSON-ready data, and back to IR objects for execution."""

from __future__ import annotations

from dataclasses import asdict

from verdigris.compiler import ir

__all__ = ["host_from_json", "host_to_json"]

_STEPS = {
    cls.__name__: cls for cls in (ir.Dequantize, ir.Quantize, ir.Softmax, ir.ArgMax, ir.Flatten)
}


def _tensor_json(tensor: ir.Tensor) -> dict:
    return {
        "name": tensor.name,
        "shape": list(tensor.shape),
        "bits": tensor.dtype.bits,
        "signed": tensor.dtype.signed,
        "scale": tensor.scale,
        "zero_point": tensor.zero_point,
    }


def _tensor(data: dict) -> ir.Tensor:
    return ir.Tensor(
        data["name"],
        tuple(data["shape"]),
        ir.IntType(data["bits"], data["signed"]),
        data["scale"],
        data["zero_point"],
    )


def host_to_json(graph: ir.Graph) -> dict:
    return {
        "dynamic_batch": graph.dynamic_batch,
        "inputs": [
            {"name": i.name, "onnx_dtype": i.onnx_dtype, "tensor": _tensor_json(i.tensor)}
            for i in graph.inputs
        ],
        "outputs": [
            {
                "name": o.name,
                "onnx_int_dtype": o.onnx_int_dtype,
                "tensor": _tensor_json(o.tensor),
                "steps": [{"kind": type(s).__name__, **asdict(s)} for s in o.steps],
            }
            for o in graph.outputs
        ],
    }


def host_from_json(data: dict) -> tuple[list[ir.GraphInput], list[ir.GraphOutput], bool]:
    inputs = [
        ir.GraphInput(i["name"], _tensor(i["tensor"]), i["onnx_dtype"]) for i in data["inputs"]
    ]
    outputs = []
    for o in data["outputs"]:
        steps = []
        for step in o["steps"]:
            fields = dict(step)
            steps.append(_STEPS[fields.pop("kind")](**fields))
        outputs.append(
            ir.GraphOutput(o["name"], _tensor(o["tensor"]), o["onnx_int_dtype"], tuple(steps))
        )
    return inputs, outputs, data["dynamic_batch"]
