"""The UART bridge: the board's end of the serial host port (verdigris.arch.serial_link,
docs/host-port.md "Over a serial line").

It takes request frames byte by byte from the UART receiver, holds a request's payload in a
block RAM until the frame's CRC is known good, acts on it through the host port of
`CoreWithMemories` (writing the code memory and main memory a word at a time, reading main
memory and the counters, starting and resetting the core) and of the layer tracker
(writing its targets, reading its records), and sends the response frame to
the UART transmitter, its CRC computed on the way. A request with a bad CRC, a payload too
long, an unknown command or a bad length is answered BAD_FRAME and not acted on; a frame
whose bytes stop arriving for `idle_cycles` is forgotten without an answer (the host times
out and sends it again). A RUN is acted on once per sequence number: the host's retry of a
RUN whose answer was lost answers OK without starting the program again.
"""

from amaranth.hdl import Array, C, Cat, Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from verdigris.arch.config import AccelConfig
from verdigris.arch.counters import COUNTERS
from verdigris.arch.isa import INSTRUCTION_BYTES, address_bits
from verdigris.arch.memory import main_memory_words
from verdigris.arch.serial_link import (
    ADDRESS_BYTES,
    COUNTER_BYTES,
    CRC_INIT,
    CRC_POLYNOMIAL,
    MAX_PAYLOAD,
    RECORD_WORD_BYTES,
    RECORD_WORDS,
    SYNC,
    TARGET_BITS,
    Command,
    Status,
    identity_payload,
)

__all__ = ["Bridge", "crc16_step"]


def _crc16_step_bits(crc: int, byte: int) -> int:
    value = crc ^ byte << 8
    for _ in range(8):
        value = (value << 1 ^ (CRC_POLYNOMIAL if value & 0x8000 else 0)) & 0xFFFF
    return value


# The CRC is linear: each bit of the next register is the XOR of some bits of the register
# and of the byte. Bit i of input bit j's column: whether input bit j (register bits 0-15,
# then the byte's bits 0-7) flips output bit i.
_CRC_TAPS = [
    _crc16_step_bits(1 << j, 0) if j < 16 else _crc16_step_bits(0, 1 << (j - 16)) for j in range(24)
]


def crc16_step(crc, byte):
    """The CRC-16/CCITT-FALSE register after one more byte (an Amaranth expression of XORs:
    Python's bit-serial form, unrolled, would repeat each step's input in every later step)."""
    inputs = Cat(crc, byte)
    return Cat(
        *(Cat(*(inputs[j] for j in range(24) if _CRC_TAPS[j] >> i & 1)).xor() for i in range(16))
    )


class Bridge(wiring.Component):
    """The serial host port of one core (see the module docstring).

    Parameters
    ----------
    config : AccelConfig
        The core's config: its memories' sizes, `dma_bytes`, and what IDENTIFY reports.
    counter_shapes : dict
        The width of each counter port of COUNTERS (the core's own).
    idle_cycles : int
        Cycles without a byte after which a frame is given up.
    max_targets : int
        The layer tracker's targets (boards/tracker.py).

    Members
    -------
    rx_data : In(8), rx_valid : In(1)
        Bytes from the UART receiver (always taken).
    tx_data : Out(8), tx_valid : Out(1), tx_ready : In(1)
        Bytes to the UART transmitter.
    main_addr, main_wdata, main_we, main_rdata, imem_addr, imem_wdata, imem_we, run,
    running, done, error, and one In per counter
        `CoreWithMemories`'s host port, seen from the host's side.
    core_reset : Out(1)
        Resets the core (RESET); the memories keep their contents.
    target_addr, target_data, target_we, record_addr, record_data, records, overrun
        The layer tracker's host side (`LayerTracker`).
    activity : Out(1)
        High in a cycle that takes a byte in or sends one out (for an LED).
    """

    def __init__(
        self, config: AccelConfig, counter_shapes: dict, *, idle_cycles: int, max_targets: int
    ):
        self.config = config
        self.idle_cycles = idle_cycles
        self.max_targets = max_targets
        self.counter_names = tuple(COUNTERS)
        members = {
            "rx_data": In(8),
            "rx_valid": In(1),
            "tx_data": Out(8),
            "tx_valid": Out(1),
            "tx_ready": In(1),
            "main_addr": Out(address_bits(main_memory_words(config))),
            "main_wdata": Out(8 * config.dma_bytes),
            "main_we": Out(1),
            "main_rdata": In(8 * config.dma_bytes),
            "imem_addr": Out(address_bits(config.instruction_capacity)),
            "imem_wdata": Out(8 * INSTRUCTION_BYTES),
            "imem_we": Out(1),
            "run": Out(1),
            "running": In(1),
            "done": In(1),
            "error": In(1),
            "core_reset": Out(1),
            "activity": Out(1),
            "target_addr": Out(range(max_targets)),
            "target_data": Out(TARGET_BITS),
            "target_we": Out(1),
            "record_addr": Out(range(max_targets * RECORD_WORDS)),
            "record_data": In(8 * RECORD_WORD_BYTES),
            "records": In(16),
            "overrun": In(1),
        }
        members |= {name: In(counter_shapes[name]) for name in self.counter_names}
        super().__init__(members)

    def elaborate(self, _platform):
        m = Module()
        config = self.config
        dma = config.dma_bytes
        identity = identity_payload(config, self.max_targets)
        word_bytes = max(INSTRUCTION_BYTES, dma, COUNTER_BYTES, TARGET_BITS // 8)
        main_words = main_memory_words(config)

        m.submodules.payload = payload = Memory(shape=8, depth=MAX_PAYLOAD, init=[])
        store, load = payload.write_port(), payload.read_port(transparent_for=())

        # The request.
        command = Signal(8)
        sequence = Signal(8)
        length = Signal(16)  # its payload's bytes
        index = Signal(16)  # bytes of the header or payload taken so far
        crc = Signal(16)
        received_crc = Signal(16)
        first = Signal(32)  # the payload's first four bytes: the first word or instruction
        count = Signal(16)  # a read's word count (payload bytes 4 and 5)
        idle = Signal(range(self.idle_cycles + 1))
        last_run = Signal(9)  # bit 8: the sequence number in bits 0-7 has started the core

        # The response, a word at a time: `status`, `words` words of `unit` bytes each.
        status = Signal(8)
        words = Signal(16)
        unit = Signal(range(word_bytes + 1))
        word = Signal(8 * word_bytes)  # bytes go out from the lowest
        sent = Signal(range(word_bytes + 1))  # bytes of `word` sent
        header = Signal(range(8))
        k = Signal(16)  # words done (written, or read and sent)
        pointer = Signal(range(MAX_PAYLOAD + 1))  # the next payload byte to read

        # What each write and read reaches: its unit (bytes, a power of two), the units its
        # memory holds, and the write enable or the read data (the cycle after the address).
        write_to = {
            Command.WRITE_CODE: (INSTRUCTION_BYTES, config.instruction_capacity, self.imem_we),
            Command.WRITE_MAIN: (dma, main_words, self.main_we),
            Command.WRITE_TARGETS: (TARGET_BITS // 8, self.max_targets, self.target_we),
        }
        read_from = {
            Command.READ_MAIN: (dma, main_words, self.main_rdata),
            Command.READ_RECORDS: (
                RECORD_WORD_BYTES,
                self.max_targets * RECORD_WORDS,
                self.record_data,
            ),
        }
        counters = Array(getattr(self, name) for name in self.counter_names)
        identity_rom = Array(Const(b, 8) for b in identity)
        flags = Cat(self.running, self.done, self.error, self.overrun)
        # STATUS's answer: the flags, then the tracker's records (u16).
        status_word = Cat(flags, C(0, 8 - len(flags)), self.records)

        m.d.comb += [
            self.main_addr.eq(first + k),
            self.imem_addr.eq(first + k),
            self.target_addr.eq(first + k),
            self.record_addr.eq(first + k),
            self.main_wdata.eq(word[-8 * dma :]),
            self.imem_wdata.eq(word[-8 * INSTRUCTION_BYTES :]),
            self.target_data.eq(word[-TARGET_BITS:]),
            load.addr.eq(pointer),
            store.data.eq(self.rx_data),
            store.addr.eq(index),
            self.activity.eq(self.rx_valid | (self.tx_valid & self.tx_ready)),
        ]
        m.d.sync += [self.run.eq(0), self.core_reset.eq(0)]

        def take(byte):  # one more request byte into the CRC
            m.d.sync += [crc.eq(crc16_step(crc, byte)), index.eq(index + 1), idle.eq(0)]

        def answer(code, n_words, n_unit):
            m.d.sync += [status.eq(code), words.eq(n_words), unit.eq(n_unit), header.eq(0)]
            m.d.sync += [k.eq(0), crc.eq(CRC_INIT), sent.eq(0)]
            m.next = "header"

        with m.FSM():
            with m.State("sync"), m.If(self.rx_valid & (self.rx_data == SYNC)):
                m.d.sync += [crc.eq(CRC_INIT), index.eq(0), idle.eq(0)]
                m.next = "head"

            # A frame whose bytes stop coming is forgotten.
            for state in ("head", "payload", "crc"):
                with m.State(state):
                    with m.If(~self.rx_valid):
                        m.d.sync += idle.eq(idle + 1)
                        with m.If(idle == self.idle_cycles):
                            m.next = "sync"
                    if state == "head":
                        with m.Elif(index == 3):  # the length's high byte
                            take(self.rx_data)
                            m.d.sync += [length[8:].eq(self.rx_data), index.eq(0)]
                            size = self.rx_data << 8 | length[:8]
                            with m.If(size > MAX_PAYLOAD):
                                m.next = "drain"
                            with m.Elif(size == 0):
                                m.next = "crc"
                            with m.Else():
                                m.next = "payload"
                        with m.Else():
                            take(self.rx_data)
                            with m.Switch(index):
                                with m.Case(0):
                                    m.d.sync += command.eq(self.rx_data)
                                with m.Case(1):
                                    m.d.sync += sequence.eq(self.rx_data)
                                with m.Case(2):
                                    m.d.sync += length[:8].eq(self.rx_data)
                    elif state == "payload":
                        with m.Else():
                            take(self.rx_data)
                            m.d.comb += store.en.eq(1)
                            for byte in range(ADDRESS_BYTES):
                                with m.If(index == byte):
                                    m.d.sync += first[8 * byte : 8 * byte + 8].eq(self.rx_data)
                            for byte in range(2):
                                with m.If(index == ADDRESS_BYTES + byte):
                                    m.d.sync += count[8 * byte : 8 * byte + 8].eq(self.rx_data)
                            with m.If(index == length - 1):
                                m.d.sync += index.eq(0)
                                m.next = "crc"
                    else:
                        with m.Else():
                            m.d.sync += [index.eq(index + 1), idle.eq(0)]
                            with m.If(index == 0):
                                m.d.sync += received_crc[:8].eq(self.rx_data)
                            with m.Else():
                                m.d.sync += received_crc[8:].eq(self.rx_data)
                                with m.If((self.rx_data << 8 | received_crc[:8]) == crc):
                                    m.next = "check"
                                with m.Else():
                                    answer(Status.BAD_FRAME, 0, 0)

            with m.State("drain"):  # a payload too long: wait for the line to go quiet
                with m.If(self.rx_valid):
                    m.d.sync += idle.eq(0)
                with m.Elif(idle == self.idle_cycles):
                    answer(Status.BAD_FRAME, 0, 0)
                with m.Else():
                    m.d.sync += idle.eq(idle + 1)

            with m.State("check"):
                m.d.sync += [pointer.eq(ADDRESS_BYTES), k.eq(0), sent.eq(0)]
                # A RUN is forgotten by any other intact request: the next RUN with the same
                # sequence number (256 requests on) starts the core again.
                with m.If(command != Command.RUN):
                    m.d.sync += last_run.eq(0)
                with m.Switch(command):
                    for code, (size, capacity, _) in write_to.items():
                        with m.Case(code):
                            body = length - ADDRESS_BYTES
                            n = body >> (size.bit_length() - 1)
                            with m.If((length <= ADDRESS_BYTES) | (body & (size - 1) != 0)):
                                answer(Status.BAD_FRAME, 0, 0)
                            with m.Elif(self.running):
                                answer(Status.BUSY, 0, 0)
                            with m.Elif(first + n > capacity):
                                answer(Status.OUT_OF_RANGE, 0, 0)
                            with m.Else():
                                m.d.sync += [words.eq(n), unit.eq(size)]
                                m.next = "fetch"
                    for code, (size, capacity, _) in read_from.items():
                        with m.Case(code):
                            with m.If((length != ADDRESS_BYTES + 2) | (count == 0)):
                                answer(Status.BAD_FRAME, 0, 0)
                            with m.Elif(count > MAX_PAYLOAD // size):
                                answer(Status.BAD_FRAME, 0, 0)
                            with m.Elif(self.running):
                                answer(Status.BUSY, 0, 0)
                            with m.Elif(first + count > capacity):
                                answer(Status.OUT_OF_RANGE, 0, 0)
                            with m.Else():
                                answer(Status.OK, count, size)
                    with m.Case(Command.RUN):
                        with m.If(length != 0):
                            answer(Status.BAD_FRAME, 0, 0)
                        with m.Elif(last_run == (1 << 8 | sequence)):
                            answer(Status.OK, 0, 0)  # a retry: started already
                        with m.Elif(self.running):
                            answer(Status.BUSY, 0, 0)
                        with m.Else():
                            m.d.sync += [self.run.eq(1), last_run.eq(1 << 8 | sequence)]
                            answer(Status.OK, 0, 0)
                    simple = {
                        Command.RESET: (0, 0),
                        Command.STATUS: (1, 3),
                        Command.READ_COUNTERS: (len(self.counter_names), COUNTER_BYTES),
                        Command.IDENTIFY: (len(identity), 1),
                    }
                    for code, (n_words, n_unit) in simple.items():
                        with m.Case(code):
                            with m.If(length != 0):
                                answer(Status.BAD_FRAME, 0, 0)
                            with m.Else():
                                if code is Command.RESET:
                                    m.d.sync += self.core_reset.eq(1)
                                answer(Status.OK, n_words, n_unit)
                    with m.Default():
                        answer(Status.BAD_FRAME, 0, 0)

            # A write: read the payload a byte every two cycles (address, then data) into
            # the top of `word`, and write each whole word.
            with m.State("fetch"):
                m.next = "shift"
            with m.State("shift"):
                m.d.sync += [
                    word.eq(word >> 8 | load.data << (8 * word_bytes - 8)),
                    pointer.eq(pointer + 1),
                    sent.eq(sent + 1),
                ]
                with m.If(sent + 1 == unit):
                    m.next = "write"
                with m.Else():
                    m.next = "fetch"
            with m.State("write"):
                with m.Switch(command):
                    for code, (_, _, enable) in write_to.items():
                        with m.Case(code):
                            m.d.comb += enable.eq(1)
                m.d.sync += [k.eq(k + 1), sent.eq(0)]
                with m.If(k + 1 == words):
                    answer(Status.OK, 0, 0)
                with m.Else():
                    m.next = "fetch"

            # The response: SYNC, status, sequence, length, then `words` words, then the CRC.
            head_bytes = Array([SYNC, status, sequence, (words * unit)[:8], (words * unit)[8:16]])
            with m.State("header"):
                m.d.comb += [self.tx_valid.eq(1), self.tx_data.eq(head_bytes[header])]
                with m.If(self.tx_ready):
                    with m.If(header != 0):
                        m.d.sync += crc.eq(crc16_step(crc, self.tx_data))
                    m.d.sync += header.eq(header + 1)
                    with m.If(header == 4):
                        m.d.sync += header.eq(0)
                        m.next = "address"
                        with m.If(words == 0):
                            m.next = "trailer"
            with m.State("address"):  # a memory answers the cycle after its address
                m.next = "latch"
            with m.State("latch"):
                with m.Switch(command):
                    for code, (_, _, data) in read_from.items():
                        with m.Case(code):
                            m.d.sync += word.eq(data)
                    with m.Case(Command.READ_COUNTERS):
                        m.d.sync += word.eq(counters[k])
                    with m.Case(Command.IDENTIFY):
                        m.d.sync += word.eq(identity_rom[k])
                    with m.Case(Command.STATUS):
                        m.d.sync += word.eq(status_word)
                m.d.sync += [k.eq(k + 1), sent.eq(0)]
                m.next = "send"
            with m.State("send"):
                m.d.comb += [self.tx_valid.eq(1), self.tx_data.eq(word[:8])]
                with m.If(self.tx_ready):
                    m.d.sync += [crc.eq(crc16_step(crc, word[:8])), word.eq(word >> 8)]
                    m.d.sync += sent.eq(sent + 1)
                    with m.If(sent + 1 == unit):
                        with m.If(k == words):
                            m.next = "trailer"
                        with m.Else():
                            m.next = "address"
            with m.State("trailer"):
                m.d.comb += [self.tx_valid.eq(1), self.tx_data.eq(crc.word_select(header[0], 8))]
                with m.If(self.tx_ready):
                    m.d.sync += header.eq(header + 1)
                    with m.If(header[0]):
                        m.next = "sync"
        return m
