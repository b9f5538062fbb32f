"""Whether a config fits a board's ECP5, decided before synthesis, and the largest config
that fits each board per operand width.

The estimates are calibrated on yosys `synth_ecp5` and nextpnr-ecp5 builds of the SoC
(docs/boards.md, "Fitting a board"):

- DSPs (MULT18X18D), exact on the builds: one per PE at every operand width, four per
  requantizer lane (its 32 x 32-bit product), two per lane for the vector unit, and six in
  the DMA's address checks: `dim**2 + 6 dim + 6`.
- Block RAM (DP16KD, 18 kbit): every memory of the SoC (buffers, lookup tables, main memory,
  the code memory, the bridge's payload) in the fewest blocks of 16384x1, 8192x2, 4096x4,
  2048x8, 1024x16 or 512x32 bits; the requant table and the instruction queues are shallow
  and go to LUT RAM. Within 1 % of yosys on `tiny`, 5 % under it on `default`, so a config
  may use at most 95 % of the blocks.
- LUT4s (nextpnr's TRELLIS_COMB, carry cells counted as two): a fixed part and a part per
  PE that grows with the narrowest operand width the PE computes (docs/hardware.md's PE
  costs), fitted on the builds; a config may use at most 85 % of them, as placement needs
  room.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from verdigris.arch.config import AccelConfig
from verdigris.arch.isa import INSTRUCTION_BYTES, Buffer, buffer_rows, element_bits, row_bits
from verdigris.arch.serial_link import MAX_PAYLOAD, RECORD_WORDS, TARGET_BITS
from verdigris.boards.catalog import Board
from verdigris.boards.pll import fastest_clock
from verdigris.boards.soc import TRACKER_TARGETS

__all__ = [
    "BOARD_CLOCK_MHZ",
    "DEVICES",
    "SOC_FMAX_MHZ",
    "FitError",
    "Needs",
    "board_config",
    "check_fit",
    "needs",
]


@dataclass(frozen=True)
class Needs:
    """Resources of an ECP5 or a design: LUT4s, DSPs (MULT18X18D) and 18-kbit block RAMs."""

    lut4: int
    dsp: int
    ebr: int


# What each ECP5 part holds (Lattice's ECP5 family data sheet, table 1.1); the 5G parts
# (LFE5UM5G, with SERDES) hold what the LFE5U of their size does.
_SIZES = {
    "12F": Needs(lut4=12_288, dsp=28, ebr=32),
    "25F": Needs(lut4=24_288, dsp=28, ebr=56),
    "45F": Needs(lut4=43_848, dsp=72, ebr=108),
    "85F": Needs(lut4=83_640, dsp=156, ebr=208),
}
DEVICES = {
    f"{family}-{size}": have for family in ("LFE5U", "LFE5UM5G") for size, have in _SIZES.items()
}
# The SoC's highest Fmax on the builds (docs/boards.md), by the ECP5's speed grade: the
# ULX3S's and the Colorlights' -6, the ECPIX-5's and the OrangeCrab's -8.
SOC_FMAX_MHZ = {"6": 35.0, "8": 47.7}
# The clock of the boards' own configs: below the Fmax of every grade, and the ULX3S's and
# the Colorlights' oscillator, so they need no PLL.
BOARD_CLOCK_MHZ = 25.0
# The shares of a device a design may use: EBR is estimated a few percent low on large
# configs, and nextpnr needs free LUTs to place and route.
EBR_SHARE = 0.95
LUT_SHARE = 0.85

# LUT4s (nextpnr's TRELLIS_COMB): `tiny` used 16,237 on an 85F before the layer tracker,
# which added 2,714 on the ulx3s-25f's build (14,333 in all); yosys's cells of `default`
# grow by 253 a PE at the same ratio. A PE that also computes narrower operands costs what
# bench/precision.py measures on top (its LUT4s and twice its carry cells, over int8's).
# The ECPIX-5's 4x4 (with the PLL, on a grade 8 part) used 19,024, the most of the builds.
_LUT_FIXED = 14_950
_LUT_PER_PE = {8: 255, 4: 255 + 98, 2: 255 + 350, 1: 255 + 330}

# The buffers a narrower array than tiny's makes deeper (the lookup tables are per lane).
_SCALED_BUFFERS = ("inp_rows", "wgt_rows", "acc_rows", "req_rows")

_EBR_SHAPES = ((16384, 1), (8192, 2), (4096, 4), (2048, 8), (1024, 16), (512, 32))
_LUTRAM_DEPTH = 32  # memories this shallow go to LUT RAM, not block RAM


class FitError(ValueError):
    """A config that does not fit a board, with what does."""


def _blocks(width: int, depth: int) -> int:
    if depth <= _LUTRAM_DEPTH:
        return 0
    return min(math.ceil(depth / d) * math.ceil(width / w) for d, w in _EBR_SHAPES)


def needs(config: AccelConfig) -> Needs:
    """The estimated resources of the SoC of `config` (see the module docstring)."""
    dim = config.dim
    memories = [
        (row_bits(config, b), buffer_rows(config, b)) for b in Buffer if b is not Buffer.LUT
    ]
    lut_depth = max(1, buffer_rows(config, Buffer.LUT))
    memories += [(element_bits(config, Buffer.LUT), lut_depth)] * dim
    memories += [
        (8 * config.dma_bytes, config.main_memory_bytes // config.dma_bytes),
        (8 * INSTRUCTION_BYTES, config.instruction_capacity),
        (8, MAX_PAYLOAD),
        (TARGET_BITS, TRACKER_TARGETS),  # the layer tracker's targets (LUT RAM)
        (32, TRACKER_TARGETS * RECORD_WORDS),  # and its records
    ]
    return Needs(
        lut4=_LUT_FIXED + _LUT_PER_PE[config.operand_bits] * dim * dim,
        dsp=dim * dim + 6 * dim + 6,
        ebr=sum(_blocks(width, depth) for width, depth in memories),
    )


def _problems(config: AccelConfig, device: str) -> list[str]:
    have, want = DEVICES[device], needs(config)
    problems = []
    if want.dsp > have.dsp:
        problems.append(f"{want.dsp} DSPs of its {have.dsp}")
    if want.ebr > EBR_SHARE * have.ebr:
        problems.append(f"about {want.ebr} block RAMs of its {have.ebr}")
    if want.lut4 > LUT_SHARE * have.lut4:
        problems.append(f"about {want.lut4:,} LUT4s of its {have.lut4:,}")
    return problems


def check_fit(board: Board, config: AccelConfig) -> Needs:
    """The estimated resources of `config`, or FitError naming what exceeds `board`'s ECP5
    and the largest config that fits it."""
    problems = _problems(config, board.device)
    if problems:
        try:
            fitting = board_config(board, config.operand_bits)
            hint = (
                f"without --config, `verdigris bitstream --board {board.name}` builds the "
                f"largest that fits ({fitting.rows}x{fitting.cols}, "
                f"{fitting.main_memory_bytes // 1024} KiB of main memory, "
                f"{fitting.instruction_capacity} instructions)"
            )
        except FitError:
            hint = "no config fits it (docs/boards.md)"
        raise FitError(
            f"config '{config.name}' does not fit the {board.name} ({board.device}): it needs "
            f"{' and '.join(problems)}; {hint}"
        )
    return needs(config)


def board_config(board: Board, operand_bits: int = 8) -> AccelConfig:
    """The largest config for `board` at `operand_bits`, clocked at BOARD_CLOCK_MHZ (or the
    fastest clock below it that the board makes: 24 MHz from the OrangeCrab's 48): the
    widest array (2x2 at least, powers of two) whose SoC fits, with `tiny`'s buffers (as
    many elements in a narrower array), then as much code memory (up to `tiny`'s 8192
    instructions) and main memory as the remaining block RAM holds. Named after the board.
    FitError if not even 2x2 fits."""
    base = dataclasses.replace(
        _TINY,
        name=board.name,
        clock_mhz=fastest_clock(board.oscillator_mhz, BOARD_CLOCK_MHZ),
        operand_bits=operand_bits,
        main_memory_bytes=16 * 1024,
        instruction_capacity=1024,
    )
    best = None
    for dim in (2, 4, 8, 16, 32):
        # Narrower than tiny, the buffers keep tiny's elements in more rows (a 64-channel
        # layer needs 32 requant rows at 2 lanes).
        deeper = max(1, _TINY.dim // dim)
        scaled = dataclasses.replace(
            base,
            rows=dim,
            cols=dim,
            **{key: deeper * getattr(_TINY, key) for key in _SCALED_BUFFERS},
        )
        if _problems(scaled, board.device):
            break
        best = scaled
    if best is None:
        raise FitError(f"not even a 2x2 array fits the {board.name} ({board.device})")
    for _ in range(12):  # grow the code memory and main memory while they fit
        grown = dataclasses.replace(best, instruction_capacity=2 * best.instruction_capacity)
        if grown.instruction_capacity > _TINY.instruction_capacity or _problems(
            grown, board.device
        ):
            break
        best = grown
    for _ in range(16):
        grown = dataclasses.replace(best, main_memory_bytes=2 * best.main_memory_bytes)
        if _problems(grown, board.device):
            break
        best = grown
    return best


def _tiny() -> AccelConfig:
    from verdigris.arch.config import load_config

    return load_config("tiny")


_TINY = _tiny()
