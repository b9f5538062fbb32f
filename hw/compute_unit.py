"""The compute unit: GEMM through the systolic array, VECTOR on the accumulator (and the
lanes' scale registers), and NOP.

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
- VECTOR: inp row and acc row `i` are read in `s + 1 + i` (the acc row by add and max
  only), the result written in `s + 2 + i`; it completes in `s + rows + VECTOR_LATENCY` =
  `s + rows + 2`. Each lane multiplies `inp - zero` by the `multiplier` field or, with
  `lane_scale`, by its own scale register.
- VECTOR scale (one row): the inp row is read in `s + 1` and every lane's scale register
  takes `inp - zero` in `s + 2`, where a one-row VECTOR writes its acc row; it reads and
  writes no acc row, and completes in `s + 3`. The scale registers are state like the
  buffers' (read by a later VECTOR, which the hazard rule starts only after the scale has
  completed), zero after reset and at the start of every run (`clear`), as the instruction
  simulator starts every program with them zero.
- NOP: completes in `s + 1`.

`ready` adds the hazard rule and the early weight load to `free`: a VECTOR waits until
every GEMM and VECTOR has completed; a GEMM that loads weights and streams may start up to
min(dim, rows of the GEMM before it) cycles early, never before that GEMM's stream start, so
its shadow writes follow the swap (hw/array.py, "Safe reuse"). Counters: `macs` (dim*dim
per streamed row, counted in the cycle the row enters the array), of those `macs_int4`,
`macs_int2` and `macs_int1` for rows of a GEMM with `pack` 1, 2 and 3 (the pack enters the
array with the row), and `zero_macs` (the array's `zero_count`, added in the cycle it is
shown).

`completed` is the number of instructions completing in this cycle: a NOP can complete
beside a GEMM or VECTOR (it does not wait for the array), so 0, 1 or 2; `nop_completed` is
1 when one of them is a NOP. GEMMs and VECTORs complete in program order among themselves,
and so do NOPs, but a NOP can complete before an earlier GEMM.
"""

from typing import NamedTuple

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

from verdigris.arch.config import AccelConfig
from verdigris.arch.counters import PACKED_MAC_COUNTERS
from verdigris.arch.cycle_model import ZERO_COUNT_DELAY
from verdigris.arch.isa import (
    Buffer,
    Gemm,
    Opcode,
    Vector,
    VectorOp,
    address_bits,
    element_bits,
    max_pack,
)
from verdigris.arch.timing import VECTOR_LATENCY, gemm_latency
from verdigris.hw.array import SystolicArray
from verdigris.hw.array_os import OutputStationaryArray
from verdigris.hw.pe import PACK_BITS
from verdigris.hw.units import UnitControl, buffer_read, buffer_write, field, opcode, push_flags

__all__ = ["ComputeUnit", "TagPipeline"]

NOW_BITS = 32
COUNTER_BITS = 48


class _Head(NamedTuple):
    """The compute unit's decoded head instruction (`word`, valid with `start`)."""

    word: Value
    is_gemm: Value
    is_vector: Value
    load_weights: Value
    gemm_rows: Value
    vector_rows: Value
    go: Value  # a legal instruction starts in this cycle


class TagPipeline(wiring.Component):
    """Carries each array row's destination (its acc row and whether it accumulates)
    through the array's latency, beside the row.

    Contract: a row enters with ``valid`` high in cycle ``s``, its tag (``row``,
    ``accumulate``) taken in that cycle. In cycle ``s + latency - 1`` ``next_valid`` is high
    with the row's tag on ``next_row``/``next_accumulate`` (the cycle before the row leaves
    the array: the acc row is read then); in ``s + latency``, ``out_valid`` with the tag on
    ``out_row``/``out_accumulate``. Any pattern of rows is allowed, one per cycle at most;
    every output is registered.

    Parameters
    ----------
    row_bits : int
        Bits of an acc row address.
    latency : int
        Cycles from a row's entry to its exit (at least 2).

    Members
    -------
    valid : ``In(1)``
        A row enters in this cycle.
    row : ``In(row_bits)``, accumulate : ``In(1)``
        Its tag.
    next_valid : ``Out(1)``, next_row : ``Out(row_bits)``, next_accumulate : ``Out(1)``
        The tag of the row that entered ``latency - 1`` cycles ago.
    out_valid : ``Out(1)``, out_row : ``Out(row_bits)``, out_accumulate : ``Out(1)``
        The tag of the row that entered ``latency`` cycles ago.
    """

    def __init__(self, row_bits: int, latency: int):
        if isinstance(row_bits, bool) or not isinstance(row_bits, int) or row_bits < 1:
            raise ValueError(f"row_bits must be a positive integer, not {row_bits!r}")
        if isinstance(latency, bool) or not isinstance(latency, int) or latency < 2:
            raise ValueError(f"latency must be an integer of at least 2, not {latency!r}")
        self.row_bits, self.latency = row_bits, latency
        super().__init__(
            {
                "valid": In(1),
                "row": In(row_bits),
                "accumulate": In(1),
                "next_valid": Out(1),
                "next_row": Out(row_bits),
                "next_accumulate": Out(1),
                "out_valid": Out(1),
                "out_row": Out(row_bits),
                "out_accumulate": Out(1),
            }
        )

    def elaborate(self, _platform):
        m = Module()
        latency = self.latency
        # Stage k holds the tag of the row that entered k + 1 cycles ago; bit k of `pipe`
        # whether a row did.
        tags = [Signal(self.row_bits + 1, name=f"tag_{k}") for k in range(latency)]
        pipe = Signal(latency)
        m.d.sync += [
            pipe.eq(Cat(self.valid, pipe[:-1])),
            tags[0].eq(Cat(self.row, self.accumulate)),
        ]
        for k in range(1, latency):
            m.d.sync += tags[k].eq(tags[k - 1])
        m.d.comb += [
            self.next_valid.eq(pipe[latency - 2]),
            self.next_row.eq(tags[latency - 2][:-1]),
            self.next_accumulate.eq(tags[latency - 2][-1]),
            self.out_valid.eq(pipe[latency - 1]),
            self.out_row.eq(tags[latency - 1][:-1]),
            self.out_accumulate.eq(tags[latency - 1][-1]),
        ]
        return m


class ComputeUnit(wiring.Component):
    """GEMM, VECTOR and NOP for one core; see the module docstring for the exact timing.

    Members
    -------
    control : ``Out(UnitControl(nop_completed=True))``
        The controller interface (`verdigris.hw.units.UnitControl`).
    clear : ``In(1)``
        Clears the counters, the error and the scale registers (the core's `run` strobe).
    wgt, inp : ``In(ReadPort.Signature(...))``
        The weight and input buffers' read ports, rows of ``dim`` signed int8
        elements (`verdigris.hw.units.buffer_read`), data in the cycle after the request.
    acc_read : ``In(ReadPort.Signature(...))``
        The accumulator's read port, rows of ``dim`` signed ``acc_bits`` elements,
        transparent to ``acc_write``.
    acc_write : ``In(WritePort.Signature(...))``
        The accumulator's write port.
    macs, macs_int4, macs_int2, macs_int1, zero_macs : ``Out(48)``
        MAC slots (of them, those of packed GEMMs) and zero-operand MACs since ``clear``.
    """

    def __init__(self, config: AccelConfig):
        if not isinstance(config, AccelConfig):
            raise TypeError(f"config must be an AccelConfig, not {config!r}")
        self.config = config
        super().__init__(
            {
                "control": Out(UnitControl(nop_completed=True)),
                "clear": In(1),
                "wgt": In(buffer_read(config, Buffer.WGT)),
                "inp": In(buffer_read(config, Buffer.INP)),
                "acc_read": In(buffer_read(config, Buffer.ACC)),
                "acc_write": In(buffer_write(config, Buffer.ACC)),
                "macs": Out(COUNTER_BITS),
                **{name: Out(COUNTER_BITS) for name in PACKED_MAC_COUNTERS.values()},
                "zero_macs": Out(COUNTER_BITS),
            }
        )
        # The zero count's delay is part of the cycle model (per-layer Activity).
        array_class = OutputStationaryArray if config.dataflow == "os" else SystolicArray
        if array_class.zero_count_delay != ZERO_COUNT_DELAY[config.dataflow]:
            raise ValueError(
                f"the cycle model's ZERO_COUNT_DELAY for {config.dataflow!r} is "
                f"{ZERO_COUNT_DELAY[config.dataflow]}, but {array_class.__name__} counts "
                f"zeros {array_class.zero_count_delay} cycles after the MAC"
            )

    def elaborate(self, _platform):
        m = Module()
        config = self.config
        dim = config.dim
        # Both dataflows honour the same array contract (and so the same cycle model).
        array_class = OutputStationaryArray if config.dataflow == "os" else SystolicArray
        m.submodules.array = array = array_class(
            dim,
            operand_width=element_bits(config, Buffer.INP),
            acc_width=config.acc_bits,
            max_pack=max_pack(config),
        )
        # Read ports are enabled unless driven low.
        m.d.comb += [self.wgt.en.eq(0), self.inp.en.eq(0), self.acc_read.en.eq(0)]

        head = self._decode(m)
        swap_pending = self._sequence(m, head)
        self._datapath(m, array, head, swap_pending)
        return m

    def _decode(self, m: Module) -> _Head:
        """The head instruction's decode and its errors (checked at start)."""
        config, dim, control = self.config, self.config.dim, self.control
        word = control.instr
        op = opcode(word)
        is_gemm = op == Opcode.GEMM
        is_vector = op == Opcode.VECTOR
        load_weights = field(word, Gemm, "load_weights")
        gemm_rows = field(word, Gemm, "rows")
        vector_rows = field(word, Vector, "rows")

        bad = Signal()
        with m.If(is_gemm):
            m.d.comb += bad.eq(
                (load_weights & (field(word, Gemm, "wgt_row") + dim > config.wgt_rows))
                | (field(word, Gemm, "inp_row") + gemm_rows > config.inp_rows)
                | (field(word, Gemm, "acc_row") + gemm_rows > config.acc_rows)
                | (field(word, Gemm, "pack") > max_pack(config))
            )
        with m.Elif(is_vector):
            # A scale reads one inp row and writes no acc row, so its acc_row is not checked
            # (docs/isa.md, "Errors"); it must take exactly one row and cannot itself use the
            # scale registers.
            is_scale = field(word, Vector, "op") == VectorOp.SCALE
            m.d.comb += bad.eq(
                (field(word, Vector, "inp_row") + vector_rows > config.inp_rows)
                | Mux(
                    is_scale,
                    (vector_rows != 1) | field(word, Vector, "lane_scale"),
                    field(word, Vector, "acc_row") + vector_rows > config.acc_rows,
                )
            )
        with m.If(control.start & bad):
            m.d.sync += control.error.eq(1)
        with m.If(self.clear):
            m.d.sync += control.error.eq(0)

        go = Signal()  # a legal instruction starts in this cycle
        m.d.comb += go.eq(control.start & ~bad)
        return _Head(word, is_gemm, is_vector, load_weights, gemm_rows, vector_rows, go)

    def _sequence(self, m: Module, head: _Head) -> Signal:
        """When the unit is free and ready (hazards), and when each instruction completes:
        the control half of the cycle model. Returns `swap_pending` (a weight load whose
        swap has not started yet)."""
        dim, control = self.config.dim, self.control
        word, is_gemm, is_vector = head.word, head.is_gemm, head.is_vector
        load_weights, gemm_rows, vector_rows = head.load_weights, head.gemm_rows, head.vector_rows

        now = Signal(NOW_BITS)
        m.d.sync += now.eq(now + 1)
        busy_until = Signal(NOW_BITS)
        drained_at = Signal(NOW_BITS)  # completion of the latest GEMM/VECTOR
        swap_pending = Signal()

        free = Signal()
        m.d.comb += [free.eq(now >= busy_until), control.free.eq(free)]
        hazard = Signal()
        with m.If(is_vector & (now < drained_at)):
            m.d.comb += hazard.eq(1)
        # The early weight load: a GEMM that loads weights and streams rows may start
        # `overlap` cycles before the unit is free (min(dim, rows) of the GEMM started last,
        # else 0), its weight phase beside that GEMM's last rows.
        overlap = Signal(range(dim + 1))
        early = Signal()
        m.d.comb += early.eq(
            is_gemm & load_weights & (gemm_rows != 0) & (now + overlap >= busy_until)
        )
        m.d.comb += control.ready.eq((free | early) & ~hazard)

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
        nop_finished = Signal()  # a NOP completes in this cycle
        m.d.sync += [nop_done.eq(0), nop_finished.eq(0)]
        with m.If(head.go):
            m.d.sync += overlap.eq(0)
            with m.If(is_gemm):
                m.d.comb += done_at.eq(now + gemm_busy_1 + latency)
                m.d.sync += [
                    busy_until.eq(now + gemm_busy_1),
                    drained_at.eq(done_at),
                    overlap.eq(Mux(gemm_rows >= dim, dim, gemm_rows)),
                ]
                with m.If((gemm_rows != 0) & (load_weights | swap_pending)):
                    m.d.sync += swap_pending.eq(0)
                with m.Elif(load_weights):
                    m.d.sync += swap_pending.eq(1)
            with m.Elif(is_vector):
                m.d.comb += done_at.eq(now + vector_busy_1 + VECTOR_LATENCY)
                m.d.sync += [busy_until.eq(now + vector_busy_1), drained_at.eq(done_at)]
            with m.Else():  # NOP
                m.d.sync += [
                    busy_until.eq(now + 1),
                    nop_done.eq(Cat(push_prev, push_next)),
                    nop_finished.eq(1),
                ]
            with m.If(is_gemm | is_vector):
                m.d.comb += [
                    pending.w_en.eq(1),
                    pending.w_data.eq(Cat(done_at, push_prev, push_next)),
                ]
        head_at = pending.r_data[:NOW_BITS]
        completing = pending.r_rdy & (head_at == now)
        m.d.comb += pending.r_en.eq(completing)
        m.d.comb += [
            control.push_prev.eq((completing & pending.r_data[NOW_BITS]) + nop_done[0]),
            control.push_next.eq((completing & pending.r_data[NOW_BITS + 1]) + nop_done[1]),
            control.in_flight.eq((pending.level > 1) | (pending.r_rdy & ~completing)),
            control.completed.eq(completing + nop_finished),
            control.nop_completed.eq(nop_finished),
        ]
        return swap_pending

    def _datapath(self, m: Module, array, head: _Head, swap_pending: Signal) -> None:
        """The reads, the array, the accumulator writes and the counters."""
        config, dim = self.config, self.config.dim
        acc_bits = config.acc_bits
        word, is_gemm, is_vector = head.word, head.is_gemm, head.is_vector
        load_weights, gemm_rows, vector_rows = head.load_weights, head.gemm_rows, head.vector_rows

        # ---- the sequencer
        gemm_wgt_row = Signal(address_bits(config.wgt_rows) + 1)
        inp_row = Signal(address_bits(config.inp_rows) + 1)
        acc_row = Signal(address_bits(config.acc_rows) + 1)
        weights_left = Signal(range(dim + 1))
        rows_left = Signal(17)
        weight_index = Signal(range(dim + 1))
        swap_next = Signal()
        accumulate = Signal()
        pack = Signal(PACK_BITS)
        vector_mode = Signal()
        vector_op = Signal(field(word, Vector, "op").shape())
        zero = Signal(field(word, Vector, "zero").shape())
        multiplier = Signal(field(word, Vector, "multiplier").shape())
        lane_scale = Signal(field(word, Vector, "lane_scale").shape())
        # The lanes' scale registers hold `inp - zero` exactly: the shape of that
        # difference (10-bit signed for int8 operands and the 9-bit signed `zero`).
        scale_shape = (self.inp.data[0] - zero).shape()
        scales = [Signal(scale_shape, name=f"scale_{c}") for c in range(dim)]
        # A GEMM that loads weights keeps its stream fields here during its weight phase
        # (the previous GEMM may still stream, an early weight load) and streams from the
        # cycle after its last weight read.
        next_inp_row = Signal.like(inp_row)
        next_acc_row = Signal.like(acc_row)
        next_rows = Signal.like(rows_left)
        next_swap = Signal()
        next_accumulate = Signal()
        next_pack = Signal(PACK_BITS)
        # Reads issued this cycle (their data arrives next cycle): a weight row and an
        # input row can be read in the same cycle.
        read_weight = Signal()
        read_row = Signal()
        with m.If(weights_left != 0):
            m.d.comb += [
                read_weight.eq(1),
                self.wgt.addr.eq(gemm_wgt_row + weight_index),
                self.wgt.en.eq(1),
            ]
            m.d.sync += [weights_left.eq(weights_left - 1), weight_index.eq(weight_index + 1)]
        with m.If(rows_left != 0):
            m.d.comb += [read_row.eq(1), self.inp.addr.eq(inp_row), self.inp.en.eq(1)]
            m.d.sync += [
                rows_left.eq(rows_left - 1),
                inp_row.eq(inp_row + 1),
                acc_row.eq(acc_row + 1),
            ]
            # Only add and max combine with the acc row (write and scale do not read it, and
            # the acc_read_bytes counter counts this enable).
            with m.If(vector_mode & ((vector_op == VectorOp.ADD) | (vector_op == VectorOp.MAX))):
                m.d.comb += [self.acc_read.addr.eq(acc_row), self.acc_read.en.eq(1)]

        # Loading the next instruction comes after the reads: a start in the cycle of the
        # previous instruction's last read must win over that read's counter updates.
        with m.If((weights_left == 1) & (next_rows != 0)):  # the last weight read
            m.d.sync += [
                inp_row.eq(next_inp_row),
                acc_row.eq(next_acc_row),
                rows_left.eq(next_rows),
                swap_next.eq(next_swap),
                accumulate.eq(next_accumulate),
                pack.eq(next_pack),
                vector_mode.eq(0),
                next_rows.eq(0),
            ]
        gemm_swaps = (gemm_rows != 0) & (load_weights | swap_pending)
        with m.If(head.go & is_gemm & load_weights):
            m.d.sync += [
                gemm_wgt_row.eq(field(word, Gemm, "wgt_row")),
                weights_left.eq(dim),
                weight_index.eq(0),
                next_inp_row.eq(field(word, Gemm, "inp_row")),
                next_acc_row.eq(field(word, Gemm, "acc_row")),
                next_rows.eq(gemm_rows),
                next_swap.eq(gemm_swaps),
                next_accumulate.eq(field(word, Gemm, "accumulate")),
                next_pack.eq(field(word, Gemm, "pack")),
            ]
        with m.If(head.go & is_gemm & ~load_weights):
            m.d.sync += [
                inp_row.eq(field(word, Gemm, "inp_row")),
                acc_row.eq(field(word, Gemm, "acc_row")),
                rows_left.eq(gemm_rows),
                swap_next.eq(gemm_swaps),
                accumulate.eq(field(word, Gemm, "accumulate")),
                pack.eq(field(word, Gemm, "pack")),
                vector_mode.eq(0),
            ]
        with m.If(head.go & is_vector):
            m.d.sync += [
                inp_row.eq(field(word, Vector, "inp_row")),
                acc_row.eq(field(word, Vector, "acc_row")),
                weights_left.eq(0),
                rows_left.eq(vector_rows),
                vector_mode.eq(1),
                vector_op.eq(field(word, Vector, "op")),
                zero.eq(field(word, Vector, "zero")),
                multiplier.eq(field(word, Vector, "multiplier")),
                lane_scale.eq(field(word, Vector, "lane_scale")),
            ]

        # Weight rows arrive a cycle after their read.
        weight_arriving = Signal()
        weight_row_arriving = Signal(range(dim + 1))
        m.d.sync += [weight_arriving.eq(read_weight), weight_row_arriving.eq(weight_index)]
        m.d.comb += [
            array.w_en.eq(weight_arriving),
            array.w_row.eq(weight_row_arriving),
            array.w_data.eq(self.wgt.data),
        ]

        # GEMM rows enter the array a cycle after their read.
        row_arriving = Signal()
        swap_arriving = Signal()
        pack_arriving = Signal(PACK_BITS)
        m.d.sync += [
            row_arriving.eq(read_row & ~vector_mode),
            swap_arriving.eq(0),
            pack_arriving.eq(pack),
        ]
        with m.If(read_row & ~vector_mode & swap_next):
            m.d.sync += [swap_arriving.eq(1), swap_next.eq(0)]
        m.d.comb += [
            array.a_valid.eq(row_arriving),
            array.a_swap.eq(swap_arriving),
            array.a_pack.eq(pack_arriving),
            array.a_data.eq(self.inp.data),
        ]

        # Each row's destination (acc row, accumulate) travels beside it through the array in
        # a TagPipeline. It is captured when the row is read, so a GEMM starting while its
        # predecessor's last row is in flight cannot change that row's tag.
        row_bits = address_bits(config.acc_rows)
        arriving_row = Signal(row_bits)
        arriving_accumulate = Signal()
        m.d.sync += [arriving_row.eq(acc_row[:-1]), arriving_accumulate.eq(accumulate)]
        m.submodules.tags = tags = TagPipeline(row_bits, array.latency)
        m.d.comb += [
            tags.valid.eq(row_arriving),
            tags.row.eq(arriving_row),
            tags.accumulate.eq(arriving_accumulate),
        ]
        # The acc row is read one cycle before the result leaves the array.
        with m.If(tags.next_valid & tags.next_accumulate):
            m.d.comb += [self.acc_read.addr.eq(tags.next_row), self.acc_read.en.eq(1)]
        with m.If(array.p_valid):
            m.d.comb += [self.acc_write.addr.eq(tags.out_row), self.acc_write.en.eq(1)]
            for c in range(dim):
                total = Mux(
                    tags.out_accumulate,
                    self.acc_read.data[c] + array.p_data[c],
                    array.p_data[c],
                )
                m.d.comb += self.acc_write.data[c].eq(total[:acc_bits])

        # VECTOR results: the row read last cycle is combined and written this cycle. The
        # VECTOR fields (op, zero, multiplier, lane_scale) still hold then: only a VECTOR
        # changes them, and the hazard rule starts none before this one has completed.
        vector_arriving = Signal()
        vector_acc_row = Signal(address_bits(config.acc_rows))
        m.d.sync += [
            vector_arriving.eq(read_row & vector_mode),
            vector_acc_row.eq(acc_row[:-1]),
        ]
        # A scale latches its row into the scale registers in the cycle the other ops write
        # theirs to the accumulator; the next VECTOR reads them no earlier than its start's
        # next cycle, after the scale's completion, as the ISA's write at completion would.
        with m.If(vector_arriving & (vector_op == VectorOp.SCALE)):
            m.d.sync += [scales[c].eq(self.inp.data[c] - zero) for c in range(dim)]
        with m.If(self.clear):
            m.d.sync += [scale.eq(0) for scale in scales]
        with m.If(vector_arriving & (vector_op != VectorOp.SCALE)):
            m.d.comb += [self.acc_write.addr.eq(vector_acc_row), self.acc_write.en.eq(1)]
            for c in range(dim):
                # One multiplier per lane: its second operand is the unsigned `multiplier`
                # field or, with lane_scale, the lane's signed scale register (the Mux is
                # signed, wide enough for both); the product wraps to acc_bits.
                operand = Mux(lane_scale, scales[c], multiplier)
                value = Signal(signed(acc_bits), name=f"vector_value_{c}")
                m.d.comb += value.eq((self.inp.data[c] - zero) * operand)
                current = self.acc_read.data[c]
                result = Signal(signed(acc_bits), name=f"vector_result_{c}")
                with m.Switch(vector_op):
                    with m.Case(VectorOp.WRITE):
                        m.d.comb += result.eq(value)
                    with m.Case(VectorOp.ADD):
                        m.d.comb += result.eq((current + value)[:acc_bits])
                    with m.Case(VectorOp.MAX):
                        m.d.comb += result.eq(Mux(current > value, current, value))
                m.d.comb += self.acc_write.data[c].eq(result)

        # ---- counters
        packed = [(p, getattr(self, name)) for p, name in PACKED_MAC_COUNTERS.items()]
        with m.If(self.clear):
            m.d.sync += [self.macs.eq(0), self.zero_macs.eq(0)]
            m.d.sync += [counter.eq(0) for _, counter in packed]
        with m.Else():
            m.d.sync += [
                self.macs.eq(self.macs + Mux(row_arriving, Const(dim * dim), 0)),
                self.zero_macs.eq(self.zero_macs + array.zero_count),
            ]
            for p, counter in packed:
                slots = Mux(row_arriving & (pack_arriving == p), Const(dim * dim), 0)
                m.d.sync += counter.eq(counter + slots)
