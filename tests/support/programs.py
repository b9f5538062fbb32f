"""Instruction-level test programs on a small config (`CONFIG`, dim 4): builders of single
instructions, `serial` (tokens that make each instruction see the previous one's results),
main-memory images and random instructions. The instruction simulator's tests, the
controller's tests and the per-layer Activity programs (layer_programs.py) share them."""

import random
from dataclasses import replace

import numpy as np

from verdigris.arch.config import AccelConfig
from verdigris.arch.isa import (
    Buffer,
    Deps,
    Gemm,
    Instruction,
    Load,
    Nop,
    Store,
    Unit,
    Vector,
)

CONFIG = AccelConfig(
    name="t",
    rows=4,
    cols=4,
    inp_rows=64,
    wgt_rows=32,
    acc_rows=64,
    req_rows=4,
    main_memory_bytes=4096,
    instruction_capacity=256,
    dma_bytes=4,
    queue_depth=4,
)


DIM = CONFIG.dim


NO = Deps()


OUT = 2048  # where tests store results


def deps(*names: str) -> Deps:
    return Deps(**dict.fromkeys(names, True))


def memory_with(*placements: tuple[int, np.ndarray]) -> np.ndarray:
    """Main memory with each array's little-endian bytes at its address."""
    memory = np.zeros(CONFIG.main_memory_bytes, np.uint8)
    for addr, values in placements:
        data = np.ascontiguousarray(values).view(np.uint8).ravel()
        memory[addr : addr + data.size] = data
    return memory


def _with_flags(instruction: Instruction, *names: str) -> Instruction:
    flags = {name: True for name in names} | {
        name: True for name, value in vars(instruction.deps).items() if value
    }
    return replace(instruction, deps=Deps(**flags))


# The tokens that make `b` (on the second unit) wait for `a` (on the first) to complete:
# flags on a, flags on a compute NOP between them (None: no NOP), flags on b.
_HANDOFF: dict[tuple[Unit, Unit], tuple[tuple[str, ...], tuple[str, ...] | None, tuple]] = {
    (Unit.LOAD, Unit.COMPUTE): (("push_next",), None, ("pop_prev",)),
    (Unit.COMPUTE, Unit.LOAD): (("push_prev",), None, ("pop_next",)),
    (Unit.COMPUTE, Unit.STORE): (("push_next",), None, ("pop_prev",)),
    (Unit.STORE, Unit.COMPUTE): (("push_prev",), None, ("pop_next",)),
    (Unit.LOAD, Unit.STORE): (("push_next",), ("pop_prev", "push_next"), ("pop_prev",)),
    (Unit.STORE, Unit.LOAD): (("push_prev",), ("pop_next", "push_prev"), ("pop_next",)),
}


def serial(instructions: list[Instruction]) -> list[Instruction]:
    """The program with tokens that make every instruction see the previous one's results.

    A unit runs its own instructions in order (and the array's results leave in order), so
    only a change of unit needs a token; load and store talk through a compute NOP."""
    program = list(instructions[:1])
    for b in instructions[1:]:
        a = program[-1]
        if a.unit != b.unit:
            on_a, on_nop, on_b = _HANDOFF[(a.unit, b.unit)]
            program[-1] = _with_flags(a, *on_a)
            if on_nop is not None:
                program.append(Nop(deps(*on_nop), Unit.COMPUTE))
            b = _with_flags(b, *on_b)
        program.append(b)
    return program


def load(buffer: Buffer, buf_row: int, rows: int, elems: int, addr: int, stride: int, **kw):
    return Load(kw.pop("deps", NO), buffer, False, buf_row, rows, elems, addr, stride, **kw)


def fill(buffer: Buffer, buf_row: int, rows: int, value: int) -> Load:
    return Load(NO, buffer, True, buf_row, rows, 0, fill_value=value)


def gemm(wgt_row: int, inp_row: int, acc_row: int, rows: int, *, load_weights=True, acc=False):
    return Gemm(NO, load_weights, acc, wgt_row, inp_row, acc_row, rows)


def random_instruction(rng: random.Random) -> Instruction:
    kind = rng.randrange(6)
    if kind == 0:
        return fill(rng.choice([Buffer.INP, Buffer.WGT, Buffer.ACC]), 0, rng.randrange(7), 1)
    if kind == 1:
        buffer = rng.choice([Buffer.INP, Buffer.ACC])
        return load(buffer, 0, rng.randint(1, 5), rng.randint(1, 4), rng.randrange(99), 20)
    if kind == 2:
        return gemm(0, 0, 0, rng.randrange(7), load_weights=rng.random() < 0.5, acc=True)
    if kind == 3:
        return Vector(NO, rng.randrange(3), 0, 0, rng.randrange(6))
    if kind == 4:
        addr, stride = 1000 + rng.randrange(50), rng.randrange(21)
        return Store(NO, True, 0, rng.randint(1, 4), rng.randint(1, 4), addr, stride)
    return Nop(NO, rng.choice(list(Unit)))
