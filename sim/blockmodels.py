"""Cycle-level Python models of single hardware blocks.

Unit benches (Amaranth simulator and cocotb) drive a block and its model with the same
inputs and compare outputs cycle by cycle. The models are written from the blocks' docstring
contracts, not from their code.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["PEInputs", "PEModel", "PEOutputs", "random_pe_inputs", "wrap_signed"]


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
