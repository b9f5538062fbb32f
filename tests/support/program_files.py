"""Hand-made Programs and their .vgp bytes, for the tests of the file format: a small
program with every kind of host step and a host call (`make_program`, `make_host`,
`make_call`), and the editing of a file's JSON header as a buggy writer or a hand edit would
(`header_of`, `with_header`, `rewrite_header`), with the message a malformed header gets
(`malformed`)."""

import hashlib
import json
import struct

import numpy as np
import pytest

from verdigris.arch.config import load_config
from verdigris.arch.host_steps import (
    Compute,
    Dequantize,
    HostCompute,
    HostInput,
    HostNode,
    HostOutput,
    HostSide,
    IntType,
    Tensor,
)
from verdigris.arch.isa import Buffer, Deps, Finish, Gemm, Load, Nop, Store, Unit, Vector, VectorOp
from verdigris.arch.program import (
    FORMAT_VERSION,
    MAGIC,
    Binding,
    HostCall,
    LayerInfo,
    Program,
    ProgramError,
    Segment,
    parse_program,
)

TINY = load_config("tiny")
NHWC = (0, 2, 3, 1)
# The file layout of docs/program-format.md, restated on purpose (not arch/program.py's private
# struct): these helpers forge files as another writer would.
HEAD_BYTES = 16  # magic (8), version (4), header length (4)
CHECKSUM_BYTES = 32


def make_program(config=TINY, host=None) -> Program:
    instructions = (
        Load(Deps(), Buffer.WGT, False, 0, 4, 4, dram_addr=0x000, dram_stride=4),
        Load(Deps(), Buffer.REQ, False, 0, 1, 4, dram_addr=0x040),
        Load(Deps(push_next=True), Buffer.INP, False, 0, 4, 4, dram_addr=0x100, dram_stride=4),
        Gemm(Deps(pop_prev=True), True, False, 0, 0, 0, 4),
        Vector(Deps(push_next=True), VectorOp.ADD, 0, 0, 4, zero=-3, multiplier=5),
        Nop(Deps(), target=Unit.STORE),
        Store(Deps(pop_prev=True), False, 0, 4, 4, 0x200, 4, req_row=0),
        Finish(Deps()),
    )
    segments = (
        Segment(0x000, bytes(range(16))),  # weights
        Segment(0x040, bytes(range(200, 248))),  # one requant row: 4 entries of 12 bytes
    )
    inputs = (Binding("x", 0x100, "int8", (1, 4, 2, 2), (1, 4, 2, 2), NHWC),)
    outputs = (Binding("y", 0x200, "int8", (1, 4, 2, 2), (1, 4, 2, 2), NHWC),)
    layers = (LayerInfo("conv0", "Conv", 0, 8, 64, (1, 4, 2, 2)), LayerInfo("nop", "Nop", 8, 8, 0))
    if host is None:
        host = make_host()
    return Program(
        config, instructions, segments, inputs, outputs, layers, host, "hand-made", (make_call(),)
    )


def make_call() -> HostCall:
    """A host call after the device: y = quantize(sigmoid(dequantize(y)) * 2), in place."""
    y = Tensor("y", (1, 4, 2, 2), IntType(8), 0.5, 2)
    binding = Binding("y", 0x200, "int8", (1, 4, 2, 2), (1, 4, 2, 2), NHWC)
    compute = HostCompute(
        inputs=(y,),
        output=y,
        nodes=(HostNode("Sigmoid", ("y",), ("s",)), HostNode("Mul", ("s", "two"), ("z",))),
        result="z",
        constants=(("two", np.array([2.0], np.float32)),),
    )
    return HostCall("gate", 8, compute, (binding,), binding)


def make_host() -> HostSide:
    """A host side for make_program's bindings, with both kinds of host step: float nodes
    with a constant, and without."""
    x = Tensor("x", (1, 4, 2, 2), IntType(8), 0.25, -3)
    y = Tensor("y", (1, 4, 2, 2), IntType(8), 0.5, 2)
    probabilities = Compute(
        nodes=(
            HostNode("Flatten", ("y",), ("f",), (("axis", 1),)),
            HostNode("Mul", ("f", "t"), ("g",)),
            HostNode("Softmax", ("g",), ("p",), (("axis", -1),)),
        ),
        input="y",
        result="p",
        constants=(("t", np.full((1, 16), 0.5, np.float32)),),
    )
    label = Compute(
        nodes=(HostNode("ArgMax", ("y",), ("l",), (("axis", 1), ("keepdims", 0))),),
        input="y",
        result="l",
    )
    return HostSide(
        (HostInput("input.1", x, "float32"),),
        (
            HostOutput("probabilities", y, "int8", (Dequantize(0.5, 2), probabilities)),
            HostOutput("label", y, "int8", (Dequantize(0.5, 2), label)),
        ),
        dynamic_batch=False,
    )


def with_checksum(body: bytes) -> bytes:
    return body + hashlib.sha256(body).digest()


def header_of(data: bytes) -> dict:
    """The parsed JSON header of a .vgp file."""
    header_length = struct.unpack_from("<I", data, 12)[0]
    return json.loads(data[HEAD_BYTES : HEAD_BYTES + header_length])


def with_header(data: bytes, header: object) -> bytes:
    """The file with its JSON header replaced, re-serialized as program_bytes writes it and
    with a valid checksum (as a buggy writer would produce it)."""
    header_length = struct.unpack_from("<I", data, 12)[0]
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    rest = data[HEAD_BYTES + header_length : -CHECKSUM_BYTES]
    return with_checksum(struct.pack("<8sII", MAGIC, FORMAT_VERSION, len(text)) + text + rest)


def rewrite_header(data: bytes, **changes) -> bytes:
    """The file with header entries changed and a valid checksum (as a buggy writer would)."""
    return with_header(data, {**header_of(data), **changes})


def malformed(data: bytes) -> str:
    """The text after "malformed program: " of the error parsing `data`, without the advice
    to recompile that ends every such message."""
    with pytest.raises(ProgramError) as info:
        parse_program(data, source="p.vgp")
    message = str(info.value)
    prefix, advice = "p.vgp: malformed program: ", ". Recompile the model with `verdigris compile`."
    assert message.startswith(prefix) and message.endswith(advice), message
    return message[len(prefix) : -len(advice)]
