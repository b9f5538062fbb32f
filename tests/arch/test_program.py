"""The Program and its .vgp file: round trip, corruption, versions, configs, tensor layouts."""

import dataclasses
import hashlib
import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tests.support.program_files import (
    CHECKSUM_BYTES,
    HEAD_BYTES,
    NHWC,
    TINY,
    header_of,
    make_program,
    malformed,
    rewrite_header,
    with_checksum,
    with_header,
)
from verdigris.arch.config import load_config
from verdigris.arch.program import (
    FORMAT_VERSION,
    MAGIC,
    Binding,
    Program,
    ProgramError,
    Segment,
    load_program,
    pack_tensor,
    parse_program,
    program_bytes,
    save_program,
    unpack_tensor,
)


def assert_same_program(got: Program, want: Program) -> None:
    for field in dataclasses.fields(Program):
        assert getattr(got, field.name) == getattr(want, field.name), field.name


@pytest.fixture(scope="module")
def data() -> bytes:
    return program_bytes(make_program())


# ------------------------------------------------------------------------------ round trip


def test_save_then_load_gives_equal_fields(tmp_path):
    program = make_program()
    path = save_program(program, tmp_path / "model.vgp")
    assert path == tmp_path / "model.vgp"
    assert [p.name for p in tmp_path.iterdir()] == ["model.vgp"]  # no temporary left behind
    loaded = load_program(path)
    assert_same_program(loaded, program)
    assert isinstance(loaded.inputs[0].shape, tuple) and isinstance(
        loaded.layers[0].output_shape, tuple
    )
    assert load_program(str(path), config=TINY).config == TINY
    assert program_bytes(loaded) == program_bytes(program)


def test_an_empty_program_round_trips(tmp_path):
    program = Program(TINY, (), (), (), ())
    assert_same_program(load_program(save_program(program, tmp_path / "empty.vgp")), program)


def test_program_bytes_is_deterministic(data):
    assert program_bytes(make_program()) == data
    assert program_bytes(make_program()) == program_bytes(make_program())


def test_the_file_layout(data):
    program = make_program()
    magic, version, header_length = struct.unpack_from("<8sII", data)
    assert (magic, version) == (MAGIC, FORMAT_VERSION) == (b"VGRSPROG", 3)
    code = HEAD_BYTES + header_length
    assert data[code : code + 16 * len(program.instructions)] == b"".join(
        program_bytes(dataclasses.replace(program, instructions=(i,)))[code : code + 16]
        for i in program.instructions
    )
    constants = data[code + 16 * len(program.instructions) : -CHECKSUM_BYTES]
    assert constants == b"".join(s.data for s in program.segments)
    assert data[-CHECKSUM_BYTES:] == hashlib.sha256(data[:-CHECKSUM_BYTES]).digest()


# ------------------------------------------------------------------------------ corruption


def flip_positions(data: bytes) -> dict[str, int]:
    header_length = struct.unpack_from("<I", data, 12)[0]
    code = HEAD_BYTES + header_length
    constants = code + 16 * len(make_program().instructions)
    return {
        "magic-first": 0,
        "magic-last": 7,
        "header-length": 12,
        "header-length-high": 15,
        "header-json-first": HEAD_BYTES,
        "header-json-middle": HEAD_BYTES + header_length // 2,
        "header-json-last": code - 1,
        "instruction-first": code,
        "instruction-middle": code + 16 * 3 + 9,
        "instruction-last": constants - 1,
        "constants-first": constants,
        "constants-last": len(data) - CHECKSUM_BYTES - 1,
        "checksum-first": len(data) - CHECKSUM_BYTES,
        "checksum-last": len(data) - 1,
    }


@pytest.mark.parametrize("where", list(flip_positions(program_bytes(make_program()))))
@pytest.mark.parametrize("mask", [0x01, 0x80, 0xFF])
def test_a_flipped_byte_is_detected(tmp_path, data, where, mask):
    position = flip_positions(data)[where]
    corrupted = bytearray(data)
    corrupted[position] ^= mask
    path = tmp_path / "bad.vgp"
    path.write_bytes(bytes(corrupted))
    with pytest.raises(ProgramError) as info:
        load_program(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert "checksum" in message or "magic" in message


@pytest.mark.parametrize("position", range(8, 12))
def test_a_flipped_version_byte_is_detected(data, position):
    # The version is checked before the checksum, so a flip here reports a version.
    corrupted = bytearray(data)
    corrupted[position] ^= 0x01
    with pytest.raises(ProgramError, match=r"version|checksum"):
        parse_program(bytes(corrupted))


@given(position=st.integers(0, len(program_bytes(make_program())) - 1), mask=st.integers(1, 255))
def test_any_flipped_byte_is_detected(data, position, mask):
    corrupted = bytearray(data)
    corrupted[position] ^= mask
    with pytest.raises(ProgramError) as info:
        parse_program(bytes(corrupted), source="p.vgp")
    message = str(info.value)
    # The checksum is checked before the version, so a flipped version byte is corruption.
    assert "checksum" in message or "magic" in message, message


def truncation_lengths() -> list[int]:
    length = len(program_bytes(make_program()))
    return sorted({0, 1, 7, 8, 16, 47, 48, 100, length // 2, length - 33, length - 32, length - 1})


@pytest.mark.parametrize("length", truncation_lengths())
def test_a_truncated_file_is_detected(tmp_path, data, length):
    path = tmp_path / "short.vgp"
    path.write_bytes(data[:length])
    with pytest.raises(ProgramError) as info:
        load_program(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert "too short" in message or "truncated" in message or "checksum" in message


def test_messages_for_magic_and_checksum(data):
    with pytest.raises(ProgramError) as info:
        parse_program(b"NOTAPROG" + data[8:], source="f.vgp")
    assert str(info.value) == "f.vgp: not a Verdigris program (.vgp): bad magic or too short"
    with pytest.raises(ProgramError) as info:
        parse_program(data[:-1] + bytes([data[-1] ^ 1]), source="f.vgp")
    assert str(info.value) == "f.vgp: checksum mismatch: the file is corrupted or truncated"


@pytest.mark.parametrize("version", [0, 1, 2, FORMAT_VERSION + 1, 2**32 - 1])
def test_another_format_version_says_recompile(tmp_path, data, version):
    assert version != FORMAT_VERSION
    body = bytearray(data[:-CHECKSUM_BYTES])
    struct.pack_into("<I", body, 8, version)
    path = tmp_path / "old.vgp"
    path.write_bytes(with_checksum(bytes(body)))
    with pytest.raises(ProgramError) as info:
        load_program(path)
    assert str(info.value) == (
        f"{path}: program format version {version}; this Verdigris reads version "
        f"{FORMAT_VERSION}. Recompile the model with `verdigris compile`."
    )


def test_a_valid_checksum_over_a_malformed_header_is_a_program_error(data):
    header_length = struct.unpack_from("<I", data, 12)[0]
    body = bytearray(data[:-CHECKSUM_BYTES])
    body[HEAD_BYTES] = ord("[")  # the JSON header no longer parses
    with pytest.raises(ProgramError, match="malformed program"):
        parse_program(with_checksum(bytes(body)))
    body = bytearray(data[:-CHECKSUM_BYTES])
    struct.pack_into("<I", body, 12, header_length + 10**6)
    with pytest.raises(ProgramError, match="malformed program"):
        parse_program(with_checksum(bytes(body)))


def test_rewrite_header_keeps_a_valid_file(data):
    assert rewrite_header(data) == data


@pytest.mark.parametrize("delta", [-1, -2])
def test_an_instruction_count_that_disagrees_with_the_body_is_rejected(data, delta):
    count = len(make_program().instructions) + delta
    with pytest.raises(ProgramError):
        parse_program(rewrite_header(data, instruction_count=count))


def test_an_instruction_count_past_the_constants_is_rejected(data):
    count = len(make_program().instructions) + 1
    with pytest.raises(ProgramError, match="malformed program"):
        parse_program(rewrite_header(data, instruction_count=count))


def test_an_instruction_count_past_the_end_is_named(data):
    assert malformed(rewrite_header(data, instruction_count=1000)) == (
        "field 'instruction_count' is 1,000: more instructions than the file holds"
    )


def test_constants_that_disagree_with_the_segments_are_named(data):
    count = len(make_program().instructions) - 1
    assert malformed(rewrite_header(data, instruction_count=count)) == (
        "the segments hold 64 bytes of constants but the file holds 80 after the instructions"
    )


def test_a_header_length_past_the_end_is_named(data):
    body = bytearray(data[:-CHECKSUM_BYTES])
    struct.pack_into("<I", body, 12, 10**6)
    assert malformed(with_checksum(bytes(body))) == (
        "the header length (1,000,000 bytes) runs past the end of the file"
    )


# ------------------------------------------------------------------------------ header fields

# Every field program_bytes writes; a file without any of them is malformed.
REQUIRED_FIELDS = [
    "config",
    "format_version",
    "host",
    "host_calls",
    "inputs",
    "instruction_count",
    "layers",
    "name",
    "outputs",
    "segments",
]


def test_the_writer_writes_exactly_the_required_fields(data):
    assert sorted(header_of(data)) == REQUIRED_FIELDS


@pytest.mark.parametrize("key", REQUIRED_FIELDS)
def test_a_missing_top_level_field_is_named(tmp_path, data, key):
    header = header_of(data)
    del header[key]
    path = tmp_path / "missing.vgp"
    path.write_bytes(with_header(data, header))
    with pytest.raises(ProgramError) as info:
        load_program(path)
    assert str(info.value) == (
        f"{path}: malformed program: missing field {key!r}. "
        "Recompile the model with `verdigris compile`."
    )


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("layers", "x", "field 'layers' must be a list, not a string (\"x\")"),
        ("layers", {}, "field 'layers' must be a list, not an object"),
        ("inputs", None, "field 'inputs' must be a list, not null"),
        ("outputs", 3, "field 'outputs' must be a list, not an integer (3)"),
        ("segments", True, "field 'segments' must be a list, not a boolean (true)"),
        ("host", [], "field 'host' must be an object, not a list"),
        ("config", "tiny", "field 'config' must be an object, not a string (\"tiny\")"),
        ("name", 3, "field 'name' must be a string, not an integer (3)"),
        (
            "instruction_count",
            "8",
            "field 'instruction_count' must be an integer, not a string (\"8\")",
        ),
        (
            "instruction_count",
            8.0,
            "field 'instruction_count' must be an integer, not a number (8.0)",
        ),
        (
            "instruction_count",
            True,
            "field 'instruction_count' must be an integer, not a boolean (true)",
        ),
        ("instruction_count", -1, "field 'instruction_count' must be 0 or more, not -1"),
        ("format_version", "1", "field 'format_version' must be an integer, not a string (\"1\")"),
        ("format_version", 2, "field 'format_version' is 2 but the file's head says 3"),
    ],
)
def test_a_top_level_field_of_the_wrong_type_is_named(data, key, value, message):
    assert malformed(rewrite_header(data, **{key: value})) == message


def test_a_long_value_is_shortened_in_the_message(data):
    message = malformed(rewrite_header(data, layers="x" * 100))
    assert message == f"field 'layers' must be a list, not a string (\"{'x' * 36}...)"


def test_a_header_that_is_not_an_object_is_named(data):
    assert malformed(with_header(data, [1, 2])) == "the header must be a JSON object, not a list"


def test_a_header_that_is_not_json_is_named(data):
    header_length = struct.unpack_from("<I", data, 12)[0]
    body = bytearray(data[:-CHECKSUM_BYTES])
    body[HEAD_BYTES + header_length - 1] = ord("]")
    assert malformed(with_checksum(bytes(body))).startswith("the header is not JSON: ")


# Each list of objects in the header, one entry of it, and that entry's required fields.
ENTRY_FIELDS = [
    ("inputs", 0, ["name", "dram_addr", "dtype", "shape", "pre_shape", "perm"]),
    ("outputs", 0, ["name", "dram_addr", "dtype", "shape", "pre_shape", "perm"]),
    ("segments", 1, ["addr", "offset", "size"]),
    ("layers", 1, ["name", "kind", "first", "last", "macs"]),
]


@pytest.mark.parametrize(
    ("key", "index", "field"),
    [(key, index, field) for key, index, names in ENTRY_FIELDS for field in names],
)
def test_a_missing_field_of_an_entry_is_named_by_its_path(data, key, index, field):
    header = header_of(data)
    del header[key][index][field]
    assert malformed(with_header(data, header)) == f"missing field '{key}[{index}].{field}'"


@pytest.mark.parametrize(("key", "index", "names"), ENTRY_FIELDS)
def test_the_entries_fields_are_the_ones_the_writer_writes(data, key, index, names):
    written = set(header_of(data)[key][index])
    # output_shape is optional (older files have none); every other field is required.
    assert written - {"output_shape"} == set(names)


@pytest.mark.parametrize(
    ("key", "index", "field", "value", "message"),
    [
        (
            "inputs",
            0,
            "shape",
            [1, "4", 2, 2],
            "field 'inputs[0].shape[1]' must be an integer, not a string (\"4\")",
        ),
        (
            "inputs",
            0,
            "perm",
            "0231",
            "field 'inputs[0].perm' must be a list, not a string (\"0231\")",
        ),
        (
            "inputs",
            0,
            "dtype",
            "float32",
            "field 'inputs[0].dtype' must be 'int8' or 'int32', not 'float32'",
        ),
        ("outputs", 0, "dram_addr", -16, "field 'outputs[0].dram_addr' must be 0 or more, not -16"),
        ("outputs", 0, "name", None, "field 'outputs[0].name' must be a string, not null"),
        (
            "segments",
            1,
            "addr",
            "0x40",
            "field 'segments[1].addr' must be an integer, not a string (\"0x40\")",
        ),
        (
            "segments",
            1,
            "offset",
            20,
            "field 'segments[1].offset' must be 16 (segments are stored back to back), not 20",
        ),
        ("layers", 1, "macs", 1.5, "field 'layers[1].macs' must be an integer, not a number (1.5)"),
        (
            "layers",
            0,
            "output_shape",
            [1, None],
            "field 'layers[0].output_shape[1]' must be an integer, not null",
        ),
    ],
)
def test_an_entry_field_of_the_wrong_type_is_named(data, key, index, field, value, message):
    header = header_of(data)
    header[key][index][field] = value
    assert malformed(with_header(data, header)) == message


@pytest.mark.parametrize("key", ["inputs", "segments", "layers"])
def test_an_entry_that_is_not_an_object_is_named(data, key):
    header = header_of(data)
    header[key][0] = [1, 2]
    assert malformed(with_header(data, header)) == f"field '{key}[0]' must be an object, not a list"


def test_a_layer_without_output_shape_loads(data):
    header = header_of(data)
    del header["layers"][0]["output_shape"]
    assert parse_program(with_header(data, header)).layers[0].output_shape == ()


# ------------------------------------------------------------------------------ layer sizes

SIZES = ("input_bytes", "weight_bytes", "output_bytes")


def _with_sizes(program: Program) -> Program:
    """make_program's program with conv0's true sizes: 16 B in, 16 + 48 B of weights and
    requant entries, 16 B out."""
    conv0, nop = program.layers
    conv0 = dataclasses.replace(conv0, input_bytes=16, weight_bytes=64, output_bytes=16)
    nop = dataclasses.replace(nop, input_bytes=0, weight_bytes=0, output_bytes=0)
    return dataclasses.replace(program, layers=(conv0, nop))


def test_layer_sizes_round_trip(tmp_path):
    program = _with_sizes(make_program())
    loaded = load_program(save_program(program, tmp_path / "model.vgp"))
    assert loaded.layers == program.layers
    assert [(la.input_bytes, la.weight_bytes, la.output_bytes) for la in loaded.layers] == [
        (16, 64, 16),
        (0, 0, 0),
    ]
    assert all(layer.sizes_known for layer in loaded.layers)
    written = header_of(program_bytes(program))["layers"][0]
    assert {key: written[key] for key in SIZES} == dict(zip(SIZES, (16, 64, 16), strict=True))


def test_a_layer_written_before_the_sizes_loads_with_them_unknown(data):
    """A file from before the sizes (make_program's layers have none): they load as None,
    and the writer leaves unknown sizes out rather than writing a guess."""
    assert not set(SIZES) & set(header_of(data)["layers"][0])
    layer = parse_program(data).layers[0]
    assert (layer.input_bytes, layer.weight_bytes, layer.output_bytes) == (None, None, None)
    assert not layer.sizes_known


@pytest.mark.parametrize("missing", SIZES)
def test_a_layer_with_some_sizes_names_the_missing_one(missing):
    data = program_bytes(_with_sizes(make_program()))
    header = header_of(data)
    del header["layers"][1][missing]
    assert malformed(with_header(data, header)) == f"missing field 'layers[1].{missing}'"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("input_bytes", -1, "field 'layers[0].input_bytes' must be 0 or more, not -1"),
        (
            "weight_bytes",
            "64",
            "field 'layers[0].weight_bytes' must be an integer, not a string (\"64\")",
        ),
        (
            "output_bytes",
            16.0,
            "field 'layers[0].output_bytes' must be an integer, not a number (16.0)",
        ),
        (
            "output_bytes",
            True,
            "field 'layers[0].output_bytes' must be an integer, not a boolean (true)",
        ),
        ("input_bytes", None, "field 'layers[0].input_bytes' must be an integer, not null"),
    ],
)
def test_a_malformed_layer_size_is_named(field, value, message):
    data = program_bytes(_with_sizes(make_program()))
    header = header_of(data)
    header["layers"][0][field] = value
    assert malformed(with_header(data, header)) == message


def test_a_config_the_header_gets_wrong_is_named(data):
    config = header_of(data)["config"]
    del config["cols"]
    assert malformed(rewrite_header(data, config=config)) == (
        "field 'config': missing key(s) ['cols']: name, rows and cols are required; the other "
        "keys default to the 'default' preset's values (docs/config.md)"
    )
    config = {**header_of(data)["config"], "rows": "4"}
    assert malformed(rewrite_header(data, config=config)) == (
        "field 'config': rows must be int, not '4'"
    )


# ------------------------------------------------------------------------------ configs


def test_another_config_is_named_with_the_differences(tmp_path):
    path = save_program(make_program(), tmp_path / "tiny.vgp")
    default = load_config("default")
    with pytest.raises(ProgramError) as info:
        load_program(path, config=default)
    message = str(info.value)
    assert message.startswith(f"{path}: compiled for config 'tiny', not 'default' (")
    assert message.endswith("). Recompile with --config.")
    differing = [k for k, v in TINY.to_dict().items() if getattr(default, k) != v]
    assert {"name", "rows", "cols", "inp_rows", "dma_bytes"} <= set(differing)
    for key in differing:
        assert f"{key}: program {getattr(TINY, key)} vs {getattr(default, key)}" in message
    for key in ("operand_bits", "acc_bits", "dataflow", "queue_depth"):
        assert f"{key}:" not in message


def test_a_config_differing_in_one_key_is_named(tmp_path):
    path = save_program(make_program(), tmp_path / "tiny.vgp")
    other = dataclasses.replace(TINY, queue_depth=16)
    with pytest.raises(ProgramError) as info:
        load_program(path, config=other)
    assert str(info.value) == (
        f"{path}: compiled for config 'tiny', not 'tiny' (queue_depth: program 8 vs 16). "
        "Recompile with --config."
    )


def test_a_missing_file_is_a_program_error(tmp_path):
    path = tmp_path / "absent.vgp"
    with pytest.raises(ProgramError) as info:
        load_program(path)
    assert str(info.value) == f"{path}: no such program file"
    with pytest.raises(ProgramError, match="is a directory; give the program"):
        load_program(tmp_path)


# ------------------------------------------------------------------------------ tensors


def test_nhwc_memory_order_int8():
    binding = Binding("x", 0, "int8", (1, 2, 2, 3), (1, 2, 2, 3), NHWC)
    logical = np.arange(12).reshape(1, 2, 2, 3) - 6  # x[0, c, h, w] = 6c + 3h + w - 6
    packed = pack_tensor(binding, logical)
    in_memory = [int(logical[0, c, h, w]) for h in range(2) for w in range(3) for c in range(2)]
    assert in_memory == [-6, 0, -5, 1, -4, 2, -3, 3, -2, 4, -1, 5]
    assert packed == struct.pack("<12b", *in_memory)
    assert binding.nbytes == len(packed) == 12
    unpacked = unpack_tensor(binding, packed)
    assert unpacked.dtype == np.int64
    np.testing.assert_array_equal(unpacked, logical)


def test_nhwc_memory_order_int32():
    binding = Binding("y", 0, "int32", (1, 3, 1, 2), (1, 3, 1, 2), NHWC)
    logical = np.array([[[[1, -2]], [[70000, 2**31 - 1]], [[-(2**31), 5]]]])
    packed = pack_tensor(binding, logical)
    # Memory order (h, w, c): w = 0 first, then the three channels.
    assert packed == struct.pack("<6i", 1, 70000, -(2**31), -2, 2**31 - 1, 5)
    assert binding.nbytes == len(packed) == 24
    np.testing.assert_array_equal(unpack_tensor(binding, packed), logical)


def test_pre_shape_splits_the_logical_tensor():
    # A flat (1, 12) logical tensor laid out as NCHW (1, 3, 2, 2) in channels-last order.
    binding = Binding("z", 0, "int8", (1, 12), (1, 3, 2, 2), NHWC)
    logical = np.arange(12).reshape(1, 12)
    packed = pack_tensor(binding, logical)
    assert list(packed) == [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]
    np.testing.assert_array_equal(unpack_tensor(binding, packed), logical)


@st.composite
def bindings_and_tensors(draw):
    dtype = draw(st.sampled_from(["int8", "int32"]))
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=4, max_size=4)))
    perm = tuple(draw(st.permutations(range(4))))
    info = np.iinfo(dtype)
    values = draw(hnp.arrays(np.int64, shape, elements=st.integers(int(info.min), int(info.max))))
    return Binding("t", 0, dtype, shape, shape, perm), values


@given(bindings_and_tensors())
def test_pack_unpack_round_trips(case):
    binding, values = case
    packed = pack_tensor(binding, values)
    assert len(packed) == binding.nbytes
    expected = np.ascontiguousarray(values.transpose(binding.perm)).astype(
        "<i1" if binding.dtype == "int8" else "<i4"
    )
    assert packed == expected.tobytes()
    np.testing.assert_array_equal(unpack_tensor(binding, packed), values)
    # Unpacking reads only nbytes, so a slice of a whole memory image works too.
    image = np.frombuffer(packed + bytes(64), np.uint8)
    np.testing.assert_array_equal(unpack_tensor(binding, image), values)


def test_a_shape_mismatch_is_a_program_error():
    binding = Binding("x", 0, "int8", (1, 2, 2, 3), (1, 2, 2, 3), NHWC)
    with pytest.raises(ProgramError) as info:
        pack_tensor(binding, np.zeros((1, 2, 3, 2), np.int8))  # same size, other shape
    assert str(info.value) == (
        "tensor x: shape (1, 2, 3, 2) where the program expects (1, 2, 2, 3)"
    )
    with pytest.raises(ProgramError, match="tensor x: shape"):
        pack_tensor(binding, np.zeros(12, np.int8))


def test_memory_image_places_segments():
    program = make_program()
    image = program.memory_image()
    assert image.dtype == np.uint8 and image.shape == (TINY.main_memory_bytes,)
    expected = np.zeros(TINY.main_memory_bytes, np.uint8)
    expected[0x000:0x010] = np.arange(16)
    expected[0x040:0x070] = np.arange(200, 248)
    np.testing.assert_array_equal(image, expected)
    assert program.memory_image() is not image  # a fresh image each time


def test_memory_image_segment_at_the_end_of_memory():
    end = TINY.main_memory_bytes
    program = Program(TINY, (), (Segment(end - 4, b"\x01\x02\x03\x04"),), (), ())
    image = program.memory_image()
    assert image[-4:].tolist() == [1, 2, 3, 4] and not image[:-4].any()


def test_an_input_packed_into_the_image_unpacks():
    program = make_program()
    binding = program.inputs[0]
    values = np.arange(16).reshape(binding.shape) - 8
    image = program.memory_image()
    packed = pack_tensor(binding, values)
    image[binding.dram_addr : binding.dram_addr + len(packed)] = np.frombuffer(packed, np.uint8)
    np.testing.assert_array_equal(unpack_tensor(binding, image[binding.dram_addr :]), values)
