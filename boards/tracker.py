"""The layer tracker: per-layer counters on a board, where the host cannot watch the core
every cycle (docs/host-port.md, "Layer boundaries" and "Over a serial line").

The host loads the boundary targets of its Program (`boundary_targets`, four completion
counts each) and, after the last, a target no run reaches. In every cycle of the run (from
the cycle after the core sees `run`, while `done` is low) the tracker compares the
completion counters with the next target; when it is reached, it records every counter of
that cycle (`COUNTERS`, the low 32 bits of each) and moves on to the following target.

It compares one target a cycle, so boundaries reached in the same cycle (empty layers) are
recorded in the cycles after it, one each; but those records then follow each other cycle
by cycle, so every cycle in which one of them was really reached has a record, and the host
finds each boundary's snapshot as the first record whose completion counters reach its
target (`verdigris.arch.host_port.snapshots_from_records`).

A record is captured into one of two shadow registers and then written into the record
memory a counter a cycle (`RECORD_WORDS` words a record). A third record arriving while two
wait is lost: `overrun` rises and stays until the next run, and the host reports the run's
total only.
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from verdigris.arch.counters import COMPLETION_COUNTERS, COUNTERS
from verdigris.arch.serial_link import RECORD_WORDS, TARGET_BITS

__all__ = ["LayerTracker"]

_WORD = 32  # bits of a recorded counter
_TARGET_FIELD = TARGET_BITS // len(COMPLETION_COUNTERS)


class LayerTracker(wiring.Component):
    """Per-layer snapshots of the core's counters (see the module docstring).

    Parameters
    ----------
    counter_shapes : dict
        The width of each counter port of COUNTERS.
    max_targets : int
        Targets the target memory holds, the last of them the one no run reaches: a Program
        of up to `max_targets` layers is tracked. Records take `RECORD_WORDS` 32-bit words
        each.

    Members
    -------
    start : In(1)
        The core sees `run` in this cycle: the next cycle is cycle 0 of the run.
    done : In(1)
        The core's `done`.
    one In per counter of COUNTERS
        The core's counters.
    target_addr, target_data : In, target_we : In(1)
        The host's writes of targets (TARGET_BITS each, the completion counts in
        COMPLETION_COUNTERS order, 32 bits each from bit 0).
    record_addr : In, record_data : Out(32)
        The host's reads of the records (a word the cycle after its address).
    records : Out(16)
        Records written so far in this run.
    overrun : Out(1)
        A record was lost.
    """

    def __init__(self, counter_shapes: dict, *, max_targets: int):
        self.max_targets = max_targets
        self.counter_names = tuple(COUNTERS)
        members = {
            "start": In(1),
            "done": In(1),
            "target_addr": In(range(max_targets)),
            "target_data": In(TARGET_BITS),
            "target_we": In(1),
            "record_addr": In(range(max_targets * RECORD_WORDS)),
            "record_data": Out(_WORD),
            "records": Out(16),
            "overrun": Out(1),
        }
        members |= {name: In(counter_shapes[name]) for name in self.counter_names}
        super().__init__(members)

    def elaborate(self, _platform):
        m = Module()
        depth = self.max_targets
        fields = len(self.counter_names)

        # Targets: read without a clock (LUT RAM), so the next one is there every cycle.
        m.submodules.targets = targets = Memory(shape=TARGET_BITS, depth=depth, init=[])
        write = targets.write_port()
        read = targets.read_port(domain="comb")
        m.d.comb += [
            write.addr.eq(self.target_addr),
            write.data.eq(self.target_data),
            write.en.eq(self.target_we),
        ]
        index = Signal(range(depth))
        m.d.comb += read.addr.eq(index)
        target = [read.data.word_select(i, _TARGET_FIELD) for i in range(len(COMPLETION_COUNTERS))]
        load, compute, nops, store = (getattr(self, name) for name in COMPLETION_COUNTERS)
        reached = (
            (load >= target[0])
            & (store >= target[3])
            & (nops >= target[2])
            & (compute - nops >= target[1] - target[2])
        )

        active = Signal()
        with m.If(self.start):
            m.d.sync += [active.eq(1), index.eq(0), self.records.eq(0), self.overrun.eq(0)]
        with m.Elif(self.done):
            m.d.sync += active.eq(0)
        detect = Signal()
        m.d.comb += detect.eq(active & ~self.done & reached & (index != depth - 1))
        with m.If(detect):
            m.d.sync += index.eq(index + 1)

        # Two shadow registers: `head` drains a word a cycle (lowest counter first), `second`
        # waits. Each holds every counter's low 32 bits.
        live = Cat(*(getattr(self, name)[:_WORD] for name in self.counter_names))
        head, second = Signal(_WORD * fields), Signal(_WORD * fields)
        pending = Signal(range(3))  # records in the shadows
        word = Signal(range(fields))
        finishing = (pending != 0) & (word == fields - 1)
        left = pending - finishing  # records still in the shadows after this cycle

        m.submodules.store = store_memory = Memory(shape=_WORD, depth=depth * RECORD_WORDS, init=[])
        record_write, record_read = store_memory.write_port(), store_memory.read_port()
        m.d.comb += [
            record_write.addr.eq(self.records * RECORD_WORDS + word),
            record_write.data.eq(head[:_WORD]),
            record_write.en.eq(pending != 0),
            record_read.addr.eq(self.record_addr),
            self.record_data.eq(record_read.data),
        ]
        with m.If(pending != 0):
            m.d.sync += [head.eq(head >> _WORD), word.eq(word + 1)]
        with m.If(finishing):
            m.d.sync += [word.eq(0), self.records.eq(self.records + 1)]

        with m.If(detect & (left == 0)):
            m.d.sync += [head.eq(live), word.eq(0), pending.eq(1)]
        with m.Elif(detect & (left == 1)):
            m.d.sync += [second.eq(live), pending.eq(2)]
            with m.If(finishing):
                m.d.sync += head.eq(second)
        with m.Else():
            with m.If(detect):
                m.d.sync += self.overrun.eq(1)
            with m.If(finishing):
                m.d.sync += [head.eq(second), pending.eq(left)]
        with m.If(self.start):
            m.d.sync += [pending.eq(0), word.eq(0)]
        return m
