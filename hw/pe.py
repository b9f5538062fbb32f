"""Processing element of the weight-stationary systolic array."""

from amaranth.hdl import Module, Mux, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["ProcessingElement", "check_widths"]


def check_widths(operand_width, acc_width) -> None:
    """The operand and accumulator widths every PE accepts; ValueError quoting a bad one."""
    if not isinstance(operand_width, int) or not 2 <= operand_width <= 18:
        raise ValueError(f"operand_width must be an integer from 2 to 18, not {operand_width!r}")
    if not isinstance(acc_width, int) or acc_width < 2 * operand_width:
        raise ValueError(
            f"acc_width must be an integer of at least 2 * operand_width = "
            f"{2 * operand_width}, not {acc_width!r}"
        )


class ProcessingElement(wiring.Component):
    """One multiply-accumulate cell of a weight-stationary systolic array.

    The PE holds one weight. Activations flow left to right, partial sums top to bottom, and
    weights are loaded by shifting them down the column.

    Contract (all outputs are registered, so every path through the PE has one cycle latency):

    - ``psum_out`` ← ``psum_in + a_in * weight``, where the product is the full-width signed
      product and the sum wraps modulo 2**acc_width (two's complement), as an int32
      accumulator does in software.
    - ``a_out`` ← ``a_in``: the activation passes to the right neighbour unchanged.
    - When ``w_load`` is high, ``weight`` ← ``w_in``; ``w_out`` always shows the held weight, so
      a column of PEs with ``w_load`` high shifts its weights down one row per cycle. The new
      weight is used from the cycle after the load.
    - ``a_zero`` ← whether this cycle's MAC had a zero operand (for the activity counters).

    Parameters
    ----------
    operand_width : int
        Bits of the signed activation and weight operands (2 to 18).
    acc_width : int
        Bits of the signed partial sum; at least ``2 * operand_width``.
    """

    def __init__(self, *, operand_width: int = 8, acc_width: int = 32):
        check_widths(operand_width, acc_width)
        self.operand_width = operand_width
        self.acc_width = acc_width
        operand, acc = signed(operand_width), signed(acc_width)
        super().__init__(
            {
                "a_in": In(operand),
                "a_out": Out(operand),
                "psum_in": In(acc),
                "psum_out": Out(acc),
                "w_in": In(operand),
                "w_load": In(1),
                "w_out": Out(operand),
                "a_zero": Out(1),
            }
        )

    def elaborate(self, _platform):
        m = Module()
        weight = self.w_out  # the weight register is the w_out port itself
        product = self.a_in * weight
        m.d.sync += [
            self.a_out.eq(self.a_in),
            # eq() truncates to acc_width, which is the wrap-around the contract states.
            self.psum_out.eq(self.psum_in + product),
            self.a_zero.eq((self.a_in == 0) | (weight == 0)),
            weight.eq(Mux(self.w_load, self.w_in, weight)),
        ]
        return m
