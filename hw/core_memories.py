"""The core with its memories in block RAM, loaded through a host port: what the cocotb bench
runs, and what a board with main memory in block RAM starts from.

`CoreWithMemories` puts main memory (`main_memory_bytes`) and the code memory
(`instruction_capacity` instructions) behind `Core`'s memory interfaces and gives the host
their other ports:

- `main_addr` (word address), `main_wdata`, `main_we`, `main_rdata` (one cycle after the
  address): main memory, `dma_bytes` per word; use only while `running` is low.
- `imem_addr`, `imem_wdata`, `imem_we`: the code memory, 16 bytes per word, written while
  `running` is low.

Every other port is `Core`'s own. Block RAM inside the design grows with the memories, so
`check_memories` keeps them to what a simulator or an FPGA holds; the C++ Verilator harness
runs the bare `Core`'s interfaces against memories in C++ instead, of any size.
"""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from verdigris.arch.config import AccelConfig
from verdigris.arch.isa import INSTRUCTION_BYTES, address_bits
from verdigris.arch.memory import main_memory_words
from verdigris.hw.controller import code_memory, code_memory_host_port
from verdigris.hw.core import Core

__all__ = ["MAX_MEMORY_BYTES", "CoreWithMemories", "check_memories"]

# Beyond this many bytes of block RAM (main memory and code memory each), the design is
# impractical to simulate with the memories inside or to build for an FPGA.
MAX_MEMORY_BYTES = 16 * 2**20


def check_memories(config: AccelConfig) -> None:
    """ValueError, saying what to do, for a config whose memories are too large to hold
    inside the design (`CoreWithMemories`)."""
    sizes = {
        "main memory (main_memory_bytes)": config.main_memory_bytes,
        "code memory (instruction_capacity x 16)": config.instruction_capacity * INSTRUCTION_BYTES,
    }
    for what, size in sizes.items():
        if size > MAX_MEMORY_BYTES:
            raise ValueError(
                f"config '{config.name}' has {size:,} bytes of {what}; block RAM inside the "
                f"design holds up to {MAX_MEMORY_BYTES:,} bytes: run it on the C++ harness "
                "(`verdigris run --backend rtl`), whose memories are outside the core"
            )


class CoreWithMemories(wiring.Component):
    """`Core` with main memory and the code memory in block RAM, and a host port to load
    and read them (see the module docstring).

    Parameters
    ----------
    config : AccelConfig
        The configuration of the core and the sizes of its memories (`check_memories`).

    Members
    -------
    main_addr : ``In(address_bits(main_memory_bytes // dma_bytes))``
        Main memory word address for the host.
    main_wdata : ``In(8 * dma_bytes)``, main_we : ``In(1)``
        A host write of a whole word (while not running).
    main_rdata : ``Out(8 * dma_bytes)``
        The word at ``main_addr`` of the previous cycle.
    imem_addr : ``In(address_bits(instruction_capacity))``
        Code memory address for the host.
    imem_wdata : ``In(INSTRUCTION_BITS)``, imem_we : ``In(1)``
        A host write of one instruction (while not running).
    run, running, done, error, cycles, ..., compute_nops_completed
        `Core`'s host port.
    """

    def __init__(self, config: AccelConfig):
        check_memories(config)
        self._core = Core(config)
        self.config = config
        members = {
            name: member
            for name, member in self._core.signature.members.items()
            if not member.is_signature  # the memory interfaces end here
        }
        members |= {
            "main_addr": In(address_bits(main_memory_words(config))),
            "main_wdata": In(8 * config.dma_bytes),
            "main_we": In(1),
            "main_rdata": Out(8 * config.dma_bytes),
        }
        super().__init__(members | code_memory_host_port(config))

    def elaborate(self, _platform):
        m = Module()
        config = self.config
        m.submodules.core = core = self._core
        m.submodules.main = main = Memory(
            shape=8 * config.dma_bytes, depth=main_memory_words(config), init=[]
        )

        # Main memory: port A reads for LOAD (or the host), port B writes for STORE (or the
        # host), with byte enables.
        read, write = main.read_port(), main.write_port(granularity=8)
        with m.If(core.running):
            m.d.comb += [
                read.addr.eq(core.main_read.addr),
                read.en.eq(core.main_read.en),
                write.addr.eq(core.main_write.addr),
                write.data.eq(core.main_write.data),
                write.en.eq(core.main_write.en),
            ]
        with m.Else():
            m.d.comb += [
                read.addr.eq(self.main_addr),
                read.en.eq(1),
                write.addr.eq(self.main_addr),
                write.data.eq(self.main_wdata),
                write.en.eq(self.main_we.replicate(config.dma_bytes)),
            ]
        m.d.comb += [core.main_read.data.eq(read.data), self.main_rdata.eq(read.data)]

        # Code memory: fetch reads, the host writes while the core is idle.
        code_memory(m, config, core.code, self, core.running)

        for name, member in self.signature.members.items():
            if hasattr(core, name):  # the host port, passed through
                outer, inner = getattr(self, name), getattr(core, name)
                m.d.comb += inner.eq(outer) if member.flow is In else outer.eq(inner)
        return m
