"""An op's constants in main memory: weight tiles in array order and requant tables.

Constants go into one `ConstantPool` from address 0, op after op. Each device op has one
constants builder (named in `device_ops.py`): Conv and MatMul get weight tiles and a
requant table (bias, multiplier, shift, zero point, clamp per output channel), the other
requantizing ops a requant table, MaxPool and Concat an identity table, Reshape nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from verdigris.arch.config import AccelConfig
from verdigris.arch.isa import LUT_ENTRIES, REQ_ENTRY
from verdigris.compiler import ir
from verdigris.compiler.backend.memory import CompileError, Layout
from verdigris.compiler.backend.packing import (
    BINARY,
    INT8,
    Packed,
    binary_excess,
    lane_requant,
    pack_codes,
)
from verdigris.compiler.backend.unroll import conv_row_chunks

__all__ = [
    "ConstantPool",
    "OpConstants",
    "gemm_constants",
    "identity_constants",
    "no_constants",
    "requant_constants",
]

# out = acc exactly (with bias 0), clamped to int8: the table of ops that only move values.
_IDENTITY = ir.Requant(
    multiplier=np.array([1 << 30]), shift=np.array([30]), zero_point=0, qmin=-128, qmax=127
)
# Raw int32 results: the store bypasses the requantizer and uses only the bias.
_RAW = ir.Requant(multiplier=np.array([0]), shift=np.array([1]), zero_point=0, qmin=0, qmax=0)


@dataclass
class ConstantPool:
    """Constant bytes in main memory from address 0, each blob aligned to `align`."""

    align: int
    data: bytearray = field(default_factory=bytearray)

    def add(self, blob: bytes) -> int:
        pad = -len(self.data) % self.align
        self.data.extend(b"\0" * pad)
        addr = len(self.data)
        self.data.extend(blob)
        return addr


def _req_table(
    pool: ConstantPool, dim: int, channels: int, bias, requant: ir.Requant
) -> tuple[int, int]:
    """Add requant entries for `channels` outputs (bias, multiplier and shift per channel
    or one for all), padded to whole rows of `dim` with harmless entries; (address, rows)."""
    rows = -(-channels // dim)
    table = np.zeros(rows * dim, REQ_ENTRY)
    table["shift"] = 1  # padding entries: multiplier 0, a legal shift
    per_channel = (("bias", bias), ("multiplier", requant.multiplier), ("shift", requant.shift))
    for name, values in per_channel:
        table[name][:channels] = np.broadcast_to(np.asarray(values).reshape(-1), (channels,))
    table["zero_point"][:channels] = requant.zero_point
    table["qmin"][:channels] = requant.qmin
    table["qmax"][:channels] = requant.qmax
    return pool.add(table.tobytes()), rows


def _lut_tables(pool: ConstantPool, dim: int, requant: ir.Requant) -> tuple[int, int]:
    """Add the lut-buffer rows of a requant's lookup table, if it has one: one table of
    LUT_ENTRIES rows with every lane the same, or one per block of `dim` channels, lane c of
    block b holding channel b * dim + c's function; (address, tables)."""
    if requant.table is None:
        return 0, 0
    table = requant.table
    blocks = -(-len(table) // dim)
    lanes = np.zeros((blocks * dim, LUT_ENTRIES), np.int64)
    lanes[:] = table[0] if len(table) == 1 else 0
    lanes[: len(table)] = table
    rows = lanes.reshape(blocks, dim, LUT_ENTRIES).transpose(0, 2, 1)
    return pool.add(rows.astype(np.int8).tobytes()), blocks


@dataclass(frozen=True)
class OpConstants:
    """Where an op's weight tiles, requant table and lookup tables are, and what the tiles
    contain."""

    # (step, output block) -> the main-memory address of that weight tile, -1 for a tile of
    # zeros (not stored)
    tile_addr: np.ndarray | None = None
    req_addr: int = 0
    req_rows: int = 0
    lut_addr: int = 0
    lut_tables: int = 0  # 0: no lookup; 1: one for every block; else one per block
    # (step, output block) -> whether that weight tile must run: it has a nonzero entry, or
    # its operands are binary
    nonzero: np.ndarray | None = None
    steps: int = 0


def _weight_matrix_conv(node: ir.Conv, in_channels: int) -> np.ndarray:
    """Dense (taps * C, OC) weight matrix in step order (kh, kw, c), groups expanded."""
    oc, cg, kh, kw = node.weight.shape
    dense = np.zeros((oc, in_channels, kh, kw), np.int64)
    og = oc // node.groups
    for g in range(node.groups):
        dense[g * og : (g + 1) * og, g * cg : (g + 1) * cg] = node.weight[g * og : (g + 1) * og]
    return dense.transpose(2, 3, 1, 0)  # (kh, kw, C, OC)


def _tiles(matrix: np.ndarray, steps_k: int, k_per_step: int, out_channels: int, dim: int):
    """Weight tiles [step][ocb] as (dim x dim) int8 blocks, from a (steps*k, OC) matrix
    where each step holds k_per_step rows (padded to dim)."""
    ocb = -(-out_channels // dim)
    tiles = np.zeros((steps_k, ocb, dim, dim), np.int64)
    for step in range(steps_k):
        block = matrix[step * k_per_step : (step + 1) * k_per_step]
        for o in range(ocb):
            part = block[:, o * dim : (o + 1) * dim]
            tiles[step, o, : part.shape[0], : part.shape[1]] = part
    return tiles


def _conv_tiles(node: ir.Conv, in_channels: int, dim: int, packed: Packed) -> np.ndarray:
    """Weight tiles of a conv whose input is stored as `packed`: its channels (K) packed the
    same way, so that C is the input's bytes per pixel."""
    dense = _weight_matrix_conv(node, in_channels)  # (kh, kw, C, OC)
    if packed != INT8:
        dense = pack_codes(dense, packed.bits, axis=2)
    kh, kw, c, oc = dense.shape
    chunks = conv_row_chunks(node, c, dim)
    if chunks:  # per kernel row, its (tap, channel) pairs in memory order, in steps of dim
        padded = np.zeros((kh, chunks * dim, oc), np.int64)
        padded[:, : kw * c] = dense.reshape(kh, kw * c, oc)
        return _tiles(padded.reshape(kh * chunks * dim, oc), kh * chunks, dim, oc, dim)
    cb = -(-c // dim)
    padded = np.zeros((kh, kw, cb * dim, oc), np.int64)
    padded[:, :, :c] = dense
    steps = kh * kw * cb
    return _tiles(padded.reshape(steps * dim, oc), steps, dim, oc, dim)


def _matmul_tiles(node: ir.MatMul, layouts: dict[str, Layout], dim: int) -> np.ndarray:
    weight = node.weight
    if weight.ndim != 2:
        raise CompileError(f"op {node.name}: batched MatMul weights are not supported")
    source = layouts[node.inputs[0]]
    if source.channels_last and len(source.shape) == 2:
        # Flattened channels-last input: reorder the K rows to memory order.
        order = (
            np.arange(int(np.prod(source.pre_shape[1:])))
            .reshape(source.pre_shape[1:])
            .transpose(1, 2, 0)
            .ravel()
        )
        weight = weight[order]
    if source.packed != INT8:  # K packed along each pixel's channels, as the input is
        rows = weight.reshape(-1, source.row_elems, weight.shape[-1])
        weight = pack_codes(rows, source.packed.bits, axis=1).reshape(-1, weight.shape[-1])
    k, oc = weight.shape
    steps = -(-k // dim)
    padded = np.zeros((steps * dim, oc), np.int64)
    padded[:k] = weight
    return _tiles(padded, steps, dim, oc, dim)


def gemm_constants(
    node: ir.Conv | ir.MatMul,
    graph: ir.Graph,
    layouts: dict[str, Layout],
    pool: ConstantPool,
    config: AccelConfig,
) -> OpConstants:
    """Conv and MatMul: weight tiles in step order, then the requant table (only the bias
    for raw int32 results)."""
    dim = config.dim
    out = graph.tensors[node.output]
    if node.weight_bits > 8:
        raise CompileError(
            f"op {node.name}: weights need {node.weight_bits} bits; the array multiplies "
            f"int{config.operand_bits}"
        )
    source = layouts[node.inputs[0]]
    if isinstance(node, ir.Conv):
        tiles = _conv_tiles(node, graph.tensors[node.inputs[0]].shape[1], dim, source.packed)
    else:
        tiles = _matmul_tiles(node, layouts, dim)
    channels = out.shape[1] if isinstance(node, ir.Conv) else out.shape[-1]
    # Only the tiles with a nonzero entry are stored, in (step, block) order: a grouped or
    # depthwise conv's dense matrix is mostly zero tiles (MobileNetV2's 960-channel
    # depthwise convs: 8.3 MB dense, 138 KB stored).
    stored = tiles.reshape(tiles.shape[0], tiles.shape[1], -1).any(axis=2)
    tile_addr = np.full(stored.shape, -1, np.int64)
    if stored.any():
        first = pool.add(tiles[stored].astype(np.int8).tobytes())
        tile_addr[stored] = first + np.arange(int(stored.sum())) * dim * dim
    # Binary operands have no zero: a zero tile (eight -1 to a byte) runs too.
    nonzero = np.ones_like(stored) if source.packed == BINARY else stored
    requant = _RAW if node.requant is None else node.requant
    requant = lane_requant(requant, layouts[node.output].packed)
    bias = node.bias
    if source.packed.offset:  # the input is stored less the offset: add it back
        k_axes = (1, 2, 3) if isinstance(node, ir.Conv) else 0
        bias = bias + source.packed.offset * node.weight.sum(axis=k_axes)
    if source.packed == BINARY:
        bias = bias - binary_excess(node, tiles.shape[0], dim)
    req_addr, req_rows = _req_table(pool, dim, channels, bias, requant)
    lut_addr, lut_tables = _lut_tables(pool, dim, requant)
    return OpConstants(
        tile_addr=tile_addr,
        req_addr=req_addr,
        req_rows=req_rows,
        lut_addr=lut_addr,
        lut_tables=lut_tables,
        nonzero=nonzero,
        steps=tiles.shape[0],
    )


def requant_constants(
    node: ir.AvgPool | ir.Add | ir.Requantize,
    graph: ir.Graph,
    layouts: dict[str, Layout],
    pool: ConstantPool,
    config: AccelConfig,
) -> OpConstants:
    """Ops that requantize without weights: the op's requant table, bias 0 (an AvgPool's
    own)."""
    channels = graph.tensors[node.output].shape[1]
    requant = lane_requant(node.requant, layouts[node.output].packed)
    bias = node.bias if isinstance(node, ir.AvgPool) else 0
    req_addr, req_rows = _req_table(pool, config.dim, channels, bias, requant)
    lut_addr, lut_tables = _lut_tables(pool, config.dim, requant)
    return OpConstants(
        req_addr=req_addr, req_rows=req_rows, lut_addr=lut_addr, lut_tables=lut_tables
    )


def identity_constants(
    node: ir.MaxPool | ir.Concat,
    graph: ir.Graph,
    layouts: dict[str, Layout],
    pool: ConstantPool,
    config: AccelConfig,
) -> OpConstants:
    """Ops that only move values: an identity requant table (out = acc, int8 clamp)."""
    channels = graph.tensors[node.output].shape[1]
    requant = lane_requant(_IDENTITY, layouts[node.output].packed)
    req_addr, req_rows = _req_table(pool, config.dim, channels, 0, requant)
    return OpConstants(req_addr=req_addr, req_rows=req_rows)


def no_constants(
    _node: ir.Op,
    _graph: ir.Graph,
    _layouts: dict[str, Layout],
    _pool: ConstantPool,
    _config: AccelConfig,
) -> OpConstants:
    """Ops without constants (Reshape: an alias)."""
    return OpConstants()
