"""The controller: fetch, the three instruction queues, dependency tokens, start and end.

It implements the fetch/dispatch half of the cycle model of docs/isa.md exactly:

- `run` (a strobe while idle) starts a program; the cycle after it is cycle 0. Fetch reads
  instruction memory one word per cycle (the read is issued a cycle ahead, so the word for
  `pc` is there when needed) and pushes it to its unit's queue if that queue had room at the
  start of the cycle; FINISH stops fetch.
- A unit's queue head starts when the unit is `ready` and every token it pops is available,
  counting the pushes of instructions completing in this very cycle. Pops take effect at the
  start, pushes at completion.
- `done` rises in the first cycle whose start state has fetch stopped, every queue empty and
  every unit idle with nothing in flight; `cycles` then holds that cycle's number, which is
  the program's cycle count. An illegal opcode or a unit error stops the core with `error`
  and `done` set, so nothing hangs.

Performance counters: busy, stall and started instructions per unit, as Activity defines
them (docs/isa.md).
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import fifo, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from verdigris.arch.config import AccelConfig
from verdigris.arch.isa import TOKEN_COUNTERS, Nop, Opcode, Unit
from verdigris.hw.units import INSTRUCTION_BITS, dep_flags, field, flag, opcode

__all__ = ["UNIT_NAMES", "Controller", "ControllerWithImem"]

UNIT_NAMES = tuple(unit.name.lower() for unit in Unit)  # port name prefixes, indexed by Unit
COUNTER_BITS = 16
PERF_BITS = 32


class Controller(wiring.Component):
    """Fetch, queues, tokens and end detection for one core (see the module docstring).

    Per unit `u` in load, compute, store: `u_start` and `u_instr` (the queue head, valid
    whenever the queue is not empty) out; `u_ready` (may start the head now), `u_free`
    (idle, for stall counting), `u_push_prev`/`u_push_next` (completions this cycle),
    `u_in_flight` and `u_error` in.
    """

    def __init__(self, config: AccelConfig):
        if not isinstance(config, AccelConfig):
            raise TypeError(f"config must be an AccelConfig, not {config!r}")
        self.config = config
        pc_bits = max(1, (config.instruction_capacity - 1).bit_length())
        members = {
            "run": In(1),
            "running": Out(1),
            "done": Out(1),
            "error": Out(1),
            "cycles": Out(PERF_BITS),
            "imem_addr": Out(pc_bits),
            "imem_en": Out(1),
            "imem_data": In(INSTRUCTION_BITS),
        }
        for unit in UNIT_NAMES:
            members |= {
                f"{unit}_start": Out(1),
                f"{unit}_instr": Out(INSTRUCTION_BITS),
                f"{unit}_ready": In(1),
                f"{unit}_free": In(1),
                f"{unit}_push_prev": In(2),
                f"{unit}_push_next": In(2),
                f"{unit}_in_flight": In(1),
                f"{unit}_error": In(1),
                f"{unit}_busy_cycles": Out(PERF_BITS),
                f"{unit}_stall_cycles": Out(PERF_BITS),
                f"{unit}_instructions": Out(PERF_BITS),
            }
        super().__init__(members)

    def elaborate(self, _platform):
        m = Module()
        config = self.config
        queues = {}
        for unit in UNIT_NAMES:
            queue = fifo.SyncFIFO(width=INSTRUCTION_BITS, depth=config.queue_depth)
            m.submodules[f"{unit}_queue"] = queue
            queues[unit] = queue

        pc = Signal.like(self.imem_addr)
        fetching = Signal()  # fetch has not stopped
        word = self.imem_data  # the instruction at `pc` (read issued in the previous cycle)

        # ---- fetch
        target = Signal(2)
        legal = Signal()
        op = opcode(word)
        with m.Switch(op):
            with m.Case(Opcode.LOAD):
                m.d.comb += [target.eq(Unit.LOAD), legal.eq(1)]
            with m.Case(Opcode.GEMM, Opcode.VECTOR):
                m.d.comb += [target.eq(Unit.COMPUTE), legal.eq(1)]
            with m.Case(Opcode.STORE):
                m.d.comb += [target.eq(Unit.STORE), legal.eq(1)]
            with m.Case(Opcode.NOP):
                m.d.comb += [
                    target.eq(field(word, Nop, "target")),
                    legal.eq(field(word, Nop, "target") != 3),
                ]
            with m.Case(Opcode.FINISH):
                m.d.comb += legal.eq(dep_flags(word) == 0)  # FINISH carries no flags
        is_finish = op == Opcode.FINISH
        advance = Signal()
        fetch_error = Signal()
        with m.If(fetching & self.running):
            with m.If(~legal):
                m.d.comb += fetch_error.eq(1)
            with m.Elif(is_finish):
                m.d.sync += fetching.eq(0)
            with m.Else():
                for index, unit in enumerate(UNIT_NAMES):
                    queue = queues[unit]
                    m.d.comb += queue.w_data.eq(word)
                    with m.If((target == index) & queue.w_rdy):
                        m.d.comb += [queue.w_en.eq(1), advance.eq(1)]
        next_pc = Signal.like(pc)
        m.d.comb += next_pc.eq(pc + advance)
        with m.If(self.run & ~self.running):
            m.d.comb += next_pc.eq(0)
        m.d.sync += pc.eq(next_pc)
        m.d.comb += [self.imem_addr.eq(next_pc), self.imem_en.eq(1)]

        # ---- tokens and starts
        counters = {c.name: Signal(COUNTER_BITS, name=f"tokens_{c.name}") for c in TOKEN_COUNTERS}
        starts = {}
        for unit in UNIT_NAMES:
            head = queues[unit].r_data
            m.d.comb += getattr(self, f"{unit}_instr").eq(head)
            tokens_ok = Signal(name=f"{unit}_tokens_ok")
            conditions = []
            for counter in TOKEN_COUNTERS:
                if UNIT_NAMES[counter.popper] != unit:
                    continue
                available = counters[counter.name] + self._pushed(counter)
                conditions.append(~flag(head, counter.pop_flag) | (available != 0))
            m.d.comb += tokens_ok.eq(
                conditions[0] if len(conditions) == 1 else conditions[0] & conditions[1]
            )
            start = Signal(name=f"{unit}_go")
            m.d.comb += start.eq(
                self.running
                & ~self.error
                & queues[unit].r_rdy
                & getattr(self, f"{unit}_ready")
                & tokens_ok
            )
            m.d.comb += [getattr(self, f"{unit}_start").eq(start), queues[unit].r_en.eq(start)]
            starts[unit] = start

        for counter in TOKEN_COUNTERS:
            popper = UNIT_NAMES[counter.popper]
            popped = starts[popper] & flag(queues[popper].r_data, counter.pop_flag)
            value = counters[counter.name]
            with m.If(self.run & ~self.running):
                m.d.sync += value.eq(0)
            with m.Else():
                m.d.sync += value.eq(value + self._pushed(counter) - popped)

        # ---- start, end, errors, counters
        unit_error = Signal()
        m.d.comb += unit_error.eq(
            self.load_error | self.compute_error | self.store_error | fetch_error
        )
        empty = ~(queues["load"].r_rdy | queues["compute"].r_rdy | queues["store"].r_rdy)
        idle = (
            self.load_free
            & self.compute_free
            & self.store_free
            & ~self.load_in_flight
            & ~self.compute_in_flight
            & ~self.store_in_flight
        )
        with m.If(self.run & ~self.running):
            m.d.sync += [
                self.running.eq(1),
                self.done.eq(0),
                self.error.eq(0),
                fetching.eq(1),
                self.cycles.eq(0),
            ]
            for unit in UNIT_NAMES:
                m.d.sync += [
                    getattr(self, f"{unit}_busy_cycles").eq(0),
                    getattr(self, f"{unit}_stall_cycles").eq(0),
                    getattr(self, f"{unit}_instructions").eq(0),
                ]
        with m.Elif(self.running):
            with m.If(unit_error):
                m.d.sync += [self.error.eq(1), self.done.eq(1), self.running.eq(0)]
            with m.Elif(~fetching & empty & idle):
                m.d.sync += [self.done.eq(1), self.running.eq(0)]
            with m.Else():
                m.d.sync += self.cycles.eq(self.cycles + 1)
                for unit in UNIT_NAMES:
                    free = getattr(self, f"{unit}_free")
                    busy = getattr(self, f"{unit}_busy_cycles")
                    stall = getattr(self, f"{unit}_stall_cycles")
                    count = getattr(self, f"{unit}_instructions")
                    with m.If(starts[unit] | ~free):
                        m.d.sync += busy.eq(busy + 1)
                    with m.If(free & queues[unit].r_rdy & ~starts[unit]):
                        m.d.sync += stall.eq(stall + 1)
                    with m.If(starts[unit]):
                        m.d.sync += count.eq(count + 1)
        return m

    def _pushed(self, counter):
        """The pushes on `counter` this cycle: its pushing unit's port for the push flag."""
        return getattr(self, f"{UNIT_NAMES[counter.pusher]}_{counter.push_flag}")


class ControllerWithImem(wiring.Component):
    """A Controller and its instruction memory, which the host loads through a write port:
    `imem_addr`, `imem_wdata` and `imem_we` (honoured while `running` is low).
    Every other port is the Controller's own. `controller` replaces the default
    `Controller(config)` (a variant with the same ports)."""

    def __init__(self, config: AccelConfig, controller: Controller | None = None):
        if not isinstance(config, AccelConfig):
            raise TypeError(f"config must be an AccelConfig, not {config!r}")
        self.config = config
        self.controller = Controller(config) if controller is None else controller
        members = dict(self.controller.signature.members.items())
        address = members.pop("imem_addr")
        del members["imem_en"], members["imem_data"]
        members |= {
            "imem_addr": In(address.shape),
            "imem_wdata": In(INSTRUCTION_BITS),
            "imem_we": In(1),
        }
        super().__init__(members)

    def elaborate(self, _platform):
        m = Module()
        m.submodules.controller = ctl = self.controller
        m.submodules.imem = imem = Memory(
            shape=INSTRUCTION_BITS, depth=self.config.instruction_capacity, init=[]
        )
        read, write = imem.read_port(), imem.write_port()
        m.d.comb += [
            read.addr.eq(ctl.imem_addr),
            read.en.eq(ctl.imem_en),
            ctl.imem_data.eq(read.data),
            write.addr.eq(self.imem_addr),
            write.data.eq(self.imem_wdata),
            write.en.eq(self.imem_we & ~ctl.running),
        ]
        for name, member in self.signature.members.items():
            if name.startswith("imem_"):
                continue
            outer, inner = getattr(self, name), getattr(ctl, name)
            m.d.comb += inner.eq(outer) if member.flow is In else outer.eq(inner)
        return m
