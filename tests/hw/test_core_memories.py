"""Which design holds the memories: `CoreWithMemories` keeps them to what block RAM inside the
design holds (`check_memories`), and says where a larger config runs instead."""

import dataclasses

import pytest

from verdigris.arch.config import load_config
from verdigris.arch.isa import Deps, Finish
from verdigris.arch.program import Program
from verdigris.hw.core_memories import MAX_MEMORY_BYTES, check_memories
from verdigris.sim.rtl.core_runner import run_on_rtl
from verdigris.sim.rtl.verilator import RtlError


def test_memories_up_to_16_mib_fit_inside():
    check_memories(load_config("large"))  # 4 MiB of main memory, 1 MiB of code
    config = dataclasses.replace(load_config("tiny"), main_memory_bytes=MAX_MEMORY_BYTES)
    check_memories(config)


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"main_memory_bytes": 2 * MAX_MEMORY_BYTES}, "main memory (main_memory_bytes)"),
        ({"instruction_capacity": 2**21}, "code memory (instruction_capacity x 16)"),
    ],
)
def test_larger_memories_are_refused_naming_the_memory_and_the_way_out(changes, named):
    config = dataclasses.replace(load_config("tiny"), **changes)
    with pytest.raises(ValueError, match="run --backend rtl") as raised:
        check_memories(config)  # as CoreWithMemories(config) does first
    assert named in str(raised.value)


def test_the_cocotb_runner_refuses_xl_before_building(tmp_path):
    program = Program(load_config("xl"), (Finish(Deps()),), (), (), ())
    with pytest.raises(RtlError, match="268,435,456 bytes of main memory"):
        run_on_rtl([(program, {})], build_root=tmp_path)
    assert not any(tmp_path.iterdir())
