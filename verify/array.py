"""The systolic array's verification (`verdigris.hw.array.SystolicArray`): its model
(`ArrayModel`, written from the block's docstring contract, not its code), stimulus as the
compute unit issues GEMMs (`gemm_stimulus`, `random_gemm_stimulus`) and unconstrained
(`random_array_inputs`), `simulate_array` (Amaranth's simulator), `run_array_bench`
(Verilator under cocotb) and the cocotb tests it runs, which compare the Verilated array
with the model cycle by cycle. The tests read their parameters from the environment (cocotb
runs this module inside the simulator): ARRAY_DIM, ARRAY_OPERAND_WIDTH, ARRAY_ACC_WIDTH,
ARRAY_MAX_PACK, ARRAY_GEMMS (GEMMs in the compiler-like sequence), ARRAY_CYCLES (cycles of
unconstrained random inputs), ARRAY_SEED.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge

from verdigris.arch.arithmetic import wrap_int
from verdigris.arch.isa import address_bits
from verdigris.hw.array import SystolicArray
from verdigris.hw.pe import PACK_BITS
from verdigris.verify.pe import operand_product, zero_operand
from verdigris.verify.protocol import (
    pack_lanes,
    run_block_bench,
    run_testbench,
    unpack_signed_lanes,
)

__all__ = [
    "ArrayInputs",
    "ArrayModel",
    "ArrayOutputs",
    "ArrayStimulus",
    "GemmSpec",
    "gemm_stimulus",
    "random_array_inputs",
    "random_gemm_stimulus",
    "run_array_bench",
    "simulate_array",
]


@dataclass(frozen=True)
class ArrayInputs:
    """One cycle of `SystolicArray` inputs; an empty vector stands for all zeros."""

    w_en: bool = False
    w_row: int = 0
    w_data: tuple[int, ...] = ()
    a_valid: bool = False
    a_data: tuple[int, ...] = ()
    a_swap: bool = False
    a_pack: int = 0


@dataclass(frozen=True)
class ArrayOutputs:
    """One cycle of `SystolicArray` outputs; `p_data` is empty while `p_valid` is low (the
    array's `p_data` is meaningless then)."""

    p_valid: bool = False
    p_data: tuple[int, ...] = ()
    zero_count: int = 0


class ArrayModel:
    """Model of `verdigris.hw.array.SystolicArray`, written from its docstring contract.

    Transaction-level with exact timing: each entering row is computed at once against the
    tile each PE holds when the row's element reaches it (entry + r + c; a weight write
    reaches PE (r, c) c cycles after it is made), and its result is
    placed `latency` cycles after entry; each zero-operand MAC is counted `zero_count_delay`
    cycles after the PE processed it.
    """

    zero_count_delay = 2

    def __init__(self, dim: int, *, operand_width: int = 8, acc_width: int = 32):
        self.dim = dim
        self.operand_width = operand_width
        self.acc_width = acc_width
        self.latency = 2 * dim - 1

    def run(self, inputs: list[ArrayInputs]) -> list[ArrayOutputs]:
        """The outputs in each of the `len(inputs)` cycles, from reset, with `inputs[t]`
        applied in cycle t. Append idle cycles to see the last rows leave."""
        dim, cycles = self.dim, len(inputs)
        zeros = (0,) * dim
        # Shadow row history: (cycle written, weights). Element c of a write in cycle t
        # lands in cycle t + c and is seen from the next cycle.
        writes: list[list[tuple[int, tuple[int, ...]]]] = [[] for _ in range(dim)]
        for t, step in enumerate(inputs):
            if step.w_en and step.w_row < dim:
                writes[step.w_row].append((t, tuple(step.w_data) or zeros))

        def shadow(r: int, c: int, cycle: int) -> int:
            seen = [w[c] for t, w in writes[r] if t + c < cycle]
            return seen[-1] if seen else 0

        active = [[0] * dim for _ in range(dim)]
        results: dict[int, tuple[int, ...]] = {}
        zero_counts = [0] * cycles
        # Rows reach every PE in entry order, so taking them in entry order keeps each PE's
        # active weight right.
        for s, step in enumerate(inputs):
            if not step.a_valid:
                continue
            a = tuple(step.a_data) or zeros
            sums = [0] * dim
            for r in range(dim):
                for c in range(dim):
                    if step.a_swap:
                        active[r][c] = shadow(r, c, s + r + c)
                    weight = active[r][c]
                    sums[c] += operand_product(a[r], weight, step.a_pack)
                    counted = s + r + c + self.zero_count_delay
                    if zero_operand(a[r], weight, step.a_pack) and counted < cycles:
                        zero_counts[counted] += 1
            results[s + self.latency] = tuple(wrap_int(v, self.acc_width) for v in sums)
        return [
            ArrayOutputs(p_valid=t in results, p_data=results.get(t, ()), zero_count=zero_counts[t])
            for t in range(cycles)
        ]


@dataclass(frozen=True)
class GemmSpec:
    """One GEMM for `gemm_stimulus`: `tile` (`dim` rows of `dim` weights) if it loads
    weights, else None; `rows` the activation rows it streams (none: load only); `idle`
    cycles the compute unit waits before it."""

    tile: tuple[tuple[int, ...], ...] | None
    rows: tuple[tuple[int, ...], ...]
    idle: int = 0
    pack: int = 0  # its rows' products are of packed operands (docs/isa.md GEMM)


@dataclass(frozen=True)
class ArrayStimulus:
    """Cycle-by-cycle array inputs for a sequence of GEMMs, with what GEMM semantics say
    they must produce: `rows` are the result rows in order (`p = a @ W` of the tile each
    row's GEMM uses, wrapped), `zero_macs` counts the (row, r, c) with a[r] == 0 or W[r][c]
    == 0 (docs/isa.md). `starts` are the GEMMs' start cycles."""

    inputs: tuple[ArrayInputs, ...]
    rows: tuple[tuple[int, ...], ...]
    zero_macs: int
    starts: tuple[int, ...]


def gemm_stimulus(
    dim: int,
    gemms: list[GemmSpec],
    *,
    operand_width: int = 8,
    acc_width: int = 32,
    junk: random.Random | None = None,
) -> ArrayStimulus:
    """The array inputs a compute unit following docs/isa.md issues for `gemms`.

    A GEMM starts `idle` cycles after the previous one's busy cycles end; a negative `idle`
    starts a weight load early (docs/isa.md allows up to min(dim, rows) of the GEMM before;
    more breaks the array's safe reuse, on purpose). A load writes shadow rows 0..dim-1 in
    its first `dim` cycles; rows then stream one per cycle, the first with `a_swap` when
    the GEMM swaps a tile in. With `junk`, fields that are not used in a cycle hold random
    values instead of zeros.
    """
    lo, hi = -(1 << (operand_width - 1)), (1 << (operand_width - 1)) - 1
    writes: dict[int, tuple[int, tuple[int, ...]]] = {}
    entries: dict[int, tuple[tuple[int, ...], bool]] = {}
    rows_out: list[tuple[int, ...]] = []
    starts: list[int] = []
    zero_macs = 0
    free = 0  # first cycle the compute unit is idle
    shadow_tile = active_tile = [[0] * dim for _ in range(dim)]
    pending = False  # a loaded tile waits to be swapped in
    for gemm in gemms:
        load, rows = gemm.tile is not None, gemm.rows
        start = free + gemm.idle
        cycle = start
        if load:
            shadow_tile = gemm.tile
            pending = True
            for r in range(dim):
                writes[cycle + r] = (r, tuple(gemm.tile[r]))
            cycle += dim
        if rows:
            swap = pending
            if swap:
                active_tile, pending = shadow_tile, False
            for i, a in enumerate(rows):
                entries[cycle + i] = (tuple(a), swap and i == 0, gemm.pack)
                rows_out.append(
                    tuple(
                        wrap_int(
                            sum(
                                operand_product(a[r], active_tile[r][c], gemm.pack)
                                for r in range(dim)
                            ),
                            acc_width,
                        )
                        for c in range(dim)
                    )
                )
                zero_macs += sum(
                    zero_operand(a[r], active_tile[r][c], gemm.pack)
                    for r in range(dim)
                    for c in range(dim)
                )
        starts.append(start)
        free = start + max(1, (dim if load else 0) + len(rows))

    def filler() -> tuple[int, ...]:
        return tuple(junk.randint(lo, hi) for _ in range(dim)) if junk else ()

    end = max([*writes, *entries, 0]) + 2 * dim + ArrayModel.zero_count_delay + 1
    inputs = []
    for t in range(end):
        idle_row = junk.randrange(1 << address_bits(dim)) if junk else 0
        w_row, w_data = writes.get(t, (idle_row, None))
        idle_pack = junk.randrange(1 << PACK_BITS) if junk else 0
        a_data, a_swap, a_pack = entries.get(
            t, (None, bool(junk and junk.random() < 0.5), idle_pack)
        )
        inputs.append(
            ArrayInputs(
                w_en=t in writes,
                w_row=w_row,
                w_data=w_data if w_data is not None else filler(),
                a_valid=t in entries,
                a_data=a_data if a_data is not None else filler(),
                a_swap=a_swap,
                a_pack=a_pack,
            )
        )
    return ArrayStimulus(tuple(inputs), tuple(rows_out), zero_macs, tuple(starts))


def random_gemm_stimulus(
    seed: int,
    dim: int,
    gemms: int,
    *,
    operand_width: int = 8,
    acc_width: int = 32,
    max_pack: int = 0,
) -> ArrayStimulus:
    """`gemms` GEMMs (at least 8) as the compiler issues them (see `gemm_stimulus`).

    The first eight cover the cases that matter: a load and more than `dim` rows; a reuse
    of the active tile; a load with 1 row started early beside that reuse's stream; a load
    started at the stream start of the GEMM before it (the earliest the ISA allows: its
    row r is written right behind the swap); a load-only GEMM followed by a stream that
    swaps the tile in; a tile of the most negative operand against rows of extremes (the
    largest sums, which overflow narrow accumulators), started early; a reuse with 1 row.
    The rest are random, mostly back to back, loads with rows often early. Operands are
    biased toward the extremes and 0; unused input fields carry random junk. With
    `max_pack`, the random GEMMs take random packs up to it (the first eight have none).
    """
    rng = random.Random(seed)
    lo, hi = -(1 << (operand_width - 1)), (1 << (operand_width - 1)) - 1

    def operand() -> int:
        return rng.choice([lo, hi, 0, -1, 1]) if rng.random() < 0.3 else rng.randint(lo, hi)

    def vector() -> tuple[int, ...]:
        return (0,) * dim if rng.random() < 0.1 else tuple(operand() for _ in range(dim))

    def stream(count: int) -> tuple[tuple[int, ...], ...]:
        return tuple(vector() for _ in range(count))

    extremes = ((lo,) * dim, (hi,) * dim, tuple(rng.choice([lo, hi]) for _ in range(dim)))
    specs = [
        GemmSpec(stream(dim), stream(dim + 1)),
        GemmSpec(None, stream(3)),
        GemmSpec(stream(dim), stream(1), idle=-min(dim, 3)),
        GemmSpec(stream(dim), stream(2), idle=-1),
        GemmSpec(stream(dim), (), idle=rng.randint(0, 2)),
        GemmSpec(None, stream(2)),
        GemmSpec(((lo,) * dim,) * dim, extremes, idle=-min(dim, 2)),
        GemmSpec(None, stream(1)),
    ]
    while len(specs) < gemms:
        if rng.random() < 0.6:
            count = rng.choice([0, 1, 2, dim - 1, dim, dim + 1, 2 * dim])
            tile = stream(dim)
        else:
            count, tile = rng.choice([1, 2, dim, 2 * dim]), None
        idle = 0 if rng.random() < 0.7 else rng.randint(1, dim)
        streamed = len(specs[-1].rows)
        if tile is not None and count and streamed and rng.random() < 0.5:
            idle = -rng.randint(1, min(dim, streamed))  # the early weight load
        specs.append(GemmSpec(tile, stream(count), idle, rng.randint(0, max_pack)))
    return gemm_stimulus(dim, specs, acc_width=acc_width, junk=rng, operand_width=operand_width)


def random_array_inputs(
    seed: int, count: int, dim: int, *, operand_width: int = 8, max_pack: int = 0
) -> list[ArrayInputs]:
    """`count` cycles of unconstrained random array inputs: weight writes to any row (also
    past `dim - 1` when the row field allows it) at any time, also while rows stream and
    while a swap is in flight, swaps on any row, idle cycles with junk, operand extremes."""
    rng = random.Random(seed)
    lo, hi = -(1 << (operand_width - 1)), (1 << (operand_width - 1)) - 1
    row_bits = address_bits(dim)

    def vector() -> tuple[int, ...]:
        return tuple(
            rng.choice([lo, hi, 0]) if rng.random() < 0.3 else rng.randint(lo, hi)
            for _ in range(dim)
        )

    return [
        ArrayInputs(
            w_en=rng.random() < 0.4,
            w_row=rng.randrange(1 << row_bits),
            w_data=vector(),
            a_valid=rng.random() < 0.7,
            a_data=vector(),
            a_swap=rng.random() < 0.2,
            a_pack=rng.randint(0, max_pack),
        )
        for _ in range(count)
    ]


def simulate_array(
    dim: int,
    inputs: list[ArrayInputs],
    *,
    operand_width: int = 8,
    acc_width: int = 32,
    dut: SystolicArray | None = None,
) -> list[ArrayOutputs]:
    """Apply `inputs[t]` to a SystolicArray in cycle t, from reset; return its outputs in each
    cycle (`p_data` only while `p_valid`, as `ArrayModel` gives them).

    `dut` replaces the default `SystolicArray(dim, ...)` (a variant with the same ports and
    parameters)."""
    if dut is None:
        dut = SystolicArray(dim, operand_width=operand_width, acc_width=acc_width)
    elif (dut.dim, dut.operand_width, dut.acc_width) != (dim, operand_width, acc_width):
        raise ValueError(
            f"dut has dim {dut.dim}, operand_width {dut.operand_width} and acc_width "
            f"{dut.acc_width}, not {dim}, {operand_width} and {acc_width}"
        )
    zeros = [0] * dim
    outputs: list[ArrayOutputs] = []

    async def testbench(ctx):
        for step in inputs:
            ctx.set(dut.w_en, step.w_en)
            ctx.set(dut.w_row, step.w_row)
            ctx.set(dut.w_data, list(step.w_data) or zeros)
            ctx.set(dut.a_valid, step.a_valid)
            ctx.set(dut.a_data, list(step.a_data) or zeros)
            ctx.set(dut.a_swap, step.a_swap)
            ctx.set(dut.a_pack, step.a_pack)
            # Every output is a register, so these are this cycle's values.
            p_valid = bool(ctx.get(dut.p_valid))
            p_data = ctx.get(dut.p_data)
            outputs.append(
                ArrayOutputs(
                    p_valid=p_valid,
                    p_data=tuple(p_data[c] for c in range(dim)) if p_valid else (),
                    zero_count=ctx.get(dut.zero_count),
                )
            )
            await ctx.tick()

    run_testbench(dut, testbench)
    return outputs


def run_array_bench(
    array: SystolicArray | None = None,
    *,
    gemms: int = 40,
    cycles: int = 1000,
    seed: int = 0,
    build_root: Path | None = None,
    results_dir: Path | None = None,
) -> tuple[int, int]:
    """Run this module's cocotb tests on the Verilated `array` (default: 4x4, int8 x int8 ->
    int32): a compiler-like sequence of `gemms` GEMMs and `cycles` cycles of unconstrained
    random inputs, each against `ArrayModel`. Return (tests run, tests failed)."""
    array = array or SystolicArray(4)
    dim, operand_width, acc_width = array.dim, array.operand_width, array.acc_width
    top = f"{type(array).__name__.lower()}_{dim}x{dim}_{operand_width}_{acc_width}"
    if array.max_pack:
        top += f"_pack{array.max_pack}"
    env = {
        "ARRAY_MAX_PACK": str(array.max_pack),
        "ARRAY_DIM": str(dim),
        "ARRAY_OPERAND_WIDTH": str(operand_width),
        "ARRAY_ACC_WIDTH": str(acc_width),
        "ARRAY_GEMMS": str(gemms),
        "ARRAY_CYCLES": str(cycles),
        "ARRAY_SEED": str(seed),
    }
    return run_block_bench(array, top, __name__, env, build_root, results_dir)


# --- The cocotb tests (run inside the simulator by `run_array_bench`) ----------------------


def _params() -> dict[str, int]:
    return {
        "dim": int(os.environ.get("ARRAY_DIM", "4")),
        "operand_width": int(os.environ.get("ARRAY_OPERAND_WIDTH", "8")),
        "acc_width": int(os.environ.get("ARRAY_ACC_WIDTH", "32")),
        "max_pack": int(os.environ.get("ARRAY_MAX_PACK", "0")),
        "gemms": int(os.environ.get("ARRAY_GEMMS", "40")),
        "cycles": int(os.environ.get("ARRAY_CYCLES", "1000")),
        "seed": int(os.environ.get("ARRAY_SEED", "0")),
    }


async def _run(dut, inputs: list[ArrayInputs], dim: int, operand_width: int, acc_width: int):
    """Drive `inputs` from reset, one per cycle; return the outputs in each cycle."""
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    for port in (dut.w_en, dut.w_row, dut.w_data, dut.a_valid, dut.a_data, dut.a_swap, dut.a_pack):
        port.value = 0
    await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    outputs = []
    for step in inputs:
        dut.w_en.value = int(step.w_en)
        dut.w_row.value = step.w_row
        dut.w_data.value = pack_lanes(step.w_data, operand_width)
        dut.a_valid.value = int(step.a_valid)
        dut.a_data.value = pack_lanes(step.a_data, operand_width)
        dut.a_swap.value = int(step.a_swap)
        dut.a_pack.value = step.a_pack
        # Every output is a register: between edges these are this cycle's values.
        p_valid = bool(dut.p_valid.value)
        p_bits = dut.p_data.value.to_unsigned() if p_valid else 0
        p_data = tuple(unpack_signed_lanes(p_bits, acc_width, dim)) if p_valid else ()
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
        p["seed"],
        dim,
        p["gemms"],
        operand_width=operand_width,
        acc_width=acc_width,
        max_pack=p["max_pack"],
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
    inputs = random_array_inputs(
        p["seed"], p["cycles"], dim, operand_width=operand_width, max_pack=p["max_pack"]
    )
    inputs += [ArrayInputs()] * (2 * dim + 2)
    want = ArrayModel(dim, operand_width=operand_width, acc_width=acc_width).run(inputs)
    got = await _run(dut, inputs, dim, operand_width, acc_width)
    _compare(got, want, f"random cycles (seed {p['seed']})")
    dut._log.info("%d random cycles matched the model", len(got))
