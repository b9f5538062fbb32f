"""The SoC's bridge and core (`BridgedCore`) in Amaranth's simulator, behind the transport
interface of `verdigris.boards.host`: a byte a cycle each way, in simulated time, with an
optional fault injector on each direction."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from amaranth.sim import Simulator

from verdigris.arch.config import AccelConfig
from verdigris.boards.soc import BridgedCore

# A fault injector: the bytes as sent -> the bytes as received.
Faults = Callable[[bytes], bytes]


class SimulatedBoard:
    """`BridgedCore(config)` in Amaranth's simulator at the config's clock. `to_board` and
    `to_host` change each write's bytes and each answer's bytes on the way."""

    def __init__(
        self,
        config: AccelConfig,
        *,
        idle_cycles: int = 64,
        to_board: Faults | None = None,
        to_host: Faults | None = None,
    ):
        self.dut = BridgedCore(config, idle_cycles=idle_cycles)
        self.period = 1 / (config.clock_mhz * 1e6)
        self.to_board = to_board or (lambda data: data)
        self.to_host = to_host or (lambda data: data)
        self.inbox: deque[int] = deque()
        self.outbox = bytearray()
        self.now = 0.0
        self.sim = Simulator(self.dut)
        self.sim.add_clock(self.period)
        self.sim.add_testbench(self._serve, background=True)

    async def _serve(self, ctx):
        dut = self.dut
        ctx.set(dut.tx_ready, 1)
        while True:
            if self.inbox:
                ctx.set(dut.rx_data, self.inbox.popleft())
                ctx.set(dut.rx_valid, 1)
            else:
                ctx.set(dut.rx_valid, 0)
            if ctx.get(dut.tx_valid):
                self.outbox.extend(self.to_host(bytes([ctx.get(dut.tx_data)])))
            await ctx.tick()

    def _step(self, cycles: int) -> None:
        self.now += cycles * self.period
        self.sim.run_until(self.now)

    def write(self, data: bytes) -> None:
        self.inbox.extend(self.to_board(bytes(data)))

    def read(self, n: int, timeout: float) -> bytes:
        deadline = self.now + timeout
        while len(self.outbox) < n and self.now < deadline:
            self._step(32)
        data = bytes(self.outbox[:n])
        del self.outbox[:n]
        return data

    def discard(self) -> None:
        self._step(8)
        self.outbox.clear()

    def clock(self) -> float:
        return self.now
