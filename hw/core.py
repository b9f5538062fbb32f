"""The accelerator core: controller, load/compute/store units, memories and a host port.

Host port (used by the test benches and, on a board, by the UART bridge), all synchronous:

- `main_addr` (word address), `main_wdata`, `main_we`, `main_rdata` (one cycle after the
  address): main memory, `dma_bytes` per word; use only while `running` is low.
- `imem_addr`, `imem_wdata`, `imem_we`: instruction memory, 16 bytes per word.
- `run` (a strobe while idle) starts the program at instruction 0; `done` rises when it has
  finished (docs/isa.md's end) or stopped on an error (`error`). An error is fatal until
  the host resets the core (`rst`); memories keep their contents across a reset.
- Performance counters: `cycles`, per unit `*_busy_cycles`, `*_stall_cycles`,
  `*_instructions`, and `macs`, `zero_macs`, `main_read_bytes`, `main_write_bytes`,
  `inp_read_bytes`, `wgt_read_bytes`, `acc_read_bytes`, `acc_write_bytes`,
  `buffer_write_bytes`, as the Activity record defines them.
"""

from amaranth.hdl import Module, Mux
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from verdigris.arch.config import AccelConfig
from verdigris.arch.isa import ELEMENT_BYTES
from verdigris.hw.compute_unit import ComputeUnit
from verdigris.hw.controller import PERF_BITS, UNIT_NAMES, ControllerWithImem
from verdigris.hw.load_unit import LoadUnit
from verdigris.hw.store_unit import StoreUnit
from verdigris.hw.units import INSTRUCTION_BITS

__all__ = ["BYTE_COUNTERS", "COUNTERS", "Core"]

BYTE_COUNTERS = (
    "main_read_bytes",
    "main_write_bytes",
    "inp_read_bytes",
    "wgt_read_bytes",
    "acc_read_bytes",
    "acc_write_bytes",
    "buffer_write_bytes",
)


# Every counter port, in the order the benches and the C++ harness report them.
COUNTERS = (
    "cycles",
    "macs",
    "zero_macs",
    *BYTE_COUNTERS,
    *(
        f"{unit}_{counter}"
        for unit in UNIT_NAMES
        for counter in ("busy_cycles", "stall_cycles", "instructions")
    ),
)


def _bits(depth: int) -> int:
    return max(1, (depth - 1).bit_length())


class Core(wiring.Component):
    def __init__(self, config: AccelConfig):
        if not isinstance(config, AccelConfig):
            raise TypeError(f"config must be an AccelConfig, not {config!r}")
        self.config = config
        words = config.main_memory_bytes // config.dma_bytes
        members = {
            "run": In(1),
            "running": Out(1),
            "done": Out(1),
            "error": Out(1),
            "main_addr": In(_bits(words)),
            "main_wdata": In(8 * config.dma_bytes),
            "main_we": In(1),
            "main_rdata": Out(8 * config.dma_bytes),
            "imem_addr": In(_bits(config.instruction_capacity)),
            "imem_wdata": In(INSTRUCTION_BITS),
            "imem_we": In(1),
            "cycles": Out(PERF_BITS),
            "macs": Out(48),
            "zero_macs": Out(48),
        }
        for unit in UNIT_NAMES:
            for counter in ("busy_cycles", "stall_cycles", "instructions"):
                members[f"{unit}_{counter}"] = Out(PERF_BITS)
        for counter in BYTE_COUNTERS:
            members[counter] = Out(48)
        super().__init__(members)

    def elaborate(self, _platform):
        m = Module()
        config = self.config
        dim = config.dim
        words = config.main_memory_bytes // config.dma_bytes

        m.submodules.controller = ctl = ControllerWithImem(config)
        m.submodules.load = load = LoadUnit(config)
        m.submodules.compute = compute = ComputeUnit(config)
        m.submodules.store = store = StoreUnit(config)
        units = {"load": load, "compute": compute, "store": store}

        # ---- memories
        m.submodules.main = main = Memory(shape=8 * config.dma_bytes, depth=words, init=[])
        m.submodules.inp = inp = Memory(shape=8 * dim, depth=config.inp_rows, init=[])
        m.submodules.wgt = wgt = Memory(shape=8 * dim, depth=config.wgt_rows, init=[])
        m.submodules.acc = acc = Memory(shape=32 * dim, depth=config.acc_rows, init=[])
        m.submodules.req = req = Memory(shape=96 * dim, depth=config.req_rows, init=[])

        # Main memory: port A reads for LOAD (or the host), port B writes for STORE (or the
        # host), with byte enables.
        main_read = main.read_port()
        main_write = main.write_port(granularity=8)
        running = ctl.running
        with m.If(running):
            m.d.comb += [
                main_read.addr.eq(load.mem_addr),
                main_read.en.eq(load.mem_en),
                main_write.addr.eq(store.mem_addr),
                main_write.data.eq(store.mem_data),
                main_write.en.eq(Mux(store.mem_en, store.mem_be, 0)),
            ]
        with m.Else():
            m.d.comb += [
                main_read.addr.eq(self.main_addr),
                main_read.en.eq(1),
                main_write.addr.eq(self.main_addr),
                main_write.data.eq(self.main_wdata),
                main_write.en.eq(self.main_we.replicate(config.dma_bytes)),
            ]
        m.d.comb += [load.mem_data.eq(main_read.data), self.main_rdata.eq(main_read.data)]

        m.d.comb += [
            ctl.imem_addr.eq(self.imem_addr),
            ctl.imem_wdata.eq(self.imem_wdata),
            ctl.imem_we.eq(self.imem_we),
        ]

        # On-chip buffers.
        for memory, name in ((inp, "inp"), (wgt, "wgt")):
            write = memory.write_port()
            read = memory.read_port()
            m.d.comb += [
                write.addr.eq(getattr(load, f"{name}_addr")),
                write.data.eq(getattr(load, f"{name}_data")),
                write.en.eq(getattr(load, f"{name}_en")),
                read.addr.eq(getattr(compute, f"{name}_addr")),
                read.en.eq(getattr(compute, f"{name}_en")),
                getattr(compute, f"{name}_data").eq(read.data),
            ]
        acc_write = acc.write_port()
        with m.If(compute.acc_wen):
            m.d.comb += [
                acc_write.addr.eq(compute.acc_waddr),
                acc_write.data.eq(compute.acc_wdata),
                acc_write.en.eq(1),
            ]
        with m.Else():
            m.d.comb += [
                acc_write.addr.eq(load.acc_addr),
                acc_write.data.eq(load.acc_data),
                acc_write.en.eq(load.acc_en),
            ]
        acc_compute = acc.read_port(transparent_for=(acc_write,))
        acc_store = acc.read_port()
        m.d.comb += [
            acc_compute.addr.eq(compute.acc_raddr),
            acc_compute.en.eq(compute.acc_ren),
            compute.acc_rdata.eq(acc_compute.data),
            acc_store.addr.eq(store.acc_addr),
            acc_store.en.eq(store.acc_en),
            store.acc_data.eq(acc_store.data),
        ]
        req_write = req.write_port()
        req_read = req.read_port()
        m.d.comb += [
            req_write.addr.eq(load.req_addr),
            req_write.data.eq(load.req_data),
            req_write.en.eq(load.req_en),
            req_read.addr.eq(store.req_addr),
            req_read.en.eq(store.req_en),
            store.req_data.eq(req_read.data),
        ]

        # ---- controller <-> units
        m.d.comb += [ctl.run.eq(self.run), compute.clear.eq(self.run & ~running)]
        for name, unit in units.items():
            m.d.comb += [
                unit.start.eq(getattr(ctl, f"{name}_start")),
                unit.instr.eq(getattr(ctl, f"{name}_instr")),
                getattr(ctl, f"{name}_free").eq(unit.free),
                getattr(ctl, f"{name}_push_prev").eq(unit.push_prev),
                getattr(ctl, f"{name}_push_next").eq(unit.push_next),
                getattr(ctl, f"{name}_in_flight").eq(unit.in_flight),
                getattr(ctl, f"{name}_error").eq(unit.error),
            ]
            ready = compute.ready if name == "compute" else unit.free
            m.d.comb += getattr(ctl, f"{name}_ready").eq(ready)
            for counter in ("busy_cycles", "stall_cycles", "instructions"):
                m.d.comb += getattr(self, f"{name}_{counter}").eq(getattr(ctl, f"{name}_{counter}"))
        m.d.comb += [
            self.running.eq(running),
            self.done.eq(ctl.done),
            self.error.eq(ctl.error),
            self.cycles.eq(ctl.cycles),
            self.macs.eq(compute.macs),
            self.zero_macs.eq(compute.zero_macs),
        ]

        # ---- byte counters, from the memory ports' enables
        increments = {
            "main_read_bytes": load.mem_en * config.dma_bytes,
            "main_write_bytes": store.mem_en * config.dma_bytes,
            "inp_read_bytes": compute.inp_en * dim,
            "wgt_read_bytes": compute.wgt_en * dim,
            "acc_read_bytes": (compute.acc_ren + store.acc_en) * 4 * dim,
            "acc_write_bytes": compute.acc_wen * 4 * dim,
            "buffer_write_bytes": sum(
                getattr(load, f"{buffer.name.lower()}_en") * size * dim
                for buffer, size in ELEMENT_BYTES.items()
            ),
        }
        for counter, amount in increments.items():
            total = getattr(self, counter)
            with m.If(self.run & ~running):
                m.d.sync += total.eq(0)
            with m.Elif(running):
                m.d.sync += total.eq(total + amount)
        return m
