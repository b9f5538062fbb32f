"""The processing element: the multiply-accumulate cell the weight-stationary array is
built of (`verdigris.hw.array.SystolicArray`), also verified and benchmarked on its own
(`verdigris.verify.pe`, `verdigris demo`)."""

from amaranth.hdl import Module, Mux, Signal, signed
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
    """One multiply-accumulate cell of the weight-stationary `SystolicArray`, with an active
    and a shadow weight (double-buffered weights: a new tile loads while the old computes).

    Activations travel left to right together with a ``valid`` and a ``swap`` flag, partial
    sums top to bottom. Contract (every output is registered: one cycle of latency on every
    path, one element per cycle):

    - The weight *used* in a cycle is the shadow weight if ``valid_in & swap_in``, else the
      active weight. In that case the active weight takes the shadow weight at the clock edge,
      so the swapping element and every later one use it.
    - ``psum_out`` ← ``psum_in + a_in * used weight``: an exact product, a sum wrapped modulo
      2**acc_width (two's complement).
    - ``a_out`` ← ``a_in``, ``valid_out`` ← ``valid_in``, ``swap_out`` ← ``valid_in & swap_in``
      (a swap travels only with a valid element).
    - When ``w_load`` is high, the shadow weight takes ``w_in``; it is seen by a swap from the
      next cycle on. A swap in the same cycle still takes the old shadow weight.
    - ``zero`` ← ``valid_in`` and (``a_in`` or the used weight is 0), for the activity counters.

    After reset both weights are zero. On ECP5, yosys maps an int8 product onto one
    MULT18X18D DSP (tests/synth).

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
                "valid_in": In(1),
                "swap_in": In(1),
                "a_out": Out(operand),
                "valid_out": Out(1),
                "swap_out": Out(1),
                "psum_in": In(acc),
                "psum_out": Out(acc),
                "w_in": In(operand),
                "w_load": In(1),
                "zero": Out(1),
            }
        )

    def elaborate(self, _platform):
        m = Module()
        operand = signed(self.operand_width)
        active = Signal(operand)
        shadow = Signal(operand)
        swap = self.valid_in & self.swap_in
        weight = Signal(operand)
        m.d.comb += weight.eq(Mux(swap, shadow, active))
        m.d.sync += [
            self.a_out.eq(self.a_in),
            self.valid_out.eq(self.valid_in),
            self.swap_out.eq(swap),
            # eq() truncates to acc_width: the wrap-around of the contract.
            self.psum_out.eq(self.psum_in + self.a_in * weight),
            self.zero.eq(self.valid_in & ((self.a_in == 0) | (weight == 0))),
            active.eq(weight),
        ]
        with m.If(self.w_load):
            m.d.sync += shadow.eq(self.w_in)
        return m
