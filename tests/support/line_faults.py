"""Faults on a serial line, for the tests of the host runtime and the UART bridge: bytes
flipped, dropped and added, from a seeded random generator, counted by kind."""

from __future__ import annotations

import random

KINDS = ("flip", "drop", "add")


def _damage(data: bytearray, kind: str, rng: random.Random) -> None:
    at = rng.randrange(len(data))
    if kind == "flip":
        data[at] ^= 1 << rng.randrange(8)
    elif kind == "drop":
        del data[at]
    else:
        data.insert(at, rng.randrange(256))


def frame_faults(seed: int, rate: float):
    """Damages a write (a whole request frame) with probability `rate`: one byte flipped,
    dropped or added, the kinds in turn. Returns the injector and the count of each kind."""
    rng, hits = random.Random(seed), dict.fromkeys(KINDS, 0)

    def damage(data: bytes) -> bytes:
        out = bytearray(data)
        if out and rng.random() < rate:
            kind = KINDS[sum(hits.values()) % len(KINDS)]
            hits[kind] += 1
            _damage(out, kind, rng)
        return bytes(out)

    return damage, hits


def byte_faults(seed: int, rate: float):
    """Damages each byte with probability `rate` (flipped, dropped, or with a byte added
    after it, the kinds in turn). Returns the injector and the count of each kind."""
    rng, hits = random.Random(seed), dict.fromkeys(KINDS, 0)

    def damage(data: bytes) -> bytes:
        out = bytearray()
        for byte in data:
            piece = bytearray([byte])
            if rng.random() < rate:
                kind = KINDS[sum(hits.values()) % len(KINDS)]
                hits[kind] += 1
                if kind == "add":
                    piece.append(rng.randrange(256))
                else:
                    _damage(piece, kind, rng)
            out += piece
        return bytes(out)

    return damage, hits


class DamagingLine:
    """A transport (verdigris.boards.host) that passes what it writes through `to_board`
    and what it reads through `to_host`."""

    def __init__(self, line, *, to_board, to_host):
        self.line, self.to_board, self.to_host = line, to_board, to_host

    def write(self, data: bytes) -> None:
        self.line.write(self.to_board(data))

    def read(self, n: int, timeout: float) -> bytes:
        return self.to_host(self.line.read(n, timeout))

    def discard(self) -> None:
        self.line.discard()

    def clock(self) -> float:
        return self.line.clock()
