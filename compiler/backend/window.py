"""Input windows kept on chip: a k x k convolution reads its input once, not k*k times.

Without this, a conv step is one kernel tap and one channel block, and it loads, for every
output pixel of the M-tile, the input pixel under that tap: each input pixel is read once
per tap (and again for every group of output blocks). Here an M-tile is a band of whole
output rows; for each channel block, the band's input rows (with their padding) are loaded
once into the input buffer, and every tap's GEMMs address their shifted window in place:
for a fixed tap, the output pixels of one output row read input columns
`ow * stride + kx * dilation`, which are consecutive buffer rows once each input row is
stored split into its `stride` column phases (phase p holds the columns p, p + s, p + 2s,
...). One GEMM streams one output row; the taps after the first reuse the tile and load
only their weights.

Where output rows are short (ResNet-18's last convs: 5 or 7 pixels), a GEMM per output row
streams fewer rows than a weight tile takes to load. With vertical stride 1 the band is
then stored as `kw` copies instead, one per kernel column, each holding exactly the
columns that column's taps read, copy after copy: a tap's window over the whole band is
consecutive buffer rows, and one GEMM per tap streams the band. It reads the input `kw`
times over (the input rows `kw * out_width` buffer rows each).

`window_plan` decides whether a conv runs this way and how it is tiled (`WindowPlan`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from verdigris.compiler import ir

__all__ = ["SLACK", "Phase", "WindowPlan", "window_plan"]

# Tiling estimates (here and lower.py `_groups`) come within about 5% of the measured run:
# among options estimated that close to the fastest, the one that reads the least main
# memory wins (reads cost energy).
SLACK = 1.05


@dataclass(frozen=True)
class Phase:
    """Input columns `phase + j * stride` for `first <= j < first + width`, at buffer rows
    `offset ..` of each stored input row (with copies, `offset` counts rows of a copy:
    `WindowPlan.buffer_row`)."""

    phase: int
    first: int
    width: int
    offset: int


@dataclass(frozen=True)
class WindowPlan:
    """How a conv runs with its input window on chip.

    `out_rows`: output rows per M-tile (a band); `group`: output blocks per group (their
    partial sums share the accumulator half); `phases`: the column phases stored per input
    row, `row_span` buffer rows in all (with `copies`, one phase per kernel column);
    `input_rows(band)`: the band's input rows that some tap reads (relative to its first,
    `band_start * stride`), in order. Without `copies` the buffer holds
    stored row after stored row, each its phases; with `copies`, phase after phase, each
    every stored row."""

    kernel: tuple[int, int]
    strides: tuple[int, int]
    dilations: tuple[int, int]
    out_width: int
    out_rows: int
    group: int
    phases: tuple[Phase, ...]
    copies: bool = False

    @property
    def row_span(self) -> int:
        return sum(phase.width for phase in self.phases)

    def input_rows(self, band: int) -> tuple[int, ...]:
        """The input rows (relative) that the `band` output rows of a tile read."""
        return _input_rows(self.kernel[0], self.strides[0], self.dilations[0], band)

    def buffer_row(self, band: int, stored: int, phase: Phase) -> int:
        """The buffer row (relative to the tile's) of `phase`'s first column of stored
        input row `stored`, for a tile of `band` output rows."""
        if self.copies:
            return len(self.input_rows(band)) * phase.offset + stored * phase.width
        return stored * self.row_span + phase.offset

    def gemms(self, band: int) -> list[tuple[int, int]]:
        """(first output row, rows streamed) of each GEMM of a tap, for a band."""
        if self.copies:
            return [(0, band * self.out_width)]
        return [(r, self.out_width) for r in range(band)]

    def inp_row(self, band: int, r: int, tap: int) -> int:
        """The buffer row (relative to the tile's) of output row `r`'s first pixel under
        `tap` (row-major over the kernel), for a tile of `band` output rows."""
        ky, kx = divmod(tap, self.kernel[1])
        stored = self.input_rows(band).index(r * self.strides[0] + ky * self.dilations[0])
        j, phase_index = divmod(kx * self.dilations[1], self.strides[1])
        if self.copies:
            phase = self.phases[kx]
        else:
            phase = next(p for p in self.phases if p.phase == phase_index)
        return self.buffer_row(band, stored, phase) + j - phase.first


@functools.cache
def _input_rows(kh: int, sh: int, dh: int, band: int) -> tuple[int, ...]:
    return tuple(sorted({r * sh + ky * dh for r in range(band) for ky in range(kh)}))


def _phases(node: ir.Conv, out_width: int, copies: bool) -> tuple[Phase, ...]:
    """The column phases the kernel's taps read, each as wide as its taps need; with
    `copies`, one per kernel column, `out_width` wide."""
    kw, sw, dw = node.kernel[1], node.strides[1], node.dilations[1]
    if copies:
        return tuple(
            Phase(kx * dw % sw, kx * dw // sw, out_width, kx * out_width) for kx in range(kw)
        )
    starts: dict[int, list[int]] = {}
    for kx in range(kw):
        j, phase = divmod(kx * dw, sw)
        starts.setdefault(phase, []).append(j)
    phases, offset = [], 0
    for phase in sorted(starts):
        first = min(starts[phase])
        width = max(starts[phase]) - first + out_width
        phases.append(Phase(phase, first, width, offset))
        offset += width
    return tuple(phases)


def window_plan(
    node: ir.Conv,
    in_shape: tuple[int, int, int, int],
    out_shape: tuple[int, int, int, int],
    *,
    dim: int,
    inp_half: int,
    acc_half: int,
    wgt_half: int,
    row_words: float,
    weight_tiles: int,
) -> WindowPlan | None:
    """The tiling of `node` with its input window on chip, or None where the conv runs
    one tap per step: a 1x1 kernel (nothing to reuse), an output row whose window does not
    fit half of the input buffer, or where one tap per step is estimated more than
    `SLACK` faster (long M-tiles of a layer whose band is short: a stride-2 depthwise conv of
    112x112 on 8x8 has bands of one output row, 55 pixels, against M-tiles of 512).

    The band height, the group and whether the band is stored as copies are chosen by
    an estimate of the run: the slower of GEMM cycles (per weight tile its GEMMs, a tile's
    weights taking `dim` cycles to load beside the GEMM before: docs/isa.md) and load
    cycles (input rows of `row_words` main-memory words each, weight rows one word;
    `weight_tiles` (tap, channel block, output block) tiles are not all zero), plus
    `2 * dim + 8` per tile that do not overlap; among choices within `SLACK` of the
    fastest, the one that reads the least main memory."""
    n, c, _, _ = in_shape
    _, oc, out_h, out_w = out_shape
    taps = node.kernel[0] * node.kernel[1]
    if taps == 1:
        return None
    channel_blocks, blocks = math.ceil(c / dim), math.ceil(oc / dim)
    pixels = n * out_h * out_w

    def estimate(
        tiles: int, group: int, input_rows: float, tile_gemms: float
    ) -> tuple[float, float]:
        """(cycles, main-memory words read) of a tiling into `tiles` M-tiles and groups of
        `group` output blocks, each step of a tile loading `input_rows` rows and each weight
        tile's GEMMs taking `tile_gemms` cycles."""
        groups = math.ceil(blocks / group)
        gemm = weight_tiles * tiles * tile_gemms
        # A grouped conv's output blocks read their own channel blocks: its input is
        # loaded once whatever the grouping of output blocks.
        reloads = groups if node.groups == 1 else 1
        words = reloads * tiles * channel_blocks * input_rows * row_words
        words += tiles * weight_tiles * dim
        return max(gemm, words) + tiles * groups * (2 * dim + 8), words

    options = []
    layouts = (False, True) if node.strides[0] == 1 and node.kernel[1] > 1 else (False,)
    for copies in layouts:
        phases = _phases(node, out_w, copies)
        for band in range(1, out_h + 1):
            plan = WindowPlan(
                kernel=node.kernel,
                strides=node.strides,
                dilations=node.dilations,
                out_width=out_w,
                out_rows=band,
                group=min(blocks, acc_half // (band * out_w), wgt_half // dim),
                phases=phases,
                copies=copies,
            )
            input_rows = len(plan.input_rows(band)) * plan.row_span
            if plan.group == 0 or input_rows > inp_half:
                break
            tiles = n * math.ceil(out_h / band)
            rows = pixels / tiles
            # Copies: one GEMM per tap streams the band. Otherwise one GEMM per output row,
            # of which only the first one's weight load is not hidden.
            tile_gemms = max(rows, dim) if copies else rows + max(0, dim - out_w)
            options.append((*estimate(tiles, plan.group, input_rows, tile_gemms), plan))
    if not options:
        return None
    fastest = min(cycles for cycles, _, _ in options)
    best = min((o for o in options if o[0] <= SLACK * fastest), key=lambda o: o[1])
    # One tap per step (lower.py `_groups`): M-tiles as long as the halves allow, every
    # tap's rows loaded again.
    m_tile = max(1, min(pixels, inp_half, acc_half))
    group = max(1, min(blocks, acc_half // m_tile, wgt_half // dim))
    tiles = math.ceil(pixels / m_tile)
    per_tap, _ = estimate(tiles, group, taps * m_tile, max(pixels / tiles, dim))
    return best[2] if best[0] <= SLACK * per_tap else None
