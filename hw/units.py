"""What every execution unit shares: the control ports and instruction-field decoding.

The port contract is in docs/microarchitecture.md ("The unit interface"). Field positions
come from the LAYOUT tables of `verdigris.arch.isa`, so the hardware decodes exactly what the
compiler encodes.
"""

from amaranth.hdl import Value
from amaranth.lib.wiring import In, Out

from verdigris.arch.isa import INSTRUCTION_BYTES, Instruction

__all__ = ["INSTRUCTION_BITS", "control_ports", "field", "opcode", "push_flags"]

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


def push_flags(word: Value) -> tuple[Value, Value]:
    """(push_prev, push_next) flags of an instruction word."""
    return word[6], word[7]
