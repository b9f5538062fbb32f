"""The store unit: accumulator rows through the requantizer (and, with `lut`, the lookup
tables) into main memory, and NOP.

Timing (cycle `s` is the start cycle): the acc and req rows of row `i` are read in cycle
`Q_i`, with `Q_0 = s + 1` and `Q_{i+1} = Q_i + words_i` (`words_i` main-memory words of
row `i`, docs/isa.md). The acc row arrives in `Q_i + 1` and the requantizer
(`hw/requant.py`) takes `Requantizer.LATENCY` = 4 cycles, so row `i`'s bytes are ready in
`Q_i + 5` and written one word per cycle from then on. The last word is written in
`s + 5 + sum(words)`; the unit is free, and the STORE complete (pushing its token), in
`s + sum(words) + STORE_OVERHEAD` with STORE_OVERHEAD = LATENCY + 2 = 6. A NOP takes one
cycle. `completed` is 1 in the completion cycle of every instruction, else 0.

A STORE with `lut` = t > 0 adds the lookup stage: in `Q_i + 5`, the cycle row `i` is in the
last requantizer stage, lane c reads row `(t-1)*256 + y_c + 128` of its own lookup memory
(the `lut` port, one address per lane); the entries arrive in `Q_i + 6`, and the row's words
are written from then on, one cycle later than without a lookup. The unit stays busy
LUT_LATENCY = 1 cycle longer: `s + sum(words) + STORE_OVERHEAD + LUT_LATENCY`. The lookup
memories' read data holds while their enable is low (a memory read port's), so a row's
entries stay on the port while its words go out. Rows of a STORE without `lut` are written
as before, so its timing does not change.

Requantization is exactly the golden model's (docs/quantization.md): x = wrap32(acc + bias),
p = x * multiplier, q = round_half_even(p / 2**shift), y = clamp(q + zero_point). With a
`pack`, the low bits of each y (or looked-up byte) are packed, 2**pack to a byte, lanes at or
past `elems` zero: a row of ceil(elems * width / 8) bytes.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from verdigris.arch.config import AccelConfig
from verdigris.arch.isa import (
    BINARY_PACK,
    LANE_BITS,
    LUT_ENTRIES,
    MAX_LUT_TABLES,
    REQ_ENTRY,
    Buffer,
    Opcode,
    Store,
    Unit,
    address_bits,
    element_bits,
    max_pack,
    operand_width,
    row_bytes,
)
from verdigris.arch.timing import LUT_LATENCY, STORE_OVERHEAD
from verdigris.hw.pe import PACK_BITS
from verdigris.hw.requant import Requantizer
from verdigris.hw.units import (
    UnitControl,
    buffer_read,
    field,
    illegal_flags,
    lane_read,
    main_write_port,
    opcode,
    push_flags,
)

__all__ = ["StoreUnit"]

REQUANT_STAGES = Requantizer.LATENCY


def _entry_layout() -> data.StructLayout:
    """The req table entry as a hardware struct, from the ISA's one definition."""
    fields = {}
    for name in REQ_ENTRY.names:
        kind = REQ_ENTRY.fields[name][0]
        width = 8 * kind.itemsize
        fields[name] = signed(width) if kind.kind == "i" else unsigned(width)
    return data.StructLayout(fields)


_Entry = _entry_layout()


class StoreUnit(wiring.Component):
    """STORE and NOP for one core; see the module docstring for the exact timing.

    Members
    -------
    control : ``Out(UnitControl())``
        The controller interface (`verdigris.hw.units.UnitControl`); ``ready`` is ``free``.
    acc : ``In(ReadPort.Signature(addr_width=..., shape=ArrayLayout(signed(acc_bits), dim)))``
        The accumulator's read port (data in the cycle after the request).
    req : ``In(ReadPort.Signature(addr_width=..., shape=ArrayLayout(entry, dim)))``
        The req table's read port, each entry the REQ_ENTRY record as a struct.
    lut : ``In(lane_read(config, Buffer.LUT))``
        The lookup tables' read, one address per lane (`verdigris.hw.units.lane_read`):
        lane c's entry in the cycle after ``en``, held while ``en`` is low.
    mem : ``In(WritePort.Signature(addr_width=..., shape=8 * dma_bytes, granularity=8))``
        Main memory's write port, ``en`` the byte enables of the word.
    """

    def __init__(self, config: AccelConfig):
        if not isinstance(config, AccelConfig):
            raise TypeError(f"config must be an AccelConfig, not {config!r}")
        if STORE_OVERHEAD != REQUANT_STAGES + 2:
            raise ValueError(f"STORE_OVERHEAD must be {REQUANT_STAGES + 2} for this unit")
        if LUT_LATENCY != 1:  # one synchronous read: the lookup is one pipeline stage
            raise ValueError("LUT_LATENCY must be 1 for this unit")
        self.config = config
        super().__init__(
            {
                "control": Out(UnitControl()),
                "acc": In(buffer_read(config, Buffer.ACC)),
                "req": In(buffer_read(config, Buffer.REQ, data.ArrayLayout(_Entry, config.dim))),
                "lut": In(lane_read(config, Buffer.LUT)),
                "mem": In(main_write_port(config)),
            }
        )

    def elaborate(self, _platform):
        m = Module()
        config = self.config
        dim = config.dim
        width = config.dma_bytes
        control = self.control
        word = control.instr
        is_store = opcode(word) == Opcode.STORE
        acc_bits, out_bits = element_bits(config, Buffer.ACC), element_bits(config, Buffer.INP)
        max_row_bytes = max(row_bytes(config, Buffer.ACC), -(-out_bits * dim // 8))
        m.d.comb += [
            control.ready.eq(control.free),
            self.acc.en.eq(0),
            self.req.en.eq(0),
            self.lut.en.eq(0),
        ]

        def packed_bytes(elements, raw, pack):
            """Bytes of a row of `elements` accumulators (raw) or output operands, packed
            2**pack to a byte."""
            operands = (elements * out_bits + 7) >> 3
            for p in range(1, max_pack(config) + 1):
                operands = Mux(pack == p, (elements * operand_width(p) + 7) >> 3, operands)
            return Mux(raw, (elements * acc_bits + 7) >> 3, operands)

        raw = field(word, Store, "raw")
        rows = field(word, Store, "rows")
        elems = field(word, Store, "elems")
        addr = field(word, Store, "dram_addr")
        stride = field(word, Store, "dram_stride")
        table = field(word, Store, "lut")  # 0: no lookup; t: table t - 1
        pack = field(word, Store, "pack")
        nbytes = packed_bytes(elems, raw, pack)
        last_byte = addr + (rows - 1) * stride + nbytes
        bad = Signal()
        m.d.comb += bad.eq(
            is_store
            & (
                (field(word, Store, "acc_row") + rows > config.acc_rows)
                | (elems == 0)
                | (elems > dim)
                | (field(word, Store, "req_row") >= config.req_rows)
                | ((rows != 0) & (last_byte > config.main_memory_bytes))
                | (pack > max_pack(config))
                | (raw & (pack != 0))
                # A lookup replaces requantized bytes (a raw STORE has none), from a table
                # that must lie wholly in the lookup memories.
                | ((table != 0) & (raw | (table * LUT_ENTRIES > config.lut_rows)))
            )
            | illegal_flags(word, Unit.STORE)  # pop_next, push_next: it has no next neighbour
        )
        with m.If(control.start & bad):
            m.d.sync += control.error.eq(1)

        # ---- sequencer: one row read every words_i cycles
        busy = Signal()
        rows_left = Signal(17)
        row_addr = Signal(26)  # byte address of the next row to read
        acc_row = Signal(address_bits(config.acc_rows) + 1)
        row_stride = Signal(24)
        row_raw = Signal()
        row_elems = Signal(range(dim + 1))
        row_table = Signal(range(MAX_LUT_TABLES + 1))
        row_pack = Signal(PACK_BITS)
        req_row = Signal(address_bits(config.req_rows) + 1)
        wait = Signal(16)  # cycles until the next row read
        tail = Signal(16)  # busy cycles left after the last read, counting this one
        pushes = Signal(2)
        push_prev, _ = push_flags(word)
        m.d.comb += [control.free.eq(~busy), control.in_flight.eq(busy)]

        this_row_bytes = Signal(range(max_row_bytes + 1))
        m.d.comb += this_row_bytes.eq(packed_bytes(row_elems, row_raw, row_pack))
        row_words = Signal(16)
        m.d.comb += row_words.eq((row_addr % width + this_row_bytes + width - 1) // width)

        read = Signal()
        m.d.sync += [control.push_prev.eq(0), control.completed.eq(0)]
        with m.If(busy):
            with m.If((rows_left != 0) & (wait == 0)):
                m.d.comb += [
                    read.eq(1),
                    self.acc.addr.eq(acc_row),
                    self.acc.en.eq(1),
                    self.req.addr.eq(req_row),
                    self.req.en.eq(1),
                ]
                m.d.sync += [
                    rows_left.eq(rows_left - 1),
                    acc_row.eq(acc_row + 1),
                    row_addr.eq(row_addr + row_stride),
                    wait.eq(row_words - 1),
                ]
                with m.If(rows_left == 1):
                    # The lookup stage holds the row one cycle more before its words.
                    m.d.sync += tail.eq(
                        row_words + REQUANT_STAGES + Mux(row_table != 0, LUT_LATENCY, 0)
                    )
            with m.Elif(rows_left != 0):
                m.d.sync += wait.eq(wait - 1)
            with m.Elif(tail > 1):
                m.d.sync += tail.eq(tail - 1)
            with m.Else():
                m.d.sync += [busy.eq(0), control.push_prev.eq(pushes), control.completed.eq(1)]
        with m.If(control.start & ~bad):
            with m.If(is_store):
                m.d.sync += [
                    busy.eq(1),
                    rows_left.eq(rows),
                    row_addr.eq(addr),
                    acc_row.eq(field(word, Store, "acc_row")),
                    row_stride.eq(stride),
                    row_raw.eq(raw),
                    row_elems.eq(elems),
                    row_table.eq(table),
                    row_pack.eq(pack),
                    req_row.eq(field(word, Store, "req_row")),
                    wait.eq(0),
                    # rows = 0 reads nothing and stays busy for the fixed overhead.
                    tail.eq(STORE_OVERHEAD - 1 + Mux(table != 0, LUT_LATENCY, 0)),
                    pushes.eq(push_prev),
                ]
            with m.Else():  # NOP: one cycle
                m.d.sync += [control.push_prev.eq(push_prev), control.completed.eq(1)]

        # ---- the requantizer pipeline; every stage loads only when a row arrives, so a row
        # waits in the last stage while its words are written. Stage REQUANT_STAGES + 1 is
        # the lookup's: a row with a table is written from there, a cycle later.
        class Row(data.Struct):
            addr: unsigned(26)
            raw: unsigned(1)
            bytes: unsigned(max_row_bytes.bit_length())
            words: unsigned(16)
            table: unsigned(len(row_table))
            elems: unsigned(len(row_elems))
            pack: unsigned(PACK_BITS)

        stages = REQUANT_STAGES + 1 + LUT_LATENCY
        meta = [Signal(Row, name=f"meta_{k}") for k in range(stages)]
        valid = [Signal(name=f"valid_{k}") for k in range(stages)]
        m.d.sync += [valid[0].eq(read)]
        with m.If(read):
            m.d.sync += meta[0].eq(
                Cat(row_addr, row_raw, this_row_bytes, row_words, row_table, row_elems, row_pack)
            )
        for k in range(1, stages):
            m.d.sync += valid[k].eq(valid[k - 1])
            with m.If(valid[k - 1]):
                m.d.sync += meta[k].eq(meta[k - 1])

        m.submodules.requantizer = requantizer = Requantizer(
            dim, acc_width=acc_bits, output_width=out_bits
        )
        m.d.comb += [requantizer.valid.eq(valid[0]), requantizer.raw.eq(meta[0].raw)]
        bad_shift = Signal()
        for c in range(dim):
            entry = self.req.data[c]
            m.d.comb += [
                requantizer.acc[c].eq(self.acc.data[c]),
                requantizer.bias[c].eq(entry.bias),
                requantizer.multiplier[c].eq(entry.multiplier),
                requantizer.shift[c].eq(entry.shift),  # eq() keeps the low bits
                requantizer.zero_point[c].eq(entry.zero_point),
                requantizer.qmin[c].eq(entry.qmin),
                requantizer.qmax[c].eq(entry.qmax),
            ]
            lane_used = c < meta[0].elems
            out_of_range = (entry.shift < 1) | (entry.shift > 62)
            with m.If(valid[0] & ~meta[0].raw & lane_used & out_of_range):
                m.d.comb += bad_shift.eq(1)
        with m.If(bad_shift):
            m.d.sync += control.error.eq(1)
        result = [requantizer.result[c] for c in range(dim)]
        raw_value2 = [requantizer.raw_result[c] for c in range(dim)]

        # ---- the lookup, issued as a row arrives in the last requantizer stage: lane c reads
        # row (t-1)*LUT_ENTRIES + y_c + LUT_ENTRIES/2 of its memory (y_c is signed). Lanes at
        # or past elems read a row of the same table, which is never written out.
        requantized = meta[REQUANT_STAGES]
        looked_up = meta[REQUANT_STAGES + LUT_LATENCY]
        lookup = requantized.table != 0  # every row of the STORE in flight looks up
        m.d.comb += self.lut.en.eq(valid[REQUANT_STAGES] & lookup)
        base = (requantized.table - 1) * LUT_ENTRIES + LUT_ENTRIES // 2
        for c in range(dim):
            m.d.comb += self.lut.addr[c].eq(base + result[c])

        # ---- words out, from the last requantizer stage or, with a lookup, the stage after.
        # Rows of one STORE all look up or none does, and a STORE's first row reaches the
        # last requantizer stage only after the previous STORE's last word (it started in
        # that STORE's completion cycle), so `lookup` tells which stage is writing.
        row_out = Signal(Row)
        arrived = Signal()
        m.d.comb += [
            row_out.eq(Mux(lookup, looked_up, requantized)),
            arrived.eq(Mux(lookup, valid[REQUANT_STAGES + LUT_LATENCY], valid[REQUANT_STAGES])),
        ]
        row_bytes_out = Signal(8 * max_row_bytes)
        values = [Mux(lookup, self.lut.data[c], result[c]) for c in range(dim)]
        with m.If(requantized.raw):
            m.d.comb += row_bytes_out.eq(Cat(*raw_value2))
        with m.Else():
            m.d.comb += row_bytes_out.eq(Cat(*values))
            # Packed: each lane's low bits (binary: 1 where the value is >= 0), lanes at or
            # past elems zero (docs/isa.md).
            for p in range(1, max_pack(config) + 1):
                width = operand_width(p)
                codes = [~v[LANE_BITS - 1] if p == BINARY_PACK else v[:width] for v in values]
                lanes = [Mux(c < row_out.elems, codes[c], 0) for c in range(dim)]
                with m.If(row_out.pack == p):
                    m.d.comb += row_bytes_out.eq(Cat(*(lane[:width] for lane in lanes)))
        self._write_words(m, arrived, row_out, row_bytes_out)
        return m

    def _write_words(self, m: Module, arrived, row, row_data) -> None:
        """Write a row's bytes (`row_data`, its `Row` record `row`), shifted to the row's
        alignment, into main memory one word per cycle with byte enables, the first word in
        the cycle the row `arrived` in the last stage."""
        width = self.config.dma_bytes
        max_row_bytes = len(row_data) // 8
        emitting = Signal()
        index = Signal(16)
        with m.If(arrived):
            m.d.sync += index.eq(0)
        offset = row.addr % width
        shifted_bytes = Signal(8 * (max_row_bytes + 2 * width))
        mask = Signal(max_row_bytes + 2 * width)
        m.d.comb += [
            shifted_bytes.eq(row_data << (offset * 8)),
            mask.eq(((Const(1, max_row_bytes + 1) << row.bytes) - 1) << offset),
        ]
        current = Signal(16)
        m.d.comb += current.eq(Mux(arrived, 0, index))
        with m.If(arrived | (emitting & (current < row.words))):
            m.d.comb += [
                self.mem.en.eq(mask.word_select(current, width)),
                self.mem.addr.eq(row.addr // width + current),
                self.mem.data.eq(shifted_bytes.word_select(current, 8 * width)),
            ]
            m.d.sync += [index.eq(current + 1), emitting.eq(current + 1 < row.words)]
