"""Programs with host calls: the stages every executor runs (device segments, each ending
with FINISH, and host calls between them), run by the instruction simulator."""

import dataclasses

import numpy as np

from tests.support.program_files import make_program
from tests.support.tiny_models import calibration_inputs, host_sandwich
from verdigris import api
from verdigris.arch.isa import Finish
from verdigris.arch.program import DeviceStage, HostCall, unpack_tensor
from verdigris.compiler.frontend import import_model
from verdigris.sim.host import run_host_call, run_host_compute


def test_host_calls_run_between_the_segments_as_golden_runs_the_graph():
    graph = import_model(host_sandwich())
    program = api.compile_model(graph, "tiny")
    x = calibration_inputs((1, 4, 5, 5), 3, seed=4)
    ours, _ = api.run_program(program, {"x": x}, backend="isasim", raw=True)
    assert np.array_equal(ours["y"], api.run(graph, {"x": x}, raw=True)["y"])
    # Without its host calls the program computes something else: they do run.
    device_only = dataclasses.replace(program, host_calls=())
    other, _ = api.run_program(device_only, {"x": x}, backend="isasim", raw=True)
    assert not np.array_equal(other["y"], ours["y"])


def test_a_host_call_reads_and_writes_main_memory():
    program = make_program()
    [call] = program.host_calls
    memory = np.zeros(1024, np.uint8)
    memory[0x200 : 0x200 + 16] = np.arange(16, dtype=np.int8).view(np.uint8)
    before = unpack_tensor(call.output, memory[0x200:0x210])
    run_host_call(call, memory)
    after = unpack_tensor(call.output, memory[0x200:0x210])
    assert np.array_equal(after, run_host_compute(call.compute, [before]))
    assert not memory[:0x200].any() and not memory[0x210:].any()  # nothing else written


def test_the_stages_alternate_and_each_segment_ends_with_finish():
    program = api.compile_model(import_model(host_sandwich()), "tiny")
    stages = program.stages()
    kinds = [type(stage) for stage in stages]
    assert kinds == [DeviceStage, HostCall, DeviceStage, HostCall, DeviceStage]
    assert [s.name for s in stages if isinstance(s, HostCall)] == ["gate", "norm"]
    segments = [s for s in stages if isinstance(s, DeviceStage)]
    assert sum(len(s.program.instructions) for s in segments) == len(program.instructions)
    for segment in segments:
        assert isinstance(segment.program.instructions[-1], Finish)
        assert segment.program.host_calls == ()
        for layer in segment.program.layers:  # rebased into the segment
            assert 0 <= layer.first <= layer.last <= len(segment.program.instructions)
    assert [len(s.program.layers) for s in segments] == [1, 1, 1]
    calls = [s for s in stages if isinstance(s, HostCall)]
    assert [c.at for c in calls] == [segments[1].first, segments[2].first]


def test_the_activity_has_every_device_layer_and_sums_to_the_total():
    program = api.compile_model(import_model(host_sandwich()), "tiny")
    x = calibration_inputs((1, 4, 5, 5), 2, seed=4)
    _, activity = api.run_program(program, {"x": x}, backend="isasim")
    assert [layer.name for layer in activity.layers] == ["conv0", "conv1", "conv2"]
    activity.check_layers()


def test_an_empty_layer_where_a_host_call_cuts_is_in_one_segment():
    program = api.compile_model(import_model(host_sandwich()), "tiny")
    [_, call, *_] = program.stages()
    # A layer without instructions (a Reshape) right where the first host call cuts.
    empty = dataclasses.replace(program.layers[0], name="reshape", first=call.at, last=call.at)
    layers = (program.layers[0], empty, *program.layers[1:])
    program = dataclasses.replace(program, layers=layers)
    segments = [s for s in program.stages() if isinstance(s, DeviceStage)]
    names = [layer.name for s in segments for layer in s.program.layers]
    assert names == [layer.name for layer in layers]
    x = calibration_inputs((1, 4, 5, 5), 2, seed=4)
    _, activity = api.run_program(program, {"x": x}, backend="isasim")
    assert [layer.name for layer in activity.layers] == names
    assert api.program_report(program).layers[1].cycles == 0
