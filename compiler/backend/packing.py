"""Packed operands: which activations main memory holds two, four or eight to a byte, and how.

A tensor of int4 or int2 values is stored packed along its channels (docs/isa.md, STORE and
GEMM `pack`) when the array computes that width (AccelConfig.operand_bits) and every op that
reads it multiplies it on the array: a dense Conv or a MatMul, whose weights are then packed
the same way along K. Such a layer streams `2**pack` values of K per byte, so it takes
fewer cycles, buffer rows and main-memory bytes, with the same integers (docs/quantization.md,
"Packed operands").

A tensor of binary values (+1 and -1 only: a BipolarQuant activation) is stored one bit a
value when the array computes binary (operand_bits 1), its readers' weights are binary too
and no reader pads it: a padding value of 0 has no binary code, and a byte past a row's
values (a zero byte: eight -1) is no zero either. Each reader's GEMMs then run every tile,
and its bias takes off what the -1 lanes past K add (`binary_excess`). Elsewhere binary
tensors are stored as int2.

The op that writes the tensor packs it in its STORE; it may be any device op but Concat
(whose inputs land at channel offsets that need not be whole bytes). Graph inputs and
outputs, host-op tensors and the inputs of vector ops stay int8.

A tensor's values are signed lanes of `bits`: an unsigned one (a uint4 after a ReLU) is
stored less `offset` = 2**(bits-1), which the writer's requantizer subtracts (its zero
point, clamp and table) and each reader adds back through its bias (acc = Σ (a - offset) w
+ bias + offset Σ w) and its padding value.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from verdigris.arch.config import AccelConfig
from verdigris.arch.isa import LANE_BITS, OPERAND_WIDTHS, pack_elements
from verdigris.compiler import ir

__all__ = [
    "BINARY",
    "Packed",
    "binary_excess",
    "is_binary",
    "lane_requant",
    "pack_codes",
    "pack_fill",
    "plan_packing",
    "value_bits",
]


@dataclass(frozen=True)
class Packed:
    """How a tensor lies in main memory: `bits` per value (LANE_BITS: one int8 per byte),
    stored as value - `offset`."""

    bits: int = LANE_BITS
    offset: int = 0

    @property
    def pack(self) -> int:
        """The GEMM and STORE `pack` of this width: log2 of the values per byte."""
        return OPERAND_WIDTHS.index(self.bits)

    @property
    def per_byte(self) -> int:
        return LANE_BITS // self.bits


INT8 = Packed()


def _fits(low: int, high: int, bits: int) -> bool:
    return -(1 << (bits - 1)) <= low and high < 1 << (bits - 1)


# The widths whose lanes are two's complement: all but binary.
_SIGNED_WIDTHS = tuple(w for w in OPERAND_WIDTHS if w > 1)
BINARY = Packed(1)


def value_bits(values: np.ndarray) -> int:
    """The narrowest two's complement operand width (OPERAND_WIDTHS but binary) whose signed
    range holds `values`."""
    low, high = (int(values.min()), int(values.max())) if values.size else (0, 0)
    return next((w for w in reversed(_SIGNED_WIDTHS) if _fits(low, high, w)), LANE_BITS)


def is_binary(values: np.ndarray) -> bool:
    """Whether `values` are all +1 or -1 (binary operands)."""
    return bool(np.isin(values, (-1, 1)).all())


def _value_range(graph: ir.Graph, name: str) -> tuple[int, int]:
    """The values a device tensor can hold: its type's range."""
    dtype = graph.tensors[name].dtype
    if dtype.signed:
        return -(1 << (dtype.bits - 1)), (1 << (dtype.bits - 1)) - 1
    return 0, (1 << dtype.bits) - 1


def _lanes(low: int, high: int, bits: int) -> Packed | None:
    """Values [low, high] in signed lanes of `bits`, shifted if they need to be; None if
    they do not fit."""
    if bits == LANE_BITS:
        return INT8
    if _fits(low, high, bits):
        return Packed(bits)
    offset = 1 << (bits - 1)
    if _fits(low - offset, high - offset, bits):
        return Packed(bits, offset)
    return None


def plan_packing(graph: ir.Graph, config: AccelConfig) -> dict[str, Packed]:
    """The tensors to store packed (by name; a Reshape's output shares its input's entry):
    those whose readers are all dense Convs and MatMuls, packed at the widest of their
    values' width and those readers' weights' widths, if that is narrower than int8, no
    narrower than the config's operand_bits and a whole number of bytes per `dim` values
    (a STORE writes blocks of `dim` channels)."""
    if config.operand_bits == LANE_BITS:
        return {}
    root: dict[str, str] = {}
    for node in graph.nodes:
        if isinstance(node, ir.Reshape):
            root[node.output] = root.get(node.inputs[0], node.inputs[0])
    readers: dict[str, list[ir.Op]] = {}
    for node in graph.nodes:
        if not isinstance(node, ir.Reshape):
            for name in node.inputs:
                readers.setdefault(root.get(name, name), []).append(node)
    binary = _binary_tensors(graph, root)
    kept = {root.get(o.tensor.name, o.tensor.name) for o in graph.outputs}
    kept |= {root.get(i.tensor.name, i.tensor.name) for i in graph.inputs}
    packed = {}
    for node in graph.nodes:
        name = node.output
        users = readers.get(name, [])
        if (
            isinstance(node, ir.Concat | ir.Reshape | ir.HostOp)
            or name in kept
            or not users
            or not all(_multiplies(user) for user in users)
        ):
            continue
        low, high = _value_range(graph, name)
        bits = max(
            config.operand_bits,
            min(w for w in _SIGNED_WIDTHS if _lanes(low, high, w) is not None),
            *(value_bits(user.weight) for user in users),
        )
        while (config.dim * bits) % LANE_BITS:
            bits *= 2
        lanes = _lanes(low, high, bits)
        if _binary_packs(name, users, binary, config):
            packed[name] = BINARY
        elif lanes is not None and lanes.bits < LANE_BITS:
            packed[name] = lanes
    aliases = {alias: packed[source] for alias, source in root.items() if source in packed}
    return packed | aliases


def _binary_tensors(graph: ir.Graph, root: dict[str, str]) -> set[str]:
    """The device tensors (storage roots) whose values are +1 or -1 only: those a lookup
    table maps to them, and the max-pools of such tensors."""
    binary: set[str] = set()
    for node in graph.nodes:
        requant = getattr(node, "requant", None)
        if (requant is not None and requant.table is not None and is_binary(requant.table)) or (
            isinstance(node, ir.MaxPool) and root.get(node.inputs[0], node.inputs[0]) in binary
        ):
            binary.add(node.output)
    return binary


def _binary_packs(name: str, users: list[ir.Op], binary: set[str], config: AccelConfig) -> bool:
    """Whether tensor `name` is stored binary: its values are, the array computes binary,
    a STORE's block of `dim` values is whole bytes, and every reader multiplies it by
    binary weights without padding it."""
    return (
        name in binary
        and config.operand_bits == 1
        and config.dim % LANE_BITS == 0
        and all(
            is_binary(user.weight) and (isinstance(user, ir.MatMul) or not any(user.pads))
            for user in users
        )
    )


def binary_excess(node: ir.Conv | ir.MatMul, steps: int, dim: int) -> int:
    """What the lanes past K add to each output of `node` whose input is stored binary and
    whose GEMMs run `steps` tiles (of `dim` rows of bytes) along K: each such lane is a -1
    activation (a zero byte, or STORE's lanes past its values) times a -1 weight (the tiles'
    zero padding), +1."""
    k = node.weight.shape[0] if isinstance(node, ir.MatMul) else node.weight[0].size
    return steps * dim * (LANE_BITS // BINARY.bits) - k


def _multiplies(node: ir.Op) -> bool:
    """Whether `node` multiplies its input on the array, K along the input's channels."""
    return isinstance(node, ir.MatMul) or (isinstance(node, ir.Conv) and node.groups == 1)


def lane_requant(requant: ir.Requant, packed: Packed) -> ir.Requant:
    """`requant` writing its values as `packed` stores them: less the offset (zero point,
    clamp and table shifted), clamped to the lanes' range (which the tensor's type keeps
    them in anyway, so that a STORE never wraps a value). Binary lanes store the sign of
    any int8 value: the requant stays."""
    if packed in (INT8, BINARY):
        return requant
    offset, half = packed.offset, 1 << (packed.bits - 1)
    table = None if requant.table is None else requant.table - offset
    return replace(
        requant,
        zero_point=requant.zero_point - offset,
        qmin=max(requant.qmin - offset, -half),
        qmax=min(requant.qmax - offset, half - 1),
        table=table,
    )


def pack_codes(values: np.ndarray, bits: int, axis: int) -> np.ndarray:
    """`values` packed along `axis` as main memory holds them (`pack_elements`: 8 // bits to
    a byte, the axis padded to whole bytes), as int8 bytes: the axis shrinks to
    ceil(n * bits / 8)."""
    values = np.moveaxis(np.asarray(values, np.int64), axis, -1)
    rows = pack_elements(values.reshape(-1, values.shape[-1]), bits)
    codes = rows.view(np.int8).astype(np.int64).reshape(*values.shape[:-1], -1)
    return np.moveaxis(codes, -1, axis)


def pack_fill(value: int, packed: Packed) -> int:
    """The int8 byte whose every lane holds `value` stored as `packed` (a padding value)."""
    lanes = np.full(packed.per_byte, value - packed.offset)
    return int(pack_codes(lanes, packed.bits, 0)[0])
