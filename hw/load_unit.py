"""The LOAD unit: main memory -> inp, wgt, acc buffers and the req table (docs/isa.md, LOAD).

The timing is the cycle model's, exactly (docs/microarchitecture.md, "The unit interface");
the constants come from `verdigris.arch.timing`.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import enum, wiring
from amaranth.lib.wiring import In, Out

from verdigris.arch.config import AccelConfig
from verdigris.arch.isa import ELEMENT_BYTES, Buffer, Load, Nop, Opcode, Unit, buffer_rows
from verdigris.arch.timing import LOAD_OVERHEAD
from verdigris.hw.units import control_ports, field, illegal_flags, opcode, push_flags

__all__ = ["PIPELINE_OVERHEAD", "LoadUnit"]

# Bits of one buffer element: int8 activations and weights, int32 partial sums, and the
# 12-byte requant record of docs/isa.md, kept byte for byte as it lies in main memory.
ELEMENT_BITS = {buffer: 8 * size for buffer, size in ELEMENT_BYTES.items()}
_PORTS = {Buffer.INP: "inp", Buffer.WGT: "wgt", Buffer.ACC: "acc", Buffer.REQ: "req"}

# Cycles a transfer spends beyond one per main-memory word in this pipeline: the start
# cycle (decode, before the first read) and the read latency of the last word, whose row is
# written in the cycle it arrives.
PIPELINE_OVERHEAD = 2


class _State(enum.Enum, shape=2):
    IDLE = 0  # free: may start an instruction in this cycle
    FILL = 1  # writing the second and later rows of a fill, one per cycle
    REQUEST = 2  # issuing main-memory reads, one word per cycle
    DRAIN = 3  # the last read's data arrives and its row is written


class LoadUnit(wiring.Component):
    """Executes LOAD and NOP (target load) with the timing of docs/isa.md.

    Ports: `control_ports()` (see `verdigris.hw.units`); a main-memory read port `mem_addr`
    (word address), `mem_en`, `mem_data` (`dma_bytes` bytes, byte i in bits 8i..8i+7, valid in
    the cycle after the request); and for each buffer X in inp, wgt, acc, req a write port
    `X_addr`, `X_data`, `X_en`, written at the end of the cycle. A row's element c is in bits
    [c*w, (c+1)*w) of `X_data`, with w = 8 (inp, wgt), 32 (acc) or 96 (req: the 12-byte
    record exactly as in main memory).

    Contract, for an instruction started in cycle `s` (`start` high while `free` is high):

    - **busy and latency.** Busy `b` is `max(1, rows)` for a fill, `W + LOAD_OVERHEAD` for a
      transfer, `W` being the main-memory words its rows touch (docs/isa.md's `rows * words`,
      summed over rows; 0 rows: `b` = 2), and 1 for a NOP; latency is 0. `free` is low in
      cycles `s+1 .. s+b-1` and high again in `s+b`, where `in_flight` is low again and
      `push_next` is 1 if the instruction has the `push_next` flag (its completion).
      `push_prev` is always 0.
    - **Throughput.** A transfer issues one main-memory read per cycle in `s+1 .. s+W`
      (`W` words in all, rows back to back) and writes each row in the cycle its last word
      arrives, so the last write is in `s+W+1 = s+b-1`. A fill writes one row per cycle in
      `s .. s+b-1`, the first one from `instr` in the start cycle. Every write is therefore
      done before the completion cycle.
    - **Errors.** A LOAD out of its buffer (`buf_row + rows > depth`), a transfer with
      `elems` of 0 or more than `dim` or a main-memory range past the end, a fill of the req
      table, the illegal flags `pop_prev`/`push_prev`, and an instruction this unit does not
      run (another opcode, a NOP for another unit) raise `error` from `s+1` on, sticky until
      reset. Such an instruction writes nothing, reads nothing and pushes nothing, and the
      unit stays not free (the core stops).
    - `start` while `free` is low is ignored; reserved instruction bits are not checked.

    A row is assembled from the words in a register as wide as the widest row can touch
    (`dma_bytes - 1 + 12 * dim` bytes, rounded up to words): each word goes through one
    `dma_bytes`-wide byte funnel shifter (the row's start offset) into its place.

    Parameters
    ----------
    config : AccelConfig
        Array side, buffer depths, `dma_bytes` and `main_memory_bytes`.
    """

    def __init__(self, config: AccelConfig):
        if not isinstance(config, AccelConfig):
            raise TypeError(f"config must be an AccelConfig, not {config!r}")
        if LOAD_OVERHEAD != PIPELINE_OVERHEAD:
            raise ValueError(
                f"the cycle model's LOAD_OVERHEAD is {LOAD_OVERHEAD}, but LoadUnit's pipeline "
                f"takes {PIPELINE_OVERHEAD} cycles beyond one per word"
            )
        self.config = config
        dim = config.dim
        self.depths = {buffer: buffer_rows(config, buffer) for buffer in Buffer}
        words = config.main_memory_bytes // config.dma_bytes
        members = control_ports() | {
            "mem_addr": Out(max(1, (words - 1).bit_length())),
            "mem_en": Out(1),
            "mem_data": In(8 * config.dma_bytes),
        }
        for buffer, prefix in _PORTS.items():
            members |= {
                f"{prefix}_addr": Out((self.depths[buffer] - 1).bit_length()),
                f"{prefix}_data": Out(dim * ELEMENT_BITS[buffer]),
                f"{prefix}_en": Out(1),
            }
        super().__init__(members)

    def elaborate(self, _platform):
        m = Module()
        config = self.config
        dim, dma = config.dim, config.dma_bytes
        dma_shift = dma.bit_length() - 1
        instr = self.instr

        # ---- decode of `instr` (used in the start cycle only)
        op = opcode(instr)
        is_load = op == Opcode.LOAD
        is_nop = op == Opcode.NOP
        buffer = field(instr, Load, "buffer")
        fill = field(instr, Load, "fill")
        buf_row = field(instr, Load, "buf_row")
        rows = field(instr, Load, "rows")
        elems = field(instr, Load, "elems")
        addr = field(instr, Load, "dram_addr")
        stride = field(instr, Load, "dram_stride")
        _, push_next = push_flags(instr)

        element_bytes = Array(Const(ELEMENT_BYTES[b], 4) for b in Buffer)
        depths = Array(Const(self.depths[b], 17) for b in Buffer)
        nbytes = Signal(range(dim * 12 + 1))  # bytes of a row (meaningful when elems is legal)
        m.d.comb += nbytes.eq(elems * element_bytes[buffer])

        bad_unit = Signal()  # wrong opcode or target, or a flag the load unit has not
        m.d.comb += bad_unit.eq(
            ~(is_load | (is_nop & (field(instr, Nop, "target") == Unit.LOAD)))
            | illegal_flags(instr, Unit.LOAD)
        )
        bad_fill = Signal()  # what makes a fill illegal (cheap: gates the start-cycle write)
        m.d.comb += bad_fill.eq(
            bad_unit | (buf_row + rows > depths[buffer]) | (buffer == Buffer.REQ)
        )
        memory_end = Signal(range(2**24 + (2**16 - 1) * (2**24 - 1) + dim * 12 + 1))
        m.d.comb += memory_end.eq(addr + (rows - 1) * stride + nbytes)
        bad_transfer = Signal()
        m.d.comb += bad_transfer.eq(
            bad_unit
            | (buf_row + rows > depths[buffer])
            | (elems == 0)
            | (elems > dim)
            | ((rows != 0) & (memory_end > config.main_memory_bytes))
        )
        illegal = Signal()
        m.d.comb += illegal.eq(Mux(is_load, Mux(fill, bad_fill, bad_transfer), bad_unit))

        # ---- registers
        state = Signal(_State)
        error = Signal()
        go = Signal()  # a legal instruction starts in this cycle
        m.d.comb += go.eq(self.start & (state == _State.IDLE) & ~error & ~illegal)
        with m.If(self.start & (state == _State.IDLE) & ~error & illegal):
            m.d.sync += error.eq(1)

        cur_buffer = Signal(2)
        cur_push = Signal()
        cur_elems = Signal(8)
        cur_nbytes = Signal.like(nbytes)
        cur_fill = Signal(8)  # the fill value's byte
        rows_left = Signal(16)
        next_row = Signal(16)  # buffer row of the next fill row, or of the next written row
        complete = Signal()  # this cycle is the completion of an instruction with push_next
        m.d.sync += complete.eq(0)

        m.d.comb += [
            self.free.eq((state == _State.IDLE) & ~error),
            self.in_flight.eq(state != _State.IDLE),
            self.error.eq(error),
            self.push_next.eq(complete),
            self.push_prev.eq(0),
        ]

        # Buffer write (one port of the four per cycle); fill rows or assembled transfer rows.
        write_en = Signal()
        write_buffer = Signal(2)
        write_row = Signal(16)
        write_bytes = Signal(8 * dim * 12)  # row bytes, for the req table's width
        write_fill = Signal(8)
        write_is_fill = Signal()
        for b, prefix in _PORTS.items():
            width = dim * ELEMENT_BITS[b]
            port_addr = getattr(self, f"{prefix}_addr")
            if b is Buffer.ACC:  # the fill value sign-extended to int32
                fill_data = Cat(*[Cat(write_fill, write_fill[7].replicate(24))] * dim)
            else:
                fill_data = Cat(*[write_fill] * dim)
            m.d.comb += [
                getattr(self, f"{prefix}_en").eq(write_en & (write_buffer == b)),
                port_addr.eq(write_row[: len(port_addr)]),
                getattr(self, f"{prefix}_data").eq(
                    Mux(write_is_fill, fill_data[:width], write_bytes[:width])
                ),
            ]

        # ---- transfer: request side
        word_bits = len(self.mem_addr)
        waddr = Signal(word_bits)  # word address of the next read
        wlast = Signal(word_bits)  # word address of the current row's last word
        offset = Signal(max(1, dma_shift))  # the current row's start address % dma_bytes
        row_start = Signal(24)  # byte address of the row after the current one
        row_stride = Signal(24)
        max_words = -(-(dma - 1 + 12 * dim) // dma)  # words a row can touch
        chunk = Signal(range(max_words))  # index of the next read within its row

        def first_row(start_addr, row_bytes):
            """Request registers for a row that starts at byte `start_addr`."""
            return [
                waddr.eq(start_addr >> dma_shift),
                wlast.eq((start_addr + row_bytes - 1) >> dma_shift),
                offset.eq(start_addr[:dma_shift] if dma_shift else 0),
                chunk.eq(0),
            ]

        # ---- transfer: response side (the word read in the previous cycle is on mem_data)
        resp_valid = Signal()
        resp_chunk = Signal.like(chunk)
        resp_last = Signal()
        resp_offset = Signal.like(offset)
        m.d.sync += resp_valid.eq(0)
        last_word = waddr == wlast
        with m.If(state == _State.REQUEST):
            m.d.comb += [self.mem_en.eq(1), self.mem_addr.eq(waddr)]
            m.d.sync += [
                resp_valid.eq(1),
                resp_chunk.eq(chunk),
                resp_last.eq(last_word),
                resp_offset.eq(offset),
            ]

        # Row assembly: chunk k of a row is bytes offset .. offset+dma-1 of the word pair
        # (word k, word k+1), written when word k+1 arrives; at a row's last word the chunk
        # that word starts is written too (with zeros above it), and the row goes out.
        previous = Signal(8 * dma)
        assembled = [Signal(8 * dma, name=f"chunk{k}") for k in range(max_words)]
        pair_chunk = Cat(previous, self.mem_data).bit_select(resp_offset << 3, 8 * dma)
        tail_chunk = Cat(self.mem_data, Const(0, 8 * dma)).bit_select(resp_offset << 3, 8 * dma)
        merged = []
        for k, held in enumerate(assembled):
            value = Mux(
                resp_valid & (resp_chunk == k + 1),
                pair_chunk,
                Mux(resp_valid & resp_last & (resp_chunk == k), tail_chunk, held),
            )
            merged.append(value)
            m.d.sync += held.eq(value)
        with m.If(resp_valid):
            m.d.sync += previous.eq(self.mem_data)
        row_value = Cat(*merged)
        # Element c of the row occupies bytes c*e .. c*e+e-1; keep those with c < elems.
        keep = Signal(8 * dim * 12)
        with m.Switch(cur_buffer):
            for b in Buffer:
                bits = ELEMENT_BITS[b]
                with m.Case(b):
                    m.d.comb += keep.eq(Cat((c < cur_elems).replicate(bits) for c in range(dim)))
        m.d.comb += write_bytes.eq(row_value[: 8 * dim * 12] & keep)

        # ---- the state machine
        with m.Switch(state):
            with m.Case(_State.IDLE), m.If(go):
                m.d.sync += [
                    cur_buffer.eq(buffer),
                    cur_push.eq(push_next),
                    cur_elems.eq(elems),
                    cur_nbytes.eq(nbytes),
                    cur_fill.eq(field(instr, Load, "fill_value")),
                ]
                with m.If(is_nop):
                    m.d.sync += complete.eq(push_next)
                with m.Elif(fill):
                    # The first row now, from `instr`; the others in FILL.
                    m.d.comb += [
                        write_en.eq(rows != 0),
                        write_buffer.eq(buffer),
                        write_row.eq(buf_row),
                        write_fill.eq(field(instr, Load, "fill_value")),
                        write_is_fill.eq(1),
                    ]
                    with m.If(rows > 1):
                        m.d.sync += [
                            state.eq(_State.FILL),
                            rows_left.eq(rows - 1),
                            next_row.eq(buf_row + 1),
                        ]
                    with m.Else():
                        m.d.sync += complete.eq(push_next)
                with m.Else():
                    m.d.sync += [
                        state.eq(Mux(rows == 0, _State.DRAIN, _State.REQUEST)),
                        rows_left.eq(rows),
                        next_row.eq(buf_row),
                        row_start.eq(addr + stride),
                        row_stride.eq(stride),
                        *first_row(addr, nbytes),
                    ]
            with m.Case(_State.FILL):
                m.d.comb += [
                    write_en.eq(1),
                    write_buffer.eq(cur_buffer),
                    write_row.eq(next_row),
                    write_fill.eq(cur_fill),
                    write_is_fill.eq(1),
                ]
                m.d.sync += [next_row.eq(next_row + 1), rows_left.eq(rows_left - 1)]
                with m.If(rows_left == 1):
                    m.d.sync += [state.eq(_State.IDLE), complete.eq(cur_push)]
            with m.Case(_State.REQUEST):
                with m.If(last_word):
                    m.d.sync += rows_left.eq(rows_left - 1)
                    with m.If(rows_left == 1):
                        m.d.sync += state.eq(_State.DRAIN)
                    with m.Else():
                        m.d.sync += [
                            row_start.eq(row_start + row_stride),
                            *first_row(row_start, cur_nbytes),
                        ]
                with m.Else():
                    m.d.sync += [waddr.eq(waddr + 1), chunk.eq(chunk + 1)]
            with m.Case(_State.DRAIN):
                m.d.sync += [state.eq(_State.IDLE), complete.eq(cur_push)]

        # A transfer row goes out in the cycle its last word arrives (REQUEST or DRAIN).
        with m.If(resp_valid & resp_last):
            m.d.comb += [
                write_en.eq(1),
                write_buffer.eq(cur_buffer),
                write_row.eq(next_row),
                write_is_fill.eq(0),
            ]
            m.d.sync += next_row.eq(next_row + 1)
        return m
