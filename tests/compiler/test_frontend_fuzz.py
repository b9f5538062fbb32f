"""Mutated models give a typed error or a graph, never a traceback.

Seeded mutants of small quantized models (QDQ and QOperator): truncated and flipped bytes,
attributes of the wrong type or with wrong values, wrong shapes and ranks, missing
initializers, node inputs that name nothing or the wrong thing, duplicated names, other op
types. Each goes through `verdigris.api.load_model` and `compile_model`; the only
exceptions allowed are the toolkit's typed errors (`TYPED`). `make test` runs `COUNT` of
them; bench/frontend_fuzz.py runs 10,000 and counts the outcomes.
"""

from __future__ import annotations

import functools
import os
import random
import tempfile
import traceback
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import onnx
from onnx import AttributeProto, TensorProto, helper

from tests.support.tiny_models import BUILDERS, quantize
from verdigris.api import compile_model, load_model
from verdigris.arch.config import ConfigError
from verdigris.compiler.backend import CompileError
from verdigris.compiler.frontend import ModelError
from verdigris.compiler.passes import VERIFY_ENVIRONMENT
from verdigris.files import UserFileError

COUNT = 1000
SEED = 12

# What a bad model may raise: the frontend's errors, a file error, a config error, and the
# backend's CompileError (a model that imports but does not fit the accelerator).
TYPED = (ModelError, UserFileError, ConfigError, CompileError)

SEEDS = (
    ("conv_relu", "qdq", "int8"),
    ("conv_stride2_pad0", "qop", "uint8"),
    ("maxpool", "qdq", "int8"),
    ("avgpool_3x3_pad1", "qop", "uint8"),
    ("add", "qdq", "uint8"),
    ("concat", "qop", "int8"),
    ("flatten_gemm", "qdq", "int8"),
    ("gemm_relu", "qop", "uint8"),
)


@functools.cache
def seed_models() -> tuple[bytes, ...]:
    """The unmutated models, serialized (quantized once per process)."""
    return tuple(
        quantize(
            BUILDERS[name](), fmt=fmt, activations=act, per_channel=fmt == "qdq"
        ).SerializeToString()
        for name, fmt, act in SEEDS
    )


# ---- mutations of the bytes


def _truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data))]


def _flip_bytes(data: bytes, rng: random.Random) -> bytes:
    buffer = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        buffer[rng.randrange(len(buffer))] = rng.randrange(256)
    return bytes(buffer)


# ---- mutations of the model


_ODD_INTS = (-(2**31), -7, -1, 0, 1, 2, 3, 5, 64, 2**20, 2**40)


def _odd_ints(rng: random.Random, length: int) -> list[int]:
    length = max(0, length + rng.choice((-1, 0, 0, 0, 1)))
    return [rng.choice(_ODD_INTS) for _ in range(length)]


def _attribute_value(model: onnx.ModelProto, rng: random.Random) -> None:
    nodes = [node for node in model.graph.node if node.attribute]
    if not nodes:
        return
    attribute = rng.choice(rng.choice(nodes).attribute)
    if attribute.type == AttributeProto.INT:
        attribute.i = rng.choice(_ODD_INTS)
    elif attribute.type == AttributeProto.INTS:
        values = _odd_ints(rng, len(attribute.ints))
        del attribute.ints[:]
        attribute.ints.extend(values)
    elif attribute.type == AttributeProto.FLOAT:
        attribute.f = rng.choice((-1.0, 0.0, 1e30, float("nan"), float("inf")))
    elif attribute.type == AttributeProto.STRING:
        attribute.s = rng.choice((b"", b"SAME_UPPER", b"VALID", b"\xff\xfe", b"NOTSET"))


def _attribute_type(model: onnx.ModelProto, rng: random.Random) -> None:
    nodes = [node for node in model.graph.node if node.attribute]
    if not nodes:
        return
    node = rng.choice(nodes)
    attribute = rng.choice(node.attribute)
    name = attribute.name
    node.attribute.remove(attribute)
    value = rng.choice((1.5, 3, [1, 2], [1.0, 2.0], "text", b"VALID", [b"a"]))
    node.attribute.append(helper.make_attribute(name, value))


def _add_attribute(model: onnx.ModelProto, rng: random.Random) -> None:
    node = rng.choice(model.graph.node)
    name = rng.choice(
        ("auto_pad", "pads", "strides", "dilations", "group", "axis", "kernel_shape", "ceil_mode")
    )
    for attribute in list(node.attribute):
        if attribute.name == name:
            node.attribute.remove(attribute)
    value = (
        rng.choice((b"SAME_UPPER", b"SAME_LOWER", b"VALID", b"BAD"))
        if name == "auto_pad"
        else _odd_ints(rng, 4)
        if name in ("pads", "strides", "dilations", "kernel_shape")
        else rng.choice(_ODD_INTS)
    )
    node.attribute.append(helper.make_attribute(name, value))


def _input_shape(model: onnx.ModelProto, rng: random.Random) -> None:
    value = rng.choice(model.graph.input)
    shape = value.type.tensor_type.shape
    if rng.random() < 0.2:
        value.type.tensor_type.ClearField("shape")
        return
    dims = [d.dim_value or 1 for d in shape.dim]
    dims = _odd_ints(rng, len(dims)) if rng.random() < 0.5 else dims[:-1] or [1, 1, 1]
    shape.ClearField("dim")
    for size in dims:
        dim = shape.dim.add()
        if size > 0 and size < 2**20:
            dim.dim_value = size
        else:
            dim.dim_param = rng.choice(("", "N", "height"))


def _initializer_shape(model: onnx.ModelProto, rng: random.Random) -> None:
    if not model.graph.initializer:
        return
    tensor = rng.choice(model.graph.initializer)
    dims = [rng.choice((0, 1, 2, 3, 4)) for _ in range(rng.randint(0, 5))]
    del tensor.dims[:]
    tensor.dims.extend(dims)


def _initializer_type(model: onnx.ModelProto, rng: random.Random) -> None:
    if not model.graph.initializer:
        return
    tensor = rng.choice(model.graph.initializer)
    tensor.data_type = rng.choice(
        (TensorProto.FLOAT, TensorProto.INT8, TensorProto.UINT8, TensorProto.INT32,
         TensorProto.INT64, TensorProto.FLOAT16, TensorProto.BOOL, TensorProto.STRING, 0, 99)
    )  # fmt: skip


def _drop_initializer(model: onnx.ModelProto, rng: random.Random) -> None:
    if model.graph.initializer:
        del model.graph.initializer[rng.randrange(len(model.graph.initializer))]


def _node_input(model: onnx.ModelProto, rng: random.Random) -> None:
    node = rng.choice(model.graph.node)
    names = [v.name for v in model.graph.input] + [i.name for i in model.graph.initializer]
    names += [o for n in model.graph.node for o in n.output]
    choice = rng.random()
    if choice < 0.3 and node.input:
        node.input[rng.randrange(len(node.input))] = rng.choice((*names, "nowhere", ""))
    elif choice < 0.6 and node.input:
        del node.input[rng.randrange(len(node.input))]
    elif choice < 0.8:
        node.input.append(rng.choice((*names, "nowhere")))
    else:
        del node.input[:]


def _duplicate_name(model: onnx.ModelProto, rng: random.Random) -> None:
    choice = rng.random()
    nodes = model.graph.node
    if choice < 0.4 and len(nodes) > 1:
        a, b = rng.sample(range(len(nodes)), 2)
        nodes[a].output[0] = nodes[b].output[0]
    elif choice < 0.7 and len(model.graph.initializer) > 1:
        inits = model.graph.initializer
        a, b = rng.sample(range(len(inits)), 2)
        inits[a].name = inits[b].name
    else:
        node = rng.choice(nodes)
        model.graph.node.append(node)  # the same node twice


def _op_type(model: onnx.ModelProto, rng: random.Random) -> None:
    node = rng.choice(model.graph.node)
    node.op_type = rng.choice(
        ("Conv", "QLinearConv", "MaxPool", "AveragePool", "Relu", "Clip", "Gemm", "MatMul",
         "QuantizeLinear", "DequantizeLinear", "Reshape", "Flatten", "Add", "Concat",
         "QLinearAdd", "ConvInteger", "Softmax", "Identity", "Constant", "NoSuchOp")
    )  # fmt: skip
    if rng.random() < 0.3:
        node.domain = rng.choice(("", "com.microsoft", "ai.onnx"))


def _outputs(model: onnx.ModelProto, rng: random.Random) -> None:
    if rng.random() < 0.5 and model.graph.output:
        model.graph.output[0].name = rng.choice(
            [o for n in model.graph.node for o in n.output] + ["nowhere"]
        )
    else:
        del model.graph.output[:]


def _opset(model: onnx.ModelProto, rng: random.Random) -> None:
    model.opset_import[0].version = rng.choice((1, 6, 9, 10, 11, 12, 13, 21, 99))
    if rng.random() < 0.3:
        model.ir_version = rng.choice((1, 3, 4, 7, 12, 99))


MODEL_MUTATIONS: tuple[Callable[[onnx.ModelProto, random.Random], None], ...] = (
    _attribute_value,
    _attribute_type,
    _add_attribute,
    _input_shape,
    _initializer_shape,
    _initializer_type,
    _drop_initializer,
    _node_input,
    _duplicate_name,
    _op_type,
    _outputs,
    _opset,
)


def mutant(index: int, seed: int = SEED) -> tuple[str, bytes]:
    """Mutant number `index`: what was done to it, and its bytes."""
    rng = random.Random(f"{seed}:{index}")
    data = rng.choice(seed_models())
    if rng.random() < 0.2:
        mutate = rng.choice((_truncate, _flip_bytes))
        return mutate.__name__.strip("_"), mutate(data, rng)
    model = onnx.load_from_string(data)
    done = []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        mutate = rng.choice(MODEL_MUTATIONS)
        mutate(model, rng)
        done.append(mutate.__name__.strip("_"))
    return "+".join(done), model.SerializeToString()


def outcome(data: bytes, folder: Path) -> str:
    """'ok', the typed error's class name, or 'CRASH <type>: ...' with the traceback."""
    path = folder / "mutant.onnx"
    path.write_bytes(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # as pytest runs (filterwarnings = error)
            compile_model(load_model(path), "default")
    except TYPED as error:
        return type(error).__name__
    except Exception as error:  # a crash: what the fuzz test looks for
        return f"CRASH {type(error).__name__}: {error}\n{traceback.format_exc()}"
    return "ok"


def run_fuzz(count: int, seed: int = SEED) -> tuple[Counter, list[tuple[int, str, str]]]:
    """Outcome counts of `count` mutants, and every crash (index, mutation, report)."""
    counts: Counter = Counter()
    crashes = []
    # The graph verifier runs after the frontend and every pass: an invalid graph that the
    # frontend let through is a crash too.
    saved = os.environ.get(VERIFY_ENVIRONMENT)
    os.environ[VERIFY_ENVIRONMENT] = "1"
    try:
        with tempfile.TemporaryDirectory() as folder:
            for index in range(count):
                what, data = mutant(index, seed)
                result = outcome(data, Path(folder))
                counts[result.split(":")[0]] += 1
                if result.startswith("CRASH"):
                    crashes.append((index, what, result))
    finally:
        if saved is None:
            del os.environ[VERIFY_ENVIRONMENT]
        else:
            os.environ[VERIFY_ENVIRONMENT] = saved
    return counts, crashes


def test_seed_models_import_and_compile():
    with tempfile.TemporaryDirectory() as folder:
        assert [outcome(data, Path(folder)) for data in seed_models()] == ["ok"] * len(SEEDS)


def test_mutated_models_give_typed_errors_only():
    counts, crashes = run_fuzz(COUNT)
    assert not crashes, "\n\n".join(f"mutant {i} ({what}): {report}" for i, what, report in crashes)
    assert sum(counts.values()) == COUNT
