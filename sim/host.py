"""The host-op runtime: what the host does before and after the device, for every executor.

Before the device, model inputs (by ONNX name) are checked against one rule and quantized
to the device's integers; after it, each device output is finished by its host steps into
what the ONNX model returns. It works on the Program's host types
(verdigris.arch.host_steps), which are also the IR's graph inputs and outputs, so the golden
model, the API's run of a Program and a board's host all share it; it needs no compiler.

The rules (docs/quantization.md, "Host"): a float input is quantized with round half to
even and saturation, computed in float32 (as onnxruntime does); a uint8 input is shifted to
int8; outputs are dequantized as (q - z) * scale in float32.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from verdigris.arch.activity import Activity, in_sequence
from verdigris.arch.host_steps import (
    Compute,
    Dequantize,
    HostCompute,
    HostInput,
    HostOutput,
    Tensor,
)
from verdigris.arch.program import DeviceStage, HostCall, Program, pack_tensor, unpack_tensor
from verdigris.sim.host_ops import run_nodes

__all__ = [
    "InputError",
    "check_batches",
    "check_input",
    "finish_output",
    "quantize_input",
    "run_host_call",
    "run_host_compute",
    "run_stages",
]


class InputError(ValueError):
    """Inputs that do not fit the model (names, shapes, dtypes, values)."""


def check_input(host_input: HostInput, value: np.ndarray) -> np.ndarray:
    """`value` as an array the host may quantize for `host_input`, or an InputError that
    names the problem. The rule (docs/quantization.md, "Host"): a float model input takes
    floating-point data only (integers are refused, never taken as already quantized); an
    integer model input takes integers within its type's range; NaN is refused everywhere
    (infinities saturate, as in QuantizeLinear)."""
    value = np.asarray(value)
    name, expected = host_input.name, host_input.onnx_dtype
    kind = value.dtype.kind
    if host_input.tensor.scale is not None:  # a float model input
        if kind != "f":
            raise InputError(
                f"input {name}: the model takes {expected} values; got {value.dtype} data. "
                f"Pass floats as the model expects them (for example "
                f"x.astype(np.float32), scaled as in training)"
            )
        if np.isnan(value).any():
            where = tuple(int(i) for i in np.argwhere(np.isnan(value))[0])
            raise InputError(f"input {name} contains NaN at index {where}")
        return value
    if kind not in "iu":
        raise InputError(f"input {name}: the model takes {expected} integers; got {value.dtype}")
    if value.size == 0:
        return value
    info = np.iinfo(np.dtype(expected))
    low, high = int(value.min()), int(value.max())
    if low < info.min or high > info.max:
        raise InputError(
            f"input {name}: values from {low} to {high} do not fit the model's {expected} "
            f"[{info.min}, {info.max}]"
        )
    return value


def check_batches(host_inputs: Sequence[HostInput], feeds: Mapping[str, np.ndarray]) -> int:
    """The number of samples in `feeds` (one per model input), after checking that every input
    is there and has the same, non-zero number of samples."""
    missing = [i.name for i in host_inputs if i.name not in feeds]
    if missing:
        names = ", ".join(f"{i.name}{list(i.tensor.shape)}" for i in host_inputs)
        raise InputError(f"missing input(s) {missing}; the model takes {names}")
    batches = {}
    for host_input in host_inputs:
        shape = np.shape(feeds[host_input.name])
        if not shape:
            raise InputError(
                f"input {host_input.name} is a scalar; the model expects shape "
                f"{host_input.tensor.shape}"
            )
        if shape[0] == 0:
            raise InputError(f"input {host_input.name}: no samples (shape {shape})")
        batches[host_input.name] = shape[0]
    if len(set(batches.values())) > 1:
        sizes = ", ".join(f"{k}: {v}" for k, v in batches.items())
        raise InputError(f"batch sizes differ between the inputs ({sizes})")
    return next(iter(batches.values()))


def quantize_input(host_input: HostInput, value: np.ndarray) -> np.ndarray:
    """Host step before the device: float -> device integers, or uint8 -> int8. `value`
    has passed `check_input` (the golden model and the API check a whole batch once,
    first)."""
    tensor = host_input.tensor
    value = np.asarray(value)
    if tensor.scale is not None:
        return _quantize(value, tensor)
    if host_input.onnx_dtype == "uint8":
        return value.astype(np.int64) - 128
    return value.astype(np.int64)


def _quantize(value: np.ndarray, tensor: Tensor) -> np.ndarray:
    """Float to `tensor`'s integers as QuantizeLinear: x / scale in float32, round half to
    even, + zero point, saturate (infinities saturate too)."""
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = np.rint(np.asarray(value, np.float32) / np.float32(tensor.scale))
    return np.clip(scaled + tensor.zero_point, tensor.dtype.qmin, tensor.dtype.qmax).astype(
        np.int64
    )


def _dequantize(value: np.ndarray, tensor: Tensor) -> np.ndarray:
    centred = np.asarray(value, np.int64) - tensor.zero_point
    return centred.astype(np.float32) * np.float32(tensor.scale)


def run_host_compute(compute: HostCompute, inputs: Sequence[np.ndarray]) -> np.ndarray:
    """A host op (docs/frontend.md, "Device and host"): its device tensors `inputs` (integers,
    in `compute.inputs` order) dequantized, its float nodes run as ONNX defines them, the
    result quantized to the output tensor's integers (int64). A NaN result (a 0/0, the square
    root of a negative) has no quantized value: InputError, naming the op's output."""
    values = {
        tensor.name: _dequantize(value, tensor)
        for tensor, value in zip(compute.inputs, inputs, strict=True)
    }
    values.update(compute.constants)
    result = run_nodes(compute.nodes, values)[compute.result]
    if np.isnan(result).any():
        raise InputError(
            f"host op {compute.output.name}: the float result has NaN values "
            f"(at {tuple(int(i) for i in np.argwhere(np.isnan(result))[0])}); the model's "
            "ops are undefined for these inputs"
        )
    return _quantize(result, compute.output)


def finish_output(host_output: HostOutput, value: np.ndarray, *, raw: bool) -> np.ndarray:
    """Host step after the device: the model's integer type (`raw`) or its float output."""
    if raw or not host_output.steps:
        if host_output.onnx_int_dtype == "uint8":
            return (value + 128).astype(np.uint8)
        return value.astype(np.dtype(host_output.onnx_int_dtype))
    result: np.ndarray = value
    for step in host_output.steps:
        match step:
            case Dequantize():
                centred = result.astype(np.int64) - step.zero_point
                result = centred.astype(np.float32) * np.float32(step.scale)
            case Compute():
                values = {step.input: result, **dict(step.constants)}
                result = run_nodes(step.nodes, values)[step.result]
    return result


def run_host_call(call: HostCall, memory: np.ndarray) -> None:
    """A host call of a Program: its inputs read from main memory (uint8, changed in
    place), its output written there."""
    inputs = [unpack_tensor(b, memory[b.dram_addr : b.dram_addr + b.nbytes]) for b in call.inputs]
    result = run_host_compute(call.compute, inputs)
    out = call.output
    memory[out.dram_addr : out.dram_addr + out.nbytes] = np.frombuffer(
        pack_tensor(out, result), np.uint8
    )


# Runs one device segment on main memory: (the stage, memory) -> (memory after, Activity).
SegmentRunner = Callable[[DeviceStage, np.ndarray], tuple[np.ndarray, Activity]]


def run_stages(
    program: Program, memory: np.ndarray, run_segment: SegmentRunner
) -> tuple[np.ndarray, Activity]:
    """Run a Program's stages in order (`Program.stages`): each device segment on the
    executor (`run_segment`), each host call here. The memory after the last stage, and
    the Activity of the device segments (their layers one after another)."""
    parts = []
    for stage in program.stages():
        if isinstance(stage, HostCall):
            run_host_call(stage, memory)
        else:
            memory, activity = run_segment(stage, memory)
            parts.append(activity)
    return memory, in_sequence(parts)
