"""The host runtime of a board: runs host-port jobs (verdigris.arch.host_port) on the SoC over
a serial line, in the frames of verdigris.arch.serial_link, retrying a request until its
answer comes back intact.

`BoardLink` speaks frames over a transport: an object with `write(data)`, `read(n,
timeout) -> bytes` (what came within `timeout` seconds), `discard()` (drops what is
waiting) and `clock() -> float` (its seconds: the wall clock for a serial port, simulated
time for a simulation). `BoardHost` runs jobs through it. The serial port of a real board
is `SerialPort`; the tests drive the simulated SoC through the same classes.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from verdigris.arch.config import AccelConfig
from verdigris.arch.counters import COUNTERS
from verdigris.arch.host_port import HostJob, snapshots_from_records
from verdigris.arch.isa import INSTRUCTION_BYTES
from verdigris.arch.serial_link import (
    ADDRESS_BYTES,
    CRC_BYTES,
    HEADER_BYTES,
    MAX_PAYLOAD,
    PROTOCOL_VERSION,
    RECORD_WORDS,
    SYNC,
    Command,
    Flag,
    FrameError,
    Status,
    config_fingerprint,
    counter_values,
    encode_frame,
    parse_frame,
    read_main_payload,
    targets_payload,
    write_code_payload,
    write_main_payload,
)

__all__ = ["BoardHost", "BoardLink", "BoardRunError", "JobResult", "LinkError"]

logger = logging.getLogger(__name__)

# A layer boundary no run reaches: it ends the tracker's targets.
_NEVER = (2**32 - 1,) * 4


class BoardRunError(RuntimeError):
    """The board answered, but not as the job needs (another config, busy, out of range)."""


class LinkError(BoardRunError):
    """No intact answer to a request after every retry."""


class BoardLink:
    """Request and response frames over `transport`, each request sent again (same sequence
    number) until its answer is intact, at most `retries` times.

    `timeout` is how long an answer may take to start and then to finish, in the
    transport's seconds; it must be longer than the bridge's `idle_cycles`, so that a
    request the bridge has given up is sent again only after the bridge has given it up.
    """

    def __init__(self, transport, *, timeout: float, retries: int = 8):
        self.transport = transport
        self.timeout = timeout
        self.retries = retries
        self.sequence = 0
        self.retried = 0  # requests sent again, over the link's life

    def request(self, command: Command, payload: bytes = b"") -> bytes:
        """The payload of the answer to one request; BoardRunError for an answer other than OK,
        LinkError when no intact answer came."""
        frame = encode_frame(command, self.sequence, payload)
        problem = "no answer"
        for attempt in range(self.retries):
            if attempt:
                self.retried += 1
                logger.debug("%s: %s; sending it again", command.name, problem)
            self.transport.write(frame)
            try:
                answer = self._answer()
            except FrameError as error:
                problem = str(error)
                self.transport.discard()
                continue
            if answer.sequence != self.sequence:
                problem = f"an answer to request {answer.sequence}, not {self.sequence}"
                continue
            if answer.code == Status.BAD_FRAME:
                problem = "the board received the request damaged"
                continue
            self.sequence = (self.sequence + 1) & 0xFF
            if answer.code != Status.OK:
                status = Status(answer.code).name if answer.code in iter(Status) else "?"
                raise BoardRunError(f"the board answered {command.name} with {status}")
            return answer.payload
        raise LinkError(
            f"no intact answer to {command.name} in {self.retries} tries (last: {problem}): "
            "check the serial port, the baud rate and that the board runs a Verdigris bitstream"
        )

    def _answer(self):
        """The next frame from the transport; FrameError if it does not come whole."""
        read = self.transport.read
        while True:
            byte = read(1, self.timeout)
            if not byte:
                raise FrameError("no answer")
            if byte[0] == SYNC:
                break
        head = read(HEADER_BYTES - 1, self.timeout)
        if len(head) < HEADER_BYTES - 1:
            raise FrameError("an answer cut short in its header")
        (length,) = struct.unpack_from("<H", head, 2)
        if length > MAX_PAYLOAD:
            raise FrameError(f"an answer says its payload is {length} bytes")
        rest = read(length + CRC_BYTES, self.timeout)
        return parse_frame(bytes([SYNC]) + head + rest)


@dataclass(frozen=True)
class JobResult:
    """One job's outcome: the main-memory words of each read range (`HostJob.reads`), every
    counter at `done`, whether the core stopped on an error (then no words), and the
    counters at each layer boundary (None when the tracker could not give them)."""

    chunks: list[np.ndarray]
    counters: dict[str, int]
    error: bool
    snapshots: list[dict[str, int]] | None


class BoardHost:
    """Jobs on the board behind `link`, which must run `config` (checked by IDENTIFY)."""

    def __init__(self, link: BoardLink, config: AccelConfig):
        self.link = link
        self.config = config
        self._code: bytes | None = None  # the code this host loaded last
        self._check_identity()

    def _check_identity(self) -> None:
        answer = self.link.request(Command.IDENTIFY)
        version, fingerprint, self.max_targets = struct.unpack_from("<BIH", answer)
        name = answer[7:].decode(errors="replace")
        if version != PROTOCOL_VERSION:
            raise BoardRunError(
                f"the board speaks host-port protocol {version}, this host {PROTOCOL_VERSION}: "
                "build and flash a bitstream from this version of Verdigris"
            )
        if fingerprint != config_fingerprint(self.config):
            raise BoardRunError(
                f"the board runs config '{name}', not '{self.config.name}' (or another "
                f"version of it): compile for '{name}', or build and flash a bitstream of "
                f"'{self.config.name}'"
            )

    def load_bytes(self, jobs: Sequence[HostJob]) -> int:
        """The bytes `run` sends to load `jobs` one after another: each memory image, and
        the code of each job whose code is not the one the board holds already."""
        total, code = 0, self._code
        for job in jobs:
            total += job.memory.size + (len(job.code) if job.code != code else 0)
            code = job.code
        return total

    def run(self, job: HostJob, *, progress: Callable[[int], None] | None = None) -> JobResult:
        """Load, run and read back one job. The code is sent only when it is not the code
        this host loaded last (nothing else writes the code memory). `progress(sent)` hears
        the bytes sent so far while loading."""
        link, dma = self.link, self.config.dma_bytes
        code, memory = job.code, np.asarray(job.memory, np.uint8).tobytes()
        sent = 0
        if code != self._code:
            self._code = None  # until all of it is there
            step = (MAX_PAYLOAD - ADDRESS_BYTES) // INSTRUCTION_BYTES
            for first in range(0, len(code) // INSTRUCTION_BYTES, step):
                chunk = code[first * INSTRUCTION_BYTES : (first + step) * INSTRUCTION_BYTES]
                link.request(Command.WRITE_CODE, write_code_payload(first, chunk))
                sent += len(chunk)
                if progress:
                    progress(sent)
            self._code = code
        step = (MAX_PAYLOAD - ADDRESS_BYTES) // dma
        for first in range(0, len(memory) // dma, step):
            chunk = memory[first * dma : (first + step) * dma]
            link.request(Command.WRITE_MAIN, write_main_payload(first, chunk, dma))
            sent += len(chunk)
            if progress:
                progress(sent)
        # The layer tracker's targets, ended by one no run reaches; a Program with more
        # boundaries than the tracker holds gets that one only (and no layers).
        tracked = len(job.boundaries) < self.max_targets
        targets = [*(job.boundaries if tracked else ()), _NEVER]
        link.request(Command.WRITE_TARGETS, targets_payload(0, targets))
        link.request(Command.RUN)
        flags, records = self._wait(job.watchdog)
        counters = counter_values(link.request(Command.READ_COUNTERS))
        if flags & Flag.ERROR:  # reset the core; no outputs, no layers
            link.request(Command.RESET)
            return JobResult([], counters, True, None)
        chunks = [self._read_main(first, count) for first, count in job.reads]
        snapshots = None
        if tracked and not flags & Flag.OVERRUN:
            snapshots = snapshots_from_records(
                job.boundaries, counters, [self._read_record(r) for r in range(records)]
            )
        if snapshots is None and job.boundaries:
            logger.warning(
                "no per-layer counters for this run (%d boundaries, the tracker holds %d; "
                "records lost: %s): the Activity is the run's total",
                len(job.boundaries),
                self.max_targets - 1,
                bool(flags & Flag.OVERRUN),
            )
        return JobResult(chunks, counters, False, snapshots)

    def _read_record(self, record: int) -> dict[str, int]:
        """One record of the layer tracker: the low 32 bits of every counter."""
        payload = read_main_payload(record * RECORD_WORDS, len(COUNTERS))
        words = struct.unpack(
            f"<{len(COUNTERS)}I", self.link.request(Command.READ_RECORDS, payload)
        )
        return dict(zip(COUNTERS, words, strict=True))

    def _wait(self, watchdog: int) -> tuple[int, int]:
        """The status flags and the tracker's records once the core is done; BoardRunError
        after `watchdog` cycles of the config's clock (or a tenth of a second) of the
        transport's time."""
        clock = self.link.transport.clock
        deadline = clock() + max(0.1, watchdog / (self.config.clock_mhz * 1e6))
        while True:
            flags, records = struct.unpack("<BH", self.link.request(Command.STATUS))
            if flags & Flag.DONE:
                return flags, records
            if clock() > deadline:
                self.link.request(Command.RESET)
                raise BoardRunError(
                    f"the program did not finish within {watchdog:,} cycles; the core was reset"
                )

    def _read_main(self, first: int, count: int) -> np.ndarray:
        dma, words = self.config.dma_bytes, MAX_PAYLOAD // self.config.dma_bytes
        parts = []
        for start in range(first, first + count, words):
            n = min(words, first + count - start)
            parts.append(self.link.request(Command.READ_MAIN, read_main_payload(start, n)))
        data = np.frombuffer(b"".join(parts), np.uint8)
        if data.size != count * dma:
            raise BoardRunError(f"READ_MAIN answered {data.size} bytes, not {count * dma}")
        return data
