"""The energy model (docs/energy.md): a hand-computed report of a one-layer model run on
the instruction simulator with non-zero inputs, the counters it prices checked against
what the Program's instructions imply, the derived totals, the floor, and the ecp5 table's
sanity anchor on the shipped LeNet."""

import json
import math
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.support.tiny_models import gemm, quantize
from verdigris.arch.activity import Activity
from verdigris.arch.config import load_config
from verdigris.arch.isa import Buffer, Finish, Gemm, Load, Store, Vector, VectorOp
from verdigris.compiler.backend import compile_graph
from verdigris.compiler.frontend import import_model
from verdigris.energy import COMPONENTS, energy_report, layer_floors, load_table
from verdigris.sim.isasim import run_program

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _run(program, seed=0):
    (binding,) = program.inputs
    x = np.random.default_rng(seed).integers(-128, 128, binding.shape)
    assert np.count_nonzero(x) > 0.9 * x.size
    return run_program(program, {binding.name: x})[1]


@pytest.fixture(scope="module")
def one_layer():
    """A quantized Gemm (K=12, N=5) compiled for `tiny`, and its Activity on random
    non-zero inputs."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, "gemm.onnx")
        onnx.save(quantize(gemm(k=12, n=5)), path)
        graph = import_model(path)
    program = compile_graph(graph, load_config("tiny"))
    assert len(program.layers) == 1
    return program, _run(program)


@pytest.fixture(scope="module")
def lenet():
    graph = import_model(EXAMPLES / "models" / "lenet_qdq.onnx")
    program = compile_graph(graph, load_config("tiny"))
    return program, _run(program)


def _sram_pj_per_byte(capacity):
    """asic-45nm SRAM per byte, by hand: 64-bit reads of 10 pJ (8 KB), 20 pJ (32 KB),
    100 pJ (1 MB), log-log between them; below 8 KB the 8-32 KB slope (0.5)."""
    if capacity <= 32 * 1024:
        return 10.0 * (capacity / 8192) ** 0.5 / 8
    return 20.0 * (capacity / 32768) ** (math.log(5) / math.log(32)) / 8


def test_a_one_layer_report_by_hand(one_layer):
    program, activity = one_layer
    config = program.config
    a = activity
    assert a.macs > a.zero_macs > 0  # real data: some zero operands (padding), not all
    # tiny: 4x4 array; inp 512 rows of 4 B, wgt 256 x 4 B, acc 512 x 16 B, req 16 x 48 B;
    # main memory 48 KiB; instruction memory 8192 x 16 B; 50 MHz.
    assert (config.dim, config.clock_mhz) == (4, 50)
    inp, wgt, acc, req = (_sram_pj_per_byte(c) for c in (2048, 1024, 8192, 768))
    main, fetch = _sram_pj_per_byte(49152), _sram_pj_per_byte(131072)
    assert acc == pytest.approx(1.25)  # 10 pJ / 8 bytes at 8 KB
    assert inp == pytest.approx(0.625)  # 5 pJ / 8 at 2 KB
    # The program's LOADs write these bytes into each buffer (rows * dim * element bytes),
    # and its STOREs read one requant row (4 entries of 12 B) per row.
    loads = {b: 0 for b in Buffer}
    store_rows = 0
    for ins in program.instructions:
        if isinstance(ins, Load):
            loads[Buffer(ins.buffer)] += ins.rows * 4 * {0: 1, 1: 1, 2: 4, 3: 12}[ins.buffer]
        elif isinstance(ins, Store):
            store_rows += ins.rows
    # One layer: the per-buffer counters hold exactly these (no instruction straddles).
    assert (a.inp_write_bytes, a.wgt_write_bytes, a.acc_load_bytes, a.req_write_bytes) == (
        loads[Buffer.INP],
        loads[Buffer.WGT],
        loads[Buffer.ACC],
        loads[Buffer.REQ],
    )
    assert a.req_read_bytes == store_rows * 48
    fetches = sum(a.instructions.values()) + 1  # FINISH is fetched too
    assert a.instruction_fetches == fetches
    expected = {
        "mac": (a.macs - a.zero_macs) * (0.2 + 0.1),
        "mac_gated": a.zero_macs * 0.03,
        # per MAC slot an 8-bit activation and a 32-bit partial-sum register; per weight
        # byte loaded (ws) its shadow and its active register; 0.1/32 pJ per bit
        "pe_registers": (a.macs * 40 + a.wgt_read_bytes * 16) * 0.1 / 32,
        "inp_buffer": a.inp_read_bytes * inp,
        "wgt_buffer": a.wgt_read_bytes * wgt,
        "acc_buffer": (a.acc_read_bytes + a.acc_write_bytes) * acc,
        "req_table": store_rows * 48 * req,
        "lut_table": 0.0,  # no STORE looks up
        "buffer_loads": loads[Buffer.INP] * inp
        + loads[Buffer.WGT] * wgt
        + loads[Buffer.ACC] * acc
        + loads[Buffer.REQ] * req,
        "main_memory": (a.main_read_bytes + a.main_write_bytes) * main,
        "instruction_fetch": fetches * 16 * fetch,
        "control": a.cycles * 1.0,
        "static": 0.0,
    }
    report = energy_report(activity, config, load_table("asic-45nm"), program=program)
    assert tuple(report.energy_pj) == COMPONENTS
    for component, value in expected.items():
        assert report.energy_pj[component] == pytest.approx(value, rel=1e-12), component
    (layer,) = report.layers
    assert layer.energy_pj == report.energy_pj
    assert (layer.name, layer.op, layer.cycles, layer.macs) == ("gemm", "MatMul", a.cycles, a.macs)
    assert layer.useful_macs == 60
    total = sum(expected.values())
    assert report.energy_pj_total == pytest.approx(total)
    # The floor: 60 MACs at 0.3 pJ, the layer's input (12 B) and parameters read once, its
    # output (5 B) written once, at main memory's energy.
    floor = layer.floor
    assert (floor.macs, floor.input_bytes, floor.output_bytes) == (60, 12, 5)
    assert floor.param_bytes > 60  # weights and requant entries
    floor_pj = 60 * 0.3 + (12 + floor.param_bytes + 5) * main
    assert layer.floor_pj == pytest.approx(floor_pj)
    assert report.floor_pj == pytest.approx(floor_pj)
    assert report.floor_ratio == pytest.approx(total / floor_pj)
    # Derived totals, one inference in one run at 50 MHz.
    seconds = a.cycles / 50e6
    assert report.time_s == pytest.approx(seconds)
    assert report.latency_s == pytest.approx(seconds)
    assert report.uj_per_inference == pytest.approx(total * 1e-6)
    assert report.inferences_per_joule == pytest.approx(1 / (total * 1e-12))
    assert report.average_power_mw == pytest.approx(total * 1e-12 / seconds * 1e3)
    # a million inferences: total * 1e-12 * 1e6 J = that / 3.6e6 kWh, at 480 g/kWh
    assert report.gco2_per_million_inferences == pytest.approx(total * 1e-6 / 3.6e6 * 480)


def test_static_power_times_time(one_layer):
    program, activity = one_layer
    config = replace(program.config, clock_mhz=12.5)  # the program's, at another clock
    report = energy_report(activity, config, load_table("ecp5"), program=program)
    # 25 mW for cycles / 12.5 MHz
    assert report.energy_pj["static"] == pytest.approx(25e-3 * activity.cycles / 12.5e6 * 1e12)
    assert report.energy_pj["control"] == pytest.approx(50.0 * activity.cycles)


def test_off_chip_dram_prices_main_memory_traffic(one_layer):
    program, activity = one_layer
    table = load_table("asic-45nm")
    on_chip = energy_report(activity, program.config, table, program=program)
    off_chip = energy_report(activity, program.config, table, program=program, dram=True)
    traffic = activity.main_read_bytes + activity.main_write_bytes
    assert off_chip.energy_pj["main_memory"] == pytest.approx(traffic * 1950 / 8)
    assert off_chip.floor_pj > on_chip.floor_pj
    for component in set(COMPONENTS) - {"main_memory"}:
        assert off_chip.energy_pj[component] == on_chip.energy_pj[component]


def test_runs_and_inferences_scale_the_totals(one_layer):
    program, activity = one_layer
    twice = activity + activity
    table = load_table("asic-45nm")
    once = energy_report(activity, program.config, table, program=program)
    report = energy_report(twice, program.config, table, program=program, runs=2)
    assert report.energy_pj_total == pytest.approx(2 * once.energy_pj_total)
    assert report.floor_pj == pytest.approx(2 * once.floor_pj)
    assert report.uj_per_inference == pytest.approx(once.uj_per_inference)
    assert report.latency_s == pytest.approx(once.latency_s)
    batch = energy_report(twice, program.config, table, program=program, runs=2, inferences=8)
    assert batch.uj_per_inference == pytest.approx(report.uj_per_inference / 4)
    low_carbon = energy_report(activity, program.config, table, program=program, grid_intensity=48)
    assert low_carbon.gco2_per_million_inferences == pytest.approx(
        once.gco2_per_million_inferences / 10
    )


def test_without_the_program_only_the_floor_is_missing(lenet):
    """Every component is a measured counter (or follows from counters), so the Program
    changes no energy, in total or per layer: it adds the useful MACs and the floor."""
    program, activity = lenet
    table = load_table("asic-45nm")
    exact = energy_report(activity, program.config, table, program=program)
    alone = energy_report(activity, program.config, table)
    assert "buffer_loads_split" not in alone.to_dict()
    assert alone.floor_pj is None and alone.layers[0].floor is None
    assert alone.layers[0].useful_macs is None
    for component in COMPONENTS:
        assert alone.energy_pj[component] == exact.energy_pj[component]
    for mine, theirs in zip(alone.layers, exact.layers, strict=True):
        assert mine.energy_pj == theirs.energy_pj


def test_the_layers_sum_to_the_total(lenet):
    program, activity = lenet
    report = energy_report(activity, program.config, load_table("ecp5"), program=program)
    assert [layer.name for layer in report.layers] == [layer.name for layer in program.layers]
    for component in COMPONENTS:
        assert sum(layer.energy_pj[component] for layer in report.layers) == pytest.approx(
            report.energy_pj[component]
        )
    # With layers, the total is their sum; it equals the report of the bare total Activity
    # (no price depends on the layer: the LOAD writes are counted per buffer).
    bare = Activity(**{k: v for k, v in activity.to_dict().items()})
    whole = energy_report(
        bare, program.config, load_table("ecp5"), program=replace(program, layers=())
    )
    for component in COMPONENTS:
        assert whole.energy_pj[component] == pytest.approx(report.energy_pj[component])


# ------------------------------------------------------- the counters the model prices


@pytest.mark.parametrize("name", ["one_layer", "lenet"])
def test_the_counters_agree_with_the_program(name, request):
    """What the Program's instructions imply is what isasim counted, in total: the LOAD
    writes per buffer; the requant-table reads, one req row per STORE row, which are also
    the acc reads that are not GEMM-accumulate or VECTOR add/max reads; and one fetch per
    instruction up to FINISH, FINISH included."""
    program, activity = request.getfixturevalue(name)
    config = program.config
    dim = config.dim
    element = {Buffer.INP: 1, Buffer.WGT: 1, Buffer.ACC: 4, Buffer.REQ: 12, Buffer.LUT: 1}
    end = next(i for i, ins in enumerate(program.instructions) if isinstance(ins, Finish))
    ran = program.instructions[:end]
    written = {
        buffer: sum(
            i.rows * dim * element[buffer]
            for i in ran
            if isinstance(i, Load) and Buffer(i.buffer) is buffer
        )
        for buffer in Buffer
    }
    assert written == {
        Buffer.INP: activity.inp_write_bytes,
        Buffer.WGT: activity.wgt_write_bytes,
        Buffer.ACC: activity.acc_load_bytes,
        Buffer.REQ: activity.req_write_bytes,
        Buffer.LUT: activity.lut_write_bytes,
    }
    store_rows = sum(i.rows for i in ran if isinstance(i, Store))
    assert activity.req_read_bytes == 12 * dim * store_rows
    accumulate_rows = sum(i.rows for i in ran if isinstance(i, Gemm) and i.accumulate)
    vector_rows = sum(
        i.rows for i in ran if isinstance(i, Vector) and VectorOp(i.op) != VectorOp.WRITE
    )
    assert activity.acc_read_bytes == 4 * dim * (store_rows + accumulate_rows + vector_rows)
    assert sum(activity.instructions.values()) == len(ran)
    assert activity.instruction_fetches == len(ran) + 1


# ------------------------------------------------------------------ the floor, LeNet


def test_lenet_floor(lenet):
    program, activity = lenet
    table = load_table("asic-45nm")
    floors = layer_floors(program, table)
    assert [f.name for f in floors] == [layer.name for layer in program.layers]
    for floor, layer in zip(floors, program.layers, strict=True):
        assert floor.macs == layer.macs
        # not an alias (no instructions), nor a copy the backend adds (data movement)
        if layer.first < layer.last and layer.output_bytes:
            assert floor.output_bytes == math.prod(layer.output_shape)  # int8 outputs
    report = energy_report(activity, program.config, table, program=program)
    assert report.floor_ratio > 1
    assert report.floor_pj == pytest.approx(sum(f.energy_pj for f in floors))


def test_lenet_on_ecp5_is_not_below_the_measured_fpga_accelerator(lenet):
    """The sanity anchor on a real run: LeNet on `tiny` (16 PEs) at 12 MHz costs at least
    the 55 pJ per useful MAC an open 16-MAC iCE40UP5K accelerator measured."""
    program, activity = lenet
    config = replace(program.config, clock_mhz=12)
    report = energy_report(activity, config, load_table("ecp5"), program=program)
    useful = sum(layer.macs for layer in program.layers)
    assert report.energy_pj_total / useful >= 10.58e-3 / 12e6 / 16 * 1e12


def test_a_program_of_other_layers_is_refused(one_layer, lenet):
    program, _ = lenet
    _, activity = one_layer
    with pytest.raises(ValueError, match="the activity's layers"):
        energy_report(activity, program.config, load_table("asic-45nm"), program=program)


def test_the_report_as_json(lenet):
    program, activity = lenet
    report = energy_report(activity, program.config, load_table("asic-45nm"), program=program)
    record = json.loads(json.dumps(report.to_dict()))
    assert (record["config"], record["table"]) == ("tiny", "asic-45nm")
    total = record["total"]
    assert (total["cycles"], total["macs"]) == (activity.cycles, activity.macs)
    assert total["energy_pj"] == pytest.approx(report.energy_pj_total)
    assert total["floor_pj"] == pytest.approx(report.floor_pj)
    assert list(total["energy_pj_by_component"]) == list(COMPONENTS)
    assert [layer["name"] for layer in record["layers"]] == [x.name for x in program.layers]
    first = record["layers"][0]
    assert set(first) >= {"name", "op", "cycles", "macs", "energy_pj", "energy_pj_total"}
    assert first["energy_pj_total"] == pytest.approx(sum(first["energy_pj"].values()))


def test_a_program_for_another_config_is_refused(one_layer):
    program, activity = one_layer
    other = replace(program.config, dma_bytes=8)
    with pytest.raises(ValueError, match="the program was compiled for config 'tiny', not for"):
        energy_report(activity, other, load_table("asic-45nm"), program=program)


def test_packed_mac_slots_are_priced_by_width():
    """A slot of packed int4 costs two 4-bit multiplies, their 8-bit add and the
    accumulating add; of int2, four 2-bit multiplies and three 4-bit adds; zero slots are
    spread over the widths in proportion."""
    table = load_table("asic-45nm")
    config = replace(load_config("default"), operand_bits=2)

    def energy(what: str, width: int) -> float:
        return table.energy(*what.split(), width=width)

    slot = {
        8: energy("multiplier multiply", 8) + energy("adder add", 32),
        4: 2 * energy("multiplier multiply", 4) + energy("adder add", 8) + energy("adder add", 32),
        2: 4 * energy("multiplier multiply", 2)
        + 3 * energy("adder add", 4)
        + energy("adder add", 32),
    }
    activity = Activity(cycles=1, macs=100, macs_int4=30, macs_int2=50, zero_macs=20)
    mac = energy_report(activity, config, table).energy_pj["mac"]
    assert mac == pytest.approx((20 * slot[8] + 30 * slot[4] + 50 * slot[2]) * 80 / 100)
    assert slot[2] / 4 < slot[4] / 2 < slot[8]  # narrower MACs cost less each


@pytest.mark.parametrize("name", ["asic-45nm", "ecp5"])
def test_binary_mac_slots_are_xnor_popcounts_with_no_zero_share(name):
    """A binary slot costs eight 1-bit multiplies (XNORs), seven 2-bit adds and the
    accumulating add, and takes no share of the zero slots (a binary byte is never a zero
    operand)."""
    table = load_table(name)
    config = replace(load_config("default"), operand_bits=1)

    def energy(what: str, width: int) -> float:
        return table.energy(*what.split(), width=width)

    int8 = energy("multiplier multiply", 8) + energy("adder add", 32)
    binary = (
        8 * energy("multiplier multiply", 1) + 7 * energy("adder add", 2) + energy("adder add", 32)
    )
    activity = Activity(cycles=1, macs=100, macs_int1=60, zero_macs=10)
    mac = energy_report(activity, config, table).energy_pj["mac"]
    assert mac == pytest.approx(40 * int8 * 30 / 40 + 60 * binary)
    assert binary / 8 < int8
