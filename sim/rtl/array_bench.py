"""cocotb bench: the Verilated SystolicArray against `ArrayModel`, cycle by cycle.

Parameters come from the environment (cocotb runs this module inside the simulator):
ARRAY_DIM, ARRAY_OPERAND_WIDTH, ARRAY_ACC_WIDTH, ARRAY_GEMMS (GEMMs in the compiler-like
sequence), ARRAY_CYCLES (cycles of unconstrained random inputs), ARRAY_SEED.
"""

import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge

from verdigris.sim.blockmodels import (
    ArrayInputs,
    ArrayModel,
    ArrayOutputs,
    random_array_inputs,
    random_gemm_stimulus,
    wrap_signed,
)


def _params() -> dict[str, int]:
    return {
        "dim": int(os.environ.get("ARRAY_DIM", "4")),
        "operand_width": int(os.environ.get("ARRAY_OPERAND_WIDTH", "8")),
        "acc_width": int(os.environ.get("ARRAY_ACC_WIDTH", "32")),
        "gemms": int(os.environ.get("ARRAY_GEMMS", "40")),
        "cycles": int(os.environ.get("ARRAY_CYCLES", "1000")),
        "seed": int(os.environ.get("ARRAY_SEED", "0")),
    }


def _pack(values: tuple[int, ...], dim: int, width: int) -> int:
    """A flat port value: element i at bits [i*width, (i+1)*width)."""
    values = values or (0,) * dim
    mask = (1 << width) - 1
    return sum((v & mask) << (i * width) for i, v in enumerate(values))


def _unpack(word: int, dim: int, width: int) -> tuple[int, ...]:
    mask = (1 << width) - 1
    return tuple(wrap_signed((word >> (i * width)) & mask, width) for i in range(dim))


async def _run(dut, inputs: list[ArrayInputs], dim: int, operand_width: int, acc_width: int):
    """Drive `inputs` from reset, one per cycle; return the outputs in each cycle."""
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    for port in (dut.w_en, dut.w_row, dut.w_data, dut.a_valid, dut.a_data, dut.a_swap):
        port.value = 0
    await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    outputs = []
    for step in inputs:
        dut.w_en.value = int(step.w_en)
        dut.w_row.value = step.w_row
        dut.w_data.value = _pack(step.w_data, dim, operand_width)
        dut.a_valid.value = int(step.a_valid)
        dut.a_data.value = _pack(step.a_data, dim, operand_width)
        dut.a_swap.value = int(step.a_swap)
        # Every output is a register: between edges these are this cycle's values.
        p_valid = bool(dut.p_valid.value)
        p_data = _unpack(dut.p_data.value.to_unsigned(), dim, acc_width) if p_valid else ()
        outputs.append(ArrayOutputs(p_valid, p_data, dut.zero_count.value.to_unsigned()))
        await RisingEdge(dut.clk)
        await FallingEdge(dut.clk)
    return outputs


def _compare(got: list[ArrayOutputs], want: list[ArrayOutputs], what: str) -> None:
    bad = [t for t, (g, w) in enumerate(zip(got, want, strict=True)) if g != w]
    assert not bad, (
        f"{what}: {len(bad)} of {len(want)} cycles differ; first, cycle {bad[0]}: "
        f"got {got[bad[0]]}, want {want[bad[0]]}"
    )


@cocotb.test()
async def array_runs_gemm_sequences(dut):
    """A compiler-like GEMM sequence: every cycle as the model, the rows as GEMM semantics."""
    p = _params()
    dim, operand_width, acc_width = p["dim"], p["operand_width"], p["acc_width"]
    stimulus = random_gemm_stimulus(
        p["seed"], dim, p["gemms"], operand_width=operand_width, acc_width=acc_width
    )
    inputs = list(stimulus.inputs)
    want = ArrayModel(dim, operand_width=operand_width, acc_width=acc_width).run(inputs)
    assert tuple(o.p_data for o in want if o.p_valid) == stimulus.rows, "model vs GEMM"
    assert sum(o.zero_count for o in want) == stimulus.zero_macs, "model zero count"
    got = await _run(dut, inputs, dim, operand_width, acc_width)
    _compare(got, want, f"GEMM sequence (seed {p['seed']})")
    dut._log.info(
        "%d GEMMs, %d rows, %d cycles matched the model", p["gemms"], len(stimulus.rows), len(got)
    )


@cocotb.test()
async def array_matches_model_on_random_cycles(dut):
    """Unconstrained random inputs (writes racing swaps included), cycle by cycle."""
    p = _params()
    dim, operand_width, acc_width = p["dim"], p["operand_width"], p["acc_width"]
    inputs = random_array_inputs(p["seed"], p["cycles"], dim, operand_width=operand_width)
    inputs += [ArrayInputs()] * (2 * dim + 2)
    want = ArrayModel(dim, operand_width=operand_width, acc_width=acc_width).run(inputs)
    got = await _run(dut, inputs, dim, operand_width, acc_width)
    _compare(got, want, f"random cycles (seed {p['seed']})")
    dut._log.info("%d random cycles matched the model", len(got))
