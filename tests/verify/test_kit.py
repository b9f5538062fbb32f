"""The verification kit's shape: one module per hardware block, named as its hw/ module, with
a runner in Amaranth's simulator, a runner on Verilator and the cocotb test that runner
starts; and the parts of the shared driver protocol that no block test reaches."""

import importlib
import pkgutil

import cocotb
import pytest
from hypothesis import given
from hypothesis import strategies as st

import verdigris.verify as kit
from verdigris.verify import protocol


async def _probe(dut):
    pass


COCOTB_TEST = type(cocotb.test()(_probe))  # the class of what @cocotb.test() makes

# verify module -> (its hw module, the Amaranth-simulator runner, the Verilator runner)
BLOCKS = {
    "pe": ("pe", "simulate_pe", "run_pe_bench"),
    "array": ("array", "simulate_array", "run_array_bench"),
    "requant": ("requant", "simulate_requantizer", "run_requant_bench"),
    "load_unit": ("load_unit", "simulate_load_unit", "run_load_bench"),
    "compute_unit": ("compute_unit", "simulate_compute_unit", "run_compute_bench"),
    "store_unit": ("store_unit", "simulate_store_unit", "run_store_bench"),
    "controller": ("controller", "simulate_controller", "run_controller_bench"),
}


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_each_block_module_holds_its_runners_and_its_cocotb_test(name):
    hw_name, simulate, run_bench = BLOCKS[name]
    module = importlib.import_module(f"verdigris.verify.{name}")
    importlib.import_module(f"verdigris.hw.{hw_name}")
    assert callable(getattr(module, simulate))
    assert callable(getattr(module, run_bench))
    assert {simulate, run_bench} <= set(module.__all__)
    # cocotb imports the module by name inside the simulator and runs the tests it defines
    # (and only those: a test imported from another module would run too).
    tests = [obj for obj in vars(module).values() if isinstance(obj, COCOTB_TEST)]
    assert tests
    assert {test.func.__module__ for test in tests} == {module.__name__}


def test_every_module_of_the_kit_is_a_block_the_protocol_or_the_oracle():
    names = {info.name for info in pkgutil.iter_modules(kit.__path__)}
    assert names == {*BLOCKS, "protocol", "reference"}


@given(st.integers(-(2**70), 2**70), st.integers(1, 64))
def test_wrap_signed_is_twos_complement(value, bits):
    wrapped = protocol.wrap_signed(value, bits)
    assert -(2 ** (bits - 1)) <= wrapped < 2 ** (bits - 1)
    assert (wrapped - value) % 2**bits == 0


def test_lanes_pack_and_unpack():
    values = [-128, 127, 0, -1]
    bits = protocol.pack_lanes(values, 8)
    assert bits == 0xFF_00_7F_80
    assert protocol.unpack_signed_lanes(bits, 8, 4) == values
