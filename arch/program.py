"""The Program: what the compiler produces and every executor runs (.vgp files).

A Program holds the AccelConfig it was compiled for, the instructions, the constant data
placed in main memory (weights, requant tables), where each input and output tensor lives in
main memory and in which layout, the host-side steps before and after the device, and a
per-layer table for reports. `save`/`load` write and read the versioned .vgp file format
(docs/program-format.md), which ends with a SHA-256 checksum.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import struct
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from verdigris.arch.config import AccelConfig, ConfigError
from verdigris.arch.host_steps import (
    HOST_OPS,
    HOST_STEPS,
    Compute,
    Dequantize,
    HostCompute,
    HostInput,
    HostNode,
    HostOutput,
    HostSide,
    HostStep,
    IntType,
    Tensor,
)
from verdigris.arch.isa import (
    INSTRUCTION_BYTES,
    IllegalInstruction,
    Instruction,
    decode_program,
    encode_program,
)

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "Binding",
    "DeviceStage",
    "HostCall",
    "LayerInfo",
    "Program",
    "ProgramError",
    "Segment",
    "load_program",
    "pack_tensor",
    "save_program",
    "unpack_tensor",
]

MAGIC = b"VGRSPROG"
FORMAT_VERSION = 3
_HEAD = struct.Struct("<8sII")  # magic, format version, JSON header length
_CHECKSUM_BYTES = 32


class ProgramError(ValueError):
    """A Program file that is corrupted, truncated, of another version or config."""


@dataclass(frozen=True)
class Segment:
    """Constant bytes placed at `addr` in main memory before the program runs."""

    addr: int
    data: bytes


@dataclass(frozen=True)
class Binding:
    """Where a device tensor lives in main memory and in which layout.

    The logical tensor (ONNX order, `shape`) is laid out in memory as
    `logical.reshape(pre_shape).transpose(perm)` flattened, elements of `dtype` ("int8" or
    "int32", little-endian). An NCHW activation is pre_shape (N, C, H, W), perm (0, 2, 3, 1):
    channels last.
    """

    name: str  # the IR tensor name
    dram_addr: int
    dtype: str
    shape: tuple[int, ...]
    pre_shape: tuple[int, ...]
    perm: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * np.dtype(self.dtype).itemsize


@dataclass(frozen=True)
class LayerInfo:
    """One IR op as compiled: its instructions are [first, last) in the program."""

    name: str
    kind: str
    first: int
    last: int
    macs: int  # useful MACs (the IR's count), per run of the program
    output_shape: tuple[int, ...] = ()
    # The op's true sizes in bytes, per run of the program (the batch it was compiled for),
    # without the compiled layout's padding: the floor's counts (docs/energy.md, "The
    # floor"). None where unknown (a file written before these fields).
    input_bytes: int | None = None  # activation inputs (a Conv's: the pixels it covers)
    weight_bytes: int | None = None  # weights at the operand width, requant entries
    output_bytes: int | None = None

    @property
    def sizes_known(self) -> bool:
        """Whether the program recorded the layer's true sizes."""
        return None not in (self.input_bytes, self.weight_bytes, self.output_bytes)


@dataclass(frozen=True)
class HostCall:
    """A host op between device segments (docs/program-format.md, "Host calls"): it runs
    once the instructions [0, at) have completed (the device segment before it ends with
    FINISH) and before instruction `at` starts. It reads its input tensors from main memory
    (`inputs`, in `compute.inputs` order) and writes its output tensor there (`output`)."""

    name: str  # the model's node
    at: int
    compute: HostCompute
    inputs: tuple[Binding, ...]
    output: Binding


@dataclass(frozen=True, eq=False)
class DeviceStage:
    """One device segment of a Program, as a Program of its own: its instructions (ending
    with FINISH) and its layers, rebased to start at 0; `first` is where it starts in the
    whole program."""

    first: int
    program: Program


@dataclass(frozen=True, eq=False)
class Program:
    config: AccelConfig
    instructions: tuple[Instruction, ...]
    segments: tuple[Segment, ...]
    inputs: tuple[Binding, ...]
    outputs: tuple[Binding, ...]
    layers: tuple[LayerInfo, ...] = ()
    # The ONNX inputs and outputs, how the host quantizes the inputs and finishes the
    # outputs (verdigris.arch.host_steps; run by verdigris.sim.host).
    host: HostSide = field(default_factory=HostSide)
    name: str = "program"
    # Host ops between device segments, in the order they run.
    host_calls: tuple[HostCall, ...] = ()

    def stages(self) -> list[DeviceStage | HostCall]:
        """What runs, in order: each device segment (instructions up to the next host
        call's `at`), then the host calls at its end. Every executor runs a Program so; a
        segment starts on a core in its reset state, with main memory as the last stage
        left it."""
        cuts = sorted({call.at for call in self.host_calls} | {0, len(self.instructions)})
        stages: list[DeviceStage | HostCall] = []
        for first, last in itertools.pairwise(cuts):
            stages += [call for call in self.host_calls if call.at == first]
            # An empty layer (a Reshape) at a cut belongs to the segment after it, so
            # that every layer is in exactly one segment.
            layers = tuple(
                replace(layer, first=layer.first - first, last=layer.last - first)
                for layer in self.layers
                if first <= layer.first
                and layer.last <= last
                and (layer.first < last or last == len(self.instructions))
            )
            segment = replace(
                self, instructions=self.instructions[first:last], layers=layers, host_calls=()
            )
            stages.append(DeviceStage(first, segment))
        stages += [call for call in self.host_calls if call.at == len(self.instructions)]
        return stages

    def memory_image(self) -> np.ndarray:
        """Main memory with the constant segments in place (uint8)."""
        image = np.zeros(self.config.main_memory_bytes, np.uint8)
        for segment in self.segments:
            image[segment.addr : segment.addr + len(segment.data)] = np.frombuffer(
                segment.data, np.uint8
            )
        return image


def pack_tensor(binding: Binding, values: np.ndarray) -> bytes:
    """The bytes of a logical tensor in the binding's memory layout."""
    values = np.asarray(values)
    if tuple(values.shape) != tuple(binding.shape):
        raise ProgramError(
            f"tensor {binding.name}: shape {values.shape} where the program expects {binding.shape}"
        )
    info = np.iinfo(np.dtype(binding.dtype))
    if not np.issubdtype(values.dtype, np.integer):
        raise ProgramError(f"tensor {binding.name}: {values.dtype} values; integers expected")
    if values.size and (values.min() < info.min or values.max() > info.max):
        raise ProgramError(
            f"tensor {binding.name}: values from {values.min()} to {values.max()} do not fit "
            f"{binding.dtype}"
        )
    laid_out = values.reshape(binding.pre_shape).transpose(binding.perm)
    return np.ascontiguousarray(laid_out).astype(f"<{np.dtype(binding.dtype).str[1:]}").tobytes()


def unpack_tensor(binding: Binding, data: bytes | np.ndarray) -> np.ndarray:
    """The logical tensor (int64) from its bytes in memory."""
    dtype = np.dtype(binding.dtype).newbyteorder("<")
    if len(data) < binding.nbytes:
        raise ProgramError(
            f"tensor {binding.name}: {len(data)} bytes where {binding.nbytes} are needed"
        )
    flat = np.frombuffer(bytes(data[: binding.nbytes]), dtype)
    laid_out_shape = tuple(binding.pre_shape[p] for p in binding.perm)
    inverse = np.argsort(binding.perm)
    logical = flat.reshape(laid_out_shape).transpose(inverse).reshape(binding.shape)
    return logical.astype(np.int64)


# ------------------------------------------------------------------------------ file


def _header(program: Program) -> dict:
    offset = 0
    segments = []
    for segment in program.segments:
        segments.append({"addr": segment.addr, "offset": offset, "size": len(segment.data)})
        offset += len(segment.data)
    return {
        "format_version": FORMAT_VERSION,
        "name": program.name,
        "config": program.config.to_dict(),
        "instruction_count": len(program.instructions),
        "segments": segments,
        "inputs": [asdict(b) for b in program.inputs],
        "outputs": [asdict(b) for b in program.outputs],
        "layers": [_layer_json(layer) for layer in program.layers],
        "host": _host_json(program.host),
        "host_calls": [_host_call_json(call) for call in program.host_calls],
    }


_SIZES = ("input_bytes", "weight_bytes", "output_bytes")


def _layer_json(layer: LayerInfo) -> dict:
    """A layer's header object; its sizes only where known (always, for a compiled program)."""
    data = asdict(layer)
    if not layer.sizes_known:
        for key in _SIZES:
            del data[key]
    return data


def _tensor_json(tensor: Tensor) -> dict:
    return {
        "name": tensor.name,
        "shape": list(tensor.shape),
        "bits": tensor.dtype.bits,
        "signed": tensor.dtype.signed,
        "scale": tensor.scale,
        "zero_point": tensor.zero_point,
    }


def _host_json(host: HostSide) -> dict:
    return {
        "dynamic_batch": host.dynamic_batch,
        "inputs": [
            {"name": i.name, "onnx_dtype": i.onnx_dtype, "tensor": _tensor_json(i.tensor)}
            for i in host.inputs
        ],
        "outputs": [
            {
                "name": o.name,
                "onnx_int_dtype": o.onnx_int_dtype,
                "tensor": _tensor_json(o.tensor),
                "steps": [_step_json(step) for step in o.steps],
            }
            for o in host.outputs
        ],
    }


def _step_json(step: HostStep) -> dict:
    if isinstance(step, Compute):
        return {
            "kind": step.kind,
            "input": step.input,
            "result": step.result,
            "nodes": [_node_json(node) for node in step.nodes],
            "constants": [_constant_json(name, value) for name, value in step.constants],
        }
    return {"kind": step.kind, **asdict(step)}


def _node_json(node: HostNode) -> dict:
    return {
        "op_type": node.op_type,
        "inputs": list(node.inputs),
        "outputs": list(node.outputs),
        "attributes": [[k, list(v) if isinstance(v, tuple) else v] for k, v in node.attributes],
    }


def _constant_json(name: str, value: np.ndarray) -> dict:
    # Exact: every float32, int64 and float64 value converts to a Python number without loss.
    return {
        "name": name,
        "dtype": value.dtype.name,
        "shape": list(value.shape),
        "values": value.reshape(-1).tolist(),
    }


def _host_call_json(call: HostCall) -> dict:
    compute = call.compute
    return {
        "name": call.name,
        "at": call.at,
        "inputs": [asdict(b) for b in call.inputs],
        "output": asdict(call.output),
        "tensors": [_tensor_json(t) for t in compute.inputs],
        "output_tensor": _tensor_json(compute.output),
        "nodes": [_node_json(node) for node in compute.nodes],
        "result": compute.result,
        "constants": [_constant_json(name, value) for name, value in compute.constants],
    }


def program_bytes(program: Program) -> bytes:
    """The .vgp encoding: deterministic for the same Program."""
    header = json.dumps(_header(program), sort_keys=True, separators=(",", ":")).encode()
    body = (
        _HEAD.pack(MAGIC, FORMAT_VERSION, len(header))
        + header
        + encode_program(list(program.instructions))
        + b"".join(segment.data for segment in program.segments)
    )
    return body + hashlib.sha256(body).digest()


def save_program(program: Program, path: str | Path) -> Path:
    """Write a .vgp file atomically."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        temporary.write_bytes(program_bytes(program))
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)  # never leave a half-written file behind
        raise
    return path


# ------------------------------------------------------------------------------ reading
#
# Every read of a header field goes through _field (or a helper built on it), so that a file
# from a buggy writer or a hand edit is rejected with the field's name and the type expected,
# never with a bare KeyError or TypeError text.


class _Malformed(Exception):
    """A header that does not describe a valid program; the message names the field."""


# Python types of parsed JSON, as a message names them.
_JSON_NAMES = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "a list",
    dict: "an object",
    type(None): "null",
}


def _json_kind(value: object) -> str:
    """A parsed JSON value as a message shows it: its JSON type, and a scalar's value."""
    kind = _JSON_NAMES.get(type(value), type(value).__name__)
    if value is None or isinstance(value, list | dict):
        return kind
    text = json.dumps(value)
    return f"{kind} ({text if len(text) <= 40 else text[:37] + '...'})"


def _field(data: dict, key: str, kind: type, where: str = "") -> Any:
    """data[key], which must be present and of JSON type `kind` (int, str, list or dict; a
    boolean is not an integer). Raises _Malformed naming the field by its path in the
    header, `where.key` (such as inputs[0].shape), for a missing field or a wrong type."""
    name = f"{where}.{key}" if where else key
    if key not in data:
        raise _Malformed(f"missing field {name!r}")
    value = data[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _Malformed(f"field {name!r} must be {_JSON_NAMES[kind]}, not {_json_kind(value)}")
    return value


def _natural(data: dict, key: str, where: str = "") -> int:
    """An integer field that is a count, size or address: 0 or more."""
    value = _field(data, key, int, where)
    if value < 0:
        name = f"{where}.{key}" if where else key
        raise _Malformed(f"field {name!r} must be 0 or more, not {value}")
    return value


def _ints(data: dict, key: str, where: str = "") -> tuple[int, ...]:
    """A list-of-integers field (a shape or a permutation) as a tuple."""
    values = _field(data, key, list, where)
    for index, value in enumerate(values):
        if not isinstance(value, int) or isinstance(value, bool):
            name = f"{where}.{key}[{index}]" if where else f"{key}[{index}]"
            raise _Malformed(f"field {name!r} must be an integer, not {_json_kind(value)}")
    return tuple(values)


def _objects(data: dict, key: str, where: str = "") -> list[tuple[str, dict]]:
    """A list-of-objects field: (path, object) for each entry, such as ("layers[2]", {...})
    or ("host.outputs[0].steps[1]", {...}), so that the entry's own fields are named by their
    full path."""
    entries = []
    name = f"{where}.{key}" if where else key
    for index, entry in enumerate(_field(data, key, list, where)):
        path = f"{name}[{index}]"
        if not isinstance(entry, dict):
            raise _Malformed(f"field {path!r} must be an object, not {_json_kind(entry)}")
        entries.append((path, entry))
    return entries


def _object(data: dict, key: str, where: str) -> tuple[str, dict]:
    """An object field: (path, object), such as ("host.inputs[0].tensor", {...})."""
    return f"{where}.{key}", _field(data, key, dict, where)


def _binding(data: dict, where: str) -> Binding:
    dtype = _field(data, "dtype", str, where)
    if dtype not in ("int8", "int32"):
        raise _Malformed(f"field '{where}.dtype' must be 'int8' or 'int32', not {dtype!r}")
    return Binding(
        _field(data, "name", str, where),
        _natural(data, "dram_addr", where),
        dtype,
        _ints(data, "shape", where),
        _ints(data, "pre_shape", where),
        _ints(data, "perm", where),
    )


def _layer(data: dict, where: str) -> LayerInfo:
    # output_shape and the sizes came after the first files were written: they stay
    # optional. The three sizes come together: one present makes the others required.
    output_shape = _ints(data, "output_shape", where) if "output_shape" in data else ()
    sizes = (
        {key: _natural(data, key, where) for key in _SIZES}
        if any(key in data for key in _SIZES)
        else {}
    )
    return LayerInfo(
        _field(data, "name", str, where),
        _field(data, "kind", str, where),
        _natural(data, "first", where),
        _natural(data, "last", where),
        _natural(data, "macs", where),
        output_shape,
        **sizes,
    )


def _scale(data: dict, key: str, where: str, *, nullable: bool = False) -> float | None:
    """A scale: a positive, finite number (an integer is taken as one); with `nullable`, or
    null (a raw int32 accumulator has no scale)."""
    if key not in data:
        raise _Malformed(f"missing field '{where}.{key}'")
    value = data[key]
    if nullable and value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        kind = "a number or null" if nullable else "a number"
        raise _Malformed(f"field '{where}.{key}' must be {kind}, not {_json_kind(value)}")
    if not (math.isfinite(value) and value > 0):
        raise _Malformed(f"field '{where}.{key}' must be a positive number, not {value}")
    return float(value)


def _dtype_name(data: dict, key: str, where: str, *, floats: bool) -> str:
    """A numpy dtype name: an integer type ("uint8", "int8", ...) or, with `floats`, also a
    floating-point one ("float32", ...)."""
    name = _field(data, key, str, where)
    try:
        dtype = np.dtype(name)
    except TypeError:
        dtype = None
    if dtype is None or dtype.name != name or dtype.kind not in ("fiu" if floats else "iu"):
        what = "an integer or floating-point" if floats else "an integer"
        raise _Malformed(
            f"field '{where}.{key}' must name {what} numpy type (such as 'int8'), not {name!r}"
        )
    return name


def _host_tensor(data: dict, where: str) -> Tensor:
    bits = _field(data, "bits", int, where)
    if not 1 <= bits <= 32:
        raise _Malformed(f"field '{where}.bits' must be from 1 to 32, not {bits}")
    return Tensor(
        _field(data, "name", str, where),
        _ints(data, "shape", where),
        IntType(bits, _field(data, "signed", bool, where)),
        _scale(data, "scale", where, nullable=True),
        _field(data, "zero_point", int, where),
    )


def _host_step(data: dict, where: str) -> HostStep:
    kind = _field(data, "kind", str, where)
    if kind == "Dequantize":
        return Dequantize(_scale(data, "scale", where), _field(data, "zero_point", int, where))
    if kind == "Compute":
        return Compute(
            tuple(_host_node(entry, path) for path, entry in _objects(data, "nodes", where)),
            _field(data, "input", str, where),
            _field(data, "result", str, where),
            tuple(_constant(entry, path) for path, entry in _objects(data, "constants", where)),
        )
    kinds = ", ".join(repr(k) for k in HOST_STEPS)
    raise _Malformed(f"field '{where}.kind' must be one of {kinds}, not {kind!r}")


def _host_input(data: dict, where: str) -> HostInput:
    path, tensor_data = _object(data, "tensor", where)
    tensor = _host_tensor(tensor_data, path)
    onnx_dtype = _dtype_name(data, "onnx_dtype", where, floats=True)
    # A float input is quantized with its tensor's scale; an integer one goes as it is.
    if (np.dtype(onnx_dtype).kind == "f") != (tensor.scale is not None):
        has = "has a scale" if tensor.scale is not None else "has no scale (scale null)"
        raise _Malformed(
            f"field '{where}.onnx_dtype' is {onnx_dtype!r} but '{where}.tensor' {has}: a "
            "float input needs a scale to be quantized with, an integer input none"
        )
    return HostInput(_field(data, "name", str, where), tensor, onnx_dtype)


def _host_output(data: dict, where: str) -> HostOutput:
    path, tensor_data = _object(data, "tensor", where)
    return HostOutput(
        _field(data, "name", str, where),
        _host_tensor(tensor_data, path),
        _dtype_name(data, "onnx_int_dtype", where, floats=False),
        tuple(_host_step(step, at) for at, step in _objects(data, "steps", where)),
    )


def _host(header: dict, inputs: tuple[Binding, ...], outputs: tuple[Binding, ...]) -> HostSide:
    """The host side, whose device tensors must each be one of the program's bindings."""
    where, data = "host", _field(header, "host", dict)
    host = HostSide(
        tuple(_host_input(entry, path) for path, entry in _objects(data, "inputs", where)),
        tuple(_host_output(entry, path) for path, entry in _objects(data, "outputs", where)),
        _field(data, "dynamic_batch", bool, where),
    )
    for key, ends, bindings in (
        ("inputs", host.inputs, inputs),
        ("outputs", host.outputs, outputs),
    ):
        names = {binding.name for binding in bindings}
        for index, end in enumerate(ends):
            if end.tensor.name not in names:
                raise _Malformed(
                    f"field 'host.{key}[{index}].tensor.name' is {end.tensor.name!r}, which "
                    f"names none of the program's {key} ({', '.join(sorted(names)) or 'none'})"
                )
    return host


def _strings(data: dict, key: str, where: str) -> tuple[str, ...]:
    values = _field(data, key, list, where)
    for index, value in enumerate(values):
        if not isinstance(value, str):
            raise _Malformed(
                f"field '{where}.{key}[{index}]' must be a string, not {_json_kind(value)}"
            )
    return tuple(values)


def _attribute(entry: object, where: str) -> tuple[str, Any]:
    """An attribute [name, value]: value a number, a string or a list of numbers."""
    if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)):
        raise _Malformed(f"field {where!r} must be a [name, value] pair, not {_json_kind(entry)}")
    name, value = entry
    if isinstance(value, list):
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
            raise _Malformed(f"field '{where}[1]' must be a list of numbers")
        return name, tuple(value)
    if not isinstance(value, int | float | str) or isinstance(value, bool):
        raise _Malformed(
            f"field '{where}[1]' must be a number, a string or a list, not {_json_kind(value)}"
        )
    return name, value


def _host_node(data: dict, where: str) -> HostNode:
    op_type = _field(data, "op_type", str, where)
    if op_type not in HOST_OPS:
        raise _Malformed(f"field '{where}.op_type' is {op_type!r}, which the host does not run")
    attributes = _field(data, "attributes", list, where)
    return HostNode(
        op_type,
        _strings(data, "inputs", where),
        _strings(data, "outputs", where),
        tuple(_attribute(entry, f"{where}.attributes[{i}]") for i, entry in enumerate(attributes)),
    )


def _constant(data: dict, where: str) -> tuple[str, np.ndarray]:
    dtype = _dtype_name(data, "dtype", where, floats=True)
    shape = _ints(data, "shape", where)
    values = _field(data, "values", list, where)
    try:
        array = np.array(values, dtype=dtype).reshape(shape)
    except (TypeError, ValueError) as error:
        raise _Malformed(
            f"field '{where}.values' does not fit {dtype}{list(shape)}: {error}"
        ) from None
    return _field(data, "name", str, where), array


def _host_call(data: dict, where: str, instruction_count: int) -> HostCall:
    at = _natural(data, "at", where)
    if at > instruction_count:
        raise _Malformed(f"field '{where}.at' is {at}, past the {instruction_count} instructions")
    tensors = tuple(_host_tensor(entry, path) for path, entry in _objects(data, "tensors", where))
    inputs = tuple(_binding(entry, path) for path, entry in _objects(data, "inputs", where))
    if len(inputs) != len(tensors):
        raise _Malformed(
            f"field '{where}.inputs' must have one binding per entry of '{where}.tensors'"
        )
    compute = HostCompute(
        inputs=tensors,
        output=_host_tensor(*reversed(_object(data, "output_tensor", where))),
        nodes=tuple(_host_node(entry, path) for path, entry in _objects(data, "nodes", where)),
        result=_field(data, "result", str, where),
        constants=tuple(
            _constant(entry, path) for path, entry in _objects(data, "constants", where)
        ),
    )
    return HostCall(
        _field(data, "name", str, where),
        at,
        compute,
        inputs,
        _binding(*reversed(_object(data, "output", where))),
    )


def _config(header: dict) -> AccelConfig:
    try:
        return AccelConfig.from_dict(_field(header, "config", dict), source="field 'config'")
    except ConfigError as error:
        raise _Malformed(str(error)) from None


def _segments(header: dict, constants: bytes) -> tuple[Segment, ...]:
    """The segments, whose data the writer stores back to back after the instructions."""
    segments = []
    offset = 0
    for where, entry in _objects(header, "segments"):
        addr = _natural(entry, "addr", where)
        stored = _natural(entry, "offset", where)
        if stored != offset:
            raise _Malformed(
                f"field '{where}.offset' must be {offset} (segments are stored back to back), "
                f"not {stored}"
            )
        size = _natural(entry, "size", where)
        segments.append(Segment(addr, constants[offset : offset + size]))
        offset += size
    if offset != len(constants):
        raise _Malformed(
            f"the segments hold {offset:,} bytes of constants but the file holds "
            f"{len(constants):,} after the instructions"
        )
    return tuple(segments)


def _parse_body(body: bytes, header_length: int) -> Program:
    """The Program in `body` (the file without its checksum, whose head has been checked).
    Raises _Malformed for anything the header or the sizes get wrong."""
    start = _HEAD.size
    if start + header_length > len(body):
        raise _Malformed(
            f"the header length ({header_length:,} bytes) runs past the end of the file"
        )
    try:
        header = json.loads(body[start : start + header_length])
    except ValueError as error:  # json.JSONDecodeError, UnicodeDecodeError
        raise _Malformed(f"the header is not JSON: {error}") from None
    if not isinstance(header, dict):
        raise _Malformed(f"the header must be a JSON object, not {_json_kind(header)}")
    version = _field(header, "format_version", int)
    if version != FORMAT_VERSION:
        raise _Malformed(
            f"field 'format_version' is {version} but the file's head says {FORMAT_VERSION}"
        )
    code_start = start + header_length
    count = _natural(header, "instruction_count")
    code_end = code_start + count * INSTRUCTION_BYTES
    if code_end > len(body):
        raise _Malformed(
            f"field 'instruction_count' is {count:,}: more instructions than the file holds"
        )
    try:
        instructions = tuple(decode_program(body[code_start:code_end]))
    except IllegalInstruction as error:
        raise _Malformed(str(error)) from None
    config = _config(header)
    segments = _segments(header, body[code_end:])
    inputs = tuple(_binding(entry, where) for where, entry in _objects(header, "inputs"))
    outputs = tuple(_binding(entry, where) for where, entry in _objects(header, "outputs"))
    return Program(
        config,
        instructions,
        segments,
        inputs,
        outputs,
        tuple(_layer(entry, where) for where, entry in _objects(header, "layers")),
        _host(header, inputs, outputs),
        _field(header, "name", str),
        tuple(_host_call(entry, where, count) for where, entry in _objects(header, "host_calls")),
    )


def parse_program(data: bytes, *, source: str = "program") -> Program:
    """The Program in the bytes of a .vgp file. Raises ProgramError, starting with `source`
    (the file's path), for a file that is not a program, corrupted or truncated, of another
    format version, or malformed (naming the header field at fault)."""
    if len(data) < _HEAD.size + _CHECKSUM_BYTES or data[:8] != MAGIC:
        raise ProgramError(f"{source}: not a Verdigris program (.vgp): bad magic or too short")
    _, version, header_length = _HEAD.unpack_from(data)
    body, checksum = data[:-_CHECKSUM_BYTES], data[-_CHECKSUM_BYTES:]
    if hashlib.sha256(body).digest() != checksum:
        raise ProgramError(f"{source}: checksum mismatch: the file is corrupted or truncated")
    if version != FORMAT_VERSION:
        raise ProgramError(
            f"{source}: program format version {version}; this Verdigris reads version "
            f"{FORMAT_VERSION}. Recompile the model with `verdigris compile`."
        )
    try:
        return _parse_body(body, header_length)
    except _Malformed as error:
        # The checksum matched, so the writer produced this: a bug or a hand edit.
        raise ProgramError(
            f"{source}: malformed program: {error}. Recompile the model with `verdigris compile`."
        ) from None


def load_program(path: str | Path, *, config: AccelConfig | None = None) -> Program:
    """Read a .vgp file; with `config`, also check it was compiled for that config."""
    path = Path(path)
    if path.is_dir():
        raise ProgramError(f"{path}: is a directory; give the program (.vgp) file")
    if not path.is_file():
        raise ProgramError(f"{path}: no such program file")
    program = parse_program(path.read_bytes(), source=str(path))
    if config is not None and program.config != config:
        differences = [
            f"{key}: program {value} vs {getattr(config, key)}"
            for key, value in program.config.to_dict().items()
            if getattr(config, key) != value
        ]
        raise ProgramError(
            f"{path}: compiled for config '{program.config.name}', not '{config.name}' ("
            + "; ".join(differences)
            + "). Recompile with --config."
        )
    return program
