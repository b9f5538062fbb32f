"""The instruction encoding: LAYOUT-driven round trips, range checks, and the spec table."""

import dataclasses
import itertools
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from verdigris.arch.isa import (
    INSTRUCTION_BYTES,
    Buffer,
    Deps,
    Finish,
    Gemm,
    IllegalInstruction,
    Load,
    Nop,
    Opcode,
    Store,
    Unit,
    Vector,
    VectorOp,
    decode,
    decode_program,
    encode,
    encode_program,
    flag_bit,
    token_counter,
)

CLASSES = (Nop, Load, Gemm, Vector, Store, Finish)
ISA_DOC = Path(__file__).resolve().parents[2] / "docs" / "isa.md"
DEP_NAMES = ("pop_prev", "pop_next", "push_prev", "push_next")


def field_range(width: int, signed: bool) -> tuple[int, int]:
    if signed:
        return -(1 << (width - 1)), (1 << (width - 1)) - 1
    return 0, (1 << width) - 1


def is_bool_field(cls, name: str) -> bool:
    kind = next(f.type for f in dataclasses.fields(cls) if f.name == name)
    return kind in ("bool", bool)


deps_strategy = st.builds(Deps, st.booleans(), st.booleans(), st.booleans(), st.booleans())


def field_strategy(cls, name: str, width: int, signed: bool):
    if is_bool_field(cls, name):
        return st.booleans()
    low, high = field_range(width, signed)
    # Bias towards the ends of the range, where off-by-one and sign errors live.
    return st.one_of(
        st.sampled_from(sorted({low, high, 0, low + 1, high - 1})), st.integers(low, high)
    )


def instruction_strategy(cls):
    values = {name: field_strategy(cls, name, w, s) for name, _, w, s in cls.LAYOUT}
    return st.builds(
        lambda deps, values: cls(deps=deps, **values), deps_strategy, st.fixed_dictionaries(values)
    )


any_instruction = st.one_of([instruction_strategy(cls) for cls in CLASSES])


def zero_instruction(cls):
    return cls(deps=Deps(), **{name: 0 for name, *_ in cls.LAYOUT})


# ------------------------------------------------------------------------------ round trips


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
@given(data=st.data())
def test_encode_decode_round_trips_every_field(cls, data):
    instruction = data.draw(instruction_strategy(cls))
    word = encode(instruction)
    assert 0 <= word < 1 << 128
    decoded = decode(word)
    assert type(decoded) is cls
    assert decoded == instruction
    assert decoded.deps == instruction.deps
    for name, *_ in cls.LAYOUT:
        value = getattr(decoded, name)
        assert value == getattr(instruction, name)
        assert type(value) is (bool if is_bool_field(cls, name) else int), name
    # The word agrees bit for bit with the LAYOUT table, and unused bits are zero.
    assert word & 0xF == cls.OPCODE
    assert (word >> 4) & 0xF == sum(
        1 << i for i, n in enumerate(DEP_NAMES) if getattr(instruction.deps, n)
    )
    used = 0xFF
    for name, low, width, _ in cls.LAYOUT:
        mask = (1 << width) - 1
        assert (word >> low) & mask == int(getattr(instruction, name)) & mask, name
        used |= mask << low
    assert word & ~used == 0


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_extreme_words_are_128_bits(cls):
    for pick in (0, 1):  # every field at its minimum, then at its maximum
        values = {}
        for name, _, width, signed in cls.LAYOUT:
            values[name] = (
                bool(pick) if is_bool_field(cls, name) else field_range(width, signed)[pick]
            )
        instruction = cls(deps=Deps(*[bool(pick)] * 4), **values)
        word = encode(instruction)
        assert word.bit_length() <= 128
        data = encode_program([instruction])
        assert len(data) == INSTRUCTION_BYTES == 16
        assert data == word.to_bytes(16, "little")
        assert decode_program(data) == [instruction]


def test_enum_values_decode_equal_to_their_enums():
    load = Load(Deps(push_next=True), Buffer.REQ, False, 3, 2, 1, 64, 12)
    assert decode(encode(load)) == load and decode(encode(load)).buffer == Buffer.REQ
    vector = Vector(Deps(), VectorOp.MAX, 1, 2, 3, zero=-5, multiplier=7)
    assert decode(encode(vector)) == vector
    nop = Nop(Deps(pop_prev=True), target=Unit.STORE)
    assert decode(encode(nop)).unit is Unit.STORE


def test_defaults():
    assert Nop(Deps()).unit is Unit.COMPUTE
    vector = Vector(Deps(), VectorOp.WRITE, 0, 0, 1)
    assert (vector.zero, vector.multiplier) == (0, 1)
    assert decode(encode(Finish(Deps()))) == Finish(Deps())


def test_opcodes_and_units():
    assert {cls.OPCODE: cls for cls in CLASSES} == dict(zip(range(6), CLASSES, strict=True))
    assert [op.name for op in Opcode] == ["NOP", "LOAD", "GEMM", "VECTOR", "STORE", "FINISH"]
    assert [Load.UNIT, Gemm.UNIT, Vector.UNIT, Store.UNIT] == [
        Unit.LOAD,
        Unit.COMPUTE,
        Unit.COMPUTE,
        Unit.STORE,
    ]
    assert Finish.UNIT is None and Finish(Deps()).unit is None


@pytest.mark.parametrize("bit", range(4))
def test_each_flag_has_its_bit(bit):
    deps = Deps(**{DEP_NAMES[bit]: True})
    assert encode(Finish(deps)) == Opcode.FINISH | 1 << (4 + bit)
    assert Deps.from_bits(deps.bits()) == deps
    assert flag_bit(DEP_NAMES[bit]) == 4 + bit


# ------------------------------------------------------------------------------ errors


OUT_OF_RANGE = [
    (cls, name, width, signed, bad)
    for cls in CLASSES
    for name, _, width, signed in cls.LAYOUT
    for bad in (field_range(width, signed)[0] - 1, field_range(width, signed)[1] + 1)
]


@pytest.mark.parametrize(
    ("cls", "name", "width", "signed", "bad"),
    OUT_OF_RANGE,
    ids=[f"{c.__name__}.{n}={b}" for c, n, _, _, b in OUT_OF_RANGE],
)
def test_out_of_range_fields_are_illegal(cls, name, width, signed, bad):
    instruction = dataclasses.replace(zero_instruction(cls), **{name: bad})
    with pytest.raises(IllegalInstruction) as info:
        encode(instruction)
    assert str(info.value) == (
        f"{cls.__name__}.{name} = {bad} does not fit {'signed ' if signed else ''}{width} bits"
    )
    with pytest.raises(IllegalInstruction, match=rf"\b{name}\b"):
        encode_program([Finish(Deps()), instruction])


def test_out_of_range_message_exact():
    with pytest.raises(IllegalInstruction) as info:
        encode(Load(Deps(), Buffer.INP, True, 0, 1, 1, fill_value=128))
    assert str(info.value) == "Load.fill_value = 128 does not fit signed 8 bits"
    with pytest.raises(IllegalInstruction) as info:
        encode(Store(Deps(), False, 0, 1, 1, 1 << 32, 0))
    assert str(info.value) == "Store.dram_addr = 4294967296 does not fit 32 bits"


@given(
    opcode=st.integers(6, 15),
    rest=st.integers(0, (1 << 124) - 1),
)
def test_unknown_opcodes_are_illegal(opcode, rest):
    word = rest << 4 | opcode
    with pytest.raises(IllegalInstruction, match=f"unknown opcode {opcode} "):
        decode(word)
    stream = encode_program([Finish(Deps())]) + word.to_bytes(16, "little")
    with pytest.raises(IllegalInstruction, match=f"unknown opcode {opcode} "):
        decode_program(stream)


@given(instructions=st.lists(any_instruction, max_size=12))
def test_programs_round_trip(instructions):
    data = encode_program(instructions)
    assert len(data) == INSTRUCTION_BYTES * len(instructions)
    for i, instruction in enumerate(instructions):
        chunk = data[16 * i : 16 * (i + 1)]
        assert int.from_bytes(chunk, "little") == encode(instruction)
        assert chunk[0] & 0xF == instruction.OPCODE  # little-endian: opcode in byte 0
    assert decode_program(data) == instructions


def test_an_empty_program_round_trips():
    assert encode_program([]) == b""
    assert decode_program(b"") == []


@pytest.mark.parametrize("length", [1, 8, 15, 17, 31, 33, 100])
def test_a_partial_word_is_rejected(length):
    data = (encode_program([Finish(Deps())]) * 8)[:length]
    with pytest.raises(IllegalInstruction) as info:
        decode_program(data)
    assert str(info.value) == f"instruction stream of {length} bytes is not a multiple of 16"


# ------------------------------------------------------------------------------ layout


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_layout_is_consistent(cls):
    names = [name for name, *_ in cls.LAYOUT]
    assert len(set(names)) == len(names)
    # Every dataclass field but deps is encoded, and nothing else is.
    assert set(names) == {f.name for f in dataclasses.fields(cls)} - {"deps"}
    ranges = [(0, 8, "opcode+deps")] + [(low, low + width, n) for n, low, width, _ in cls.LAYOUT]
    for name, low, width, signed in cls.LAYOUT:
        assert width >= 1 and low >= 8 and low + width <= 128, name
        assert isinstance(signed, bool)
        if is_bool_field(cls, name):
            assert (width, signed) == (1, False), name
    ranges.sort()
    for (_, end, first), (start, _, second) in itertools.pairwise(ranges):
        assert end <= start, f"{cls.__name__}: {first} overlaps {second}"


# ------------------------------------------------------------------------------ the spec


def doc_field_table() -> dict[int, tuple[str, str, str]]:
    """docs/isa.md's field table: opcode -> (name, unit column, fields column)."""
    lines = ISA_DOC.read_text(encoding="utf-8").splitlines()
    start = lines.index("| opcode | name | unit | fields |")
    rows = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert len(cells) == 4, line
        rows[int(cells[0])] = (cells[1], cells[2], cells[3])
    return rows


FIELD_ENTRY = re.compile(r"`(\w+)` \[(\d+),(\d+)\)(s?)")


def test_the_spec_lists_every_opcode():
    assert sorted(doc_field_table()) == [op.value for op in Opcode]
    for opcode, (name, _, _) in doc_field_table().items():
        assert name == Opcode(opcode).name


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_the_spec_field_table_matches_layout(cls):
    _, unit, fields = doc_field_table()[cls.OPCODE]
    documented = [
        (field, int(low), int(width), sign == "s")
        for field, low, width, sign in FIELD_ENTRY.findall(f"{unit} {fields}")
    ]
    assert documented == list(cls.LAYOUT)
    if cls.UNIT is not None:
        assert unit == cls.UNIT.name.lower()
    else:
        assert cls in (Nop, Finish)


def test_the_spec_enumerations_match_the_enums():
    rows = doc_field_table()

    def listing(enum) -> str:
        return ", ".join(f"{member.value} {member.name.lower()}" for member in enum)

    assert f"`target` [8,2): {listing(Unit)} " in rows[Opcode.NOP][1] + " "
    assert f"`buffer` [8,3) ({listing(Buffer)})" in rows[Opcode.LOAD][2]
    assert f"`op` [8,2) ({listing(VectorOp)})" in rows[Opcode.VECTOR][2]


def test_the_spec_flag_bits_match_deps():
    text = ISA_DOC.read_text(encoding="utf-8")
    assert re.search(r"Bits 0\W3: opcode; bits 4\W7: flags", text)
    documented = dict(re.findall(r"`(pop_prev|pop_next|push_prev|push_next)` \((\d)\)", text))
    assert set(documented) == set(DEP_NAMES)
    for name, bit in documented.items():
        assert Deps(**{name: True}).bits() << 4 == 1 << int(bit), name


def test_the_spec_token_table_matches_token_counters():
    lines = ISA_DOC.read_text(encoding="utf-8").splitlines()
    start = lines.index("| unit | " + " | ".join(DEP_NAMES) + " |")
    for unit, line in zip(Unit, lines[start + 2 :], strict=False):
        name, *cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert name == unit.name.lower()
        for flag, cell in zip(DEP_NAMES, cells, strict=True):
            counter = token_counter(unit, flag)
            assert cell == ("illegal" if counter is None else f"`{counter.name}`"), (unit, flag)
