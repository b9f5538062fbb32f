"""The check every whole-core RTL test makes: a run on the RTL (the C++ harness or the cocotb
bench) equals the instruction simulator's run of the same program."""

from __future__ import annotations

import numpy as np

from verdigris.arch.activity import Activity
from verdigris.arch.isa import Nop, Unit
from verdigris.arch.program import Program
from verdigris.sim.isasim import run_program


def assert_like_isasim(program: Program, inputs: dict, result, name: str = "") -> Activity:
    """`result` of running `program` on `inputs` on the RTL: no error; isasim's outputs; its
    Activity, in total and layer by layer; every instruction completed, the compute unit's
    NOPs told apart. Returns isasim's Activity."""
    name = name or program.name
    outputs, activity = run_program(program, inputs)
    assert not result.error, name
    for key, value in outputs.items():
        np.testing.assert_array_equal(result.outputs[key], value, err_msg=name)
    assert len(result.activity.layers) == len(program.layers), name
    for mine, theirs in zip(activity.layers, result.activity.layers, strict=True):
        assert theirs == mine, f"{name}, layer {mine.name}"
    assert result.activity == activity, name
    counters = result.counters
    for unit in ("load", "compute", "store"):
        assert counters[f"{unit}_completed"] == counters[f"{unit}_instructions"], name
    ran = program.instructions[: sum(activity.instructions.values())]
    nops = sum(isinstance(i, Nop) and i.target == Unit.COMPUTE for i in ran)
    assert counters["compute_nops_completed"] == nops, name
    return activity
