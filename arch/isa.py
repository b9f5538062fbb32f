"""The instruction set: 128-bit instructions for the load, compute and store units.

The semantics and the cycle model are specified in docs/isa.md; this module holds the
encoding. Every instruction is a frozen dataclass whose fields are listed, with their bit
positions, in its `LAYOUT`; `encode` and `decode` are driven by those tables, so the layout
in one place is the layout everywhere.

Bits 0-3 of every instruction are the opcode and bits 4-7 the dependency flags, in the
order of `DEP_FLAGS` (`flag_bit` gives a flag's bit). `TOKEN_COUNTERS` is the token
topology: which unit pushes on each counter and which pops from it, with which flags.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import IntEnum
from typing import ClassVar

import numpy as np

__all__ = [
    "BINARY_PACK",
    "DEPS_LOW",
    "DEP_FLAGS",
    "INSTRUCTION_BYTES",
    "LANE_BITS",
    "LUT_ENTRIES",
    "MAIN_ADDRESS_BITS",
    "MAX_LUT_TABLES",
    "OPERAND_WIDTHS",
    "REQ_ENTRY",
    "TOKEN_COUNTERS",
    "Buffer",
    "Deps",
    "Finish",
    "Gemm",
    "IllegalInstruction",
    "Instruction",
    "Load",
    "Nop",
    "Opcode",
    "Store",
    "TokenCounter",
    "Unit",
    "Vector",
    "VectorOp",
    "address_bits",
    "buffer_rows",
    "decode",
    "decode_elements",
    "decode_program",
    "element_bits",
    "elements_bytes",
    "encode",
    "encode_program",
    "flag_bit",
    "max_pack",
    "operand_width",
    "pack_elements",
    "row_bits",
    "row_bytes",
    "token_counter",
    "transfer_bytes",
    "unpack_operands",
]

INSTRUCTION_BYTES = 16


class Opcode(IntEnum):
    NOP = 0
    LOAD = 1
    GEMM = 2
    VECTOR = 3
    STORE = 4
    FINISH = 5


class Unit(IntEnum):
    LOAD = 0
    COMPUTE = 1
    STORE = 2


class Buffer(IntEnum):
    INP = 0  # rows of dim bytes of activations (int8, or packed narrower operands)
    WGT = 1  # rows of dim bytes of weights (int8, or packed narrower operands)
    ACC = 2  # rows of dim int32 partial sums
    REQ = 3  # rows of dim requant entries (12 bytes each, see docs/isa.md)
    LUT = 4  # rows of dim output operands: the store's lookup tables, LUT_ENTRIES rows each


# Bits of one lane of the input and weight buffers and the lookup tables: a byte, which holds
# one int8 operand or 2**pack narrower ones (GEMM and STORE `pack`, docs/isa.md).
LANE_BITS = 8
# The operand widths a GEMM multiplies and a STORE writes, by `pack` (log2 of the operands
# per byte): the array's PEs compute those down to AccelConfig.operand_bits. Width 1 is
# binary: bit 1 is +1 and bit 0 is -1 (`BINARY_PACK`).
OPERAND_WIDTHS = (8, 4, 2, 1)
# The pack of binary operands: eight +-1 to a byte, whose products are an XNOR and whose
# dot product is 2 * popcount(XNOR) - 8. A binary byte has no zero operand: a zero byte is
# eight -1, so such a GEMM has no zero-operand MACs (docs/isa.md, GEMM).
BINARY_PACK = OPERAND_WIDTHS.index(1)


def operand_width(pack: int) -> int:
    """Bits of one operand at `pack` (0: int8, 1: two int4 per byte, 2: four int2, 3: eight
    binary)."""
    return LANE_BITS >> pack


def max_pack(config) -> int:
    """The widest `pack` an AccelConfig's PEs compute: that of its operand_bits."""
    return OPERAND_WIDTHS.index(config.operand_bits)


# Rows of one lookup table in the LUT buffer: one per value of an 8-bit output operand. A
# STORE with `lut` = t replaces its requantized y by lut[(t - 1) * LUT_ENTRIES + y + 128][c].
LUT_ENTRIES = 256
# The most tables a STORE can name: `lut` is a 7-bit field and 0 means no lookup.
MAX_LUT_TABLES = 127


# A requant entry, as it lies in main memory and in the req table: 12 bytes, little-endian.
REQ_ENTRY = np.dtype(
    [
        ("bias", "<i4"),
        ("multiplier", "<i4"),
        ("shift", "u1"),
        ("zero_point", "i1"),
        ("qmin", "i1"),
        ("qmax", "i1"),
    ]
)


def buffer_rows(config, buffer: Buffer) -> int:
    """Rows of `buffer` in an AccelConfig."""
    return {
        Buffer.INP: config.inp_rows,
        Buffer.WGT: config.wgt_rows,
        Buffer.ACC: config.acc_rows,
        Buffer.REQ: config.req_rows,
        Buffer.LUT: config.lut_rows,
    }[buffer]


def element_bits(config, buffer: Buffer) -> int:
    """Bits of one element of `buffer` in an AccelConfig: a byte lane for the input and
    weight buffers and the lookup tables (LANE_BITS), accumulators, and requant entries
    (REQ_ENTRY)."""
    return {
        Buffer.INP: LANE_BITS,
        Buffer.WGT: LANE_BITS,
        Buffer.ACC: config.acc_bits,
        Buffer.REQ: 8 * REQ_ENTRY.itemsize,
        Buffer.LUT: LANE_BITS,
    }[buffer]


def row_bits(config, buffer: Buffer) -> int:
    """Bits of one row of `buffer`: `dim` elements, the width of its memory in hw/."""
    return config.dim * element_bits(config, buffer)


def elements_bytes(config, buffer: Buffer, count: int) -> int:
    """Bytes `count` consecutive elements of `buffer` take in main memory (packed, the last
    byte rounded up)."""
    return -(-count * element_bits(config, buffer) // 8)


def row_bytes(config, buffer: Buffer) -> int:
    """Bytes one full row of `buffer` takes in main memory (elements packed)."""
    return elements_bytes(config, buffer, config.dim)


def transfer_bytes(config, instruction) -> int:
    """Bytes of main memory each row of a LOAD (not a fill) or STORE moves: `elems` elements
    of the loaded buffer; for a STORE, `elems` operands (requantized, packed at its `pack`)
    or, with `raw`, accumulators. 0 for any other instruction, and for a LOAD into no buffer
    (5..7: illegal, which the executors report as such)."""
    if isinstance(instruction, Load) and not instruction.fill:
        if instruction.buffer not in tuple(Buffer):
            return 0
        return elements_bytes(config, Buffer(instruction.buffer), instruction.elems)
    if isinstance(instruction, Store):
        if instruction.raw:
            return elements_bytes(config, Buffer.ACC, instruction.elems)
        return -(-instruction.elems * operand_width(instruction.pack) // 8)
    return 0


def address_bits(depth: int) -> int:
    """Bits of an address into `depth` entries (at least 1, so that a one-entry memory
    still has an address signal)."""
    return max(1, (depth - 1).bit_length())


def decode_elements(raw: np.ndarray, buffer: Buffer) -> np.ndarray:
    """The elements of rows of `buffer` from their bytes ((rows, row bytes) uint8): (rows,
    elems) int64 values, or (rows, elems, 6) int64 requant fields in REQ_ENTRY's order."""
    if buffer in (Buffer.INP, Buffer.WGT, Buffer.LUT):
        return raw.view(np.int8).astype(np.int64)
    if buffer is Buffer.ACC:
        return raw.view("<i4").astype(np.int64)
    records = raw.view(REQ_ENTRY)
    return np.stack([records[name].astype(np.int64) for name in REQ_ENTRY.names], axis=-1)


def pack_elements(values: np.ndarray, bits: int) -> np.ndarray:
    """Rows of signed `bits`-bit elements ((rows, n) integers, wrapped to `bits`) as their
    main-memory bytes ((rows, ceil(n * bits / 8)) uint8): element c at bits
    [c * bits, (c + 1) * bits) of the row, little-endian, two's complement, the last byte
    padded with zeros. A 1-bit element is binary: bit 1 where the value is >= 0 (+1), 0
    where it is negative (-1), so that the padding bits are -1."""
    values = np.asarray(values, np.int64)
    unsigned = (values >= 0).astype(np.int64) if bits == 1 else values & ((1 << bits) - 1)
    rows, count = values.shape
    if bits in (8, 16, 32):
        return unsigned.astype(f"<u{bits // 8}").view(np.uint8).reshape(rows, count * bits // 8)
    positions = np.arange(bits, dtype=np.int64)
    row_bits = ((unsigned[..., None] >> positions) & 1).astype(np.uint8)
    return np.packbits(row_bits.reshape(rows, count * bits), axis=1, bitorder="little")


def unpack_operands(packed: np.ndarray, pack: int) -> np.ndarray:
    """The signed operands of bytes that hold 2**pack of them (any shape of uint8 or int8):
    shape + (2**pack,), operand j of a byte at bits [j * w, (j + 1) * w), w = 8 >> pack,
    two's complement, or binary (+1 or -1) at BINARY_PACK (pack_elements' order)."""
    width = operand_width(pack)
    codes = np.asarray(packed).astype(np.int64) & 0xFF
    shifts = np.arange(1 << pack, dtype=np.int64) * width
    fields = (codes[..., None] >> shifts) & ((1 << width) - 1)
    if pack == BINARY_PACK:
        return 2 * fields - 1
    return fields - ((fields >> (width - 1)) << width)


class VectorOp(IntEnum):
    WRITE = 0
    ADD = 1
    MAX = 2
    SCALE = 3  # latch the lanes' scale registers from one inp row; no acc write


class IllegalInstruction(ValueError):
    """A word that is not a valid instruction, or an instruction that cannot be encoded."""


# The dependency flags sit in instruction bits DEPS_LOW.. in this order; the encoder, the
# decoder and the hardware all take the bit of a flag from here (`flag_bit`).
DEPS_LOW = 4
DEP_FLAGS = ("pop_prev", "pop_next", "push_prev", "push_next")


def flag_bit(name: str) -> int:
    """The bit of dependency flag `name` in an instruction word."""
    return DEPS_LOW + DEP_FLAGS.index(name)


@dataclass(frozen=True)
class Deps:
    """Dependency-token flags. `prev`/`next` are the unit's neighbours in the chain
    load -> compute -> store. Pops happen when the instruction starts, pushes when it
    completes. The fields are in DEP_FLAGS order."""

    pop_prev: bool = False
    pop_next: bool = False
    push_prev: bool = False
    push_next: bool = False

    def bits(self) -> int:
        """The flags as a number, DEP_FLAGS[0] in bit 0 (the word has it at DEPS_LOW)."""
        return sum(int(getattr(self, name)) << i for i, name in enumerate(DEP_FLAGS))

    @classmethod
    def from_bits(cls, value: int) -> Deps:
        return cls(**{name: bool(value >> i & 1) for i, name in enumerate(DEP_FLAGS)})

    def __str__(self) -> str:
        return ",".join(n for n in DEP_FLAGS if getattr(self, n)) or "-"


@dataclass(frozen=True)
class TokenCounter:
    """A dependency-token counter: `pusher` pushes on it with `push_flag`, `popper` pops
    from it with `pop_flag`."""

    name: str
    pusher: Unit
    push_flag: str
    popper: Unit
    pop_flag: str


# The token topology, in the order of docs/isa.md: the compiler, the instruction simulator
# and the controller all read it from here. Tokens only pass between neighbours of the
# chain, so a flag with no counter here (a load pop_prev, say) is illegal on that unit.
TOKEN_COUNTERS = (
    TokenCounter("l2c", Unit.LOAD, "push_next", Unit.COMPUTE, "pop_prev"),
    TokenCounter("c2l", Unit.COMPUTE, "push_prev", Unit.LOAD, "pop_next"),
    TokenCounter("c2s", Unit.COMPUTE, "push_next", Unit.STORE, "pop_prev"),
    TokenCounter("s2c", Unit.STORE, "push_prev", Unit.COMPUTE, "pop_next"),
)


def token_counter(unit: Unit, flag: str) -> TokenCounter | None:
    """The counter dependency flag `flag` acts on in an instruction of `unit`; None where
    the flag is illegal on that unit."""
    for counter in TOKEN_COUNTERS:
        pushes = counter.pusher == unit and counter.push_flag == flag
        pops = counter.popper == unit and counter.pop_flag == flag
        if pushes or pops:
            return counter
    return None


NO_DEPS = Deps()


# Main-memory byte addresses in LOAD and STORE: main memory holds at most 2**32 bytes.
MAIN_ADDRESS_BITS = 32


@dataclass(frozen=True)
class Instruction:
    OPCODE: ClassVar[Opcode]
    UNIT: ClassVar[Unit | None]
    # (field, lowest bit, width, signed) for the fields after opcode and deps.
    LAYOUT: ClassVar[tuple[tuple[str, int, int, bool], ...]] = ()

    deps: Deps

    @property
    def unit(self) -> Unit | None:
        return self.UNIT


@dataclass(frozen=True)
class Nop(Instruction):
    """Does nothing but pop and push tokens, on the unit it names."""

    OPCODE = Opcode.NOP
    UNIT = None
    LAYOUT = (("target", 8, 2, False),)

    target: int = Unit.COMPUTE

    @property
    def unit(self) -> Unit:
        return Unit(self.target)


@dataclass(frozen=True)
class Load(Instruction):
    """Main memory -> a buffer: `rows` rows of `elems` elements, row i read from
    dram_addr + i * dram_stride; elements of a row past `elems` are zero. With `fill`,
    every element of the rows is `fill_value` and main memory is not read."""

    OPCODE = Opcode.LOAD
    UNIT = Unit.LOAD
    LAYOUT = (
        ("buffer", 8, 3, False),
        ("fill", 11, 1, False),
        ("buf_row", 12, 16, False),
        ("rows", 28, 16, False),
        ("elems", 44, 8, False),
        ("dram_addr", 52, MAIN_ADDRESS_BITS, False),
        ("dram_stride", 84, 24, False),
        ("fill_value", 108, 8, True),
    )

    buffer: int
    fill: bool
    buf_row: int
    rows: int
    elems: int
    dram_addr: int = 0
    dram_stride: int = 0
    fill_value: int = 0


@dataclass(frozen=True)
class Gemm(Instruction):
    """For i < rows: acc[acc_row + i] (+)= inp[inp_row + i] @ W, where W is the dim x dim
    weight tile in the array: loaded from wgt rows wgt_row.. wgt_row+dim-1 first when
    `load_weights`, else the tile of the previous GEMM. Each byte of inp and W holds 2**pack
    operands (`operand_width(pack)` bits each): a product of two bytes is the dot product of
    their operands."""

    OPCODE = Opcode.GEMM
    UNIT = Unit.COMPUTE
    LAYOUT = (
        ("load_weights", 8, 1, False),
        ("accumulate", 9, 1, False),
        ("wgt_row", 10, 16, False),
        ("inp_row", 26, 16, False),
        ("acc_row", 42, 16, False),
        ("rows", 58, 16, False),
        ("pack", 74, 2, False),
    )

    load_weights: bool
    accumulate: bool
    wgt_row: int
    inp_row: int
    acc_row: int
    rows: int
    pack: int = 0


@dataclass(frozen=True)
class Vector(Instruction):
    """For i < rows, every lane c: v = (inp[inp_row+i][c] - zero) * m, with m = `multiplier`,
    or with `lane_scale` the lane's scale register; acc[acc_row+i][c] = v (WRITE), acc + v
    (ADD, wrapping) or max(acc, v) (MAX). SCALE (rows 1, no `lane_scale`) sets every lane's
    scale register to inp[inp_row][c] - zero and writes no acc row."""

    OPCODE = Opcode.VECTOR
    UNIT = Unit.COMPUTE
    LAYOUT = (
        ("op", 8, 2, False),
        ("inp_row", 10, 16, False),
        ("acc_row", 26, 16, False),
        ("rows", 42, 16, False),
        ("zero", 58, 9, True),
        ("multiplier", 67, 22, False),
        ("lane_scale", 89, 1, False),
    )

    op: int
    inp_row: int
    acc_row: int
    rows: int
    zero: int = 0
    multiplier: int = 1
    lane_scale: bool = False


@dataclass(frozen=True)
class Store(Instruction):
    """acc -> main memory: for i < rows, c < elems, the int32 acc[acc_row+i][c] goes through
    requant entry req[req_row][c] to an int8 y at dram_addr + i * dram_stride + c, or, with
    `raw`, is written as a little-endian int32 at dram_addr + i * dram_stride + 4c. With
    `lut` = t > 0, y is first looked up: lut[(t - 1) * LUT_ENTRIES + y + 128][c]. With
    `pack` > 0, a row's ys are packed, 2**pack to a byte (`pack_elements`)."""

    OPCODE = Opcode.STORE
    UNIT = Unit.STORE
    LAYOUT = (
        ("raw", 8, 1, False),
        ("acc_row", 9, 16, False),
        ("rows", 25, 16, False),
        ("elems", 41, 6, False),
        ("pack", 47, 2, False),
        ("dram_addr", 49, MAIN_ADDRESS_BITS, False),
        ("dram_stride", 81, 24, False),
        ("req_row", 105, 16, False),
        ("lut", 121, 7, False),
    )

    raw: bool
    acc_row: int
    rows: int
    elems: int
    dram_addr: int
    dram_stride: int
    req_row: int = 0
    lut: int = 0
    pack: int = 0


@dataclass(frozen=True)
class Finish(Instruction):
    """Stop fetching; the program is done when every unit has drained."""

    OPCODE = Opcode.FINISH
    UNIT = None


_CLASSES: dict[int, type[Instruction]] = {
    cls.OPCODE: cls for cls in (Nop, Load, Gemm, Vector, Store, Finish)
}


def encode(instruction: Instruction) -> int:
    """The 128-bit instruction word as a Python int."""
    word = int(instruction.OPCODE) | instruction.deps.bits() << DEPS_LOW
    for name, low, width, signed in instruction.LAYOUT:
        value = int(getattr(instruction, name))
        lowest, highest = (
            (-(1 << (width - 1)), (1 << (width - 1)) - 1)
            if signed
            else (
                0,
                (1 << width) - 1,
            )
        )
        if not lowest <= value <= highest:
            raise IllegalInstruction(
                f"{type(instruction).__name__}.{name} = {value} does not fit "
                f"{'signed ' if signed else ''}{width} bits"
            )
        word |= (value & ((1 << width) - 1)) << low
    return word


def decode(word: int) -> Instruction:
    """The instruction in a 128-bit word; IllegalInstruction for an unknown opcode."""
    opcode = word & 0xF
    cls = _CLASSES.get(opcode)
    if cls is None:
        raise IllegalInstruction(f"unknown opcode {opcode} in word {word:#034x}")
    values = {}
    for name, low, width, signed in cls.LAYOUT:
        value = (word >> low) & ((1 << width) - 1)
        if signed and value >> (width - 1):
            value -= 1 << width
        kind = next(f.type for f in fields(cls) if f.name == name)
        values[name] = bool(value) if kind in ("bool", bool) else value
    deps = Deps.from_bits((word >> DEPS_LOW) & ((1 << len(DEP_FLAGS)) - 1))
    instruction = cls(deps=deps, **values)
    if word >> 128 or encode(instruction) != word:
        raise IllegalInstruction(
            f"reserved bits are set in {type(instruction).__name__} word {word:#034x}"
        )
    return instruction


def encode_program(instructions: list[Instruction]) -> bytes:
    """Instructions as consecutive 16-byte little-endian words."""
    return b"".join(encode(i).to_bytes(INSTRUCTION_BYTES, "little") for i in instructions)


def decode_program(data: bytes) -> list[Instruction]:
    if len(data) % INSTRUCTION_BYTES:
        raise IllegalInstruction(
            f"instruction stream of {len(data)} bytes is not a multiple of {INSTRUCTION_BYTES}"
        )
    words = np.frombuffer(data, np.uint8).reshape(-1, INSTRUCTION_BYTES)
    return [decode(int.from_bytes(w.tobytes(), "little")) for w in words]


def disassemble(instruction: Instruction) -> str:
    """One line: mnemonic, fields, dependency flags."""
    parts = [f"{name}={int(getattr(instruction, name))}" for name, *_ in instruction.LAYOUT]
    name = instruction.OPCODE.name.lower()
    deps = "" if instruction.deps == NO_DEPS else f"  [{instruction.deps}]"
    return f"{name:<7}{' '.join(parts)}{deps}"
