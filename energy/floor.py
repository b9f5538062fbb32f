"""The physical floor of each layer: the least energy any schedule of the layer could need
on this config (docs/energy.md, "The floor").

Each useful MAC once (at the ungated MAC energy of the width its GEMMs multiply), each input
and parameter byte read once from main memory, each output byte written once to it; nothing
else (no buffer, register, control or static energy). The idea of Timeloop's algorithmic
minimum and of Orojenesis' data-movement bounds, at the table's energies.

The counts are the layer's true tensor sizes, which the compiler records in `LayerInfo`
(`input_bytes`, `weight_bytes`, `output_bytes`: no padding of the compiled layout). A Reshape
moves nothing (its output is its input's bytes, renamed), so its floor is 0. A program file
written before those fields falls back to counting the layer's instructions: the distinct
main-memory bytes its LOADs read into the input buffer (inputs) and into the weight,
accumulator and requant buffers (parameters), and the distinct bytes its STOREs write
(outputs); that is the compiled layout, padding included, so it is a little above the floor.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from verdigris.arch.isa import Buffer, Finish, Gemm, Load, Store, transfer_bytes
from verdigris.arch.program import LayerInfo, Program
from verdigris.energy.prices import prices
from verdigris.energy.table import EnergyTable

__all__ = ["LayerFloor", "layer_floors"]


@dataclass(frozen=True)
class LayerFloor:
    """One layer's floor (pJ) and the counts it rests on."""

    name: str
    op: str
    macs: int  # useful MACs (LayerInfo.macs)
    input_bytes: int
    param_bytes: int  # weights and requant entries (LayerInfo.weight_bytes)
    output_bytes: int
    mac_pj: float
    read_pj: float
    write_pj: float

    @property
    def energy_pj(self) -> float:
        return self.mac_pj + self.read_pj + self.write_pj

    def times(self, runs: int) -> LayerFloor:
        """The floor of `runs` runs of the layer."""
        return replace(
            self,
            macs=self.macs * runs,
            input_bytes=self.input_bytes * runs,
            param_bytes=self.param_bytes * runs,
            output_bytes=self.output_bytes * runs,
            mac_pj=self.mac_pj * runs,
            read_pj=self.read_pj * runs,
            write_pj=self.write_pj * runs,
        )


# Ops whose output is their input's bytes under another shape: nothing to move.
_ALIASES = frozenset({"Reshape"})


def _addresses(ins: Load | Store, nbytes: int) -> np.ndarray:
    """The main-memory addresses a LOAD reads or a STORE writes: `nbytes` from each row."""
    rows = np.arange(ins.rows, dtype=np.int64)[:, None] * ins.dram_stride
    return (ins.dram_addr + rows + np.arange(nbytes, dtype=np.int64)[None, :]).ravel()


def _touched(program: Program, layer: LayerInfo, end: int) -> tuple[int, int, int]:
    """(input, parameter, output) bytes: the distinct main-memory bytes the layer's LOADs
    and STOREs touch, for a program without the layers' sizes."""
    config = program.config
    touched: dict[str, list[np.ndarray]] = {"in": [], "par": [], "out": []}
    for ins in program.instructions[layer.first : min(layer.last, end)]:
        if isinstance(ins, Load) and not ins.fill:
            kind = "in" if Buffer(ins.buffer) == Buffer.INP else "par"
            touched[kind].append(_addresses(ins, transfer_bytes(config, ins)))
        elif isinstance(ins, Store):
            touched["out"].append(_addresses(ins, transfer_bytes(config, ins)))
    count = {
        kind: int(np.unique(np.concatenate(arrays)).size) if arrays else 0
        for kind, arrays in touched.items()
    }
    return count["in"], count["par"], count["out"]


def _pack(program: Program, layer: LayerInfo) -> int:
    """The `pack` of a layer's GEMMs (0, int8, for a layer without any)."""
    instructions = program.instructions[layer.first : layer.last]
    return max((ins.pack for ins in instructions if isinstance(ins, Gemm)), default=0)


def layer_floors(
    program: Program, table: EnergyTable, *, dram: bool = False
) -> tuple[LayerFloor, ...]:
    """The floor of each of `program.layers`, for one run of the program."""
    p = prices(program.config, table, dram=dram)
    end = next(
        (i for i, ins in enumerate(program.instructions) if isinstance(ins, Finish)),
        len(program.instructions),
    )
    floors = []
    for layer in program.layers:
        if layer.kind in _ALIASES:
            inputs = params = outputs = 0
        elif layer.sizes_known:
            inputs, params, outputs = layer.input_bytes, layer.weight_bytes, layer.output_bytes
        else:
            inputs, params, outputs = _touched(program, layer, end)
        floors.append(
            LayerFloor(
                name=layer.name,
                op=layer.kind,
                macs=layer.macs,
                input_bytes=inputs,
                param_bytes=params,
                output_bytes=outputs,
                mac_pj=layer.macs * p.mac_at(_pack(program, layer)),
                read_pj=(inputs + params) * p.main_read_byte,
                write_pj=outputs * p.main_write_byte,
            )
        )
    return tuple(floors)
