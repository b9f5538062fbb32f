"""A serial port as the host runtime's transport (verdigris.boards.host): raw 8N1 bytes
through the operating system's terminal interface (termios), with timeouts. It serves a
board's USB serial adapter (/dev/ttyUSB0, /dev/ttyACM0) and the simulated board's
pseudo-terminal alike."""

from __future__ import annotations

import os
import select
import termios
import time
import tty

__all__ = ["SerialPort", "SerialPortError"]


class SerialPortError(OSError):
    """A serial port that cannot be opened or set up."""


class SerialPort:
    """The serial port at `path`, raw, at `baud` (a rate termios knows: 115200, 3000000...)."""

    def __init__(self, path: str, baud: int):
        speed = getattr(termios, f"B{baud}", None)
        if speed is None:
            raise SerialPortError(f"{baud} baud is not a rate this system's serial ports know")
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError as error:
            hint = (
                " (on Linux, add yourself to the dialout group)"
                if isinstance(error, PermissionError)
                else ""
            )
            raise SerialPortError(
                f"cannot open serial port {path}: {error.strerror}{hint}"
            ) from None
        try:
            tty.setraw(self.fd)
            mode = termios.tcgetattr(self.fd)
            mode[4] = mode[5] = speed  # input and output speed
            mode[2] |= termios.CLOCAL | termios.CREAD
            termios.tcsetattr(self.fd, termios.TCSANOW, mode)
        except termios.error as error:
            os.close(self.fd)
            raise SerialPortError(f"{path} is not a serial port ({error.args[-1]})") from None
        self.path = path

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            select.select([], [self.fd], [], 1.0)
            try:
                view = view[os.write(self.fd, view) :]
            except BlockingIOError:
                continue

    def read(self, n: int, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        data = bytearray()
        while len(data) < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                break
            try:
                data += os.read(self.fd, n - len(data))
            except BlockingIOError:
                continue
        return bytes(data)

    def discard(self) -> None:
        """Drop what is waiting and what arrives until the line is quiet for 20 ms."""
        while self.read(4096, 0.02):
            pass

    def clock(self) -> float:
        return time.monotonic()

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> SerialPort:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()
