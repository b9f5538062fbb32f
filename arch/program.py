"""The Program: what the compiler produces and every executor runs (.vgp files).

A Program holds the AccelConfig it was compiled for, the instructions, the constant data
placed in main memory (weights, requant tables), where each input and output tensor lives in
main memory and in which layout, the host-side steps before and after the device, and a
per-layer table for reports. `save`/`load` write and read the versioned .vgp file format
(docs/program-format.md), which ends with a SHA-256 checksum.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from verdigris.arch.config import AccelConfig, ConfigError
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
FORMAT_VERSION = 1
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


@dataclass(frozen=True, eq=False)
class Program:
    config: AccelConfig
    instructions: tuple[Instruction, ...]
    segments: tuple[Segment, ...]
    inputs: tuple[Binding, ...]
    outputs: tuple[Binding, ...]
    layers: tuple[LayerInfo, ...] = ()
    # Host steps and ONNX names, as JSON-ready data (written by the compiler, see
    # verdigris.compiler.backend.host).
    host: dict = field(default_factory=dict)
    name: str = "program"

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
        "layers": [asdict(layer) for layer in program.layers],
        "host": program.host,
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


def _objects(data: dict, key: str) -> list[tuple[str, dict]]:
    """A top-level list-of-objects field: (path, object) for each entry, such as
    ("layers[2]", {...}), so that the entry's own fields are named by their full path."""
    entries = []
    for index, entry in enumerate(_field(data, key, list)):
        where = f"{key}[{index}]"
        if not isinstance(entry, dict):
            raise _Malformed(f"field {where!r} must be an object, not {_json_kind(entry)}")
        entries.append((where, entry))
    return entries


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
    # output_shape came after the first files were written: it stays optional.
    output_shape = _ints(data, "output_shape", where) if "output_shape" in data else ()
    return LayerInfo(
        _field(data, "name", str, where),
        _field(data, "kind", str, where),
        _natural(data, "first", where),
        _natural(data, "last", where),
        _natural(data, "macs", where),
        output_shape,
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
    return Program(
        _config(header),
        instructions,
        _segments(header, body[code_end:]),
        tuple(_binding(entry, where) for where, entry in _objects(header, "inputs")),
        tuple(_binding(entry, where) for where, entry in _objects(header, "outputs")),
        tuple(_layer(entry, where) for where, entry in _objects(header, "layers")),
        _field(header, "host", dict),
        _field(header, "name", str),
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
