"""Main-memory planning: constants first, then activations with reuse of dead tensors.

Activation tensors are laid out channels-last (NHWC: one pixel's channels are contiguous, so
a strided transfer gathers a convolution window's rows). A Reshape output aliases its input.
Each activation gets a slot from a first-fit allocator; a slot is free again after the last
op that reads its tensor, so later tensors reuse it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from verdigris.arch.config import AccelConfig
from verdigris.compiler import ir
from verdigris.compiler.backend.packing import INT8, Packed

__all__ = ["CompileError", "Layout", "MemoryPlan", "plan_memory"]


class CompileError(ValueError):
    """The graph cannot be compiled for this configuration."""


@dataclass(frozen=True)
class Layout:
    """A tensor's place in main memory: logical (ONNX order) `shape`, laid out as
    `logical.reshape(pre_shape).transpose(perm)`; element size `itemsize`, or with `packed`
    narrower than int8, `packed.per_byte` values to a byte along the innermost axis of
    memory (the channels), each row of it padded to whole bytes."""

    addr: int
    shape: tuple[int, ...]
    pre_shape: tuple[int, ...]
    perm: tuple[int, ...]
    itemsize: int
    packed: Packed = INT8

    @property
    def channels_last(self) -> bool:
        return len(self.pre_shape) == 4 and self.perm == (0, 2, 3, 1)

    @property
    def row_elems(self) -> int:
        """Values per row of memory: one pixel's channels, or the innermost dimension."""
        return self.pre_shape[1] if self.channels_last else self.pre_shape[-1]

    @property
    def row_bytes(self) -> int:
        return -(-self.row_elems // self.packed.per_byte) * self.itemsize

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.pre_shape)) // self.row_elems * self.row_bytes

    def byte_view(self) -> Layout:
        """The same bytes as a tensor of int8 (packed bytes as values): what an op that
        multiplies a packed tensor reads, its channels (K) a byte of packed values each."""
        if self.packed == INT8:
            return self
        axis = 1 if self.channels_last else len(self.pre_shape) - 1
        pre_shape = list(self.pre_shape)
        pre_shape[axis] = -(-pre_shape[axis] // self.packed.per_byte)
        if self.channels_last and len(self.shape) == 2:  # a flattened feature map
            shape = (pre_shape[0], int(np.prod(pre_shape[1:])))
        elif self.channels_last:
            shape = tuple(pre_shape)
        else:
            shape = (*self.shape[:-1], pre_shape[-1])
        return replace(self, shape=shape, pre_shape=tuple(pre_shape), packed=INT8)


def row_major_in_memory(shape: tuple[int, ...]) -> bool:
    """Whether a tensor's natural main-memory order is its row-major (ONNX) order: not 4-D
    (row-major), or 4-D (channels-last) with one channel or one pixel."""
    return len(shape) != 4 or shape[1] == 1 or shape[2] * shape[3] == 1


def natural_layout(tensor: ir.Tensor, addr: int, packed: Packed = INT8) -> Layout:
    shape = tuple(tensor.shape)
    itemsize = 4 if tensor.dtype.bits == 32 else 1
    perm = (0, 2, 3, 1) if len(shape) == 4 else tuple(range(len(shape)))
    return Layout(
        addr=addr, shape=shape, pre_shape=shape, perm=perm, itemsize=itemsize, packed=packed
    )


@dataclass
class MemoryPlan:
    layouts: dict[str, Layout]
    constants_end: int
    activations_end: int


def _align(value: int, alignment: int) -> int:
    return -(-value // alignment) * alignment


def plan_memory(
    graph: ir.Graph,
    config: AccelConfig,
    constants_bytes: int,
    packing: dict[str, Packed] | None = None,
) -> MemoryPlan:
    """Place every device tensor after `constants_bytes` of constant data, those in
    `packing` (`plan_packing`) packed."""
    packing = packing or {}
    align = config.dma_bytes
    base = _align(constants_bytes, align)
    # Reshape outputs share their input's memory: find each tensor's storage root.
    root: dict[str, str] = {}
    for node in graph.nodes:
        if isinstance(node, ir.Reshape):
            root[node.output] = root.get(node.inputs[0], node.inputs[0])
    last_use: dict[str, int] = {}
    first_def: dict[str, int] = {}
    end = len(graph.nodes)
    for graph_input in graph.inputs:
        first_def[graph_input.tensor.name] = -1
    for index, node in enumerate(graph.nodes):
        for name in node.inputs:
            storage = root.get(name, name)
            last_use[storage] = max(last_use.get(storage, -1), index)
        storage = root.get(node.output, node.output)
        first_def.setdefault(storage, index)
    for graph_output in graph.outputs:
        storage = root.get(graph_output.tensor.name, graph_output.tensor.name)
        last_use[storage] = end  # outputs stay until the host reads them

    free: list[tuple[int, int]] = []  # (addr, size), sorted by addr
    top = base
    addresses: dict[str, int] = {}
    # Events in op order: allocate at definition, free after last use.
    by_time: dict[int, list[str]] = {}
    for storage, time in first_def.items():
        by_time.setdefault(time, []).append(storage)
    frees: dict[int, list[str]] = {}
    for storage, time in last_use.items():
        frees.setdefault(time, []).append(storage)

    def size_of(name: str) -> int:
        tensor = graph.tensors[name]
        return _align(natural_layout(tensor, 0, packing.get(name, INT8)).nbytes, align)

    for time in range(-1, end + 1):
        for storage in by_time.get(time, []):
            size = size_of(storage)
            slot = next(((a, s) for a, s in free if s >= size), None)
            if slot is None:
                addresses[storage] = top
                top += size
            else:
                free.remove(slot)
                addresses[storage] = slot[0]
                if slot[1] > size:
                    free.append((slot[0] + size, slot[1] - size))
                    free.sort()
        for storage in frees.get(time, []):
            if storage in addresses and time < end:
                free.append((addresses[storage], size_of(storage)))
                free.sort()
                free = _merge(free)
    if top > config.main_memory_bytes:
        largest = max(addresses, key=size_of)
        # The first plan places activations only (constants are sized later): say so
        # rather than report 0 bytes of constants.
        parts = (
            f"{base:,} of constants, {top - base:,} of activations"
            if base
            else "its activations alone, before its constants"
        )
        raise CompileError(
            f"the model needs {top:,} bytes of main memory ({parts}; the largest tensor, "
            f"'{largest}', takes "
            f"{size_of(largest):,}); config '{config.name}' has {config.main_memory_bytes:,}. "
            "Use a larger config or a smaller model."
        )
    layouts = {}
    for name, tensor in graph.tensors.items():
        storage = root.get(name, name)
        if storage not in addresses:
            continue  # a tensor nothing produces or reads (not used on the device)
        root_tensor = graph.tensors[storage]
        layout = natural_layout(root_tensor, addresses[storage], packing.get(storage, INT8))
        if storage != name:
            if row_major_in_memory(root_tensor.shape) and row_major_in_memory(tensor.shape):
                # The same bytes in the same order: the alias has its own natural layout (a
                # channel shuffle's 5-D -> 4-D at one pixel feeds a Conv as any 4-D tensor).
                layout = natural_layout(tensor, addresses[storage], packing.get(storage, INT8))
            else:
                layout = replace(layout, shape=tuple(tensor.shape))
        layouts[name] = layout
    return MemoryPlan(layouts=layouts, constants_end=base, activations_end=top)


def _merge(free: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for addr, size in free:
        if merged and merged[-1][0] + merged[-1][1] == addr:
            merged[-1] = (merged[-1][0], merged[-1][1] + size)
        else:
            merged.append((addr, size))
    return merged
