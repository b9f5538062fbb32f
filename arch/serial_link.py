"""The host port over a serial line: the frames a board's host runtime and the SoC's UART
bridge exchange (docs/host-port.md, "Over a serial line").

Every exchange is one request frame from the host and one response frame from the board:

    request:  SYNC, command, sequence, length (u16), payload, CRC (u16)
    response: SYNC, status,  sequence, length (u16), payload, CRC (u16)

Integers are little-endian. The CRC is CRC-16/CCITT-FALSE (polynomial 0x1021, initial
value 0xFFFF, no reflection) over every byte after SYNC and before the CRC. The bridge
(`verdigris.boards.bridge`) acts on a request only when its CRC matches; otherwise it
answers `Status.BAD_FRAME` and the host sends the frame again. A lost or damaged response
is retried the same way: reads, writes, `STATUS` and `RESET` may be repeated, and the bridge
starts a program (`RUN`) once per sequence number, so a retried `RUN` answers without
starting the program a second time.

This module holds the frame format, the commands and their payloads, and nothing of either
end: the hardware takes its constants from here, and the host runtime
(`verdigris.boards.host`) builds and checks its frames with these functions.
"""

from __future__ import annotations

import binascii
import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum

from verdigris.arch.config import AccelConfig
from verdigris.arch.counters import COUNTERS
from verdigris.arch.isa import INSTRUCTION_BYTES

__all__ = [
    "ADDRESS_BYTES",
    "COUNTER_BYTES",
    "CRC_BYTES",
    "CRC_INIT",
    "CRC_POLYNOMIAL",
    "HEADER_BYTES",
    "MAX_PAYLOAD",
    "PROTOCOL_VERSION",
    "RECORD_WORDS",
    "RECORD_WORD_BYTES",
    "SYNC",
    "TARGET_BITS",
    "Command",
    "Flag",
    "Frame",
    "FrameError",
    "Status",
    "config_fingerprint",
    "counter_values",
    "crc16",
    "encode_frame",
    "identity_payload",
    "parse_frame",
    "read_main_payload",
    "targets_payload",
    "write_code_payload",
    "write_main_payload",
]

SYNC = 0x56  # "V": the first byte of every frame
PROTOCOL_VERSION = 1
HEADER_BYTES = 5  # SYNC, command or status, sequence, length
CRC_BYTES = 2
CRC_POLYNOMIAL = 0x1021  # CRC-16/CCITT-FALSE: this polynomial, from CRC_INIT, no reflection
CRC_INIT = 0xFFFF
# The largest payload of a request or a response: the bridge holds one request's payload
# in a block RAM of this many bytes before it acts on it.
MAX_PAYLOAD = 1024
COUNTER_BYTES = 8  # each counter is sent as a u64
ADDRESS_BYTES = 4  # the first word or instruction of a write or a read
# A layer boundary's target: its four completion counts (COMPLETION_COUNTERS order), u32.
TARGET_BITS = 128
# A record of the layer tracker: the low 32 bits of every counter of COUNTERS, in order, in
# a block of this many u32 words (record r from word r * RECORD_WORDS).
RECORD_WORDS = 64
RECORD_WORD_BYTES = 4


class Command(IntEnum):
    """What a request asks for (its payload; the response's payload)."""

    IDENTIFY = 0  # (); PROTOCOL_VERSION, config_fingerprint u32, targets u16, config name
    WRITE_CODE = 1  # first instruction u32, whole instructions; ()
    WRITE_MAIN = 2  # first word u32, whole words of dma_bytes; ()
    READ_MAIN = 3  # first word u32, word count u16; the words
    RUN = 4  # (); (): starts the program at instruction 0, once per sequence number
    STATUS = 5  # (); flags u8 (Flag), records u16 (the layer tracker's, this run)
    READ_COUNTERS = 6  # (); every counter of COUNTERS, in order, as u64
    RESET = 7  # (); (): resets the core (after an error); memories keep their contents
    WRITE_TARGETS = 8  # first target u32, whole targets of TARGET_BITS; ()
    READ_RECORDS = 9  # first word u32, word count u16; the tracker's record words (u32)


class Flag(IntEnum):
    """The bits of STATUS's flags."""

    RUNNING = 1
    DONE = 2
    ERROR = 4
    OVERRUN = 8  # the layer tracker lost a record this run


class Status(IntEnum):
    """The first byte after SYNC of a response."""

    OK = 0
    BAD_FRAME = 1  # CRC mismatch, a payload too long, an unknown command or a bad length
    BUSY = 2  # a write, read or RUN while the core is running
    OUT_OF_RANGE = 3  # a write or read past the end of its memory


class FrameError(ValueError):
    """Bytes that are not a whole, intact frame."""


@dataclass(frozen=True)
class Frame:
    """A parsed frame: `code` is a request's Command or a response's Status, as an int."""

    code: int
    sequence: int
    payload: bytes


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE of `data` (binascii's CRC-CCITT is CRC_POLYNOMIAL's)."""
    return binascii.crc_hqx(data, CRC_INIT)


def encode_frame(code: int, sequence: int, payload: bytes = b"") -> bytes:
    """A whole frame: a request (code = Command) or a response (code = Status)."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"a payload holds at most {MAX_PAYLOAD} bytes, not {len(payload)}")
    body = struct.pack("<BBH", code, sequence & 0xFF, len(payload)) + payload
    return bytes([SYNC]) + body + struct.pack("<H", crc16(body))


def parse_frame(data: bytes) -> Frame:
    """The frame `data` holds, exactly; FrameError when it is cut short, too long, or its
    SYNC or CRC is wrong."""
    if len(data) < HEADER_BYTES + CRC_BYTES or data[0] != SYNC:
        raise FrameError(f"not a frame: {data[:8].hex()}")
    code, sequence, length = struct.unpack_from("<BBH", data, 1)
    if len(data) != HEADER_BYTES + length + CRC_BYTES:
        raise FrameError(f"a frame of {len(data)} bytes says its payload is {length} bytes")
    body = data[1 : HEADER_BYTES + length]
    (crc,) = struct.unpack_from("<H", data, HEADER_BYTES + length)
    if crc != crc16(body):
        raise FrameError(f"CRC {crc:#06x} where the frame's bytes give {crc16(body):#06x}")
    return Frame(code, sequence, bytes(data[HEADER_BYTES : HEADER_BYTES + length]))


def config_fingerprint(config: AccelConfig) -> int:
    """A u32 that differs between configs (CRC-32 of the config's TOML): the bridge reports
    it, so a host does not run a Program on a board built for another config."""
    return zlib.crc32(config.to_toml().encode())


def identity_payload(config: AccelConfig, targets: int) -> bytes:
    """What the bridge of `config` answers to IDENTIFY, its tracker holding `targets`."""
    name = config.name.encode()[: MAX_PAYLOAD - 7]
    return struct.pack("<BIH", PROTOCOL_VERSION, config_fingerprint(config), targets) + name


def write_code_payload(first: int, code: bytes) -> bytes:
    if len(code) % INSTRUCTION_BYTES:
        raise ValueError(f"code is whole instructions of {INSTRUCTION_BYTES} bytes")
    return struct.pack("<I", first) + code


def write_main_payload(first: int, words: bytes, dma_bytes: int) -> bytes:
    if len(words) % dma_bytes:
        raise ValueError(f"main memory is written in whole words of {dma_bytes} bytes")
    return struct.pack("<I", first) + words


def read_main_payload(first: int, count: int) -> bytes:
    """READ_MAIN's and READ_RECORDS's payload: the first word and the word count."""
    return struct.pack("<IH", first, count)


def targets_payload(first: int, targets) -> bytes:
    """WRITE_TARGETS's payload: targets (four completion counts each) from `first`."""
    return struct.pack("<I", first) + b"".join(struct.pack("<4I", *t) for t in targets)


def counter_values(payload: bytes) -> dict[str, int]:
    """The counters of a READ_COUNTERS response, by name."""
    if len(payload) != COUNTER_BYTES * len(COUNTERS):
        raise FrameError(
            f"READ_COUNTERS answered {len(payload)} bytes, not {COUNTER_BYTES * len(COUNTERS)}"
        )
    values = struct.unpack(f"<{len(COUNTERS)}Q", payload)
    return dict(zip(COUNTERS, values, strict=True))
