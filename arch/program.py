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

import numpy as np

from verdigris.arch.config import AccelConfig
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
    temporary.write_bytes(program_bytes(program))
    temporary.replace(path)
    return path


def _binding(data: dict) -> Binding:
    return Binding(
        data["name"],
        data["dram_addr"],
        data["dtype"],
        tuple(data["shape"]),
        tuple(data["pre_shape"]),
        tuple(data["perm"]),
    )


def parse_program(data: bytes, *, source: str = "program") -> Program:
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
    start = _HEAD.size
    try:
        header = json.loads(body[start : start + header_length])
        config = AccelConfig.from_dict(header["config"], source=f"{source} config")
        count = header["instruction_count"]
        code_start = start + header_length
        code_end = code_start + count * INSTRUCTION_BYTES
        instructions = tuple(decode_program(body[code_start:code_end]))
        segments = tuple(
            Segment(s["addr"], body[code_end + s["offset"] : code_end + s["offset"] + s["size"]])
            for s in header["segments"]
        )
        program = Program(
            config,
            instructions,
            segments,
            tuple(_binding(b) for b in header["inputs"]),
            tuple(_binding(b) for b in header["outputs"]),
            tuple(
                LayerInfo(
                    layer["name"],
                    layer["kind"],
                    layer["first"],
                    layer["last"],
                    layer["macs"],
                    tuple(layer.get("output_shape", ())),
                )
                for layer in header["layers"]
            ),
            header["host"],
            header["name"],
        )
    except (KeyError, TypeError, ValueError, IllegalInstruction) as error:
        raise ProgramError(f"{source}: malformed program: {error}") from None
    expected = code_end + sum(h["size"] for h in header["segments"])
    if expected != len(body):
        raise ProgramError(
            f"{source}: the header describes {expected:,} bytes but the file holds "
            f"{len(body):,}: malformed program"
        )
    return program


def load_program(path: str | Path, *, config: AccelConfig | None = None) -> Program:
    """Read a .vgp file; with `config`, also check it was compiled for that config."""
    path = Path(path)
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
