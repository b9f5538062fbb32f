"""What every execution unit shares: the control ports and instruction-field decoding.

The port contract is in docs/microarchitecture.md ("The unit interface"). Field positions
come from the LAYOUT tables of `verdigris.arch.isa`, and the dependency flags' bits and
which of them a unit may carry from its DEP_FLAGS and TOKEN_COUNTERS, so the hardware
decodes exactly what the compiler encodes.
"""

from amaranth.hdl import Cat, Value
from amaranth.lib.wiring import In, Out

from verdigris.arch.isa import (
    DEP_FLAGS,
    DEPS_LOW,
    INSTRUCTION_BYTES,
    Instruction,
    Unit,
    flag_bit,
    token_counter,
)

__all__ = [
    "INSTRUCTION_BITS",
    "control_ports",
    "dep_flags",
    "field",
    "flag",
    "illegal_flags",
    "opcode",
    "push_flags",
]

INSTRUCTION_BITS = 8 * INSTRUCTION_BYTES


def control_ports() -> dict:
    """The signature members every unit has (seen from the unit)."""
    return {
        "start": In(1),
        "instr": In(INSTRUCTION_BITS),
        "free": Out(1),
        "push_prev": Out(2),
        "push_next": Out(2),
        "in_flight": Out(1),
        "error": Out(1),
    }


def field(word: Value, cls: type[Instruction], name: str) -> Value:
    """The named field of an instruction of class `cls` in `word`, signed where the ISA says."""
    for field_name, low, width, signed in cls.LAYOUT:
        if field_name == name:
            bits = word[low : low + width]
            return bits.as_signed() if signed else bits
    raise ValueError(f"{cls.__name__} has no field {name!r}")


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
