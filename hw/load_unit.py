"""The LOAD unit: main memory -> inp, wgt, acc buffers, the req table and the lookup tables
(docs/isa.md, LOAD).

The timing is the cycle model's, exactly (docs/microarchitecture.md, "The unit interface");
the constants come from `verdigris.arch.timing`.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import enum, wiring
from amaranth.lib.wiring import In, Out

from verdigris.arch.config import AccelConfig
from verdigris.arch.isa import (
    Buffer,
    Load,
    Nop,
    Opcode,
    Unit,
    buffer_rows,
    element_bits,
    row_bits,
    row_bytes,
)
from verdigris.arch.timing import LOAD_OVERHEAD
from verdigris.hw.units import (
    UnitControl,
    buffer_write,
    field,
    fields,
    illegal_flags,
    main_read_port,
    opcode,
    push_flags,
)

__all__ = ["PIPELINE_OVERHEAD", "LoadUnit", "RowAssembler"]

# Bits of a buffer number, as LOAD's `buffer` field is wide (it names more values than
# there are buffers: the others are illegal).
_BUFFER_BITS = next(width for name, _, width, _ in Load.LAYOUT if name == "buffer")

# Cycles a transfer spends beyond one per main-memory word in this pipeline: the start
# cycle (decode, before the first read) and the read latency of the last word, whose row is
# written in the cycle it arrives.
PIPELINE_OVERHEAD = 2


class RowAssembler(wiring.Component):
    """Assembles a row of bytes that starts `offset` bytes into a main-memory word from the
    words it touches, one word per cycle.

    Contract: the row's words arrive in order on ``word``, one per cycle with ``valid``
    high, ``index`` counting them from 0, ``offset`` constant over the row and ``last``
    high with its last word (gaps between words and between rows are allowed). In the cycle
    the last word of a row of ``n`` words arrives, bytes ``0 .. n*word_bytes - offset - 1``
    of ``row`` are the row's bytes (byte ``b`` is byte ``offset + b`` of the word stream
    from its first word); the bytes above are unspecified. ``row`` is combinational: it
    includes this cycle's word.

    Implementation: chunk ``k`` of ``row`` is bytes ``offset .. offset + word_bytes - 1`` of
    the word pair (word ``k``, word ``k + 1``), taken through one byte funnel shifter when
    word ``k + 1`` arrives; at a row's last word the chunk that word starts is taken too,
    with zeros above it.

    Parameters
    ----------
    word_bytes : int
        Bytes per main-memory word (a power of two).
    max_words : int
        The most words a row can touch (at least 1).

    Members
    -------
    valid : ``In(1)``
        A word of the row arrives on ``word``.
    index : ``In(range(max_words))``
        Its index within the row.
    last : ``In(1)``
        It is the row's last word.
    offset : ``In(range(word_bytes))``
        The row's start byte within its first word (at least 1 bit wide).
    word : ``In(8 * word_bytes)``
        The word, byte i in bits 8i .. 8i+7.
    row : ``Out(8 * word_bytes * max_words)``
        The row's bytes, byte 0 in bits 0 .. 7.
    """

    def __init__(self, word_bytes: int, max_words: int):
        if not isinstance(word_bytes, int) or word_bytes < 1 or word_bytes & (word_bytes - 1) != 0:
            raise ValueError(f"word_bytes must be a power of two, not {word_bytes!r}")
        if not isinstance(max_words, int) or max_words < 1:
            raise ValueError(f"max_words must be a positive integer, not {max_words!r}")
        self.word_bytes, self.max_words = word_bytes, max_words
        super().__init__(
            {
                "valid": In(1),
                "index": In(range(max_words)),
                "last": In(1),
                "offset": In(max(1, word_bytes.bit_length() - 1)),
                "word": In(8 * word_bytes),
                "row": Out(8 * word_bytes * max_words),
            }
        )

    def elaborate(self, _platform):
        m = Module()
        width = 8 * self.word_bytes
        previous = Signal(width)
        held = [Signal(width, name=f"chunk{k}") for k in range(self.max_words)]
        pair_chunk = Cat(previous, self.word).bit_select(self.offset << 3, width)
        tail_chunk = Cat(self.word, Const(0, width)).bit_select(self.offset << 3, width)
        merged = []
        for k, chunk in enumerate(held):
            value = Mux(
                self.valid & (self.index == k + 1),
                pair_chunk,
                Mux(self.valid & self.last & (self.index == k), tail_chunk, chunk),
            )
            merged.append(value)
            m.d.sync += chunk.eq(value)
        with m.If(self.valid):
            m.d.sync += previous.eq(self.word)
        m.d.comb += self.row.eq(Cat(*merged))
        return m


class _State(enum.Enum, shape=2):
    IDLE = 0  # free: may start an instruction in this cycle
    FILL = 1  # writing the second and later rows of a fill, one per cycle
    REQUEST = 2  # issuing main-memory reads, one word per cycle
    DRAIN = 3  # the last read's data arrives and its row is written


class LoadUnit(wiring.Component):
    """Executes LOAD and NOP (target load) with the timing of docs/isa.md.

    Members
    -------
    control : ``Out(UnitControl())``
        The controller interface (`verdigris.hw.units.UnitControl`); ``ready`` is ``free``.
    mem : ``In(ReadPort.Signature(addr_width=..., shape=8 * dma_bytes))``
        Main memory's read port: word address, ``dma_bytes`` bytes of data (byte i in bits
        8i..8i+7) in the cycle after the request.
    inp, wgt, acc, req, lut : ``In(WritePort.Signature(addr_width=..., shape=row_bits))``
        The buffers' write ports (`buffer_ports`, one per `Buffer`), written at the end of
        the cycle. A row's element c is in bits [c*w, (c+1)*w) of ``data``, w =
        `element_bits` of the buffer (the req table's 12-byte records exactly as in main
        memory). The lookup tables' row goes to the store unit's per-lane memories, lane c
        taking element c (hw/core.py).

    Contract, for an instruction started in cycle `s` (`start` high while `free` is high):

    - **busy and latency.** Busy `b` is `max(1, rows)` for a fill, `W + LOAD_OVERHEAD` for a
      transfer, `W` being the main-memory words its rows touch (docs/isa.md's `rows * words`,
      summed over rows; 0 rows: `b` = 2), and 1 for a NOP; latency is 0. `free` is low in
      cycles `s+1 .. s+b-1` and high again in `s+b`, where `in_flight` is low again and
      `push_next` is 1 if the instruction has the `push_next` flag (its completion).
      `push_prev` is always 0. `completed` is 1 in the completion cycle of every
      instruction (with or without flags), else 0.
    - **Throughput.** A transfer issues one main-memory read per cycle in `s+1 .. s+W`
      (`W` words in all, rows back to back) and writes each row in the cycle its last word
      arrives, so the last write is in `s+W+1 = s+b-1`. A fill writes one row per cycle in
      `s .. s+b-1`, the first one from `instr` in the start cycle. Every write is therefore
      done before the completion cycle.
    - **Errors.** A LOAD `buffer` that names no buffer (5..7), a LOAD out of its buffer
      (`buf_row + rows > depth`: with `lut_rows` 0, any row of the lut buffer), a transfer with
      `elems` of 0 or more than `dim` or a main-memory range past the end, a fill of the req
      table, the illegal flags `pop_prev`/`push_prev`, and an instruction this unit does not
      run (another opcode, a NOP for another unit) raise `error` from `s+1` on, sticky until
      reset. Such an instruction writes nothing, reads nothing and pushes nothing, and the
      unit stays not free (the core stops).
    - `start` while `free` is low is ignored; reserved instruction bits are not checked.

    A row is assembled from its words by a `RowAssembler`, as wide as the widest row can
    touch (`dma_bytes - 1` bytes more than the widest row, rounded up to words).

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
        self.depths = {buffer: buffer_rows(config, buffer) for buffer in Buffer}
        members = {"control": Out(UnitControl()), "mem": In(main_read_port(config))}
        for buffer in Buffer:
            members[buffer.name.lower()] = In(
                buffer_write(config, buffer, shape=row_bits(config, buffer))
            )
        super().__init__(members)

    @property
    def buffer_ports(self) -> dict:
        """The write port of each buffer, by `Buffer`."""
        return {buffer: getattr(self, buffer.name.lower()) for buffer in Buffer}

    def elaborate(self, _platform):
        m = Module()
        config = self.config
        dim, dma = config.dim, config.dma_bytes
        dma_shift = dma.bit_length() - 1
        control = self.control
        instr = control.instr
        max_row_bytes = max(row_bytes(config, b) for b in Buffer)

        # ---- decode of `instr` (used in the start cycle only)
        is_nop = opcode(instr) == Opcode.NOP
        load = fields(instr, Load)
        buffer, fill, buf_row, rows = load["buffer"], load["fill"], load["buf_row"], load["rows"]
        elems, addr, stride = load["elems"], load["dram_addr"], load["dram_stride"]
        _, push_next = push_flags(instr)

        nbytes, illegal = self._legality(m)
        bits = {b: element_bits(config, b) for b in Buffer}  # per element

        # ---- registers
        state = Signal(_State)
        error = Signal()
        go = Signal()  # a legal instruction starts in this cycle
        m.d.comb += go.eq(control.start & (state == _State.IDLE) & ~error & ~illegal)
        with m.If(control.start & (state == _State.IDLE) & ~error & illegal):
            m.d.sync += error.eq(1)

        cur_buffer = Signal(_BUFFER_BITS)
        cur_push = Signal()
        cur_elems = Signal(8)
        cur_nbytes = Signal.like(nbytes)
        cur_fill = Signal.like(field(instr, Load, "fill_value"))
        rows_left = Signal(16)
        next_row = Signal(16)  # buffer row of the next fill row, or of the next written row
        complete = Signal()  # this cycle is the completion of an instruction with push_next
        finished = Signal()  # this cycle is the completion of an instruction
        m.d.sync += [complete.eq(0), finished.eq(0)]

        m.d.comb += [
            control.free.eq((state == _State.IDLE) & ~error),
            control.ready.eq(control.free),
            control.in_flight.eq(state != _State.IDLE),
            control.error.eq(error),
            control.push_next.eq(complete),
            control.push_prev.eq(0),
            control.completed.eq(finished),
            self.mem.en.eq(0),  # a read port's enable is high unless driven
        ]

        # Buffer write (one port of the five per cycle); fill rows or assembled transfer rows.
        write_en = Signal()
        write_buffer = Signal(_BUFFER_BITS)
        write_row = Signal(16)
        write_bytes = Signal(8 * max_row_bytes)  # row bytes, for the widest buffer
        write_fill = Signal.like(cur_fill)
        write_is_fill = Signal()
        self._write_buffers(
            m, write_en, write_buffer, write_row, write_bytes, write_fill, write_is_fill
        )

        # ---- transfer: request side
        word_bits = len(self.mem.addr)
        waddr = Signal(word_bits)  # word address of the next read
        wlast = Signal(word_bits)  # word address of the current row's last word
        offset = Signal(max(1, dma_shift))  # the current row's start address % dma_bytes
        row_start = Signal(24)  # byte address of the row after the current one
        row_stride = Signal(24)
        max_words = -(-(dma - 1 + max_row_bytes) // dma)  # words a row can touch
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
            m.d.comb += [self.mem.en.eq(1), self.mem.addr.eq(waddr)]
            m.d.sync += [
                resp_valid.eq(1),
                resp_chunk.eq(chunk),
                resp_last.eq(last_word),
                resp_offset.eq(offset),
            ]

        # Row assembly; the row goes out in the cycle its last word arrives.
        m.submodules.assembler = assembler = RowAssembler(dma, max_words)
        m.d.comb += [
            assembler.valid.eq(resp_valid),
            assembler.index.eq(resp_chunk),
            assembler.last.eq(resp_last),
            assembler.offset.eq(resp_offset),
            assembler.word.eq(self.mem.data),
        ]
        # Element c of the row occupies bits c*w .. c*w+w-1; keep those with c < elems.
        keep = Signal(8 * max_row_bytes)
        with m.Switch(cur_buffer):
            for b in Buffer:
                with m.Case(b):
                    m.d.comb += keep.eq(Cat((c < cur_elems).replicate(bits[b]) for c in range(dim)))
        m.d.comb += write_bytes.eq(assembler.row[: 8 * max_row_bytes] & keep)

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
                    m.d.sync += [complete.eq(push_next), finished.eq(1)]
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
                        m.d.sync += [complete.eq(push_next), finished.eq(1)]
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
                    m.d.sync += [state.eq(_State.IDLE), complete.eq(cur_push), finished.eq(1)]
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
                m.d.sync += [state.eq(_State.IDLE), complete.eq(cur_push), finished.eq(1)]

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

    def _legality(self, m: Module):
        """(nbytes, illegal) of `instr`: the bytes of one of its rows (when `elems` is
        legal) and whether this unit rejects it (the contract's errors)."""
        config, instr = self.config, self.control.instr
        dim = config.dim
        max_row_bytes = max(row_bytes(config, b) for b in Buffer)
        is_load = opcode(instr) == Opcode.LOAD
        is_nop = opcode(instr) == Opcode.NOP
        load = fields(instr, Load)
        buffer, fill, buf_row, rows = load["buffer"], load["fill"], load["buf_row"], load["rows"]
        elems, addr, stride = load["elems"], load["dram_addr"], load["dram_stride"]

        bits = {b: element_bits(config, b) for b in Buffer}
        element_width = Array(Const(bits[b], range(max(bits.values()) + 1)) for b in Buffer)
        depths = Array(Const(self.depths[b], 17) for b in Buffer)
        nbytes = Signal(range(max_row_bytes + 1))  # bytes of a row (when elems is legal)
        m.d.comb += nbytes.eq((elems * element_width[buffer] + 7) >> 3)

        bad_unit = Signal()  # wrong opcode or target, or a flag the load unit has not
        m.d.comb += bad_unit.eq(
            ~(is_load | (is_nop & (field(instr, Nop, "target") == Unit.LOAD)))
            | illegal_flags(instr, Unit.LOAD)
            # `buffer` is wider than the buffers need (5..7 name none); the Arrays below
            # would read their last entry for those, so they must be rejected here.
            | (is_load & (buffer > max(Buffer)))
        )
        bad_fill = Signal()  # what makes a fill illegal (cheap: gates the start-cycle write)
        m.d.comb += bad_fill.eq(
            bad_unit | (buf_row + rows > depths[buffer]) | (buffer == Buffer.REQ)
        )
        # The largest end the fields can give: it must not wrap, or a huge transfer would
        # look legal.
        largest = (2 ** len(addr) - 1) + (2 ** len(rows) - 1) * (2 ** len(stride) - 1)
        memory_end = Signal(range(largest + max_row_bytes + 1))
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
        return nbytes, illegal

    def _write_buffers(self, m: Module, en, buffer, row, data, fill, is_fill) -> None:
        """Drive the buffer write ports: in a cycle with `en`, row `row` of `buffer` takes
        `data` (an assembled row), or `fill` in every element when `is_fill`."""
        for b, port in self.buffer_ports.items():
            # The fill value, sign-extended to an element, in every element.
            fill_element = Signal(element_bits(self.config, b), name=f"fill_{b.name.lower()}")
            m.d.comb += fill_element.eq(fill.as_signed())
            fill_data = fill_element.replicate(self.config.dim)
            m.d.comb += [
                port.en.eq(en & (buffer == b)),
                port.addr.eq(row[: len(port.addr)]),
                port.data.eq(Mux(is_fill, fill_data, data[: len(port.data)])),
            ]
