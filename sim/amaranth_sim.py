"""Runs single hardware blocks in Amaranth's own simulator (fast, no C++ build)."""

from __future__ import annotations

from amaranth.sim import Simulator

from verdigris.hw.array import SystolicArray
from verdigris.hw.pe import ProcessingElement
from verdigris.sim.blockmodels import ArrayInputs, ArrayOutputs, PEInputs, PEOutputs

__all__ = [
    "LoadUnitDriver",
    "UnitProtocolError",
    "drive_in_amaranth",
    "simulate_array",
    "simulate_compute_unit",
    "simulate_controller",
    "simulate_load_unit",
    "simulate_pe",
    "simulate_store_unit",
]


def simulate_pe(
    inputs: list[PEInputs], *, operand_width: int = 8, acc_width: int = 32
) -> list[PEOutputs]:
    """Apply `inputs` to a ProcessingElement one per clock; return its outputs after each edge."""
    dut = ProcessingElement(operand_width=operand_width, acc_width=acc_width)
    outputs: list[PEOutputs] = []

    async def testbench(ctx):
        for step in inputs:
            ctx.set(dut.a_in, step.a_in)
            ctx.set(dut.psum_in, step.psum_in)
            ctx.set(dut.w_in, step.w_in)
            ctx.set(dut.w_load, step.w_load)
            await ctx.tick()
            outputs.append(
                PEOutputs(
                    a_out=ctx.get(dut.a_out),
                    psum_out=ctx.get(dut.psum_out),
                    w_out=ctx.get(dut.w_out),
                    a_zero=bool(ctx.get(dut.a_zero)),
                )
            )

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return outputs


def simulate_array(
    dim: int,
    inputs: list[ArrayInputs],
    *,
    operand_width: int = 8,
    acc_width: int = 32,
    dut: SystolicArray | None = None,
) -> list[ArrayOutputs]:
    """Apply `inputs[t]` to a SystolicArray in cycle t, from reset; return its outputs in each
    cycle (`p_data` only while `p_valid`, as `ArrayModel` gives them).

    `dut` replaces the default `SystolicArray(dim, ...)` (a variant with the same ports and
    parameters)."""
    if dut is None:
        dut = SystolicArray(dim, operand_width=operand_width, acc_width=acc_width)
    elif (dut.dim, dut.operand_width, dut.acc_width) != (dim, operand_width, acc_width):
        raise ValueError(
            f"dut has dim {dut.dim}, operand_width {dut.operand_width} and acc_width "
            f"{dut.acc_width}, not {dim}, {operand_width} and {acc_width}"
        )
    zeros = [0] * dim
    outputs: list[ArrayOutputs] = []

    async def testbench(ctx):
        for step in inputs:
            ctx.set(dut.w_en, step.w_en)
            ctx.set(dut.w_row, step.w_row)
            ctx.set(dut.w_data, list(step.w_data) or zeros)
            ctx.set(dut.a_valid, step.a_valid)
            ctx.set(dut.a_data, list(step.a_data) or zeros)
            ctx.set(dut.a_swap, step.a_swap)
            # Every output is a register, so these are this cycle's values.
            p_valid = bool(ctx.get(dut.p_valid))
            p_data = ctx.get(dut.p_data)
            outputs.append(
                ArrayOutputs(
                    p_valid=p_valid,
                    p_data=tuple(p_data[c] for c in range(dim)) if p_valid else (),
                    zero_count=ctx.get(dut.zero_count),
                )
            )
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return outputs


class UnitProtocolError(RuntimeError):
    """A unit broke the port contract of docs/microarchitecture.md ("The unit interface")."""


class LoadUnitDriver:
    """A cycle-by-cycle bench for a LoadUnit, independent of the simulator that runs it (the
    Amaranth simulator here, cocotb with Verilator in `verdigris.sim.rtl.load_bench`).

    It serves main memory (`memory`, uint8, one `dma_bytes` word in the cycle after each
    request, a poison pattern otherwise), starts `instructions` one after another, each in
    the first cycle in which `free` is high, keeps the buffers (zero at reset) from the write
    ports, and checks the port contract as it goes, raising UnitProtocolError when it is
    broken: `push_next` exactly in the completion cycle (the cycle `free` is high again, the
    latency being 0) of an instruction with that flag, `push_prev` never, `in_flight` exactly
    while an instruction is between its start and completion cycles, a transfer reading
    exactly the words its rows touch, once each, in order (nothing read otherwise), and every
    instruction writing rows buf_row .. buf_row+rows-1 of its buffer once each, in order, from
    its start cycle to the cycle before its completion. After the unit
    raises `error`, it checks for a few cycles that the unit stays stopped (nothing written,
    read or pushed, not free); `result` then raises IsaError naming the instruction.

    Each cycle: `inputs(read)` with `read(port_name) -> int` giving the unit's outputs as
    they are before this cycle's inputs matter (registered outputs) returns the values of
    `mem_data`, `start` and `instr` to apply; then `outputs(read)` records the write ports
    and the read request as they are with those inputs applied; then the clock ticks. Stop
    when `done`.
    """

    QUIET_CYCLES = 4  # cycles the unit must stay stopped after raising `error`

    def __init__(self, config, instructions, memory):
        import numpy as np

        from verdigris.arch.isa import Buffer, Load, encode

        memory = np.asarray(memory)
        if memory.dtype != np.uint8 or memory.shape != (config.main_memory_bytes,):
            raise ValueError(
                f"main memory must be a uint8 array of {config.main_memory_bytes} bytes, not "
                f"{memory.dtype} {memory.shape}"
            )
        self.config, self.instructions, self.memory = config, list(instructions), memory
        self.words = [encode(instruction) for instruction in self.instructions]
        self.ports = {Buffer.INP: "inp", Buffer.WGT: "wgt", Buffer.ACC: "acc", Buffer.REQ: "req"}
        self.raw = {buffer: {} for buffer in Buffer}  # row -> the row's bits as one int
        self.timeline = np.full((len(self.instructions), 2), -1, np.int64)
        self.expected = [
            [(Buffer(i.buffer), i.buf_row + r) for r in range(i.rows)]
            if isinstance(i, Load)
            else []
            for i in self.instructions
        ]
        self.written = [[] for _ in self.instructions]
        self.reads = [[] for _ in self.instructions]
        self.transfer = [isinstance(i, Load) and not i.fill for i in self.instructions]
        dma = config.dma_bytes
        element_bytes = {Buffer.INP: 1, Buffer.WGT: 1, Buffer.ACC: 4, Buffer.REQ: 12}
        self.expected_reads = []  # the words each row touches, rows in order
        for ins, transfer in zip(self.instructions, self.transfer, strict=True):
            reads = []
            for r in range(ins.rows if transfer else 0):
                start = ins.dram_addr + r * ins.dram_stride
                end = start + ins.elems * element_bytes[Buffer(ins.buffer)]
                reads.extend(range(start // dma, (end - 1) // dma + 1))
            self.expected_reads.append(reads)
        self.poison = int.from_bytes(b"\xa5" * dma, "little")
        row_words = -(-(dma - 1 + 12 * config.dim) // dma)
        self.limit = 16 + sum(
            (i.rows if isinstance(i, Load) else 1) * (row_words + 1) + 4 for i in self.instructions
        )
        self.cycle = 0
        self.running = None  # the instruction between its start and completion cycles
        self.next_index = 0
        self.request = None  # word address read in the previous cycle
        self.error_index = None
        self.quiet = 0  # cycles checked since the error
        self.done = False

    def _broken(self, message):
        where = "" if self.running is None else f" (instruction {self.running})"
        raise UnitProtocolError(f"cycle {self.cycle}{where}: {message}")

    def _mem_data(self):
        if self.request is None:
            return self.poison
        dma = self.config.dma_bytes
        return int.from_bytes(self.memory[self.request * dma : (self.request + 1) * dma], "little")

    def inputs(self, read):
        """(mem_data, start, instr) for this cycle."""
        if self.cycle > self.limit:
            self._broken(f"the load unit did not finish within {self.limit} cycles")
        mem_data = self._mem_data()
        free, in_flight, error = read("free"), read("in_flight"), read("error")
        push_next, push_prev = read("push_next"), read("push_prev")
        if self.error_index is not None or error:
            if self.error_index is None:
                if self.running is None:
                    self._broken("error without an instruction")
                if self.written[self.running] or self.request is not None:
                    self._broken("an illegal instruction wrote or read")
                self.error_index = self.running
            if free or push_next or push_prev or not error:
                self._broken("the unit did not stay stopped after its error")
            return mem_data, 0, 0
        if push_prev:
            self._broken(f"push_prev is {push_prev}")
        running = self.running
        if free and running is not None:  # latency 0: free again means completed
            self.timeline[running, 1] = self.cycle
            if self.written[running] != self.expected[running]:
                self._broken(f"wrote {self.written[running]}, not {self.expected[running]}")
            if self.reads[running] != self.expected_reads[running]:
                self._broken(
                    f"read words {self.reads[running]}, not {self.expected_reads[running]}"
                )
            flag = int(self.instructions[running].deps.push_next)
            if push_next != flag:
                self._broken(f"push_next is {push_next} in the completion cycle, not {flag}")
            self.running = None
        elif push_next:
            self._broken(f"push_next is {push_next} outside a completion cycle")
        if not free and self.running is None:
            self._broken("not free with nothing running")
        if bool(in_flight) != (self.running is not None):
            self._broken(f"in_flight is {in_flight}")
        if not free or self.next_index == len(self.instructions):
            self.done = self.running is None
            return mem_data, 0, 0
        self.running, self.next_index = self.next_index, self.next_index + 1
        self.timeline[self.running, 0] = self.cycle
        return mem_data, 1, self.words[self.running]

    def outputs(self, read):
        """Record this cycle's buffer writes and main-memory request; the clock then ticks."""
        for buffer, prefix in self.ports.items():
            if read(f"{prefix}_en"):
                row = read(f"{prefix}_addr")
                if self.error_index is not None:
                    self._broken(f"{prefix} row {row} written after the error")
                if self.running is None:
                    self._broken(f"{prefix} row {row} written with nothing running")
                self.written[self.running].append((buffer, row))
                self.raw[buffer][row] = read(f"{prefix}_data")
        self.request = read("mem_addr") if read("mem_en") else None
        if self.request is not None:
            if self.error_index is not None:
                self._broken("main memory read after the error")
            if self.running is None or not self.transfer[self.running]:
                self._broken(f"main-memory word {self.request} read outside a transfer")
            if self.request >= self.config.main_memory_bytes // self.config.dma_bytes:
                self._broken(f"main-memory word {self.request} is past the end")
            self.reads[self.running].append(self.request)
        if self.error_index is not None:
            self.quiet += 1
            self.done = self.quiet > self.QUIET_CYCLES
        self.cycle += 1

    def snapshot(self) -> dict:
        """What `result` needs, as JSON-compatible values (to carry a run across processes)."""
        return {
            "raw": {
                int(b): {str(r): f"{v:x}" for r, v in rows.items()} for b, rows in self.raw.items()
            },
            "timeline": self.timeline.tolist(),
            "error_index": self.error_index,
        }

    def restore(self, snapshot: dict) -> None:
        """Take the state of a `snapshot` (of a driver for the same run)."""
        import numpy as np

        from verdigris.arch.isa import Buffer

        self.raw = {
            Buffer(int(b)): {int(r): int(v, 16) for r, v in rows.items()}
            for b, rows in snapshot["raw"].items()
        }
        self.timeline = np.array(snapshot["timeline"], np.int64).reshape(-1, 2)
        self.error_index = snapshot["error_index"]

    def result(self):
        """(buffers, timeline) as `simulate_load_unit` returns them; IsaError after an error."""
        import numpy as np

        from verdigris.arch.isa import Buffer
        from verdigris.hw.load_unit import ELEMENT_BITS
        from verdigris.sim.isasim import IsaError

        if self.error_index is not None:
            index = self.error_index
            raise IsaError(f"instruction {index}: the load unit raised its error status", index)
        config, dim = self.config, self.config.dim
        depths = {
            Buffer.INP: config.inp_rows,
            Buffer.WGT: config.wgt_rows,
            Buffer.ACC: config.acc_rows,
            Buffer.REQ: config.req_rows,
        }
        buffers = {}
        for buffer in Buffer:
            row_bytes = dim * ELEMENT_BITS[buffer] // 8
            data = np.zeros((depths[buffer], row_bytes), np.uint8)
            for row, bits in self.raw[buffer].items():
                data[row] = np.frombuffer(bits.to_bytes(row_bytes, "little"), np.uint8)
            if buffer in (Buffer.INP, Buffer.WGT):
                buffers[buffer] = data.view(np.int8).astype(np.int64)
            elif buffer is Buffer.ACC:
                buffers[buffer] = data.view("<i4").astype(np.int64)
            else:
                records = data.reshape(-1, dim, 12)
                fields = (
                    records[..., 0:4].copy().view("<i4")[..., 0],
                    records[..., 4:8].copy().view("<i4")[..., 0],
                    records[..., 8],
                    records[..., 9].view(np.int8),
                    records[..., 10].view(np.int8),
                    records[..., 11].view(np.int8),
                )
                buffers[buffer] = np.stack([f.astype(np.int64) for f in fields], axis=-1)
        return buffers, self.timeline


def simulate_load_unit(config, instructions, memory, *, dut=None):
    """Run `instructions` (LOADs and NOPs for the load unit) on a LoadUnit from reset, each
    started in the first cycle in which `free` is high (the first in cycle 0), with
    `LoadUnitDriver` serving main memory (`memory`, uint8 of `main_memory_bytes`) and
    checking the port contract (UnitProtocolError when broken).

    Returns (buffers, timeline): the final buffers as `verdigris.sim.isasim` holds them, int64
    arrays keyed by `Buffer` of (rows, dim) for inp, wgt and acc and (rows, dim, 6) requant
    fields (bias, multiplier, shift, zero_point, qmin, qmax) for the req table; the timeline
    an int64 array (len(instructions), 2) of start and completion cycles. Raises IsaError
    naming the instruction when the unit raised its error status (and then stayed stopped).
    `dut` replaces the default `LoadUnit(config)` (a variant with the same ports).
    """
    from verdigris.hw.load_unit import LoadUnit

    driver = LoadUnitDriver(config, instructions, memory)
    dut = LoadUnit(config) if dut is None else dut

    async def testbench(ctx):
        def read(name):
            return ctx.get(getattr(dut, name))

        while not driver.done:
            mem_data, start, instr = driver.inputs(read)
            ctx.set(dut.mem_data, mem_data)
            ctx.set(dut.start, start)
            ctx.set(dut.instr, instr)
            driver.outputs(read)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return driver.result()


def drive_in_amaranth(dut, driver) -> None:
    """Run `driver` (a `verdigris.sim.drivers.UnitDriver`) against the component `dut`
    in Amaranth's simulator, from reset until the driver is done."""
    from amaranth.hdl import Value

    ports = {name: Value.cast(getattr(dut, name)) for name in dut.signature.members}

    async def testbench(ctx):
        def read(name):
            port = ports[name]
            return ctx.get(port) & ((1 << len(port)) - 1)

        def apply(values):
            for name, value in values.items():
                ctx.set(ports[name], value)

        while not driver.done:
            apply(driver.inputs(read))
            apply(driver.late_inputs(read))
            driver.outputs(read)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()


def simulate_compute_unit(config, instructions, inp, wgt, acc, *, dut=None):
    """Run `instructions` (GEMM, VECTOR, NOP) on a ComputeUnit from reset, driven and checked
    by `ComputeUnitDriver` with buffers `inp`, `wgt` and `acc` ((rows, dim) int arrays).
    Return a ComputeRun (final accumulator, timeline of start and completion cycles,
    counters); raise IsaError naming the instruction when the unit raised its error status,
    UnitProtocolError when it broke the port contract. `dut` replaces the default
    `ComputeUnit(config)` (a variant with the same ports)."""
    from verdigris.hw.compute_unit import ComputeUnit
    from verdigris.sim.drivers import ComputeUnitDriver

    driver = ComputeUnitDriver(config, instructions, inp, wgt, acc)
    drive_in_amaranth(ComputeUnit(config) if dut is None else dut, driver)
    return driver.result()


def simulate_store_unit(config, instructions, acc, req, memory, *, dut=None):
    """Run `instructions` (STOREs and NOPs) on a StoreUnit from reset, driven and checked by
    `StoreUnitDriver` with the accumulator `acc` ((acc_rows, dim) int), the req table `req`
    ((req_rows, dim, 6) fields) and main memory `memory` (uint8). Return a StoreRun (final
    main memory, timeline); raise IsaError naming the instruction when the unit raised its
    error status, UnitProtocolError when it broke the port contract. `dut` replaces the
    default `StoreUnit(config)` (a variant with the same ports)."""
    from verdigris.hw.store_unit import StoreUnit
    from verdigris.sim.drivers import StoreUnitDriver

    driver = StoreUnitDriver(config, instructions, acc, req, memory)
    drive_in_amaranth(StoreUnit(config) if dut is None else dut, driver)
    return driver.result()


def simulate_controller(config, program, *, controller=None):
    """Load `program` (ending in FINISH) into a `ControllerWithImem`, run it, and play the
    three units with `ControllerDriver`. Return a ControllerRun (start cycle of every
    started instruction, counters, error); raise UnitProtocolError when the controller broke
    the contract. `controller` replaces the default `Controller(config)` (a variant with the
    same ports)."""
    from verdigris.sim.drivers import ControllerDriver, ControllerWithImem

    driver = ControllerDriver(config, program)
    drive_in_amaranth(ControllerWithImem(config, controller), driver)
    return driver.result()
