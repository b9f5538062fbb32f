"""The host side of a Program in its .vgp header: typed on load, every field checked and
named by its path when wrong, the JSON shape of files written before it was typed kept."""

import re

import pytest

from tests.support.program_files import (
    header_of,
    make_host,
    make_program,
    malformed,
    with_header,
)
from verdigris.arch.host_steps import HostSide, Tensor
from verdigris.arch.program import parse_program, program_bytes


@pytest.fixture(scope="module")
def data() -> bytes:
    return program_bytes(make_program())


def test_the_host_side_round_trips_typed():
    program = parse_program(program_bytes(make_program()))
    assert program.host == make_host()
    assert isinstance(program.host.inputs[0].tensor.shape, tuple)
    assert isinstance(program.host.outputs[0].steps, tuple)


def test_the_host_json_shape_is_the_one_files_have(data):
    # The shape the compiler wrote before the host side was typed: files keep loading.
    host = header_of(data)["host"]
    assert host["dynamic_batch"] is False
    assert host["inputs"] == [
        {
            "name": "input.1",
            "onnx_dtype": "float32",
            "tensor": {
                "name": "x",
                "shape": [1, 4, 2, 2],
                "bits": 8,
                "signed": True,
                "scale": 0.25,
                "zero_point": -3,
            },
        }
    ]
    label = host["outputs"][1]
    assert label["onnx_int_dtype"] == "int8" and label["tensor"]["name"] == "y"
    assert label["steps"] == [
        {"kind": "Dequantize", "scale": 0.5, "zero_point": 2},
        {
            "kind": "Compute",
            "input": "y",
            "result": "l",
            "nodes": [
                {
                    "op_type": "ArgMax",
                    "inputs": ["y"],
                    "outputs": ["l"],
                    "attributes": [["axis", 1], ["keepdims", 0]],
                }
            ],
            "constants": [],
        },
    ]
    [constant] = host["outputs"][0]["steps"][1]["constants"]
    assert constant == {"name": "t", "dtype": "float32", "shape": [1, 16], "values": [0.5] * 16}


def test_an_integer_scale_is_a_number(data):
    header = header_of(data)
    header["host"]["outputs"][1]["steps"][0]["scale"] = 2
    step = parse_program(with_header(data, header)).host.outputs[1].steps[0]
    assert step.scale == 2.0 and isinstance(step.scale, float)


def test_a_raw_output_tensor_has_no_scale(data):
    header = header_of(data)
    header["host"]["outputs"][1]["tensor"].update(bits=32, scale=None, zero_point=0)
    tensor = parse_program(with_header(data, header)).host.outputs[1].tensor
    assert tensor == Tensor("y", (1, 4, 2, 2), tensor.dtype, None, 0)
    assert tensor.dtype.bits == 32


def test_a_program_without_a_host_side_round_trips():
    program = make_program(host=HostSide())
    assert parse_program(program_bytes(program)).host == HostSide()


# Each required field of the host side, by its path in the header (as errors name it).
HOST_FIELDS = [
    "host.dynamic_batch",
    "host.inputs",
    "host.outputs",
    "host.inputs[0].name",
    "host.inputs[0].onnx_dtype",
    "host.inputs[0].tensor",
    *(
        f"host.inputs[0].tensor.{key}"
        for key in ("name", "shape", "bits", "signed", "scale", "zero_point")
    ),
    "host.outputs[1].name",
    "host.outputs[1].onnx_int_dtype",
    "host.outputs[1].tensor",
    "host.outputs[1].steps",
    "host.outputs[1].steps[0].kind",
    "host.outputs[1].steps[0].scale",
    "host.outputs[1].steps[0].zero_point",
    *(f"host.outputs[1].steps[1].{key}" for key in ("nodes", "input", "result", "constants")),
    *(
        f"host.outputs[1].steps[1].nodes[0].{key}"
        for key in ("op_type", "inputs", "outputs", "attributes")
    ),
    *(
        f"host.outputs[0].steps[1].constants[0].{key}"
        for key in ("name", "dtype", "shape", "values")
    ),
]


# ---- host calls (between device segments)

HOST_CALL_FIELDS = [
    *(
        f"host_calls[0].{key}"
        for key in (
            "name",
            "at",
            "inputs",
            "output",
            "tensors",
            "output_tensor",
            "nodes",
            "result",
            "constants",
        )
    ),
    "host_calls[0].inputs[0].dram_addr",
    "host_calls[0].tensors[0].scale",
    "host_calls[0].output_tensor.zero_point",
    "host_calls[0].nodes[1].op_type",
    "host_calls[0].constants[0].values",
]


def _malformed_with(data: bytes, path: str, value) -> str:
    """The malformed-program message of the file with the field at `path` set to `value`."""
    header = header_of(data)
    parent, key = _parent(header, path)
    parent[key] = value
    return malformed(with_header(data, header))


def _parent(header: dict, path: str) -> tuple[dict | list, str | int]:
    """The object or list holding the field at `path`, and the field's key in it."""
    keys = [int(key) if key.isdigit() else key for key in re.findall(r"\w+", path)]
    for key in keys[:-1]:
        header = header[key]
    return header, keys[-1]


@pytest.mark.parametrize("path", HOST_FIELDS + HOST_CALL_FIELDS)
def test_a_missing_host_field_is_named_by_its_path(data, path):
    header = header_of(data)
    parent, key = _parent(header, path)
    del parent[key]
    assert malformed(with_header(data, header)) == f"missing field {path!r}"


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            "host.dynamic_batch",
            1,
            "field 'host.dynamic_batch' must be a boolean, not an integer (1)",
        ),
        ("host.inputs", {}, "field 'host.inputs' must be a list, not an object"),
        ("host.inputs[0]", "x", "field 'host.inputs[0]' must be an object, not a string (\"x\")"),
        (
            "host.inputs[0].name",
            3,
            "field 'host.inputs[0].name' must be a string, not an integer (3)",
        ),
        (
            "host.inputs[0].onnx_dtype",
            "f4",
            "field 'host.inputs[0].onnx_dtype' must name an integer or floating-point numpy type "
            "(such as 'int8'), not 'f4'",
        ),
        (
            "host.inputs[0].onnx_dtype",
            "tensor(float)",
            "field 'host.inputs[0].onnx_dtype' must name an integer or floating-point numpy type "
            "(such as 'int8'), not 'tensor(float)'",
        ),
        (
            "host.inputs[0].onnx_dtype",
            "int8",
            "field 'host.inputs[0].onnx_dtype' is 'int8' but 'host.inputs[0].tensor' has a scale: "
            "a float input needs a scale to be quantized with, an integer input none",
        ),
        (
            "host.inputs[0].tensor",
            [],
            "field 'host.inputs[0].tensor' must be an object, not a list",
        ),
        (
            "host.inputs[0].tensor.shape",
            [1, 4.0],
            "field 'host.inputs[0].tensor.shape[1]' must be an integer, not a number (4.0)",
        ),
        (
            "host.inputs[0].tensor.bits",
            0,
            "field 'host.inputs[0].tensor.bits' must be from 1 to 32, not 0",
        ),
        (
            "host.inputs[0].tensor.bits",
            64,
            "field 'host.inputs[0].tensor.bits' must be from 1 to 32, not 64",
        ),
        (
            "host.inputs[0].tensor.signed",
            "yes",
            "field 'host.inputs[0].tensor.signed' must be a boolean, not a string (\"yes\")",
        ),
        (
            "host.inputs[0].tensor.scale",
            "0.25",
            "field 'host.inputs[0].tensor.scale' must be a number or null, not a string (\"0.25\")",
        ),
        (
            "host.inputs[0].tensor.scale",
            0,
            "field 'host.inputs[0].tensor.scale' must be a positive number, not 0",
        ),
        (
            "host.inputs[0].tensor.scale",
            None,
            "field 'host.inputs[0].onnx_dtype' is 'float32' but 'host.inputs[0].tensor' has no "
            "scale (scale null): a float input needs a scale to be quantized with, an integer "
            "input none",
        ),
        (
            "host.inputs[0].tensor.zero_point",
            -3.0,
            "field 'host.inputs[0].tensor.zero_point' must be an integer, not a number (-3.0)",
        ),
        (
            "host.inputs[0].tensor.name",
            "z",
            "field 'host.inputs[0].tensor.name' is 'z', which names none of the program's "
            "inputs (x)",
        ),
        (
            "host.outputs[1].tensor.name",
            "x",
            "field 'host.outputs[1].tensor.name' is 'x', which names none of the program's "
            "outputs (y)",
        ),
        (
            "host.outputs[1].onnx_int_dtype",
            "float32",
            "field 'host.outputs[1].onnx_int_dtype' must name an integer numpy type "
            "(such as 'int8'), not 'float32'",
        ),
        ("host.outputs[1].steps", None, "field 'host.outputs[1].steps' must be a list, not null"),
        (
            "host.outputs[1].steps[1]",
            7,
            "field 'host.outputs[1].steps[1]' must be an object, not an integer (7)",
        ),
        (
            "host.outputs[1].steps[1].kind",
            "TopK",
            "field 'host.outputs[1].steps[1].kind' must be one of 'Dequantize', 'Compute', "
            "not 'TopK'",
        ),
        (
            "host.outputs[1].steps[1].kind",
            None,
            "field 'host.outputs[1].steps[1].kind' must be a string, not null",
        ),
        (
            "host.outputs[1].steps[0].scale",
            -0.5,
            "field 'host.outputs[1].steps[0].scale' must be a positive number, not -0.5",
        ),
        (
            "host.outputs[1].steps[0].scale",
            None,
            "field 'host.outputs[1].steps[0].scale' must be a number, not null",
        ),
        (
            "host.outputs[1].steps[1].nodes[0].op_type",
            "TopK",
            "field 'host.outputs[1].steps[1].nodes[0].op_type' is 'TopK', which the host does "
            "not run",
        ),
        (
            "host.outputs[1].steps[1].nodes[0].inputs",
            ["y", 3],
            "field 'host.outputs[1].steps[1].nodes[0].inputs[1]' must be a string, not an "
            "integer (3)",
        ),
        (
            "host.outputs[1].steps[1].nodes[0].attributes",
            [["axis"]],
            "field 'host.outputs[1].steps[1].nodes[0].attributes[0]' must be a [name, value] "
            "pair, not a list",
        ),
        (
            "host.outputs[1].steps[1].nodes[0].attributes",
            [["axis", True]],
            "field 'host.outputs[1].steps[1].nodes[0].attributes[0][1]' must be a number, a "
            "string or a list, not a boolean (true)",
        ),
        (
            "host.outputs[1].steps[1].nodes[0].attributes",
            [["axes", [1, "2"]]],
            "field 'host.outputs[1].steps[1].nodes[0].attributes[0][1]' must be a list of numbers",
        ),
        (
            "host.outputs[0].steps[1].constants[0].values",
            [0.5] * 15,
            "field 'host.outputs[0].steps[1].constants[0].values' does not fit float32[1, 16]: "
            "cannot reshape array of size 15 into shape (1,16)",
        ),
        (
            "host.outputs[0].steps[1].constants[0].dtype",
            "complex64",
            "field 'host.outputs[0].steps[1].constants[0].dtype' must name an integer or "
            "floating-point numpy type (such as 'int8'), not 'complex64'",
        ),
    ],
)
def test_a_host_field_of_the_wrong_type_or_value_is_named(data, path, value, message):
    assert _malformed_with(data, path, value) == message


def test_an_infinite_scale_is_refused(data):
    # Python's json reads and writes Infinity; a scale must still be finite.
    header = header_of(data)
    header["host"]["outputs"][1]["steps"][0]["scale"] = float("inf")
    assert malformed(with_header(data, header)) == (
        "field 'host.outputs[1].steps[0].scale' must be a positive number, not inf"
    )


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("host_calls[0].at", 9, "field 'host_calls[0].at' is 9, past the 8 instructions"),
        ("host_calls[0].at", -1, "field 'host_calls[0].at' must be 0 or more, not -1"),
        (
            "host_calls[0].tensors",
            [],
            "field 'host_calls[0].inputs' must have one binding per entry of "
            "'host_calls[0].tensors'",
        ),
        (
            "host_calls[0].nodes[0].op_type",
            "LSTM",
            "field 'host_calls[0].nodes[0].op_type' is 'LSTM', which the host does not run",
        ),
        (
            "host_calls[0].output.dtype",
            "float32",
            "field 'host_calls[0].output.dtype' must be 'int8' or 'int32', not 'float32'",
        ),
    ],
)
def test_a_host_call_field_of_the_wrong_value_is_named(data, path, value, message):
    assert _malformed_with(data, path, value) == message
