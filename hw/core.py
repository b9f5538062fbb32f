"""The accelerator core: controller, load/compute/store units, on-chip buffers, and two
memory interfaces to memories outside it.

Memory interfaces (docs/hardware.md "Memories outside the core"), all synchronous block-RAM
ports, whatever stands behind them (the C++ Verilator harness models them in C++, a board
puts block RAM there, `CoreWithMemories` holds block RAM for the cocotb bench):

- `main_read` (LOAD's reads) and `main_write` (STORE's writes, with a byte enable per
  byte): main memory, `dma_bytes` per word, word addresses. A read's data is there the
  cycle after its address and enable, and stays until the next read; a read and a write of
  the same word in one cycle reads the old word.
- `code`: instruction fetch, one 16-byte instruction per read, addressed by instruction
  index, data the cycle after the address. Instructions live in a memory of their own
  (`instruction_capacity` words): nothing but fetch reads it, so no program can change its
  own code.

The cycle model (docs/isa.md) counts on that timing: a memory that answers later would
keep outputs right but not cycles.

Host port, all synchronous:

- `run` (a strobe while idle) starts the program at instruction 0; `done` rises when it has
  finished (docs/isa.md's end) or stopped on an error (`error`). An error is fatal until
  the host resets the core (`rst`); memories keep their contents across a reset. The host
  loads the memories while `running` is low, through whatever holds them.
- Performance counters: `cycles`, `instruction_fetches`, per unit `*_busy_cycles`,
  `*_stall_cycles`, `*_instructions` (started), `macs` (and of them `macs_int4`,
  `macs_int2`, `macs_int1`), `zero_macs` and the byte
  counters (`verdigris.arch.counters.BYTE_COUNTERS`: main memory, the compute and store
  units' buffer reads and accumulator writes, LOAD's writes into each buffer, the STORE's
  requant-table and lookup-table reads), as the Activity record defines them. Each
  shows, in cycle t, the increments of cycles 0 .. t-1 of the run.
- Completion counters: per unit `*_completed` (instructions completed) and
  `compute_nops_completed` (the compute unit's NOPs among them). Unlike the others they
  include the current cycle's completions, so that a host sees a layer boundary in the
  cycle it happens and can take its snapshot of the other counters then
  (docs/host-port.md).

The port names and order are `verdigris.arch.counters.COUNTERS`.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from verdigris.arch.config import AccelConfig
from verdigris.arch.counters import (
    BYTE_COUNTERS,
    COUNTERS,
    LOAD_WRITE_COUNTERS,
    PACKED_MAC_COUNTERS,
)
from verdigris.arch.isa import (
    Buffer,
    buffer_rows,
    element_bits,
    row_bits,
    row_bytes,
)
from verdigris.hw.compute_unit import COUNTER_BITS, ComputeUnit
from verdigris.hw.controller import PERF_BITS, Controller
from verdigris.hw.load_unit import LoadUnit
from verdigris.hw.store_unit import StoreUnit
from verdigris.hw.units import code_port, main_read_port, main_write_port

# The counter ports' names and order are arch/counters.py's, which every host reads.
__all__ = ["BYTE_COUNTERS", "COUNTERS", "Core"]

# 48 bits, others 32
_WIDE_COUNTERS = frozenset({"macs", *PACKED_MAC_COUNTERS.values(), "zero_macs", *BYTE_COUNTERS})
_UNIT_COUNTERS = ("busy_cycles", "stall_cycles", "instructions")  # per unit, `{unit}_{name}`


class Core(wiring.Component):
    """The accelerator core for one AccelConfig (see the module docstring for the memory
    interfaces, the host port's protocol, and docs/microarchitecture.md for the timing).

    Inside, the controller and the three units are joined through their `UnitControl`
    interfaces, and the units' buffer ports (Amaranth memory port signatures) to the
    memories, with ``wiring.connect``. The host-port members are flat, named as the
    host-port protocol (`verdigris.arch.counters.COUNTERS`) and the Verilog benches expect.
    Its Verilog does not grow with `main_memory_bytes` or `instruction_capacity`: only the
    address widths do.

    Parameters
    ----------
    config : AccelConfig
        The configuration every width and depth comes from.

    Members
    -------
    main_read : ``In(main_read_port(config))``
        LOAD's reads of main memory (``main_read__addr``, ``__en`` out, ``__data`` in).
    main_write : ``In(main_write_port(config))``
        STORE's writes to main memory (``main_write__addr``, ``__data``, ``__en`` out).
    code : ``In(code_port(config))``
        Instruction fetch (``code__addr``, ``__en`` out, ``__data`` in).
    run : ``In(1)``
        A strobe while idle starts the program at instruction 0.
    running : ``Out(1)``
        A program is running; the host may load the memories only while it is low.
    done : ``Out(1)``
        The program finished, or stopped on an error.
    error : ``Out(1)``
        The program stopped on an illegal instruction or address; fatal until reset.
    cycles : ``Out(32)``
        The run's cycle count so far (the program's, once ``done``).
    instruction_fetches : ``Out(32)``
        Instructions fetched, FINISH included.
    load_busy_cycles, load_stall_cycles, load_instructions : ``Out(32)``
        The load unit's counters (and likewise ``compute_*``, ``store_*``).
    macs, macs_int4, macs_int2, macs_int1, zero_macs : ``Out(48)``
        MAC slots (of them, those of GEMMs with packed operands) and zero-operand MACs.
    main_read_bytes, main_write_bytes : ``Out(48)``
        Main-memory bytes read by LOAD and written by STORE (whole words).
    inp_read_bytes, wgt_read_bytes, acc_read_bytes, acc_write_bytes : ``Out(48)``
        Buffer bytes read and written by COMPUTE and STORE (whole rows).
    inp_write_bytes, wgt_write_bytes, acc_load_bytes, req_write_bytes : ``Out(48)``
        Bytes LOAD writes into each buffer (whole rows), as the Activity record defines them.
    req_read_bytes : ``Out(48)``
        Requant-table bytes read by STORE (one row per STORE row).
    lut_write_bytes, lut_read_bytes : ``Out(48)``
        Lookup-table bytes written by LOAD and read by a STORE with ``lut`` (whole rows).
    load_completed, compute_completed, store_completed, compute_nops_completed : ``Out(32)``
        Instructions completed (and the compute unit's NOPs among them), including this
        cycle's.
    """

    def __init__(self, config: AccelConfig):
        if not isinstance(config, AccelConfig):
            raise TypeError(f"config must be an AccelConfig, not {config!r}")
        self.config = config
        members = {
            "main_read": In(main_read_port(config)),
            "main_write": In(main_write_port(config)),
            "code": In(code_port(config)),
            "run": In(1),
            "running": Out(1),
            "done": Out(1),
            "error": Out(1),
        }
        for counter in COUNTERS:
            members[counter] = Out(COUNTER_BITS if counter in _WIDE_COUNTERS else PERF_BITS)
        super().__init__(members)

    def elaborate(self, _platform):
        m = Module()
        config = self.config

        m.submodules.controller = ctl = Controller(config)
        m.submodules.load = load = LoadUnit(config)
        m.submodules.compute = compute = ComputeUnit(config)
        m.submodules.store = store = StoreUnit(config)
        units = {"load": load, "compute": compute, "store": store}
        running = ctl.running

        # ---- the memories outside: main memory for LOAD and STORE, code for fetch
        wiring.connect(m, wiring.flipped(self.main_read), load.mem)
        wiring.connect(m, wiring.flipped(self.main_write), store.mem)
        wiring.connect(m, wiring.flipped(self.code), ctl.code)

        # ---- on-chip buffers
        buffers = {
            buffer: Memory(
                shape=row_bits(config, buffer), depth=buffer_rows(config, buffer), init=[]
            )
            for buffer in Buffer
            if buffer is not Buffer.LUT  # the lookup tables: one memory per lane, below
        }
        for buffer, memory in buffers.items():
            m.submodules[buffer.name.lower()] = memory
        inp, wgt, acc, req = (buffers[b] for b in (Buffer.INP, Buffer.WGT, Buffer.ACC, Buffer.REQ))

        # On-chip buffers: LOAD writes inp, wgt and req, COMPUTE reads inp and wgt, STORE
        # reads req.
        for memory, reader in ((inp, compute.inp), (wgt, compute.wgt), (req, store.req)):
            wiring.connect(m, memory.read_port(), reader)
        for memory, writer in ((inp, load.inp), (wgt, load.wgt), (req, load.req)):
            wiring.connect(m, memory.write_port(), writer)
        # The accumulator has one write port, COMPUTE's result else a LOAD fill, and two
        # read ports: COMPUTE's, transparent to the write, and STORE's.
        acc_write = acc.write_port()
        with m.If(compute.acc_write.en):
            m.d.comb += [
                acc_write.addr.eq(compute.acc_write.addr),
                acc_write.data.eq(compute.acc_write.data),
                acc_write.en.eq(1),
            ]
        with m.Else():
            m.d.comb += [
                acc_write.addr.eq(load.acc.addr),
                acc_write.data.eq(load.acc.data),
                acc_write.en.eq(load.acc.en),
            ]
        wiring.connect(m, acc.read_port(transparent_for=(acc_write,)), compute.acc_read)
        wiring.connect(m, acc.read_port(), store.acc)
        self._lookup_tables(m, load, store)

        # ---- controller <-> units
        m.d.comb += [ctl.run.eq(self.run), compute.clear.eq(self.run & ~running)]
        for name, unit in units.items():
            wiring.connect(m, unit.control, getattr(ctl, name))
            # The host-port protocol has flat counter names (arch/counters.py).
            perf = getattr(ctl.perf, name)
            for counter in _UNIT_COUNTERS:
                m.d.comb += getattr(self, f"{name}_{counter}").eq(getattr(perf, counter))
        m.d.comb += [
            self.running.eq(running),
            self.done.eq(ctl.done),
            self.error.eq(ctl.error),
            self.cycles.eq(ctl.cycles),
            self.macs.eq(compute.macs),
            self.zero_macs.eq(compute.zero_macs),
            *(
                getattr(self, name).eq(getattr(compute, name))
                for name in PACKED_MAC_COUNTERS.values()
            ),
        ]

        # ---- byte counters, from the memory ports' enables, and the fetch count
        increments = {
            "instruction_fetches": ctl.fetched,
            "main_read_bytes": load.mem.en * config.dma_bytes,
            "main_write_bytes": store.mem.en.any() * config.dma_bytes,
            "inp_read_bytes": compute.inp.en * row_bytes(config, Buffer.INP),
            "wgt_read_bytes": compute.wgt.en * row_bytes(config, Buffer.WGT),
            "acc_read_bytes": (compute.acc_read.en + store.acc.en) * row_bytes(config, Buffer.ACC),
            "acc_write_bytes": compute.acc_write.en * row_bytes(config, Buffer.ACC),
            **{
                LOAD_WRITE_COUNTERS[buffer]: port.en * row_bytes(config, buffer)
                for buffer, port in load.buffer_ports.items()
            },
            "req_read_bytes": store.req.en * row_bytes(config, Buffer.REQ),
            # Every lane reads its memory at once: a whole row's worth.
            "lut_read_bytes": store.lut.en * row_bytes(config, Buffer.LUT),
        }
        for counter, amount in increments.items():
            total = getattr(self, counter)
            with m.If(self.run & ~running):
                m.d.sync += total.eq(0)
            with m.Elif(running):
                m.d.sync += total.eq(total + amount)

        # ---- completion counters: the count so far plus this cycle's completions
        completions = {
            **{f"{name}_completed": unit.control.completed for name, unit in units.items()},
            "compute_nops_completed": compute.control.nop_completed,
        }
        for counter, now in completions.items():
            before = Signal(PERF_BITS, name=f"{counter}_before")
            with m.If(self.run & ~running):
                m.d.sync += before.eq(0)
            with m.Elif(running):
                m.d.sync += before.eq(before + now)
            m.d.comb += getattr(self, counter).eq(before + Mux(running, now, 0))
        return m

    def _lookup_tables(self, m: Module, load: LoadUnit, store: StoreUnit) -> None:
        """The lookup tables: one memory per lane, as each lane of a STORE reads its own
        row (the requantized value of that lane picks it), all written together by a LOAD
        (element c of the row into lane c's memory). With `lut_rows` 0 each lane keeps a
        one-entry memory, so the ports stay wired; the units reject every access to it."""
        config = self.config
        bits = element_bits(config, Buffer.LUT)
        depth = max(1, buffer_rows(config, Buffer.LUT))
        for c in range(config.dim):
            memory = Memory(shape=bits, depth=depth, init=[])
            m.submodules[f"lut_{c}"] = memory
            write, read = memory.write_port(), memory.read_port()
            # Assigned, not connected: a one-entry memory's ports have no address bits,
            # the units' have one (`address_bits`).
            m.d.comb += [
                write.addr.eq(load.lut.addr),
                write.data.eq(load.lut.data[c * bits : (c + 1) * bits]),
                write.en.eq(load.lut.en),
                read.addr.eq(store.lut.addr[c]),
                read.en.eq(store.lut.en),
                store.lut.data[c].eq(read.data),
            ]
