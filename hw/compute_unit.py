"""The compute unit: GEMM through the systolic array, VECTOR on the accumulator, and NOP.

Timing (docs/isa.md; cycle `s` is the start cycle, `Ld` is `dim` for a GEMM that loads
weights, else 0):

- GEMM weight phase: wgt row `wgt_row + k` is read in cycle `s + 1 + k` and written to
  shadow row `k` of the array in `s + 2 + k`.
- GEMM stream phase: inp row `inp_row + i` is read in `s + Ld + 1 + i` and enters the array
  in `s + Ld + 2 + i` (with the swap on the first row after a weight load). It leaves the
  array `2*dim - 1` cycles later; its acc row is read a cycle before (through a read port
  transparent to this unit's writes, so back-to-back accumulation sees the newest value)
  and written as it leaves. The last row is written in `s + busy + 2*dim`, so every result
  is in the accumulator at completion, `s + busy + gemm_latency(dim)` = `s + busy + 2*dim
  + 1`.
- VECTOR: inp row and acc row `i` are read in `s + 1 + i`, the result written in
  `s + 2 + i`; it completes in `s + rows + VECTOR_LATENCY` = `s + rows + 2`.
- NOP: completes in `s + 1`.

`ready` adds the hazard rules to `free`: a VECTOR waits until every GEMM and VECTOR has
completed; a GEMM that loads weights waits until `dim` cycles after the last swap stream
start. Counters: `macs` (dim*dim per streamed row) and `zero_macs` (from the array).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, fifo, wiring
from amaranth.lib.wiring import In, Out

from verdigris.arch.config import AccelConfig
from verdigris.arch.isa import Gemm, Opcode, Vector, VectorOp
from verdigris.arch.timing import VECTOR_LATENCY, gemm_latency
from verdigris.hw.array import SystolicArray
from verdigris.hw.array_os import OutputStationaryArray
from verdigris.hw.units import control_ports, field, opcode, push_flags

__all__ = ["ComputeUnit"]

NOW_BITS = 32


def _row_bits(depth: int) -> int:
    return max(1, (depth - 1).bit_length())


class ComputeUnit(wiring.Component):
    """GEMM, VECTOR and NOP for one core; see the module docstring for the exact timing."""

    def __init__(self, config: AccelConfig):
        if not isinstance(config, AccelConfig):
            raise TypeError(f"config must be an AccelConfig, not {config!r}")
        self.config = config
        dim = config.dim
        operands = data.ArrayLayout(signed(8), dim)
        accs = data.ArrayLayout(signed(32), dim)
        super().__init__(
            {
                **control_ports(),
                "ready": Out(1),
                "clear": In(1),
                "wgt_addr": Out(_row_bits(config.wgt_rows)),
                "wgt_en": Out(1),
                "wgt_data": In(operands),
                "inp_addr": Out(_row_bits(config.inp_rows)),
                "inp_en": Out(1),
                "inp_data": In(operands),
                "acc_raddr": Out(_row_bits(config.acc_rows)),
                "acc_ren": Out(1),
                "acc_rdata": In(accs),
                "acc_waddr": Out(_row_bits(config.acc_rows)),
                "acc_wdata": Out(accs),
                "acc_wen": Out(1),
                "macs": Out(48),
                "zero_macs": Out(48),
            }
        )

    def elaborate(self, _platform):
        m = Module()
        config = self.config
        dim = config.dim
        # Both dataflows honour the same array contract (and so the same cycle model).
        array_class = OutputStationaryArray if config.dataflow == "os" else SystolicArray
        m.submodules.array = array = array_class(dim)
        word = self.instr

        now = Signal(NOW_BITS)
        m.d.sync += now.eq(now + 1)
        busy_until = Signal(NOW_BITS)
        drained_at = Signal(NOW_BITS)  # completion of the latest GEMM/VECTOR
        swapped_at = Signal(signed(NOW_BITS + 1), init=-(2**NOW_BITS))
        swap_pending = Signal()

        # ---- decode of the head instruction
        op = opcode(word)
        is_gemm = op == Opcode.GEMM
        is_vector = op == Opcode.VECTOR
        load_weights = field(word, Gemm, "load_weights")
        gemm_rows = field(word, Gemm, "rows")
        vector_rows = field(word, Vector, "rows")

        free = Signal()
        m.d.comb += [free.eq(now >= busy_until), self.free.eq(free)]
        hazard = Signal()
        with m.If(is_vector & (now < drained_at)):
            m.d.comb += hazard.eq(1)
        with m.If(is_gemm & load_weights & (now.as_signed() < swapped_at + dim)):
            m.d.comb += hazard.eq(1)
        m.d.comb += self.ready.eq(free & ~hazard)

        # ---- errors (checked at start)
        bad = Signal()
        with m.If(is_gemm):
            m.d.comb += bad.eq(
                (load_weights & (field(word, Gemm, "wgt_row") + dim > config.wgt_rows))
                | (field(word, Gemm, "inp_row") + gemm_rows > config.inp_rows)
                | (field(word, Gemm, "acc_row") + gemm_rows > config.acc_rows)
            )
        with m.Elif(is_vector):
            m.d.comb += bad.eq(
                (field(word, Vector, "op") == 3)
                | (field(word, Vector, "inp_row") + vector_rows > config.inp_rows)
                | (field(word, Vector, "acc_row") + vector_rows > config.acc_rows)
            )
        with m.If(self.start & bad):
            m.d.sync += self.error.eq(1)
        with m.If(self.clear):
            m.d.sync += self.error.eq(0)

        # ---- busy, completions
        latency = gemm_latency(dim)
        load_phase = Mux(load_weights, dim, 0)
        gemm_busy = Signal(18)
        m.d.comb += gemm_busy.eq(load_phase + gemm_rows)
        gemm_busy_1 = Mux(gemm_busy == 0, 1, gemm_busy)
        vector_busy_1 = Mux(vector_rows == 0, 1, vector_rows)
        done_at = Signal(NOW_BITS)
        push_prev, push_next = push_flags(word)
        pending = fifo.SyncFIFO(width=NOW_BITS + 2, depth=2 * dim + 4)
        m.submodules.pending = pending
        nop_done = Signal(2)  # push flags of a NOP completing in this cycle
        m.d.sync += nop_done.eq(0)
        with m.If(self.start & ~bad):
            with m.If(is_gemm):
                m.d.comb += done_at.eq(now + gemm_busy_1 + latency)
                m.d.sync += [busy_until.eq(now + gemm_busy_1), drained_at.eq(done_at)]
                with m.If((gemm_rows != 0) & (load_weights | swap_pending)):
                    m.d.sync += [
                        swapped_at.eq(now + load_phase),
                        swap_pending.eq(0),
                    ]
                with m.Elif(load_weights):
                    m.d.sync += swap_pending.eq(1)
            with m.Elif(is_vector):
                m.d.comb += done_at.eq(now + vector_busy_1 + VECTOR_LATENCY)
                m.d.sync += [busy_until.eq(now + vector_busy_1), drained_at.eq(done_at)]
            with m.Else():  # NOP
                m.d.sync += [busy_until.eq(now + 1), nop_done.eq(Cat(push_prev, push_next))]
            with m.If(is_gemm | is_vector):
                m.d.comb += [
                    pending.w_en.eq(1),
                    pending.w_data.eq(Cat(done_at, push_prev, push_next)),
                ]
        head_at = pending.r_data[:NOW_BITS]
        completing = pending.r_rdy & (head_at == now)
        m.d.comb += pending.r_en.eq(completing)
        m.d.comb += [
            self.push_prev.eq((completing & pending.r_data[NOW_BITS]) + nop_done[0]),
            self.push_next.eq((completing & pending.r_data[NOW_BITS + 1]) + nop_done[1]),
            self.in_flight.eq((pending.level > 1) | (pending.r_rdy & ~completing)),
        ]

        # ---- the datapath sequencer
        gemm_wgt_row = Signal(_row_bits(config.wgt_rows) + 1)
        inp_row = Signal(_row_bits(config.inp_rows) + 1)
        acc_row = Signal(_row_bits(config.acc_rows) + 1)
        weights_left = Signal(range(dim + 1))
        rows_left = Signal(17)
        weight_index = Signal(range(dim + 1))
        swap_next = Signal()
        accumulate = Signal()
        vector_mode = Signal()
        vector_op = Signal(2)
        zero = Signal(signed(9))
        multiplier = Signal(22)
        # Reads issued this cycle (their data arrives next cycle).
        read_weight = Signal()
        read_row = Signal()
        with m.If(weights_left != 0):
            m.d.comb += [
                read_weight.eq(1),
                self.wgt_addr.eq(gemm_wgt_row + weight_index),
                self.wgt_en.eq(1),
            ]
            m.d.sync += [weights_left.eq(weights_left - 1), weight_index.eq(weight_index + 1)]
        with m.Elif(rows_left != 0):
            m.d.comb += [read_row.eq(1), self.inp_addr.eq(inp_row), self.inp_en.eq(1)]
            m.d.sync += [
                rows_left.eq(rows_left - 1),
                inp_row.eq(inp_row + 1),
                acc_row.eq(acc_row + 1),
            ]
            with m.If(vector_mode & (vector_op != VectorOp.WRITE)):
                m.d.comb += [self.acc_raddr.eq(acc_row), self.acc_ren.eq(1)]

        # Loading the next instruction comes after the reads: a start in the cycle of the
        # previous instruction's last read must win over that read's counter updates.
        with m.If(self.start & ~bad & is_gemm):
            m.d.sync += [
                gemm_wgt_row.eq(field(word, Gemm, "wgt_row")),
                inp_row.eq(field(word, Gemm, "inp_row")),
                acc_row.eq(field(word, Gemm, "acc_row")),
                weights_left.eq(Mux(load_weights, dim, 0)),
                weight_index.eq(0),
                rows_left.eq(gemm_rows),
                swap_next.eq((gemm_rows != 0) & (load_weights | swap_pending)),
                accumulate.eq(field(word, Gemm, "accumulate")),
                vector_mode.eq(0),
            ]
        with m.If(self.start & ~bad & is_vector):
            m.d.sync += [
                inp_row.eq(field(word, Vector, "inp_row")),
                acc_row.eq(field(word, Vector, "acc_row")),
                weights_left.eq(0),
                rows_left.eq(vector_rows),
                vector_mode.eq(1),
                vector_op.eq(field(word, Vector, "op")),
                zero.eq(field(word, Vector, "zero")),
                multiplier.eq(field(word, Vector, "multiplier")),
            ]

        # Weight rows arrive a cycle after their read.
        weight_arriving = Signal()
        weight_row_arriving = Signal(range(dim + 1))
        m.d.sync += [weight_arriving.eq(read_weight), weight_row_arriving.eq(weight_index)]
        m.d.comb += [
            array.w_en.eq(weight_arriving),
            array.w_row.eq(weight_row_arriving),
            array.w_data.eq(self.wgt_data),
        ]

        # GEMM rows enter the array a cycle after their read.
        row_arriving = Signal()
        swap_arriving = Signal()
        m.d.sync += [row_arriving.eq(read_row & ~vector_mode), swap_arriving.eq(0)]
        with m.If(read_row & ~vector_mode & swap_next):
            m.d.sync += [swap_arriving.eq(1), swap_next.eq(0)]
        m.d.comb += [
            array.a_valid.eq(row_arriving),
            array.a_swap.eq(swap_arriving),
            array.a_data.eq(self.inp_data),
        ]

        # Each row's destination (acc row, accumulate) travels beside it through the array in
        # a shift register: stage k holds the tag of the row that entered k+1 cycles ago. It
        # is captured when the row is read, so a GEMM starting while its predecessor's last
        # row is in flight cannot change that row's tag.
        tag_bits = _row_bits(config.acc_rows) + 1
        arriving_tag = Signal(tag_bits)
        m.d.sync += arriving_tag.eq(Cat(acc_row[:-1], accumulate))
        latency_rows = array.latency
        tags = [Signal(tag_bits, name=f"tag_{k}") for k in range(latency_rows)]
        pipe = Signal(latency_rows)  # bit k: a row entered k+1 cycles ago
        m.d.sync += [pipe.eq(Cat(row_arriving, pipe[:-1])), tags[0].eq(arriving_tag)]
        for k in range(1, latency_rows):
            m.d.sync += tags[k].eq(tags[k - 1])
        # The acc row is read one cycle before the result leaves the array.
        leaving_next = pipe[latency_rows - 2]
        tag_row = tags[latency_rows - 2][:-1]
        tag_accumulate = tags[latency_rows - 2][-1]
        with m.If(leaving_next & tag_accumulate):
            m.d.comb += [self.acc_raddr.eq(tag_row), self.acc_ren.eq(1)]
        leaving_row = tags[latency_rows - 1][:-1]
        leaving_accumulate = tags[latency_rows - 1][-1]
        with m.If(array.p_valid):
            m.d.comb += [self.acc_waddr.eq(leaving_row), self.acc_wen.eq(1)]
            for c in range(dim):
                total = Mux(
                    leaving_accumulate, self.acc_rdata[c] + array.p_data[c], array.p_data[c]
                )
                m.d.comb += self.acc_wdata[c].eq(total[:32])

        # VECTOR results: the row read last cycle is combined and written this cycle.
        vector_arriving = Signal()
        vector_acc_row = Signal(_row_bits(config.acc_rows))
        m.d.sync += [
            vector_arriving.eq(read_row & vector_mode),
            vector_acc_row.eq(acc_row[:-1]),
        ]
        with m.If(vector_arriving):
            m.d.comb += [self.acc_waddr.eq(vector_acc_row), self.acc_wen.eq(1)]
            for c in range(dim):
                value = Signal(signed(32), name=f"vector_value_{c}")
                m.d.comb += value.eq((self.inp_data[c] - zero) * multiplier)
                current = self.acc_rdata[c]
                result = Signal(signed(32), name=f"vector_result_{c}")
                with m.Switch(vector_op):
                    with m.Case(VectorOp.WRITE):
                        m.d.comb += result.eq(value)
                    with m.Case(VectorOp.ADD):
                        m.d.comb += result.eq((current + value)[:32])
                    with m.Case(VectorOp.MAX):
                        m.d.comb += result.eq(Mux(current > value, current, value))
                m.d.comb += self.acc_wdata[c].eq(result)

        # ---- counters
        with m.If(self.clear):
            m.d.sync += [self.macs.eq(0), self.zero_macs.eq(0)]
        with m.Else():
            m.d.sync += [
                self.macs.eq(self.macs + Mux(row_arriving, Const(dim * dim), 0)),
                self.zero_macs.eq(self.zero_macs + array.zero_count),
            ]
        return m
