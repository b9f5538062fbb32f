"""Cycle-level Python models of single hardware blocks.

Unit benches (Amaranth simulator and cocotb) drive a block and its model with the same
inputs and compare outputs cycle by cycle. The models are written from the blocks' docstring
contracts, not from their code.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = [
    "ArrayInputs",
    "ArrayModel",
    "ArrayOutputs",
    "ArrayStimulus",
    "GemmSpec",
    "PEInputs",
    "PEModel",
    "PEOutputs",
    "gemm_stimulus",
    "random_array_inputs",
    "random_gemm_stimulus",
    "random_pe_inputs",
    "wrap_signed",
]


def wrap_signed(value: int, bits: int) -> int:
    """`value` reduced modulo 2**bits into the signed range, as a two's-complement register."""
    half = 1 << (bits - 1)
    return ((value + half) % (1 << bits)) - half


@dataclass(frozen=True)
class PEInputs:
    a_in: int = 0
    psum_in: int = 0
    w_in: int = 0
    w_load: bool = False


@dataclass(frozen=True)
class PEOutputs:
    a_out: int = 0
    psum_out: int = 0
    w_out: int = 0
    a_zero: bool = False


class PEModel:
    """Model of `verdigris.hw.pe.ProcessingElement`; `outputs` are the registers' values."""

    def __init__(self, *, operand_width: int = 8, acc_width: int = 32):
        self.operand_width = operand_width
        self.acc_width = acc_width
        self.outputs = PEOutputs()  # every register resets to zero

    def step(self, inputs: PEInputs) -> PEOutputs:
        """Apply one clock edge with `inputs` held before it; return the new outputs."""
        weight = self.outputs.w_out
        self.outputs = PEOutputs(
            a_out=inputs.a_in,
            psum_out=wrap_signed(inputs.psum_in + inputs.a_in * weight, self.acc_width),
            w_out=inputs.w_in if inputs.w_load else weight,
            a_zero=inputs.a_in == 0 or weight == 0,
        )
        return self.outputs


def random_pe_inputs(
    seed: int, count: int, *, operand_width: int = 8, acc_width: int = 32
) -> list[PEInputs]:
    """`count` random PE inputs, biased toward the values where arithmetic goes wrong:
    operand extremes, zeros, and partial sums near the accumulator's limits (to exercise
    wrap-around)."""
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
        PEInputs(a_in=operand(), psum_in=psum(), w_in=operand(), w_load=rng.random() < 0.25)
        for _ in range(count)
    ]


# --- Systolic array -------------------------------------------------------------------------


@dataclass(frozen=True)
class ArrayInputs:
    """One cycle of `SystolicArray` inputs; an empty vector stands for all zeros."""

    w_en: bool = False
    w_row: int = 0
    w_data: tuple[int, ...] = ()
    a_valid: bool = False
    a_data: tuple[int, ...] = ()
    a_swap: bool = False


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
    tile each PE holds when the row's element reaches it (entry + r + c), and its result is
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
        # Shadow row history: (cycle written, weights); a write is seen from the next cycle.
        writes: list[list[tuple[int, tuple[int, ...]]]] = [[] for _ in range(dim)]
        for t, step in enumerate(inputs):
            if step.w_en and step.w_row < dim:
                writes[step.w_row].append((t, tuple(step.w_data) or zeros))

        def shadow(r: int, cycle: int) -> tuple[int, ...]:
            seen = [w for t, w in writes[r] if t < cycle]
            return seen[-1] if seen else zeros

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
                        active[r][c] = shadow(r, s + r + c)[c]
                    weight = active[r][c]
                    sums[c] += a[r] * weight
                    counted = s + r + c + self.zero_count_delay
                    if (a[r] == 0 or weight == 0) and counted < cycles:
                        zero_counts[counted] += 1
            results[s + self.latency] = tuple(wrap_signed(v, self.acc_width) for v in sums)
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
    load_offset: int | None = None,
    junk: random.Random | None = None,
) -> ArrayStimulus:
    """The array inputs a compute unit following docs/isa.md issues for `gemms`.

    A GEMM starts when the previous one's busy cycles end (plus its idle cycles), and one
    with `load_weights` no earlier than `dim` cycles after the last swap stream start (the
    weight-swap rule; `load_offset` replaces that `dim` to break the rule on purpose). A
    load writes shadow rows 0..dim-1 in its first `dim` cycles; rows then stream one per
    cycle, the first with `a_swap` when the GEMM swaps a tile in. With `junk`, fields that
    are not used in a cycle hold random values instead of zeros.
    """
    lo, hi = -(1 << (operand_width - 1)), (1 << (operand_width - 1)) - 1
    offset = dim if load_offset is None else load_offset
    writes: dict[int, tuple[int, tuple[int, ...]]] = {}
    entries: dict[int, tuple[tuple[int, ...], bool]] = {}
    rows_out: list[tuple[int, ...]] = []
    starts: list[int] = []
    zero_macs = 0
    free = 0  # first cycle the compute unit is idle
    swap_start = None
    shadow_tile = active_tile = [[0] * dim for _ in range(dim)]
    pending = False  # a loaded tile waits to be swapped in
    for gemm in gemms:
        load, rows = gemm.tile is not None, gemm.rows
        start = free + gemm.idle
        if load and swap_start is not None:
            start = max(start, swap_start + offset)
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
                active_tile, pending, swap_start = shadow_tile, False, cycle
            for i, a in enumerate(rows):
                entries[cycle + i] = (tuple(a), swap and i == 0)
                rows_out.append(
                    tuple(
                        wrap_signed(sum(a[r] * active_tile[r][c] for r in range(dim)), acc_width)
                        for c in range(dim)
                    )
                )
                zero_macs += sum(
                    a[r] == 0 or active_tile[r][c] == 0 for r in range(dim) for c in range(dim)
                )
        starts.append(start)
        free = start + max(1, (dim if load else 0) + len(rows))

    def filler() -> tuple[int, ...]:
        return tuple(junk.randint(lo, hi) for _ in range(dim)) if junk else ()

    end = max([*writes, *entries, 0]) + 2 * dim + ArrayModel.zero_count_delay + 1
    inputs = []
    for t in range(end):
        idle_row = junk.randrange(1 << max(1, (dim - 1).bit_length())) if junk else 0
        w_row, w_data = writes.get(t, (idle_row, None))
        a_data, a_swap = entries.get(t, (None, bool(junk and junk.random() < 0.5)))
        inputs.append(
            ArrayInputs(
                w_en=t in writes,
                w_row=w_row,
                w_data=w_data if w_data is not None else filler(),
                a_valid=t in entries,
                a_data=a_data if a_data is not None else filler(),
                a_swap=a_swap,
            )
        )
    return ArrayStimulus(tuple(inputs), tuple(rows_out), zero_macs, tuple(starts))


def random_gemm_stimulus(
    seed: int, dim: int, gemms: int, *, operand_width: int = 8, acc_width: int = 32
) -> ArrayStimulus:
    """`gemms` GEMMs (at least 8) as the compiler issues them (see `gemm_stimulus`).

    The first eight cover the cases that matter: a load and more than `dim` rows; a reuse
    of the active tile; a load with 1 row (its load waits for the swap rule); a load-only
    GEMM followed by a stream that swaps the tile in; `2*dim` rows; a tile of the most
    negative operand against rows of extremes (the largest sums, which overflow narrow
    accumulators); a reuse with 1 row. The rest are random, mostly back to back. Operands
    are biased toward the extremes and 0; unused input fields carry random junk.
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
        GemmSpec(stream(dim), stream(1)),
        GemmSpec(stream(dim), (), idle=rng.randint(0, 2)),
        GemmSpec(None, stream(2)),
        GemmSpec(stream(dim), stream(2 * dim)),
        GemmSpec(((lo,) * dim,) * dim, extremes),
        GemmSpec(None, stream(1)),
    ]
    while len(specs) < gemms:
        if rng.random() < 0.6:
            count = rng.choice([0, 1, 2, dim - 1, dim, dim + 1, 2 * dim])
            tile = stream(dim)
        else:
            count, tile = rng.choice([1, 2, dim, 2 * dim]), None
        idle = 0 if rng.random() < 0.7 else rng.randint(1, dim)
        specs.append(GemmSpec(tile, stream(count), idle))
    return gemm_stimulus(dim, specs, acc_width=acc_width, junk=rng, operand_width=operand_width)


def random_array_inputs(
    seed: int, count: int, dim: int, *, operand_width: int = 8
) -> list[ArrayInputs]:
    """`count` cycles of unconstrained random array inputs: weight writes to any row (also
    past `dim - 1` when the row field allows it) at any time, also while rows stream and
    while a swap is in flight, swaps on any row, idle cycles with junk, operand extremes."""
    rng = random.Random(seed)
    lo, hi = -(1 << (operand_width - 1)), (1 << (operand_width - 1)) - 1
    row_bits = max(1, (dim - 1).bit_length())

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
        )
        for _ in range(count)
    ]
