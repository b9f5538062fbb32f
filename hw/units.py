"""What every execution unit shares: the control interface, memory-port signatures and
instruction-field decoding.

The port contract is in docs/microarchitecture.md ("The unit interface"). Field positions
come from the LAYOUT tables of `verdigris.arch.isa`, and the dependency flags' bits and
which of them a unit may carry from its DEP_FLAGS and TOKEN_COUNTERS, so the hardware
decodes exactly what the compiler encodes.
"""

from amaranth.hdl import Cat, Value, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import ReadPort, WritePort
from amaranth.lib.wiring import In, Out

from verdigris.arch.config import AccelConfig
from verdigris.arch.isa import (
    DEP_FLAGS,
    DEPS_LOW,
    INSTRUCTION_BYTES,
    Buffer,
    Instruction,
    Unit,
    address_bits,
    buffer_rows,
    element_bits,
    flag_bit,
    row_bits,
    token_counter,
)
from verdigris.arch.memory import main_memory_words

__all__ = [
    "INSTRUCTION_BITS",
    "UnitControl",
    "buffer_read",
    "buffer_write",
    "code_port",
    "dep_flags",
    "field",
    "fields",
    "flag",
    "illegal_flags",
    "lane_read",
    "main_read_port",
    "main_write_port",
    "opcode",
    "push_flags",
    "row_layout",
]

INSTRUCTION_BITS = 8 * INSTRUCTION_BYTES


class UnitControl(wiring.Signature):
    """The controller <-> unit interface, seen from the unit (docs/microarchitecture.md,
    "The unit interface", has the timing). A unit has it as ``control: Out(UnitControl())``,
    the controller one flipped member per unit, and the core joins them with
    ``wiring.connect``.

    Parameters
    ----------
    nop_completed : bool
        Whether the interface has ``nop_completed`` (the compute unit's, which can complete
        a NOP beside another instruction).

    Members
    -------
    start : ``In(1)``
        The controller starts the instruction on ``instr`` in this cycle.
    instr : ``In(INSTRUCTION_BITS)``
        The instruction word (valid with ``start``).
    ready : ``Out(1)``
        The unit may start its queue head now: ``free`` plus the unit's hazard rules.
    free : ``Out(1)``
        The unit is not busy (for the stall counters and the end of a program).
    push_prev, push_next : ``Out(2)``
        How many instructions complete in this cycle with that push flag.
    in_flight : ``Out(1)``
        A started instruction completes in a later cycle.
    error : ``Out(1)``
        The unit rejected an instruction; sticky until reset.
    completed : ``Out(2)``
        How many instructions complete in this cycle, with or without flags.
    nop_completed : ``Out(1)``
        (with ``nop_completed=True``) one of them is a NOP.
    """

    def __init__(self, *, nop_completed: bool = False):
        self._nop_completed = bool(nop_completed)
        members = {
            "start": In(1),
            "instr": In(INSTRUCTION_BITS),
            "ready": Out(1),
            "free": Out(1),
            "push_prev": Out(2),
            "push_next": Out(2),
            "in_flight": Out(1),
            "error": Out(1),
            "completed": Out(2),
        }
        if nop_completed:
            members["nop_completed"] = Out(1)
        super().__init__(members)

    @property
    def nop_completed(self) -> bool:
        return self._nop_completed

    def __eq__(self, other):
        return type(self) is type(other) and self.nop_completed == other.nop_completed

    def __hash__(self):
        return hash((type(self), self.nop_completed))

    def __repr__(self):
        return f"UnitControl(nop_completed={self.nop_completed})"


def row_layout(config, buffer: Buffer) -> data.ArrayLayout | int:
    """The shape of one row of `buffer` in hw/: `dim` signed elements for the inp, wgt and
    acc buffers, element ``c`` in bits ``[c*w, (c+1)*w)``; plain bits for the req table
    (its records as they lie in main memory)."""
    if buffer is Buffer.REQ:
        return row_bits(config, buffer)
    return data.ArrayLayout(signed(element_bits(config, buffer)), config.dim)


def buffer_read(config, buffer: Buffer, shape=None) -> ReadPort.Signature:
    """The signature of a read port of `buffer` (from the memory's side: a unit has it as
    ``In(...)``); `shape` replaces the row's default shape (`row_layout`) by another of the
    same width."""
    return ReadPort.Signature(
        addr_width=address_bits(buffer_rows(config, buffer)),
        shape=row_layout(config, buffer) if shape is None else shape,
    )


def buffer_write(config, buffer: Buffer, shape=None) -> WritePort.Signature:
    """The signature of a write port of `buffer` (from the memory's side, as `buffer_read`)."""
    return WritePort.Signature(
        addr_width=address_bits(buffer_rows(config, buffer)),
        shape=row_layout(config, buffer) if shape is None else shape,
    )


def lane_read(config, buffer: Buffer) -> wiring.Signature:
    """The signature of a read of `buffer` with one address per lane (from the memories'
    side, as `buffer_read`): lane c reads element c of row ``addr[c]``. The lookup tables
    are read so, one memory per lane, as each lane (output channel) looks up its own entry.

    Members: ``addr`` (In, ``dim`` addresses), ``en`` (In), ``data`` (Out, ``dim``
    elements), as an Amaranth read port: data in the cycle after ``en``, held while ``en``
    is low."""
    depth = buffer_rows(config, buffer)
    return wiring.Signature(
        {
            "addr": In(data.ArrayLayout(unsigned(address_bits(depth)), config.dim)),
            "en": In(1),
            "data": Out(data.ArrayLayout(signed(element_bits(config, buffer)), config.dim)),
        }
    )


def field(word: Value, cls: type[Instruction], name: str) -> Value:
    """The named field of an instruction of class `cls` in `word`, signed where the ISA says."""
    for field_name, low, width, is_signed in cls.LAYOUT:
        if field_name == name:
            bits = word[low : low + width]
            return bits.as_signed() if is_signed else bits
    raise ValueError(f"{cls.__name__} has no field {name!r}")


def fields(word: Value, cls: type[Instruction]) -> dict[str, Value]:
    """Every field of an instruction of class `cls` in `word`, by name (as `field`)."""
    return {name: field(word, cls, name) for name, *_ in cls.LAYOUT}


def opcode(word: Value) -> Value:
    return word[0:4]


def flag(word: Value, name: str) -> Value:
    """The dependency flag `name` (pop_prev, ...) of an instruction word."""
    return word[flag_bit(name)]


def dep_flags(word: Value) -> Value:
    """All the dependency flags of an instruction word."""
    return word[DEPS_LOW : DEPS_LOW + len(DEP_FLAGS)]


def push_flags(word: Value) -> tuple[Value, Value]:
    """(push_prev, push_next) flags of an instruction word."""
    return flag(word, "push_prev"), flag(word, "push_next")


def illegal_flags(word: Value, unit: Unit) -> Value:
    """1 if an instruction word for `unit` has a flag that acts on no counter of that unit
    (a load unit pop_prev, say): the unit raises `error` for it."""
    illegal = [flag(word, name) for name in DEP_FLAGS if token_counter(unit, name) is None]
    return Cat(*illegal).any()


def main_read_port(config: AccelConfig) -> ReadPort.Signature:
    """The signature of a main-memory read port: word address, `dma_bytes` per word."""
    words = main_memory_words(config)
    return ReadPort.Signature(addr_width=address_bits(words), shape=8 * config.dma_bytes)


def main_write_port(config: AccelConfig) -> WritePort.Signature:
    """The signature of a main-memory write port: word address, a byte enable per byte."""
    words = main_memory_words(config)
    return WritePort.Signature(
        addr_width=address_bits(words), shape=8 * config.dma_bytes, granularity=8
    )


def code_port(config: AccelConfig) -> ReadPort.Signature:
    """The signature of the instruction-fetch port: instruction index, one instruction."""
    return ReadPort.Signature(
        addr_width=address_bits(config.instruction_capacity), shape=INSTRUCTION_BITS
    )
