"""What the array's tests share: an array with a deliberate fault."""

from amaranth.hdl import Module

from verdigris.hw.array import SystolicArray


class MisalignedColumnArray(SystolicArray):
    """A deliberately broken array: column 0 is de-skewed one cycle too many."""

    def elaborate(self, _platform):
        m = Module()
        m.submodules.array = inner = SystolicArray(
            self.dim, operand_width=self.operand_width, acc_width=self.acc_width
        )
        for port in ("w_en", "w_row", "w_data", "a_valid", "a_data", "a_swap"):
            m.d.comb += getattr(inner, port).eq(getattr(self, port))
        m.d.comb += [self.p_valid.eq(inner.p_valid), self.zero_count.eq(inner.zero_count)]
        for c in range(1, self.dim):
            m.d.comb += self.p_data[c].eq(inner.p_data[c])
        m.d.sync += self.p_data[0].eq(inner.p_data[0])
        return m
