"""Activity per layer on the RTL (docs/isa.md, "Activity per layer"; docs/host-port.md):
the counters the C++ harness and the cocotb bench snapshot at each layer boundary equal the
instruction simulator's split, counter for counter and layer for layer, on every shipped
model (random inputs: zero-operand MACs depend on the data) for tiny and default in both
dataflows, and on hand-written programs whose LOADs, STOREs and GEMMs straddle boundaries.
On the shipped models, the energy of each layer and component, priced from the RTL's
Activity, equals the energy priced from the simulator's, with every shipped table."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tests.support.graphs import conv_graph, matmul_graph
from tests.support.layer_programs import configs, straddling_programs
from tests.support.lowbit_models import (
    binary_chain_model,
    conv_chain_model,
    threshold_model,
    trunc_pool_model,
)
from tests.support.rtl_results import assert_like_isasim
from tests.support.tiny_models import host_sandwich
from verdigris.arch.config import AccelConfig, load_config
from verdigris.arch.host_port import host_jobs
from verdigris.arch.isa import Finish
from verdigris.arch.program import LayerInfo, Program
from verdigris.compiler.backend import compile_graph
from verdigris.compiler.frontend import import_model
from verdigris.energy import TABLES, energy_report, load_table
from verdigris.sim.isasim import run_program
from verdigris.sim.rtl.core_runner import run_fast, run_on_rtl
from verdigris.sim.rtl.verilator import RtlError

pytestmark = pytest.mark.verilator

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# The shipped models: the four QDQ ones, and three low-bit QONNX ones (4 bits, mixed 8/4/2
# bits: the narrow clamps are the requantizer's; binary: the signs are lookup tables).
MODELS = (
    "mlp_qdq",
    "lenet_qdq",
    "mobilenet_qdq",
    "resnet_qdq",
    "lenet_w4a4_qonnx",
    "lenet_mixed_qonnx",
    "lenet_w1a1_qonnx",
)


def _jobs(config: AccelConfig) -> list[tuple[str, object, dict]]:
    """(name, program, inputs): every shipped model on random inputs, and the straddling
    programs."""
    rng = np.random.default_rng(7)
    jobs = []
    for model in MODELS:
        program = compile_graph(import_model(EXAMPLES / "models" / f"{model}.onnx"), config)
        (binding,) = program.inputs
        jobs.append((model, program, {binding.name: rng.integers(-128, 128, binding.shape)}))
    for name, (program, _) in straddling_programs(config).items():
        jobs.append((name, program, {}))
    return jobs


def _each_instruction_a_layer(program: Program) -> Program:
    """`program` with one layer per instruction before FINISH: a boundary after every
    instruction, which checks every completion the units report."""
    count = next(i for i, ins in enumerate(program.instructions) if isinstance(ins, Finish))
    layers = tuple(LayerInfo(f"i{k}", "Instruction", k, k + 1, 0) for k in range(count))
    return replace(program, layers=layers)


def _check(jobs, results) -> None:
    for (name, program, inputs), result in zip(jobs, results, strict=True):
        activity = assert_like_isasim(program, inputs, result, name)
        ran = sum(activity.instructions.values())
        assert result.counters["instruction_fetches"] == ran + 1, name  # FINISH's fetch too
        if name in MODELS:
            _check_energy(name, program, activity, result.activity)


def _check_energy(name: str, program: Program, ours, rtl) -> None:
    for table in TABLES:
        prices = load_table(table)
        expected = energy_report(ours, program.config, prices, program=program)
        got = energy_report(rtl, program.config, prices, program=program)
        assert [layer.name for layer in got.layers] == [layer.name for layer in expected.layers]
        for mine, theirs in zip(expected.layers, got.layers, strict=True):
            assert theirs.energy_pj == mine.energy_pj, f"{name}, {table}, layer {mine.name}"
        assert got.energy_pj == expected.energy_pj, f"{name}, {table}"


# The low-bit models whose activations an array of packing PEs packs (pack 1, 2 and 3).
PACKED = ("lenet_w4a4_qonnx", "lenet_w2a2_qonnx", "lenet_mixed_qonnx", "lenet_w1a1_qonnx")


@pytest.mark.parametrize(
    "config",
    [
        replace(load_config("default"), name="default_int1", operand_bits=1),
        replace(configs("tiny")[1], name="tiny_os_int4", operand_bits=4),
    ],
    ids=lambda config: config.name,
)
def test_packed_operands_on_the_harness(config, rtl_build_root):
    """PEs that also multiply packed operands: int4, int2 and binary (weight-stationary, 8x8:
    binary blocks of 8 values are whole bytes), int4 (output-stationary). The low-bit models,
    convs on packed activations with padding, a stride and channels that are not whole
    bytes, binary convs and Gemms, a Trunc and MultiThresholds: outputs, per-layer Activity
    and energy as the instruction simulator's."""
    rng = np.random.default_rng(5)
    jobs = []
    graphs = [(m, import_model(EXAMPLES / "models" / f"{m}.onnx")) for m in PACKED]
    graphs += [
        (f"conv_chain_w{w}a{a}", import_model(conv_chain_model(w, a, signed=signed)))
        for w, a, signed in ((4, 4, True), (2, 3, False))
    ]
    graphs += [
        (f"binary_chain_{channels}", import_model(binary_chain_model(channels)))
        for channels in ((5, 11, 6), (8, 64, 9))
    ]
    # A Trunc (doubled sums, an odd bias) and MultiThresholds (lookup tables; after a Conv
    # one per channel, which the tiny lut buffer does not hold).
    graphs += [
        ("trunc_pool", import_model(trunc_pool_model(shift=-1))),
        ("threshold_act", import_model(threshold_model("act"))),
    ]
    if config.lut_rows >= 512:
        graphs.append(("threshold_conv", import_model(threshold_model("conv"))))
    for name, graph in graphs:
        program = compile_graph(graph, config)
        (binding,) = program.inputs
        jobs.append((name, program, {binding.name: rng.integers(-128, 128, binding.shape)}))
    expected = [run_program(program, inputs)[1] for _, program, inputs in jobs]
    packs = {
        name: (a.macs_int4 > 0, a.macs_int2 > 0, a.macs_int1 > 0)
        for (name, _, _), a in zip(jobs, expected, strict=True)
    }
    assert packs["lenet_w4a4_qonnx"] == packs["lenet_mixed_qonnx"] == (True, False, False)
    if config.operand_bits == 1:  # w1a1: its convs pad their inputs (int2), fc1 does not
        assert packs["lenet_w2a2_qonnx"] == (False, True, False)
        assert packs["lenet_w1a1_qonnx"] == (False, True, True)
        assert packs["binary_chain_(5, 11, 6)"] == (False, False, True)
    else:  # the 2-bit models pack at int4
        assert packs["lenet_w2a2_qonnx"] == packs["lenet_w1a1_qonnx"] == (True, False, False)
    results = run_fast(
        [(program, inputs) for _, program, inputs in jobs],
        expected_cycles=[a.cycles for a in expected],
        build_root=rtl_build_root,
    )
    for (name, program, inputs), result in zip(jobs, results, strict=True):
        activity = assert_like_isasim(program, inputs, result, name)
        _check_energy(name, program, activity, result.activity)


@pytest.mark.parametrize(
    "config", [*configs("tiny"), *configs("default")], ids=lambda config: config.name
)
def test_per_layer_activity_on_the_harness(config, rtl_build_root):
    jobs = _jobs(config)
    expected = [run_program(program, inputs)[1] for _, program, inputs in jobs]
    results = run_fast(
        [(program, inputs) for _, program, inputs in jobs],
        expected_cycles=[a.cycles for a in expected],
        build_root=rtl_build_root,
    )
    _check(jobs, results)


def test_per_layer_activity_on_cocotb(rtl_build_root, tmp_path):
    """The cocotb bench's boundary snapshots (it sleeps until a completion counter
    changes), on the straddling programs: a compute NOP completing before an earlier GEMM
    must not end the GEMM's layer. The shipped models run through it in
    tests/rtl/test_core_verilator.py, whose Activity comparison includes the layers."""
    config = configs("tiny")[0]
    jobs = [(n, p, i) for n, p, i in _jobs(config) if n not in MODELS]
    expected = [run_program(program, inputs)[1] for _, program, inputs in jobs]
    results = run_on_rtl(
        [(program, inputs) for _, program, inputs in jobs],
        expected_cycles=[a.cycles for a in expected],
        build_root=rtl_build_root,
        results_dir=tmp_path,
    )
    _check(jobs, results)


@pytest.mark.parametrize("runner", ["harness", "cocotb"])
def test_a_boundary_after_every_instruction(runner, rtl_build_root, tmp_path):
    """With every instruction its own layer, each completion the units report marks a
    boundary: a completion reported a cycle late or early, or a NOP taken for a GEMM, would
    move a window."""
    config = configs("tiny")[0]
    jobs = [(n, _each_instruction_a_layer(p), i) for n, p, i in _jobs(config)]
    if runner == "cocotb":  # it wakes on every completion: the small programs only
        jobs = [job for job in jobs if job[0] not in MODELS]
    else:
        jobs = [job for job in jobs if job[0] not in ("mobilenet", "resnet")]
    expected = [run_program(program, inputs)[1] for _, program, inputs in jobs]
    options = dict(expected_cycles=[a.cycles for a in expected], build_root=rtl_build_root)
    pairs = [(program, inputs) for _, program, inputs in jobs]
    if runner == "cocotb":
        results = run_on_rtl(pairs, results_dir=tmp_path, **options)
    else:
        results = run_fast(pairs, **options)
    _check(jobs, results)


def test_host_calls_on_the_rtl(rtl_build_root):
    """A program of three device segments with two host calls between them, two samples:
    outputs and every layer's Activity on the RTL equal the instruction simulator's."""
    program = compile_graph(import_model(host_sandwich()), load_config("tiny"))
    rng = np.random.default_rng(11)
    (binding,) = program.inputs
    runs = [{binding.name: rng.integers(-128, 128, binding.shape)} for _ in range(2)]
    results = run_fast([(program, r) for r in runs], build_root=rtl_build_root)
    for inputs, result in zip(runs, results, strict=True):
        outputs, activity = run_program(program, inputs)
        assert not result.error
        for key, value in outputs.items():
            np.testing.assert_array_equal(result.outputs[key], value)
        assert [layer.name for layer in result.activity.layers] == ["conv0", "conv1", "conv2"]
        assert result.activity == activity
    with pytest.raises(ValueError, match="has host calls: run each device segment"):
        host_jobs([(program, runs[0])])
    with pytest.raises(RtlError, match="waveform of a program with 3 device segments"):
        run_fast([(program, runs[0])], build_root=rtl_build_root, trace=Path("never.fst"))
    cocotb = run_on_rtl([(program, runs[0])], build_root=rtl_build_root)
    assert cocotb[0].outputs.keys() == results[0].outputs.keys()
    for key, value in results[0].outputs.items():
        np.testing.assert_array_equal(cocotb[0].outputs[key], value)
    assert cocotb[0].activity == results[0].activity


@pytest.mark.parametrize("config", configs("tiny"), ids=lambda config: config.name)
def test_loads_beside_running_gemms_on_the_rtl(config, rtl_build_root):
    """The schedules whose loads write a buffer half while GEMMs of the same step still
    stream from it, or right after an early release: isasim takes a GEMM's operands at its
    start, so only the RTL can show such a load landing too early. An unrolled 5x5 conv
    (its band's rows loaded beside the GEMMs, strides 1 and 2), a conv of short output rows
    (column copies) and an FC layer at batch 1 (several K blocks a step, buffer halves
    released through a compute NOP)."""
    rng = np.random.default_rng(12)
    conv = dict(n=1, c=3, h=11, w=11, oc=6, kernel=(5, 5), pad=(2, 2, 2, 2), dilation=1)
    conv |= dict(groups=1, zero_point=-5, relu=False)
    graphs = [
        conv_graph(rng, **conv, stride=1),
        conv_graph(rng, **conv, stride=2),
        conv_graph(rng, **(conv | dict(c=8, w=2, kernel=(3, 3), pad=(1, 1, 1, 1))), stride=1),
        matmul_graph(rng, m=1, k=40, n=20, zero_point=3),
    ]
    jobs = []
    for graph in graphs:
        program = compile_graph(graph, config)
        (binding,) = program.inputs
        jobs.append((graph.name, program, {binding.name: rng.integers(-128, 128, binding.shape)}))
    expected = [run_program(program, inputs)[1] for _, program, inputs in jobs]
    results = run_fast(
        [(program, inputs) for _, program, inputs in jobs],
        expected_cycles=[a.cycles for a in expected],
        build_root=rtl_build_root,
    )
    for (name, program, inputs), result in zip(jobs, results, strict=True):
        assert_like_isasim(program, inputs, result, name)
