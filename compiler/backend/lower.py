"""Lowering IR ops to instructions: tiling to the array and buffers, double buffering.

Every op is lowered through one pattern. Output pixels (or matrix rows) are cut into
M-tiles; output channels into blocks of `dim`, grouped so that a group's partial sums fit
half of the accumulator. For each (group, M-tile) the op runs a sequence of *steps*; a step
loads its inputs into one half of the input and weight buffers (the halves alternate), then
computes from them. Loads of the next step overlap the computes of this one. When a tile's
steps are done, its accumulator half is stored through the requantizer while the next tile
computes into the other half.

- Conv / MatMul: a step is one (kernel tap, input-channel block) for Conv, one K block for
  MatMul; it loads the group's weight tiles and its input rows, and issues one GEMM per
  output-channel block. A k x k conv keeps its input window on chip (window.py): M-tiles
  are bands of output rows, a channel block's first tap loads the band's input once
  (padding filled with the input zero point) and every tap runs one GEMM per output row
  from its shifted window. Grouped and depthwise convolutions are dense convolutions with
  block-diagonal weights; all-zero tiles are skipped, so a depthwise conv costs one GEMM
  per tap and channel block (and output row).
- MaxPool / AvgPool: a step is one window tap; VECTOR max (or add, minus the zero point,
  times the AvgPool's tap multiplier) accumulates it.
- Add: two steps, VECTOR write (a - z_a) * m_a and add (b - z_b) * m_b.
- Mul (a per-channel gate): per sample and M-tile one step, which loads the gate's row and
  the tile's rows, latches the gate in the lanes' scale registers (VECTOR scale) and writes
  (x - z_x) * (g - z_g) (a lane-scaled VECTOR write).
- Requantize and Concat: one step each input, VECTOR write, stored at a channel offset for
  Concat.
- Reshape: no instructions; the output aliases the input (a MatMul after a Flatten of a
  channels-last tensor gets its weight rows permuted to match).

The public methods `conv`, `matmul`, `pool`, `add`, `requantize` and `concat` lower one op
each; `device_ops.py` says which IR op goes to which, and `lower_op` calls `begin_layer`
before each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np

from verdigris.arch.config import AccelConfig
from verdigris.arch.cycle_model import transfer_words
from verdigris.arch.isa import (
    LUT_ENTRIES,
    Buffer,
    Deps,
    Gemm,
    Load,
    Store,
    Vector,
    VectorOp,
    buffer_rows,
    row_bytes,
    transfer_bytes,
)
from verdigris.arch.timing import LOAD_OVERHEAD, gemm_busy, gemm_latency
from verdigris.compiler import ir
from verdigris.compiler.backend.constants import OpConstants
from verdigris.compiler.backend.emitter import Emitter, Token
from verdigris.compiler.backend.memory import CompileError, Layout
from verdigris.compiler.backend.packing import INT8, pack_fill
from verdigris.compiler.backend.unroll import conv_row_chunks
from verdigris.compiler.backend.window import SLACK, WindowPlan, window_plan

__all__ = ["Lowerer"]


@dataclass(frozen=True)
class _Window:
    """Rows of an input tile: for output pixel m, which input element feeds it."""

    layout: Layout
    channel0: int  # first channel of the block
    elems: int
    kh: int
    kw: int
    strides: tuple[int, int]
    dilations: tuple[int, int]
    pads: tuple[int, int, int, int]
    out_hw: tuple[int, int]
    pad_value: int


@dataclass(frozen=True)
class _Step:
    """A step whose computes are not emitted yet (`Lowerer._interleave`): the token of its
    loads, its computes, the inp and wgt halves they read, and whether the next step reads
    its input tile again."""

    loaded: Token
    computes: list
    inp: int
    wgt: int
    keep_input: bool
    release_early: bool  # its halves are released as its GEMMs end, not as they complete


class _Band(NamedTuple):
    """An M-tile of a windowed conv: a band of output rows of one sample for one group of
    output blocks, and per input-channel block its steps (tap, active output blocks)."""

    g0: int
    blocks: range
    sample: int
    oh0: int
    rows: int
    inputs: list[tuple[int, list[tuple[int, list[int]]]]]


class Lowerer:
    """Emits the instructions of one op after another into one Emitter."""

    def __init__(self, config: AccelConfig):
        self.config = config
        self.dim = config.dim
        self.emitter = Emitter()
        # Steps so far that loaded an input tile, and all steps: they select the inp and
        # wgt buffer halves (a step that reuses its input tile alternates only wgt).
        self.inp_step = 0
        self.wgt_step = 0
        self.input_kept = False  # the previous step left its input tile for this one
        self.tile = 0  # global accumulator tile counter: selects acc halves
        self.inp_half = config.inp_rows // 2
        self.wgt_half = config.wgt_rows // 2
        self.acc_half = config.acc_rows // 2
        # Last token that released each inp / wgt half (compute done reading it).
        self.inp_released: list[Token | None] = [None, None]
        self.wgt_released: list[Token | None] = [None, None]
        # The last step, its computes emitted after the next step's loads (`_interleave`),
        # and what follows them on the compute and store side (a tile's stores, the next
        # tile's wait), in order.
        self.deferred: _Step | None = None
        self.deferred_after: list[Callable[[], None]] = []
        # Last token that released each acc half (store done reading it).
        self.acc_released: list[Token | None] = [None, None]
        self.stores_done: Token | None = None  # the latest store completion, for RAW
        self.pending_load_barrier: Token | None = None
        self.layer = ""  # the op being lowered, for error messages
        self.req_loaded = False  # whether this layer's requant table has been loaded
        self.req_deferred = False  # whether its first step left the table to the second
        self.pack = 0  # the GEMM `pack` of the layer: its input's packing (packing.py)

    # ---- step and tile bookkeeping

    def begin_layer(self, name: str) -> None:
        """Loads of a new layer (op `name`) read what earlier layers stored: wait for those
        stores. The layer's first step loads its requant table."""
        self.layer = name
        self.req_loaded = self.req_deferred = False
        self.pack = 0
        if self.stores_done is not None:  # the previous layer ended with `flush`
            self.pending_load_barrier = self.emitter.relay_store_to_load(self.stores_done)
            self.stores_done = None

    def _run_step(
        self,
        loads: list,
        computes: list,
        *,
        keep_input: bool = False,
        prefetch: bool = False,
        release_early: bool = False,
    ) -> None:
        """One step: loads into the current halves, then computes from them. With
        `keep_input` the next step computes from this step's input tile again (it loads
        only weights), so the input half does not alternate. With `prefetch` the first
        loads go into the other input half (the next input tile): they wait until that
        half is released."""
        inp, wgt = self.inp_step % 2, self.wgt_step % 2
        em = self.emitter
        if prefetch:
            em.wait(self.inp_released[1 - inp])
        if not self.input_kept:
            em.wait(self.inp_released[inp])
        em.wait(self.wgt_released[wgt])
        em.wait(self.pending_load_barrier)
        self.pending_load_barrier = None
        self._interleave(loads)
        loaded = em.push("l2c")
        self.deferred = _Step(loaded, computes, inp, wgt, keep_input, release_early)
        self.wgt_step += 1
        self.input_kept = keep_input
        if not keep_input:
            self.inp_step += 1

    def flush(self) -> None:
        """Emit everything deferred: the last step's computes and what follows them (at the
        end of a layer, so that a layer's instructions are its own)."""
        self._interleave([])

    def _interleave(self, loads: list) -> None:
        """Emit the next step's `loads` and the deferred step's computes merged in the
        order they are expected to start, both from now, one after another on their unit;
        then what was deferred after those computes. Fetch is in order and stalls on a full
        queue: loads placed after a long run of GEMMs (or a tile's stores) would reach the
        load unit only as those GEMMs drain, and a long run of loads placed before the
        GEMMs would keep the GEMMs from being fetched."""
        em = self.emitter
        step, self.deferred = self.deferred, None
        after, self.deferred_after = self.deferred_after, []
        computes = [] if step is None else step.computes
        if step is not None:
            em.wait(step.loaded)
        timed = []
        for queue in (loads, computes):
            start = 0
            for instruction in queue:
                timed.append((start, len(timed), instruction))
                start += self._busy(instruction)
        for _, _, instruction in sorted(timed, key=lambda t: t[:2]):
            em.emit(instruction)
        if step is not None:
            # A GEMM reads its buffers while busy; a NOP after the step's GEMMs completes
            # as they end, `gemm_latency` before the last one completes.
            released = em.push_on_nop("c2l") if step.release_early else em.push("c2l")
            self.wgt_released[step.wgt] = released
            if not step.keep_input:
                self.inp_released[step.inp] = released
        for action in after:
            action()

    def _vector_step(
        self, loads: list[Load], op: VectorOp, rows: int, zero: int, multiplier: int
    ) -> None:
        """A step of a vector op: `loads`, then one VECTOR `op` of (inp - zero) * multiplier
        over `rows` rows of the current input half into the current accumulator half."""
        vector = Vector(
            deps=Deps(),
            op=op,
            inp_row=self._inp_base(),
            acc_row=self._acc_base(),
            rows=rows,
            zero=zero,
            multiplier=multiplier,
        )
        self._run_step(loads, [vector])

    def _busy(self, instruction: Load | Gemm | Vector) -> int:
        """The cycles `instruction` keeps its unit busy (docs/isa.md, "Cycle model")."""
        if isinstance(instruction, Gemm):
            return gemm_busy(self.dim, instruction.load_weights, instruction.rows)
        if isinstance(instruction, Vector) or instruction.fill:
            return instruction.rows
        words = transfer_words(
            instruction.dram_addr,
            instruction.dram_stride,
            instruction.rows,
            transfer_bytes(self.config, instruction),
            self.config.dma_bytes,
        )
        return words + LOAD_OVERHEAD

    def _inp_base(self) -> int:
        return (self.inp_step % 2) * self.inp_half

    def _wgt_base(self) -> int:
        return (self.wgt_step % 2) * self.wgt_half

    def _acc_base(self) -> int:
        return (self.tile % 2) * self.acc_half

    def _begin_tile(self) -> None:
        """The tile's computes wait until its accumulator half has been stored (after the
        deferred computes: `_interleave`)."""
        half = self.tile % 2
        self.deferred_after.append(lambda: self.emitter.wait(self.acc_released[half]))

    def _end_tile(self, stores: list) -> None:
        """The tile's stores, once its computes are done (deferred with them)."""
        half = self.tile % 2
        self.tile += 1

        def store() -> None:
            em = self.emitter
            em.wait(em.push("c2s"))
            for instruction in stores:
                em.emit(instruction)
            self.acc_released[half] = self.stores_done = em.push("s2c")

        self.deferred_after.append(store)

    # ---- input tiles

    def _window_loads(self, window: _Window, pixels: range, inp_row: int) -> list[Load]:
        """Load the rows of an input tile: for each output pixel, the input pixel under
        tap (kh, kw), or the pad value where it falls outside the input."""
        layout = window.layout
        _, c, h, w = layout.pre_shape
        oh_count, ow_count = window.out_hw
        sh, sw = window.strides
        dh, dw = window.dilations
        top, left = window.pads[0], window.pads[1]
        loads: list[Load] = []
        row = inp_row
        m = pixels.start
        while m < pixels.stop:
            n, rest = divmod(m, oh_count * ow_count)
            oh, ow0 = divmod(rest, ow_count)
            run = min(ow_count - ow0, pixels.stop - m)  # pixels left in this output row
            ih = oh * sh + window.kh * dh - top
            # Valid ow: 0 <= ow*sw + kw*dw - left < w
            offset = window.kw * dw - left
            # ceil(-offset / sw) is the first ow whose input column is not left of the edge
            first_valid = max(ow0, -(offset // sw)) if offset < 0 else ow0
            last_valid = min(ow0 + run - 1, (w - 1 - offset) // sw)
            if not 0 <= ih < h or first_valid > last_valid:
                loads.append(self._fill(row, run, window.pad_value))
            else:
                before = first_valid - ow0
                valid = last_valid - first_valid + 1
                after = run - before - valid
                if before:
                    loads.append(self._fill(row, before, window.pad_value))
                iw = first_valid * sw + offset
                addr = layout.addr + ((n * h + ih) * w + iw) * c + window.channel0
                loads.append(self._inp_load(row + before, valid, window.elems, addr, sw * c))
                if after:
                    loads.append(self._fill(row + before + valid, after, window.pad_value))
            row += run
            m += run
        return loads

    def _tap_loads(
        self,
        node: ir.Conv | ir.MaxPool | ir.AvgPool,
        x: Layout,
        out: Layout,
        tap: int,
        block: int,
        m0: int,
        rows: int,
        dilations: tuple[int, int],
        pad_value: int,
    ) -> list[Load]:
        """The input tile of kernel tap `tap` (row-major over the kernel) and channel block
        `block` for output pixels m0.. of `out`, into the current input half."""
        dim = self.dim
        c = x.pre_shape[1]
        kw = node.kernel[1]
        window = _Window(
            layout=x,
            channel0=block * dim,
            elems=min(dim, c - block * dim),
            kh=tap // kw,
            kw=tap % kw,
            strides=node.strides,
            dilations=dilations,
            pads=node.pads,
            out_hw=out.pre_shape[2:],
            pad_value=pad_value,
        )
        return self._window_loads(window, range(m0, m0 + rows), self._inp_base())

    def _row_words(self, elems: int, stride: int) -> float:
        """The main-memory words a row of `elems` bytes costs the load unit on average,
        for rows `stride` bytes apart (from an aligned first row)."""
        word = self.config.dma_bytes
        starts = [(r * stride) % word for r in range(word)]
        return sum((start + elems + word - 1) // word for start in starts) / word

    def _row_chunk_loads(
        self, node: ir.Conv, x: Layout, out: Layout, step: int, chunks: int, pixels: range
    ) -> list[Load]:
        """The input tile of an unrolled conv's `step` (kernel row, chunk; see
        `conv_row_chunks`) for output `pixels`: per output pixel, `dim` consecutive bytes
        of its window's kernel row (fewer in the last chunk), or the pad value where that
        row is above or below the input."""
        dim = self.dim
        _, c, h, w = x.pre_shape
        _, _, oh_count, ow_count = out.pre_shape
        sh, sw = node.strides
        kh, chunk = divmod(step, chunks)
        elems = min(dim, node.kernel[1] * c - chunk * dim)
        loads: list[Load] = []
        row = self._inp_base()
        m = pixels.start
        while m < pixels.stop:
            n, rest = divmod(m, oh_count * ow_count)
            oh, ow0 = divmod(rest, ow_count)
            run = min(ow_count - ow0, pixels.stop - m)  # pixels left in this output row
            ih = oh * sh + kh - node.pads[0]
            if 0 <= ih < h:
                addr = x.addr + ((n * h + ih) * w + ow0 * sw) * c + chunk * dim
                loads.append(self._inp_load(row, run, elems, addr, sw * c))
            else:
                loads.append(self._fill(row, run, node.input_zero_point))
            row += run
            m += run
        return loads

    @staticmethod
    def _inp_load(buf_row: int, rows: int, elems: int, dram_addr: int, dram_stride: int) -> Load:
        """Rows of `elems` int8 elements from main memory into the input buffer."""
        return Load(
            deps=Deps(),
            buffer=Buffer.INP,
            fill=False,
            buf_row=buf_row,
            rows=rows,
            elems=elems,
            dram_addr=dram_addr,
            dram_stride=dram_stride,
        )

    @staticmethod
    def _fill(row: int, rows: int, value: int) -> Load:
        return Load(
            deps=Deps(),
            buffer=Buffer.INP,
            fill=True,
            buf_row=row,
            rows=rows,
            elems=1,
            dram_addr=0,
            dram_stride=0,
            fill_value=value,
        )

    def _req_loads(self, constants: OpConstants, more: bool = False) -> list[Load]:
        """The first loads of a step: the op's requant table and lookup tables on the
        layer's first step (to rows 0..: every layer starts after the previous layer's
        stores, so the rows are free), else none. Only a tile's stores read them, so where
        `more` steps of the tile follow, the first step leaves them to the second: its
        GEMMs start sooner."""
        if self.req_loaded:
            return []
        if more and not self.req_deferred:
            self.req_deferred = True
            return []
        self.req_loaded = True
        req_rows, lut_rows = constants.req_rows, constants.lut_tables * LUT_ENTRIES
        tables = [
            (Buffer.REQ, req_rows, constants.req_addr,
             f"{req_rows * self.dim} output channels need {req_rows} requant rows"),
            (Buffer.LUT, lut_rows, constants.lut_addr,
             f"its lookup tables need {lut_rows} lut rows"),
        ]  # fmt: skip
        loads = []
        for buffer, rows, addr, need in tables:
            if not rows:
                continue  # no lookup tables
            # A layer's tables fit whole (the lookup pass, compiler/passes/lookups.py, keeps
            # larger per-channel tables on the host).
            if rows > buffer_rows(self.config, buffer):
                raise CompileError(
                    f"op {self.layer}: {need}; config '{self.config.name}' has "
                    f"{buffer_rows(self.config, buffer)}"
                )
            loads.append(
                Load(
                    deps=Deps(),
                    buffer=buffer,
                    fill=False,
                    buf_row=0,
                    rows=rows,
                    elems=self.dim,
                    dram_addr=addr,
                    dram_stride=row_bytes(self.config, buffer),
                )
            )
        return loads

    # ---- ops

    def _m_tile(self, pixels: int, group: int) -> int:
        return max(1, min(pixels, self.inp_half, self.acc_half // group))

    def _groups(
        self, blocks: int, pixels: int, steps: int, row_words: float = 1.0
    ) -> tuple[int, int]:
        """(output blocks per group, M-tile rows) for `steps` steps per tile, each loading
        one input row per M-tile row, of `row_words` main-memory words each (more than one
        for an unrolled conv's unaligned rows), and a weight tile per block of its group.

        The longest M-tile that the input and accumulator halves hold, and as many blocks
        as then fit, is not always best: each group reads the whole input again, and a
        step of few blocks waits for its loads. So the M-tile is halved down to `dim` and
        each option's run estimated, per step: the slower of its loads (input rows, weight
        rows, 2 cycles) and its GEMMs (per weight tile `dim` + its rows: the early weight
        load overlaps the two in the run, but counting both chose better tilings, as the
        bench measured); per tile the slower of its steps and its stores (which run beside
        the next tile's steps), plus 8 cycles; and the first step's loads and the last
        tile's stores, which overlap nothing (so a layer of one short step, such as a
        `pad_columns` copy, is cut into M-tiles that pipeline). The fastest wins, and among
        options within `SLACK` of it (window.py), the one that reads the least main
        memory."""
        dim = self.dim
        options = []
        m_tile = max(1, min(pixels, self.inp_half, self.acc_half))
        while True:
            group = max(1, min(blocks, self.acc_half // m_tile, self.wgt_half // dim))
            rounds = -(-blocks // group) * -(-pixels // m_tile)  # (group, tile) pairs
            load = m_tile * row_words + group * dim
            step = max(load + 2, group * (dim + m_tile))
            # A tile's stores (a STORE per block: a row a cycle, 6 cycles more), which run
            # beside the next tile's steps.
            store = group * (m_tile + 6)
            # The first step's loads, and the last GEMMs' latency (2 * dim + 1) and the last
            # tile's stores, overlap nothing.
            cycles = load + rounds * (max(steps * step, store) + 8) + 2 * dim + store
            options.append((cycles, rounds * steps * load, (group, m_tile)))
            if m_tile <= dim:
                break
            m_tile //= 2
        fastest = min(option[0] for option in options)
        return min((o for o in options if o[0] <= SLACK * fastest), key=lambda o: o[1])[2]

    def _store_block(
        self,
        out: Layout,
        acc_row: int,
        m0: int,
        rows: int,
        block: int,
        channels: int,
        req_row: int,
        constants: OpConstants,
        channel_offset: int = 0,
    ) -> Store:
        """The STORE of output block `block`, rows m0.., through req row `req_row` and, if
        the op has lookup tables, the block's table; packed as `out` is (a block of `dim`
        packed channels is a whole number of bytes, and a packed tensor is no Concat's)."""
        dim = self.dim
        elems = min(dim, channels - block * dim)
        raw = out.itemsize == 4
        first = (channel_offset + block * dim) * out.itemsize // out.packed.per_byte
        return Store(
            deps=Deps(),
            raw=raw,
            acc_row=acc_row,
            rows=rows,
            elems=elems,
            dram_addr=out.addr + m0 * out.row_bytes + first,
            dram_stride=out.row_bytes,
            req_row=req_row,
            lut=0 if not constants.lut_tables else min(block, constants.lut_tables - 1) + 1,
            pack=out.packed.pack,
        )

    def conv(self, node: ir.Conv, _graph, layouts, constants: OpConstants) -> None:
        dim = self.dim
        x, out = layouts[node.inputs[0]], layouts[node.output]
        if x.packed != INT8:  # channels are bytes of packed values, padding such bytes
            node = replace(node, input_zero_point=pack_fill(node.input_zero_point, x.packed))
            x, self.pack = x.byte_view(), x.packed.pack
        n, c, _, _ = x.pre_shape
        _, oc, oh, ow = out.pre_shape
        cb = -(-c // dim)
        chunks = conv_row_chunks(node, c, dim)
        if chunks:
            band = self._unrolled_band(node, out)
            if band is not None:
                self._unrolled_window_conv(node, x, out, constants, chunks, *band)
                return

            def inp_loads(step: int, m0: int, rows: int) -> list[Load]:
                return self._row_chunk_loads(node, x, out, step, chunks, range(m0, m0 + rows))

            words = self._row_words(min(dim, node.kernel[1] * c), node.strides[1] * c)
            self._tiled_gemm(constants, out, n * oh * ow, oc, inp_loads, words)
            return

        needed = self._needed_steps(constants.nonzero, -(-oc // dim))
        plan = window_plan(
            node,
            x.pre_shape,
            out.pre_shape,
            dim=dim,
            inp_half=self.inp_half,
            acc_half=self.acc_half,
            wgt_half=self.wgt_half,
            row_words=self._row_words(min(dim, c), node.strides[1] * c),
            weight_tiles=int(needed.sum()),
        )
        if plan is not None:
            self._window_conv(node, x, out, constants, plan, needed)
            return

        def inp_loads(step: int, m0: int, rows: int) -> list[Load]:
            tap, block_c = divmod(step, cb)
            pad_value = node.input_zero_point
            return self._tap_loads(node, x, out, tap, block_c, m0, rows, node.dilations, pad_value)

        self._tiled_gemm(constants, out, n * oh * ow, oc, inp_loads)

    def _unrolled_band(self, node: ir.Conv, out: Layout) -> tuple[int, int] | None:
        """(band, group) for an unrolled conv with its input rows on chip, or None where
        it runs as `_tiled_gemm` steps: where bands of two output rows share no input row
        or do not fit (then each output row reads its kh input rows either way). The band
        (output rows per M-tile) that reads the fewest input rows wins."""
        kh, sh = node.kernel[0], node.strides[0]
        _, oc, out_h, out_w = out.pre_shape
        if sh >= kh:
            return None
        blocks = -(-oc // self.dim)
        best = None
        for band in range(1, out_h + 1):
            group = min(blocks, self.acc_half // (band * out_w), self.wgt_half // self.dim)
            in_rows = (band - 1) * sh + kh  # the input rows a band reads
            if group == 0 or in_rows * out_w > self.inp_half:
                break
            reads = -(-blocks // group) * -(-out_h // band) * in_rows
            if best is None or reads <= best[0]:
                best = (reads, band, group)
        return None if best is None or best[1] == 1 else best[1:]

    def _unrolled_window_conv(
        self,
        node: ir.Conv,
        x: Layout,
        out: Layout,
        constants: OpConstants,
        chunks: int,
        band: int,
        group: int,
    ) -> None:
        """An unrolled conv (unroll.py) whose input rows stay on chip: an M-tile is a band
        of output rows, and the chunk's window bytes of every input row the band reads are
        loaded once, `out_w` buffer rows per input row, split by row phase (r % stride),
        so kernel row `ky` reads the band's windows as consecutive buffer rows. A step
        is one (chunk, kernel row): one GEMM per output block streams the whole band; the
        chunk's first step loads the rows it reads, each later one the one more row it
        reads (into the same input half, beside the GEMMs before it). Each input row is
        loaded once per band and chunk instead of once per kernel row."""
        dim = self.dim
        n = x.pre_shape[0]
        _, oc, out_h, out_w = out.pre_shape
        kh, sh = node.kernel[0], node.strides[0]
        blocks_total = -(-oc // dim)
        needed = self._needed_steps(constants.nonzero, blocks_total)
        for g0 in range(0, blocks_total, group):
            blocks = range(g0, min(blocks_total, g0 + group))
            for sample in range(n):
                for oh0 in range(0, out_h, band):
                    rows = min(band, out_h - oh0)
                    pixels, m0 = rows * out_w, (sample * out_h + oh0) * out_w
                    # Per chunk, its kernel rows with the blocks whose tiles are not zero.
                    steps = []
                    for chunk in range(chunks):
                        for ky in range(kh):
                            active = [b for b in blocks if needed[ky * chunks + chunk, b]]
                            if active:
                                steps.append((chunk, ky, active))
                    # The band's input rows, split by row phase (input row r of the band
                    # in phase r % sh, after the phases before it), so that kernel row ky
                    # reads consecutive buffer rows from phase ky % sh.
                    in_rows = (rows - 1) * sh + kh
                    phase_base = [
                        sum(len(range(q, in_rows, sh)) for q in range(p)) * out_w for p in range(sh)
                    ]
                    self._begin_tile()
                    started: set[int] = set()
                    loaded = [0] * sh  # rows of each phase loaded for this chunk so far
                    for index, (chunk, ky, active) in enumerate(steps):
                        last_of_chunk = index == len(steps) - 1 or steps[index + 1][0] != chunk
                        loads = self._req_loads(constants, index < len(steps) - 1)
                        # The rows kernel row ky reads that are not loaded yet, into the
                        # input half the chunk's earlier steps keep.
                        phase, first = ky % sh, ky // sh
                        new_rows = [
                            (phase + q * sh, self._inp_base() + phase_base[phase] + q * out_w)
                            for q in range(loaded[phase], first + rows)
                        ]
                        loads += self._unrolled_band_loads(
                            node, x, out, chunk, sample, oh0, new_rows
                        )
                        loaded[phase] = max(loaded[phase], first + rows)
                        if last_of_chunk:
                            loaded = [0] * sh
                        wgt_row = self._wgt_base()
                        loads += self._weight_loads(constants, ky * chunks + chunk, active, g0)
                        inp_row = self._inp_base() + phase_base[phase] + first * out_w
                        computes = [
                            Gemm(
                                deps=Deps(),
                                load_weights=True,
                                accumulate=b in started,
                                wgt_row=wgt_row + (b - g0) * dim,
                                inp_row=inp_row,
                                acc_row=self._acc_base() + (b - g0) * pixels,
                                rows=pixels,
                                pack=self.pack,
                            )
                            for b in active
                        ]
                        started.update(active)
                        self._run_step(loads, computes, keep_input=not last_of_chunk)
                    acc = self._acc_base()
                    self._end_tile(
                        [
                            self._store_block(
                                out, acc + (b - g0) * pixels, m0, pixels, b, oc, b, constants
                            )
                            for b in blocks
                        ]
                    )

    def _unrolled_band_loads(
        self,
        node: ir.Conv,
        x: Layout,
        out: Layout,
        chunk: int,
        sample: int,
        oh0: int,
        band_rows: list[tuple[int, int]],
    ) -> list[Load]:
        """Input rows of `_unrolled_window_conv`'s chunk `chunk`, each (r, buffer row) of
        `band_rows` for the band of output rows from `oh0` of `sample`, r relative to the
        first input row the band reads: `out_w` buffer rows of the chunk's window bytes
        (the pad value for a row above or below the input)."""
        dim = self.dim
        _, c, h, w = x.pre_shape
        out_w = out.pre_shape[3]
        sw = node.strides[1]
        elems = min(dim, node.kernel[1] * c - chunk * dim)
        loads = []
        for r, row in band_rows:
            ih = oh0 * node.strides[0] + r - node.pads[0]
            if 0 <= ih < h:
                addr = x.addr + (sample * h + ih) * w * c + chunk * dim
                loads.append(self._inp_load(row, out_w, elems, addr, sw * c))
            else:
                loads.append(self._fill(row, out_w, node.input_zero_point))
        return _merged(loads)

    def _window_conv(
        self,
        node: ir.Conv,
        x: Layout,
        out: Layout,
        constants: OpConstants,
        plan: WindowPlan,
        needed: np.ndarray,
    ) -> None:
        """A conv with its input window on chip (compiler/backend/window.py): per output
        block group and band of output rows, per channel block, the band's input tile is
        loaded once; each tap's step loads its weight tiles (`needed[step, block]`, see
        `_needed_steps`) and runs one GEMM per output row and block from the tap's shifted
        window.

        An input tile takes as long to load as several taps take to compute (a depthwise
        conv has one block per tap), so the next input tile is loaded into the other input
        half while this one's taps run, a slice with each tap's step after the first."""
        dim = self.dim
        n, c, _, _ = x.pre_shape
        _, oc, out_h, out_w = out.pre_shape
        channel_blocks, blocks_total = -(-c // dim), -(-oc // dim)
        taps = node.kernel[0] * node.kernel[1]
        bands: list[_Band] = []
        for g0 in range(0, blocks_total, plan.group):
            blocks = range(g0, min(blocks_total, g0 + plan.group))
            for sample in range(n):
                for oh0 in range(0, out_h, plan.out_rows):
                    inputs = []
                    for block_c in range(channel_blocks):
                        steps = []
                        for tap in range(taps):
                            step = tap * channel_blocks + block_c
                            active = [b for b in blocks if needed[step, b]]
                            if active:
                                steps.append((tap, active))
                        if steps:
                            inputs.append((block_c, steps))
                    rows = min(plan.out_rows, out_h - oh0)
                    bands.append(_Band(g0, blocks, sample, oh0, rows, inputs))
        # The input tiles in the order they are used: (sample, oh0, band rows, block_c).
        order = [(b.sample, b.oh0, b.rows, block_c) for b in bands for block_c, _ in b.inputs]
        used = 0  # input tiles started
        prefetched = False  # the next input tile is already loaded (into the other half)

        def band_loads(tile: tuple[int, int, int, int], base: int) -> list[Load]:
            return self._band_loads(node, x, plan, *tile, base)

        for g0, blocks, sample, oh0, band, inputs in bands:
            m0, pixels = (sample * out_h + oh0) * out_w, band * out_w
            self._begin_tile()
            started: set[int] = set()
            for block_c, steps in inputs:
                following = order[used + 1] if used + 1 < len(order) else None
                slices = [[] for _ in steps]
                if following is not None and len(steps) > 1:
                    other = ((self.inp_step + 1) % 2) * self.inp_half
                    slices[1:] = _sliced(band_loads(following, other), len(steps) - 1)
                for i, (tap, active) in enumerate(steps):
                    step = tap * channel_blocks + block_c
                    more = i < len(steps) - 1 or block_c != inputs[-1][0]
                    loads = slices[i] + self._req_loads(constants, more)
                    if i == 0 and not prefetched:
                        loads += band_loads(order[used], self._inp_base())
                    loads += self._weight_loads(constants, step, active, g0)
                    computes = [
                        Gemm(
                            deps=Deps(),
                            load_weights=r == 0,
                            accumulate=b in started,
                            wgt_row=self._wgt_base() + (b - g0) * dim,
                            inp_row=self._inp_base() + plan.inp_row(band, r, tap),
                            acc_row=self._acc_base() + (b - g0) * pixels + r * out_w,
                            rows=rows,
                            pack=self.pack,
                        )
                        for b in active
                        for r, rows in plan.gemms(band)
                    ]
                    started.update(active)
                    last = i == len(steps) - 1
                    self._run_step(loads, computes, keep_input=not last, prefetch=bool(slices[i]))
                prefetched = following is not None and len(steps) > 1
                used += 1
            acc = self._acc_base()
            self._end_tile(
                [
                    self._store_block(out, acc + (b - g0) * pixels, m0, pixels, b, oc, b, constants)
                    for b in blocks
                ]
            )

    def _band_loads(
        self,
        node: ir.Conv,
        x: Layout,
        plan: WindowPlan,
        sample: int,
        oh0: int,
        band: int,
        block_c: int,
        base: int,
    ) -> list[Load]:
        """The input tile of a band of `band` output rows from output row `oh0` of
        `sample`, channel block `block_c`, at input buffer row `base`: each input row that
        a tap reads, split into its column phases (`plan.phases`), with the pad value
        outside the input."""
        dim = self.dim
        _, c, h, w = x.pre_shape
        sh, sw = node.strides
        top, left = node.pads[0], node.pads[1]
        elems = min(dim, c - block_c * dim)
        pad = node.input_zero_point
        loads: list[Load] = []
        for stored, r in enumerate(plan.input_rows(band)):
            ih = oh0 * sh + r - top
            for phase in plan.phases:
                start = base + plan.buffer_row(band, stored, phase)
                if not 0 <= ih < h:
                    loads.append(self._fill(start, phase.width, pad))
                    continue
                # Columns phase + j * sw - left for first <= j < first + width; in the
                # input where 0 <= that < w.
                first, end = phase.first, phase.first + phase.width
                lo = min(end, max(first, -(-(left - phase.phase) // sw)))
                hi = max(lo, min(end, (w - 1 + left - phase.phase) // sw + 1))
                if lo > first:
                    loads.append(self._fill(start, lo - first, pad))
                if hi > lo:
                    iw = phase.phase + lo * sw - left
                    addr = x.addr + ((sample * h + ih) * w + iw) * c + block_c * dim
                    loads.append(self._inp_load(start + lo - first, hi - lo, elems, addr, sw * c))
                if end > hi:
                    loads.append(self._fill(start + hi - first, end - hi, pad))
        return _merged(loads)

    def matmul(self, node: ir.MatMul, _graph, layouts, constants: OpConstants) -> None:
        dim = self.dim
        x, out = layouts[node.inputs[0]], layouts[node.output]
        x, self.pack = x.byte_view(), x.packed.pack
        if len(x.shape) != 2:
            raise CompileError(f"op {node.name}: MatMul input must be 2-D, not {x.shape}")
        m, k = x.shape

        def inp_loads(step: int, m0: int, rows: int) -> list[Load]:
            addr = x.addr + m0 * k + step * dim
            elems = min(dim, k - step * dim)
            return [self._inp_load(self._inp_base(), rows, elems, addr, k)]

        def whole_input(m0: int, rows: int) -> list[Load]:
            """Every K block of rows m0.., block s at rows s * rows of the input half (a
            single row's full blocks are consecutive bytes: `_merged` joins them)."""
            stride = dim if rows == 1 else k  # one row: the stride only lets them merge
            return [
                self._inp_load(
                    self._inp_base() + step * rows,
                    rows,
                    min(dim, k - step * dim),
                    x.addr + m0 * k + step * dim,
                    stride,
                )
                for step in range(-(-k // dim))
            ]

        self._tiled_gemm(constants, out, m, out.shape[-1], inp_loads, whole_input=whole_input)

    def _tiled_gemm(
        self,
        constants: OpConstants,
        out: Layout,
        pixels: int,
        channels: int,
        inp_loads: Callable[[int, int, int], list[Load]],
        row_words: float = 1.0,
        whole_input: Callable[[int, int], list[Load]] | None = None,
    ) -> None:
        """The loop nest shared by Conv and MatMul: output-block groups, M-tiles, steps.
        `inp_loads(step, m0, rows)` gives the input tile of one step, whose rows cost the
        load unit `row_words` main-memory words each (an estimate, for `_groups`).

        `whole_input(m0, rows)`, where given (MatMul), loads every step's input tile at
        once, step s at rows `s * rows`: where that fits the input half, an M-tile loads
        its input once, and steps of few short GEMMs (an FC layer at batch 1: one row per
        weight tile) run several K blocks each (`_k_blocks_per_step`), so that a step's
        GEMMs outlast the wait for its loads' token."""
        dim = self.dim
        blocks_total = -(-channels // dim)
        group, m_tile = self._groups(blocks_total, pixels, constants.steps, row_words)
        needed = self._needed_steps(constants.nonzero, blocks_total)
        groups = range(0, blocks_total, group)
        for g0 in groups:
            blocks = range(g0, min(blocks_total, g0 + group))
            for m0, rows in self._ramped(pixels, m_tile, g0 == groups[0], g0 == groups[-1]):
                whole = whole_input is not None and constants.steps * rows <= self.inp_half
                per_step = 1
                if whole:
                    per_step = self._k_blocks_per_step(len(blocks), rows, constants.steps)
                # Per step: its K blocks (steps of the weight tiles) with their active
                # output blocks; blocks whose tiles are all zero do not run.
                runs = []
                for first in range(0, constants.steps, per_step):
                    run = [
                        (step, [b for b in blocks if needed[step, b]])
                        for step in range(first, min(constants.steps, first + per_step))
                    ]
                    run = [(step, active) for step, active in run if active]
                    if run:
                        runs.append(run)
                self._begin_tile()
                started: set[int] = set()
                for index, run in enumerate(runs):
                    loads = self._req_loads(constants, index < len(runs) - 1)
                    if whole and index == 0:
                        loads += whole_input(m0, rows)
                    computes = []
                    for slot, (step, active) in enumerate(run):
                        if not whole:
                            loads += inp_loads(step, m0, rows)
                        wgt_row = self._wgt_base() + slot * len(blocks) * dim
                        loads += self._weight_loads(constants, step, active, g0, wgt_row)
                        computes += [
                            Gemm(
                                deps=Deps(),
                                load_weights=True,
                                # the block's first step overwrites its acc rows
                                accumulate=b in started,
                                wgt_row=wgt_row + (b - g0) * dim,
                                inp_row=self._inp_base() + (step * rows if whole else 0),
                                acc_row=self._acc_base() + (b - g0) * rows,
                                rows=rows,
                                pack=self.pack,
                            )
                            for b in active
                        ]
                        started.update(active)
                    last = index == len(runs) - 1
                    if whole:
                        loads = _merged(loads)  # a run's weight tiles are often one LOAD
                    self._run_step(
                        loads,
                        computes,
                        keep_input=whole and not last,
                        # short GEMMs: the release latency would outlast the next loads
                        release_early=whole and rows < dim,
                    )
                self._end_tile(
                    [
                        self._store_block(
                            out,
                            self._acc_base() + (b - g0) * rows,
                            m0,
                            rows,
                            b,
                            channels,
                            b,
                            constants,
                        )
                        for b in blocks
                    ]
                )

    def _ramped(self, pixels: int, m_tile: int, first: bool, last: bool) -> list[tuple[int, int]]:
        """The M-tiles (m0, rows) of `pixels` rows, `m_tile` long, with the layer's first
        and last tiles (`first`, `last`: of its first and last group) cut a quarter off
        where that quarter is at least `4 * dim` rows: the first tile's loads and the last
        tile's stores overlap nothing, so a short one at each end shortens the run."""
        tiles = [(m0, min(m_tile, pixels - m0)) for m0 in range(0, pixels, m_tile)]
        long = 16 * self.dim
        if first and tiles[0][1] >= long:
            m0, rows = tiles[0]
            tiles[:1] = [(m0, rows // 4), (m0 + rows // 4, rows - rows // 4)]
        if last and tiles[-1][1] >= long:
            m0, rows = tiles[-1]
            cut = rows - rows // 4
            tiles[-1:] = [(m0, cut), (m0 + cut, rows // 4)]
        return tiles

    def _k_blocks_per_step(self, blocks: int, rows: int, steps: int) -> int:
        """K blocks per step for a group of `blocks` output blocks, M-tiles of `rows` and
        `steps` K blocks: enough that a step's GEMMs take `2 * gemm_latency` cycles (the
        loads of the step after next wait for this step's release of its halves, and each
        step costs a few cycles of tokens and LOAD overhead), as many as the weight half
        holds, and at most half of them (two steps at least, so that loads overlap
        GEMMs)."""
        per_block = blocks * max(self.dim, rows)  # cycles of one K block's GEMMs
        wanted = -(-2 * gemm_latency(self.dim) // per_block)
        return max(1, min(wanted, self.wgt_half // (blocks * self.dim), -(-steps // 2)))

    @staticmethod
    def _needed_steps(nonzero: np.ndarray, blocks: int) -> np.ndarray:
        """Steps that must run per output block: nonzero tiles, and at least one (a block
        whose weights are all zero still needs its accumulator written)."""
        needed = nonzero.copy()
        for b in range(blocks):
            if not needed[:, b].any():
                needed[0, b] = True
        return needed

    def _weight_loads(
        self,
        constants: OpConstants,
        step: int,
        active: list[int],
        g0: int,
        first_row: int | None = None,
    ) -> list[Load]:
        """The weight tiles of a step's `active` blocks into their wgt rows (block b at
        `first_row + (b - g0) * dim`, by default from the current half's first row): one
        LOAD per run of blocks whose tiles are stored one after another (all of a dense
        layer's group), and a fill of zeros for a block whose tile is all zeros (it still
        runs: its accumulator must be written)."""
        dim = self.dim
        tile = dim * dim
        runs: list[list[int]] = []  # [first block, first address, blocks]
        for b in active:
            addr = int(constants.tile_addr[step, b])
            last = runs[-1] if runs else None
            if (
                last
                and addr >= 0
                and last[1] >= 0
                and (b, addr)
                == (
                    last[0] + last[2],
                    last[1] + last[2] * tile,
                )
            ):
                last[2] += 1
            else:
                runs.append([b, addr, 1])
        return [
            Load(
                deps=Deps(),
                buffer=Buffer.WGT,
                fill=addr < 0,
                buf_row=(self._wgt_base() if first_row is None else first_row) + (b - g0) * dim,
                rows=count * dim,
                elems=dim,
                dram_addr=max(addr, 0),
                dram_stride=0 if addr < 0 else dim,
            )
            for b, addr, count in runs
        ]

    def _channel_tiles(self, pixels: int):
        """M-tiles for one-block-at-a-time vector ops."""
        m_tile = self._m_tile(pixels, 1)
        for m0 in range(0, pixels, m_tile):
            yield m0, min(m_tile, pixels - m0)

    def pool(self, node: ir.MaxPool | ir.AvgPool, _graph, layouts, constants) -> None:
        dim = self.dim
        x, out = layouts[node.inputs[0]], layouts[node.output]
        n, c, _, _ = x.pre_shape
        _, _, oh, ow = out.pre_shape
        kh, kw = node.kernel
        is_max = isinstance(node, ir.MaxPool)
        pad_value = -128 if is_max else node.input_zero_point
        zero = 0 if is_max else node.input_zero_point
        multiplier = 1 if is_max else node.tap_multiplier
        dilations = node.dilations if is_max else (1, 1)
        for block in range(-(-c // dim)):
            for m0, rows in self._channel_tiles(n * oh * ow):
                self._begin_tile()
                for tap in range(kh * kw):
                    loads = self._req_loads(constants)
                    loads += self._tap_loads(
                        node, x, out, tap, block, m0, rows, dilations, pad_value
                    )
                    # The first tap initializes the accumulator.
                    later = VectorOp.MAX if is_max else VectorOp.ADD
                    op = VectorOp.WRITE if tap == 0 else later
                    self._vector_step(loads, op, rows, zero, multiplier)
                self._end_tile(
                    [self._store_block(out, self._acc_base(), m0, rows, block, c, block, constants)]
                )

    def _rows_load(self, layout: Layout, m0: int, rows: int, block: int) -> Load:
        """Rows m0.. of a channels-last (or 2-D) tensor, channel block `block`."""
        dim = self.dim
        row_elems = layout.pre_shape[1] if layout.channels_last else layout.pre_shape[-1]
        elems = min(dim, row_elems - block * dim)
        addr = layout.addr + m0 * row_elems + block * dim
        return self._inp_load(self._inp_base(), rows, elems, addr, row_elems)

    @staticmethod
    def _pixels(layout: Layout) -> tuple[int, int]:
        """(rows, elements per row) of a tensor in memory order."""
        if layout.channels_last:
            n, c, h, w = layout.pre_shape
            return n * h * w, c
        return int(np.prod(layout.shape[:-1])), layout.shape[-1]

    def add(self, node: ir.Add, _graph, layouts, constants) -> None:
        a, b, out = (layouts[name] for name in (*node.inputs, node.output))
        pixels, channels = self._pixels(out)
        for block in range(-(-channels // self.dim)):
            for m0, rows in self._channel_tiles(pixels):
                self._begin_tile()
                for source, op, zero, mult in (
                    (a, VectorOp.WRITE, node.a_zero_point, node.a_multiplier),
                    (b, VectorOp.ADD, node.b_zero_point, node.b_multiplier),
                ):
                    loads = self._req_loads(constants)
                    loads.append(self._rows_load(source, m0, rows, block))
                    self._vector_step(loads, op, rows, zero, mult)
                self._end_tile(
                    [
                        self._store_block(
                            out, self._acc_base(), m0, rows, block, channels, block, constants
                        )
                    ]
                )

    def mul(self, node: ir.Mul, _graph, layouts, constants) -> None:
        """Per channel block and sample, per M-tile of the sample's pixels: one step loads
        the gate's row and the tile's rows, latches the gate in the lanes' scale registers
        (VECTOR scale) and writes (x - z_x) * scale (a lane-scaled VECTOR write)."""
        x, gate, out = (layouts[name] for name in (*node.inputs, node.output))
        n, channels, h, w = x.pre_shape
        m_tile = max(1, min(h * w, self.inp_half - 1, self.acc_half))  # the gate's row too
        for block in range(-(-channels // self.dim)):
            for sample in range(n):
                for m0 in range(sample * h * w, (sample + 1) * h * w, m_tile):
                    rows = min(m_tile, (sample + 1) * h * w - m0)
                    self._begin_tile()
                    base = self._inp_base()
                    loads = self._req_loads(constants)
                    loads.append(self._rows_load(gate, sample, 1, block))
                    loads.append(replace(self._rows_load(x, m0, rows, block), buf_row=base + 1))
                    scale = Vector(
                        deps=Deps(),
                        op=VectorOp.SCALE,
                        inp_row=base,
                        acc_row=0,
                        rows=1,
                        zero=node.g_zero_point,
                    )
                    write = Vector(
                        deps=Deps(),
                        op=VectorOp.WRITE,
                        inp_row=base + 1,
                        acc_row=self._acc_base(),
                        rows=rows,
                        zero=node.x_zero_point,
                        lane_scale=True,
                    )
                    self._run_step(loads, [scale, write])
                    store = self._store_block(
                        out, self._acc_base(), m0, rows, block, channels, block, constants
                    )
                    self._end_tile([store])

    def requantize(self, node: ir.Requantize, _graph, layouts, constants) -> None:
        x, out = layouts[node.inputs[0]], layouts[node.output]
        self._vector_copy(constants, x, out, node.input_zero_point)

    def concat(self, node: ir.Concat, _graph, layouts, constants) -> None:
        out = layouts[node.output]
        if node.axis != 1 or not (out.channels_last or len(out.shape) == 2):
            raise CompileError(f"op {node.name}: only channel concatenation is supported")
        offset = 0
        for name in node.inputs:
            x = layouts[name]
            # Every row of a Concat's table is the identity: use row 0.
            self._vector_copy(constants, x, out, 0, offset=offset, identity_table=True)
            offset += self._pixels(x)[1]

    def _vector_copy(
        self,
        constants: OpConstants,
        x: Layout,
        out: Layout,
        zero: int,
        *,
        offset: int = 0,
        identity_table: bool = False,
    ) -> None:
        """x - zero through the accumulator and the store's requantizer into `out` at
        channel `offset`."""
        pixels, _ = self._pixels(out)
        _, channels = self._pixels(x)
        for block in range(-(-channels // self.dim)):
            for m0, rows in self._channel_tiles(pixels):
                self._begin_tile()
                loads = self._req_loads(constants)
                loads.append(self._rows_load(x, m0, rows, block))
                self._vector_step(loads, VectorOp.WRITE, rows, zero, 1)
                req_row = 0 if identity_table else block
                store = self._store_block(
                    out, self._acc_base(), m0, rows, block, channels, req_row, constants, offset
                )
                self._end_tile([store])


def _merged(loads: list[Load]) -> list[Load]:
    """`loads` with each run that continues the one before (the next buffer rows, and for
    a transfer the next main-memory rows at the same stride) joined into one LOAD."""
    merged: list[Load] = []
    for load in loads:
        last = merged[-1] if merged else None
        if (
            last is not None
            and load.buffer == last.buffer
            and load.buf_row == last.buf_row + last.rows
            and load.fill == last.fill
            and (
                load.fill_value == last.fill_value
                if load.fill
                else (load.elems, load.dram_stride) == (last.elems, last.dram_stride)
                and load.dram_addr == last.dram_addr + last.rows * last.dram_stride
            )
        ):
            merged[-1] = replace(last, rows=last.rows + load.rows)
        else:
            merged.append(load)
    return merged


def _sliced(loads: list[Load], count: int) -> list[list[Load]]:
    """`loads` cut into `count` runs of about equal rows (a LOAD split where a run ends)."""
    total = sum(load.rows for load in loads)
    quota = -(-total // count)
    slices: list[list[Load]] = [[] for _ in range(count)]
    index, room = 0, quota
    for load in loads:
        while load.rows:
            if room == 0:
                index, room = index + 1, quota
            rows = min(load.rows, room)
            slices[index].append(replace(load, rows=rows))
            load = replace(
                load,
                buf_row=load.buf_row + rows,
                rows=load.rows - rows,
                dram_addr=load.dram_addr + (0 if load.fill else rows * load.dram_stride),
            )
            room -= rows
    return slices
