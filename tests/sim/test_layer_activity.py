"""Activity per layer (docs/isa.md, "Activity per layer"): the windows, the split of every
counter, the sum to the total, the JSON record, the rules of `Activity.__add__`, and the
event schedule of `verdigris.arch.cycle_model` against the static totals.

`straddling_programs` (tests/support/layer_programs.py) are hand-written programs whose
instructions run across a layer boundary (a LOAD, a STORE, a GEMM with zero operands, a
compute NOP that completes before an earlier GEMM); tests/rtl/test_layer_activity_rtl.py
runs them on the RTL too.
"""

import itertools
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tests.support.layer_programs import configs, straddling_programs
from tests.support.programs import NO
from verdigris.arch.activity import Activity, LayerActivity
from verdigris.arch.config import AccelConfig, load_config
from verdigris.arch.cycle_model import (
    EVENT_COUNTERS,
    instruction_events,
    layer_ends,
    row_words,
    window_index,
    zero_mac_offsets,
)
from verdigris.arch.host_port import boundary_reached, boundary_targets
from verdigris.arch.isa import (
    Buffer,
    Finish,
    Gemm,
    Instruction,
    Load,
    Nop,
    Store,
    Unit,
    Vector,
    VectorOp,
)
from verdigris.arch.program import Program
from verdigris.sim.isasim import run_instructions, run_program

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_with_timeline(program: Program, inputs=None) -> tuple[Activity, np.ndarray]:
    timeline = np.zeros((len(program.instructions), 2), np.int64)
    _, activity = run_program(program, inputs or {}, timeline=timeline)
    return activity, timeline


def windows(program: Program, timeline: np.ndarray, cycles: int) -> list[tuple[int, int]]:
    """Each layer's window [low, high), computed here from the timeline: an oracle written
    from docs/isa.md, independent of `layer_ends`, which the simulator uses."""
    ends, end = [], 0
    for layer in program.layers:
        for index in range(layer.last):
            if not isinstance(program.instructions[index], Finish):
                end = max(end, int(timeline[index, 1]))
        ends.append(end)
    bounds = [0, *ends[:-1], cycles]
    return list(itertools.pairwise(bounds))


# ------------------------------------------------------------------------ the windows


@pytest.mark.parametrize("config", configs("tiny"), ids=lambda c: c.name)
@pytest.mark.parametrize("name", ["load_store", "gemm"])
def test_programs_straddle(config, name):
    """The hand-written programs do what they are for: each named instruction starts in one
    window and completes in a later one."""
    program, straddlers = straddling_programs(config)[name]
    activity, timeline = run_with_timeline(program)
    bounds = windows(program, timeline, activity.cycles)
    cuts = [high for _, high in bounds[:-1]]
    for what, index in straddlers.items():
        start, done = timeline[index]
        assert window_index(start, cuts) < window_index(done, cuts), what


@pytest.mark.parametrize("config", configs("tiny"), ids=lambda c: c.name)
@pytest.mark.parametrize("name", ["load_store", "gemm"])
def test_layers_sum_to_the_total_and_cycles_are_the_windows(config, name):
    program, _ = straddling_programs(config)[name]
    activity, timeline = run_with_timeline(program)
    assert [layer.name for layer in activity.layers] == [layer.name for layer in program.layers]
    assert [layer.op for layer in activity.layers] == [layer.kind for layer in program.layers]
    bounds = windows(program, timeline, activity.cycles)
    assert [layer.activity.cycles for layer in activity.layers] == [b - a for a, b in bounds]
    assert sum(layer.activity.cycles for layer in activity.layers) == activity.cycles
    activity.check_layers()  # raises if any counter does not add up
    summed = Activity()
    for layer in activity.layers:
        assert layer.activity.layers == ()
        summed = summed + layer.activity
    assert summed.to_dict() == activity.to_dict()


def test_an_empty_layer_has_an_empty_window():
    program, _ = straddling_programs(load_config("tiny"))["load_store"]
    activity, _ = run_with_timeline(program)
    empty = activity.layers[2].activity
    assert empty.to_dict() == Activity().to_dict()


def test_a_straddling_load_splits_its_words_at_the_boundary():
    """Layer 1's LOAD reads one word per cycle from the cycle after its start: window 0
    holds the words read before E_0, the LOAD's start count and busy cycles split alike."""
    config = load_config("tiny")
    program, _ = straddling_programs(config)["load_store"]
    activity, timeline = run_with_timeline(program)
    (_, e0), _, _, _ = windows(program, timeline, activity.cycles)
    start, done = timeline[1]
    ins = program.instructions[1]
    words = int(row_words(ins.dram_addr, ins.dram_stride, ins.rows, 3, config.dma_bytes).sum())
    first = activity.layers[0].activity
    assert first.main_read_bytes == (e0 - start - 1) * config.dma_bytes
    assert first.instructions == {"load": 1, "compute": 0, "store": 1}
    assert first.busy["load"] == e0 - start
    second = activity.layers[1].activity
    assert second.main_read_bytes == (words - (e0 - start - 1)) * config.dma_bytes
    assert second.busy["load"] == done - e0  # the next LOAD starts in the next window


def test_loads_and_stores_count_per_buffer_in_their_windows():
    """Layer 1's LOAD writes the inp buffer, layer 3's the wgt buffer, each row in the cycle
    its last word arrives; a STORE reads its req row with each acc row, so in every window
    the req reads are the acc reads' (raw STOREs only) times 12 / 4."""
    config = load_config("tiny")
    program, _ = straddling_programs(config)["load_store"]
    activity, _ = run_with_timeline(program)
    assert activity.inp_write_bytes == 60 * config.dim
    assert activity.wgt_write_bytes == 10 * config.dim
    assert activity.acc_load_bytes == activity.req_write_bytes == 0
    assert activity.req_read_bytes == (10 + 2 + 20) * 12 * config.dim
    layers = [layer.activity for layer in activity.layers]
    assert 0 < layers[0].inp_write_bytes < activity.inp_write_bytes  # the LOAD straddles
    assert sum(layer.wgt_write_bytes for layer in layers[:3]) == 0
    for layer in layers:
        assert layer.req_read_bytes == 3 * layer.acc_read_bytes


@pytest.mark.parametrize("name", ["load_store", "gemm"])
def test_fetches_count_in_their_fetch_cycle(name):
    """`instruction_fetches` counts every instruction, FINISH too, in its fetch cycle: with
    no queue ever full, instruction k is fetched in cycle k."""
    config = load_config("tiny")
    program, _ = straddling_programs(config)[name]
    end = next(i for i, ins in enumerate(program.instructions) if isinstance(ins, Finish))
    units = [ins.unit for ins in program.instructions[:end]]
    assert max(units.count(unit) for unit in Unit) <= config.queue_depth  # no queue fills
    activity, timeline = run_with_timeline(program)
    assert activity.instruction_fetches == end + 1 == sum(activity.instructions.values()) + 1
    bounds = windows(program, timeline, activity.cycles)
    assert [layer.activity.instruction_fetches for layer in activity.layers] == [
        sum(low <= k < high for k in range(end + 1)) for low, high in bounds
    ]


@pytest.mark.parametrize("config", configs("tiny"), ids=lambda c: c.name)
def test_a_straddling_gemm_splits_its_zero_macs_per_pe(config):
    """The GEMM of layer 1 streams across E_0: its MACs split by row entry, its zero-operand
    MACs per PE by `zero_mac_offsets`, recomputed here from the operands."""
    program, straddlers = straddling_programs(config)["gemm"]
    activity, timeline = run_with_timeline(program)
    bounds = windows(program, timeline, activity.cycles)
    e0 = bounds[0][1]
    dim = config.dim
    memory = program.memory_image()
    weights = memory[0 : dim * dim].view(np.int8).reshape(dim, dim).astype(np.int64)
    inp = memory[64 : 64 + 64 * dim].view(np.int8).reshape(64, dim).astype(np.int64)
    zero_macs_before = 0
    for gemm_index, rows in ((3, range(16)), (5, range(40))):
        start = timeline[gemm_index, 0]
        loads = program.instructions[gemm_index].load_weights
        for i in rows:
            entry = start + (dim if loads else 0) + 2 + i
            cycle = entry + zero_mac_offsets(dim, config.dataflow)
            zero = (inp[i][:, None] == 0) | (weights == 0)
            zero_macs_before += int((zero & (cycle < e0)).sum())
    assert activity.layers[0].activity.zero_macs == zero_macs_before
    g = timeline[straddlers["gemm"], 0]
    entered_before = min(40, max(0, e0 - (g + 2)))
    assert activity.layers[0].activity.macs == (16 + entered_before) * dim * dim
    assert 0 < entered_before < 40


# -------------------------------------------------------------------- the event schedule


def _single(config: AccelConfig, instruction: Instruction) -> Activity:
    memory = np.zeros(config.main_memory_bytes, np.uint8)
    _, activity = run_instructions(config, [instruction, Finish(NO)], memory)
    return activity


def _instructions(dim: int) -> list[Instruction]:
    return [
        Load(NO, Buffer.INP, True, 0, 5, 0, fill_value=3),
        Load(NO, Buffer.ACC, True, 2, 0, 0),
        Load(NO, Buffer.INP, False, 0, 7, 3, 1, 5),
        Load(NO, Buffer.WGT, False, 0, dim, dim, 0, dim),
        Load(NO, Buffer.ACC, False, 1, 3, dim, 6, 4 * dim + 2),
        Load(NO, Buffer.REQ, False, 0, 2, dim, 0, 12 * dim),
        Load(NO, Buffer.INP, False, 0, 0, 1, 0, 0),
        Gemm(NO, True, False, 0, 0, 0, 9),
        Gemm(NO, True, True, 0, 0, 0, 0),
        Gemm(NO, False, True, 0, 3, 5, 17),
        Gemm(NO, False, False, 0, 0, 0, 0),
        Vector(NO, VectorOp.WRITE, 0, 0, 4),
        Vector(NO, VectorOp.ADD, 0, 0, 6, 1, 2),
        Vector(NO, VectorOp.MAX, 0, 0, 0),
        Store(NO, True, 0, 5, dim, 3, 4 * dim + 1),
        Store(NO, True, 0, 0, dim, 0, 0),
        Nop(NO, Unit.STORE),
    ]


@pytest.mark.parametrize("config", configs("default"), ids=lambda c: c.name)
def test_the_event_schedule_sums_to_the_static_totals(config):
    """Every EVENT_COUNTERS increment of an instruction, summed, is what the simulator
    counts for it; and every increment falls between its start and its completion."""
    for instruction in _instructions(config.dim):
        activity = _single(config, instruction)
        events = instruction_events(instruction, config)
        totals = dict.fromkeys(EVENT_COUNTERS, 0)
        for increments in events:
            totals[increments.counter] += increments.total
            assert list(increments.offsets) == sorted(increments.offsets)
            assert increments.offsets.min() >= 0
            # The start is in cycle 1 (fetch in 0); completion is the cycle count here.
            assert 1 + increments.offsets.max() < activity.cycles, instruction
        assert totals == {name: getattr(activity, name) for name in EVENT_COUNTERS}, instruction


def test_zero_mac_offsets_per_dataflow():
    ws = zero_mac_offsets(4, "ws")
    assert ws[0, 0] == 2 and ws[3, 3] == 2 + 6 and ws[1, 2] == 2 + 3
    os_ = zero_mac_offsets(4, "os")
    assert (os_[:, 0] == [2, 3, 4, 5]).all() and (os_ == os_[:, :1]).all()
    with pytest.raises(ValueError, match="dataflow must be 'ws' or 'os', not 'xs'"):
        zero_mac_offsets(4, "xs")


def test_layer_ends_and_window_index():
    completions = np.array([5, 3, 9, 7])
    assert layer_ends([0, 2, 2, 4], completions) == [0, 5, 5, 9]
    assert list(window_index(np.array([0, 4, 5, 8, 9]), [5, 5, 9])) == [0, 0, 2, 2, 3]


# ------------------------------------------------------------------ host-port targets


def test_boundary_targets_count_per_stream():
    program, _ = straddling_programs(load_config("tiny"))["gemm"]
    # after gemm0: 3 LOADs, 1 GEMM; after gemm1: + NOP, GEMM, VECTOR; after store2: ...
    assert boundary_targets(program) == ((3, 1, 0, 0), (3, 4, 1, 0), (4, 5, 1, 1))
    counters = {
        "load_completed": 3,
        "compute_completed": 1,
        "compute_nops_completed": 1,  # the NOP overtook the GEMM: not there yet
        "store_completed": 0,
    }
    assert not boundary_reached(counters, (3, 1, 0, 0))
    assert boundary_reached({**counters, "compute_completed": 2}, (3, 1, 0, 0))


# ------------------------------------------------------------------------ the record


def _layers(*names: str, cycles: int = 1) -> tuple[LayerActivity, ...]:
    return tuple(LayerActivity(n, "Conv", Activity(cycles=cycles)) for n in names)


def test_add_rules():
    a = Activity(cycles=2, layers=_layers("a", "b", cycles=1))
    assert (a + a).layers == _layers("a", "b", cycles=2)
    assert (Activity() + a).layers == a.layers
    assert (a + Activity(cycles=1)).layers == a.layers
    assert (Activity() + a).cycles == 2
    with pytest.raises(ValueError, match="cannot add activities of different layers"):
        a + Activity(cycles=2, layers=_layers("a", "c"))
    renamed = tuple(replace(layer, op="Gemm") for layer in a.layers)
    with pytest.raises(ValueError, match="cannot add activities of different layers"):
        a + Activity(layers=renamed)


def test_check_layers_names_the_counters_that_do_not_add_up():
    bad = Activity(cycles=3, macs=5, layers=_layers("a", "b", cycles=1))
    with pytest.raises(ValueError, match=r"does not sum to the total \(cycles, macs differ\)"):
        bad.check_layers()


def test_the_json_record():
    config = load_config("tiny")
    program, _ = straddling_programs(config)["gemm"]
    activity, _ = run_with_timeline(program)
    report = activity.to_report(config.name)
    assert list(report) == ["config", "total", "layers"]
    assert report["config"] == "tiny"
    assert report["total"] == activity.to_dict()
    assert "layers" not in report["total"]
    assert [(r["name"], r["op"]) for r in report["layers"]] == [
        (layer.name, layer.kind) for layer in program.layers
    ]
    assert set(report["layers"][0]) == {"name", "op", "activity"}
    assert set(report["layers"][0]["activity"]) == set(report["total"])


def test_run_instructions_has_no_layers_and_run_program_has():
    config = load_config("tiny")
    program, _ = straddling_programs(config)["gemm"]
    _, bare = run_instructions(config, program.instructions, program.memory_image())
    assert bare.layers == ()
    activity, _ = run_with_timeline(program)
    assert activity.to_dict() == bare.to_dict()
    assert len(activity.layers) == len(program.layers)


@pytest.mark.parametrize("model", ["mlp", "lenet", "mobilenet", "resnet"])
def test_shipped_models_split_exactly(model):
    from verdigris.compiler.backend import compile_graph
    from verdigris.compiler.frontend import import_model

    config = load_config("tiny")
    graph = import_model(EXAMPLES / "models" / f"{model}_qdq.onnx")
    program = compile_graph(graph, config)
    (binding,) = program.inputs
    x = np.random.default_rng(0).integers(-128, 128, binding.shape)
    activity, timeline = run_with_timeline(program, {binding.name: x})
    activity.check_layers()
    bounds = windows(program, timeline, activity.cycles)
    assert [layer.activity.cycles for layer in activity.layers] == [b - a for a, b in bounds]
    assert (
        sum(layer.activity.instructions["compute"] for layer in activity.layers)
        == (activity.instructions["compute"])
    )
