"""The processing element's verification (`verdigris.hw.pe.ProcessingElement`): its model
(`PEModel`, written from the block's docstring contract, not its code) and stimulus
(`random_pe_inputs`), `simulate_pe` (Amaranth's simulator), `run_pe_bench` (Verilator under
cocotb) and the cocotb test it runs, `pe_matches_model`, which compares the Verilated PE
with the model cycle by cycle. The test reads its parameters from the environment (cocotb
runs this module inside the simulator): PE_OPERAND_WIDTH, PE_ACC_WIDTH, PE_MAX_PACK,
PE_VECTORS (number of random input cycles), PE_SEED.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from verdigris.arch.arithmetic import wrap_int
from verdigris.arch.isa import BINARY_PACK, unpack_operands
from verdigris.hw.pe import ProcessingElement
from verdigris.verify.protocol import run_block_bench, run_testbench

__all__ = [
    "PEInputs",
    "PEModel",
    "PEOutputs",
    "operand_product",
    "random_pe_inputs",
    "run_pe_bench",
    "simulate_pe",
    "zero_operand",
]


@dataclass(frozen=True)
class PEInputs:
    a_in: int = 0
    valid_in: bool = False
    swap_in: bool = False
    psum_in: int = 0
    w_in: int = 0
    w_load: bool = False
    pack_in: int = 0


@dataclass(frozen=True)
class PEOutputs:
    a_out: int = 0
    valid_out: bool = False
    swap_out: bool = False
    psum_out: int = 0
    zero: bool = False
    pack_out: int = 0


# The PE's ports, in the order of PEInputs and PEOutputs (the benches drive them by name).
_INPUT_PORTS = ("a_in", "valid_in", "swap_in", "psum_in", "w_in", "w_load", "pack_in")
_SIGNED_OUTPUTS = frozenset({"a_out", "psum_out"})


def zero_operand(a: int, w: int, pack: int) -> bool:
    """Whether a product of bytes a and w counts as a zero-operand MAC (docs/isa.md): a or
    w is 0, at any pack but binary (whose zero byte is eight -1)."""
    return (a == 0 or w == 0) and pack != BINARY_PACK


def operand_product(a: int, w: int, pack: int) -> int:
    """The product of two operands as the ISA defines it at `pack` (docs/isa.md GEMM):
    a * w, or the dot product of the packed operands of the two bytes."""
    if pack == 0:
        return a * w
    return int((unpack_operands(a, pack) * unpack_operands(w, pack)).sum())


class PEModel:
    """Model of `verdigris.hw.pe.ProcessingElement`; `outputs` are the registers' values,
    `active` and `shadow` its two weights."""

    def __init__(self, *, operand_width: int = 8, acc_width: int = 32):
        self.operand_width = operand_width
        self.acc_width = acc_width
        self.outputs = PEOutputs()  # every register resets to zero
        self.active = self.shadow = 0

    def step(self, inputs: PEInputs) -> PEOutputs:
        """Apply one clock edge with `inputs` held before it; return the new outputs."""
        swap = inputs.valid_in and inputs.swap_in
        weight = self.shadow if swap else self.active
        self.outputs = PEOutputs(
            a_out=inputs.a_in,
            valid_out=inputs.valid_in,
            swap_out=swap,
            psum_out=wrap_int(
                inputs.psum_in + operand_product(inputs.a_in, weight, inputs.pack_in),
                self.acc_width,
            ),
            zero=inputs.valid_in and zero_operand(inputs.a_in, weight, inputs.pack_in),
            pack_out=inputs.pack_in,
        )
        self.active = weight
        if inputs.w_load:
            self.shadow = inputs.w_in
        return self.outputs


def random_pe_inputs(
    seed: int, count: int, *, operand_width: int = 8, acc_width: int = 32, max_pack: int = 0
) -> list[PEInputs]:
    """`count` random PE inputs, biased toward the values where arithmetic goes wrong:
    operand extremes, zeros, and partial sums near the accumulator's limits (to exercise
    wrap-around); packs from 0 to `max_pack`."""
    rng = random.Random(seed)
    lo, hi = -(1 << (operand_width - 1)), (1 << (operand_width - 1)) - 1
    acc_lo, acc_hi = -(1 << (acc_width - 1)), (1 << (acc_width - 1)) - 1

    def operand() -> int:
        return rng.choice([lo, hi, 0, -1, 1]) if rng.random() < 0.3 else rng.randint(lo, hi)

    def psum() -> int:
        if rng.random() < 0.2:
            return rng.choice([acc_lo, acc_hi, acc_lo + 1, acc_hi - 1, 0])
        return rng.randint(acc_lo, acc_hi)

    return [
        PEInputs(
            a_in=operand(),
            valid_in=rng.random() < 0.8,
            swap_in=rng.random() < 0.2,
            psum_in=psum(),
            w_in=operand(),
            w_load=rng.random() < 0.25,
            pack_in=rng.randint(0, max_pack),
        )
        for _ in range(count)
    ]


def simulate_pe(
    inputs: list[PEInputs], *, operand_width: int = 8, acc_width: int = 32, max_pack: int = 0
) -> list[PEOutputs]:
    """Apply `inputs` to a ProcessingElement one per clock; return its outputs after each edge."""
    dut = ProcessingElement(operand_width=operand_width, acc_width=acc_width, max_pack=max_pack)
    outputs: list[PEOutputs] = []

    async def testbench(ctx):
        for step in inputs:
            for port in _INPUT_PORTS:
                ctx.set(getattr(dut, port), getattr(step, port))
            await ctx.tick()
            outputs.append(
                PEOutputs(
                    a_out=ctx.get(dut.a_out),
                    valid_out=bool(ctx.get(dut.valid_out)),
                    swap_out=bool(ctx.get(dut.swap_out)),
                    psum_out=ctx.get(dut.psum_out),
                    zero=bool(ctx.get(dut.zero)),
                    pack_out=ctx.get(dut.pack_out),
                )
            )

    run_testbench(dut, testbench)
    return outputs


def run_pe_bench(
    pe: ProcessingElement | None = None,
    *,
    vectors: int = 2000,
    seed: int = 0,
    build_root: Path | None = None,
    results_dir: Path | None = None,
) -> tuple[int, int]:
    """Run `pe_matches_model` on the Verilated `pe` (default: int8 x int8 -> int32); return
    (tests run, tests failed)."""
    pe = pe or ProcessingElement()
    operand_width, acc_width = pe.operand_width, pe.acc_width
    top = f"{type(pe).__name__.lower()}_{operand_width}x{operand_width}_{acc_width}"
    if pe.max_pack:
        top += f"_pack{pe.max_pack}"
    env = {
        "PE_OPERAND_WIDTH": str(operand_width),
        "PE_ACC_WIDTH": str(acc_width),
        "PE_MAX_PACK": str(pe.max_pack),
        "PE_VECTORS": str(vectors),
        "PE_SEED": str(seed),
    }
    return run_block_bench(pe, top, __name__, env, build_root, results_dir)


@cocotb.test()
async def pe_matches_model(dut):
    operand_width = int(os.environ.get("PE_OPERAND_WIDTH", "8"))
    acc_width = int(os.environ.get("PE_ACC_WIDTH", "32"))
    max_pack = int(os.environ.get("PE_MAX_PACK", "0"))
    vectors = int(os.environ.get("PE_VECTORS", "2000"))
    seed = int(os.environ.get("PE_SEED", "0"))

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    for port in _INPUT_PORTS:
        getattr(dut, port).value = 0
    await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0

    model = PEModel(operand_width=operand_width, acc_width=acc_width)
    stimulus = random_pe_inputs(
        seed, vectors, operand_width=operand_width, acc_width=acc_width, max_pack=max_pack
    )
    for cycle, inputs in enumerate(stimulus):
        for port in _INPUT_PORTS:
            getattr(dut, port).value = int(getattr(inputs, port))
        await RisingEdge(dut.clk)
        expected = model.step(inputs)
        await ReadOnly()
        got = tuple(
            getattr(dut, name).value.to_signed()
            if name in _SIGNED_OUTPUTS
            else int(getattr(dut, name).value)
            if name == "pack_out"
            else bool(getattr(dut, name).value)
            for name in PEOutputs.__dataclass_fields__
        )
        want = tuple(getattr(expected, name) for name in PEOutputs.__dataclass_fields__)
        assert got == want, f"cycle {cycle} (seed {seed}), inputs {inputs}: got {got}, want {want}"
        await FallingEdge(dut.clk)
    dut._log.info("%d random cycles matched the model (seed %d)", vectors, seed)
