"""The controller: fetch, the three instruction queues, dependency tokens, start and end.

It implements the fetch/dispatch half of the cycle model of docs/isa.md exactly:

- `run` (a strobe while idle) starts a program; the cycle after it is cycle 0. Fetch reads
  the code memory one instruction per cycle through the `code` port (the read is issued a
  cycle ahead, so the word for `pc` is there when needed) and pushes it to its unit's
  queue if that queue had room at the start of the cycle; FINISH stops fetch.
- A unit's queue head starts when the unit is `ready` and every token it pops is available,
  counting the pushes of instructions completing in this very cycle. Pops take effect at the
  start, pushes at completion.
- `done` rises in the first cycle whose start state has fetch stopped, every queue empty and
  every unit idle with nothing in flight; `cycles` then holds that cycle's number, which is
  the program's cycle count. An illegal opcode or a unit error stops the core with `error`
  and `done` set, so nothing hangs.

Performance counters: busy, stall and started instructions per unit, as Activity defines
them (docs/isa.md); `fetched` is the fetch strobe the core counts `instruction_fetches` from.

The controller sees each unit through one flipped `UnitControl` member named after the unit
(`load`, `compute`, `store`), and shows each unit's counters as a `UnitCounters` member of
`perf` (`perf.load.busy_cycles`, ...).
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import fifo, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from verdigris.arch.config import AccelConfig
from verdigris.arch.isa import TOKEN_COUNTERS, Nop, Opcode, Unit, address_bits
from verdigris.hw.units import (
    INSTRUCTION_BITS,
    UnitControl,
    code_port,
    dep_flags,
    field,
    flag,
    opcode,
)

__all__ = [
    "PERF_BITS",
    "UNIT_NAMES",
    "Controller",
    "ControllerWithImem",
    "UnitCounters",
    "code_memory",
    "code_memory_host_port",
]

UNIT_NAMES = tuple(unit.name.lower() for unit in Unit)  # member names, indexed by Unit
COUNTER_BITS = 16
PERF_BITS = 32


class UnitCounters(wiring.Signature):
    """One unit's performance counters, as Activity defines them (docs/isa.md).

    Members
    -------
    busy_cycles : ``Out(PERF_BITS)``
        Cycles in which the unit started an instruction or was not free.
    stall_cycles : ``Out(PERF_BITS)``
        Cycles in which the unit was free, had a queued instruction and did not start it.
    instructions : ``Out(PERF_BITS)``
        Instructions started.
    """

    def __init__(self):
        super().__init__(
            {
                "busy_cycles": Out(PERF_BITS),
                "stall_cycles": Out(PERF_BITS),
                "instructions": Out(PERF_BITS),
            }
        )

    def __eq__(self, other):
        return type(self) is type(other)

    def __hash__(self):
        return hash(type(self))

    def __repr__(self):
        return "UnitCounters()"


def unit_controls() -> dict[str, UnitControl]:
    """The control interface of each unit, by member name (only the compute unit has
    `nop_completed`)."""
    return {name: UnitControl(nop_completed=name == "compute") for name in UNIT_NAMES}


class Controller(wiring.Component):
    """Fetch, queues, tokens and end detection for one core (see the module docstring).

    Members
    -------
    run : ``In(1)``
        A strobe while idle starts the program at instruction 0.
    running, done, error : ``Out(1)``
        Running; finished (or stopped); stopped on an error.
    cycles : ``Out(PERF_BITS)``
        Cycles of the run so far.
    fetched : ``Out(1)``
        An instruction is fetched in this cycle: pushed onto its unit's queue, or a FINISH
        that stops fetch (one per cycle at most, in program order).
    code : ``In(code_port(config))``
        The code memory's read port (``addr``, ``en`` out, ``data`` in: one instruction,
        one cycle after the address).
    load, compute, store : ``In(UnitControl(...))``
        Each unit's control interface, flipped: the controller drives ``start`` and
        ``instr`` (the queue head, valid whenever the queue is not empty) and reads the rest.
        ``completed`` and ``nop_completed`` are not used here (the core counts them).
    perf : ``Out(Signature({unit: Out(UnitCounters())}))``
        Each unit's busy, stall and instruction counters.
    """

    def __init__(self, config: AccelConfig):
        if not isinstance(config, AccelConfig):
            raise TypeError(f"config must be an AccelConfig, not {config!r}")
        self.config = config
        members = {
            "run": In(1),
            "running": Out(1),
            "done": Out(1),
            "error": Out(1),
            "cycles": Out(PERF_BITS),
            "fetched": Out(1),
            "code": In(code_port(config)),
        }
        members |= {name: In(control) for name, control in unit_controls().items()}
        members["perf"] = Out(wiring.Signature({name: Out(UnitCounters()) for name in UNIT_NAMES}))
        super().__init__(members)

    def elaborate(self, _platform):
        m = Module()
        config = self.config
        queues = {}
        for unit in UNIT_NAMES:
            queue = fifo.SyncFIFO(width=INSTRUCTION_BITS, depth=config.queue_depth)
            m.submodules[f"{unit}_queue"] = queue
            queues[unit] = queue

        pc = Signal.like(self.code.addr)
        fetching = Signal()  # fetch has not stopped
        word = self.code.data  # the instruction at `pc` (read issued in the previous cycle)

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
        finished = Signal()  # FINISH is fetched in this cycle
        fetch_error = Signal()
        with m.If(fetching & self.running):
            with m.If(~legal):
                m.d.comb += fetch_error.eq(1)
            with m.Elif(is_finish):
                m.d.sync += fetching.eq(0)
                m.d.comb += finished.eq(1)
            with m.Else():
                for index, unit in enumerate(UNIT_NAMES):
                    queue = queues[unit]
                    m.d.comb += queue.w_data.eq(word)
                    with m.If((target == index) & queue.w_rdy):
                        m.d.comb += [queue.w_en.eq(1), advance.eq(1)]
        m.d.comb += self.fetched.eq(advance | finished)
        next_pc = Signal.like(pc)
        m.d.comb += next_pc.eq(pc + advance)
        with m.If(self.run & ~self.running):
            m.d.comb += next_pc.eq(0)
        m.d.sync += pc.eq(next_pc)
        m.d.comb += [self.code.addr.eq(next_pc), self.code.en.eq(1)]

        # ---- tokens and starts
        counters = {c.name: Signal(COUNTER_BITS, name=f"tokens_{c.name}") for c in TOKEN_COUNTERS}
        starts = {}
        controls = {unit: getattr(self, unit) for unit in UNIT_NAMES}
        perf = {unit: getattr(self.perf, unit) for unit in UNIT_NAMES}
        for unit in UNIT_NAMES:
            head = queues[unit].r_data
            m.d.comb += controls[unit].instr.eq(head)
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
                self.running & ~self.error & queues[unit].r_rdy & controls[unit].ready & tokens_ok
            )
            m.d.comb += [controls[unit].start.eq(start), queues[unit].r_en.eq(start)]
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
            self.load.error | self.compute.error | self.store.error | fetch_error
        )
        empty = ~(queues["load"].r_rdy | queues["compute"].r_rdy | queues["store"].r_rdy)
        idle = (
            self.load.free
            & self.compute.free
            & self.store.free
            & ~self.load.in_flight
            & ~self.compute.in_flight
            & ~self.store.in_flight
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
                    perf[unit].busy_cycles.eq(0),
                    perf[unit].stall_cycles.eq(0),
                    perf[unit].instructions.eq(0),
                ]
        with m.Elif(self.running):
            with m.If(unit_error):
                m.d.sync += [self.error.eq(1), self.done.eq(1), self.running.eq(0)]
            with m.Elif(~fetching & empty & idle):
                m.d.sync += [self.done.eq(1), self.running.eq(0)]
            with m.Else():
                m.d.sync += self.cycles.eq(self.cycles + 1)
                for unit in UNIT_NAMES:
                    free = controls[unit].free
                    busy = perf[unit].busy_cycles
                    stall = perf[unit].stall_cycles
                    count = perf[unit].instructions
                    with m.If(starts[unit] | ~free):
                        m.d.sync += busy.eq(busy + 1)
                    with m.If(free & queues[unit].r_rdy & ~starts[unit]):
                        m.d.sync += stall.eq(stall + 1)
                    with m.If(starts[unit]):
                        m.d.sync += count.eq(count + 1)
        return m

    def _pushed(self, counter):
        """The pushes on `counter` this cycle: its pushing unit's port for the push flag."""
        control = getattr(self, UNIT_NAMES[counter.pusher])
        return {"push_prev": control.push_prev, "push_next": control.push_next}[counter.push_flag]


def code_memory_host_port(config: AccelConfig) -> dict:
    """The host's members for writing the code memory: `imem_addr`, `imem_wdata`, `imem_we`."""
    return {
        "imem_addr": In(address_bits(config.instruction_capacity)),
        "imem_wdata": In(INSTRUCTION_BITS),
        "imem_we": In(1),
    }


def code_memory(m: Module, config: AccelConfig, fetch, host, running) -> None:
    """Add the code memory (`instruction_capacity` instructions) to `m`: the controller's
    `code` port (`fetch`) reads it, the host writes it through `host`'s
    `code_memory_host_port` members while `running` is low."""
    m.submodules.imem = imem = Memory(
        shape=INSTRUCTION_BITS, depth=config.instruction_capacity, init=[]
    )
    read, write = imem.read_port(), imem.write_port()
    wiring.connect(m, read, fetch)
    m.d.comb += [
        write.addr.eq(host.imem_addr),
        write.data.eq(host.imem_wdata),
        write.en.eq(host.imem_we & ~running),
    ]


class ControllerWithImem(wiring.Component):
    """A Controller and a code memory, which the host loads through a write port:
    `imem_addr`, `imem_wdata` and `imem_we` (honoured while `running` is low).
    Every other port is the Controller's own. `controller` replaces the default
    `Controller(config)` (a variant with the same ports)."""

    def __init__(self, config: AccelConfig, controller: Controller | None = None):
        if not isinstance(config, AccelConfig):
            raise TypeError(f"config must be an AccelConfig, not {config!r}")
        self.config = config
        self.controller = Controller(config) if controller is None else controller
        members = dict(self.controller.signature.members.items())
        del members["code"]
        super().__init__(members | code_memory_host_port(config))

    def elaborate(self, _platform):
        m = Module()
        m.submodules.controller = ctl = self.controller
        code_memory(m, self.config, ctl.code, self, ctl.running)
        for name, member in self.signature.members.items():
            if name.startswith("imem_"):
                continue
            outer, inner = getattr(self, name), getattr(ctl, name)
            if member.is_signature:  # the unit interfaces and the counters, passed through
                wiring.connect(m, wiring.flipped(outer), inner)
            else:
                m.d.comb += inner.eq(outer) if member.flow is In else outer.eq(inner)
        return m
