"""The energy of each action on one config under one energy table (docs/energy.md)."""

from __future__ import annotations

from dataclasses import dataclass

from verdigris.arch.config import AccelConfig
from verdigris.arch.isa import (
    INSTRUCTION_BYTES,
    LANE_BITS,
    OPERAND_WIDTHS,
    Buffer,
    buffer_rows,
    operand_width,
    row_bytes,
)
from verdigris.energy.table import EnergyTable

__all__ = ["Prices", "prices"]


@dataclass(frozen=True)
class Prices:
    """Energy of each action on one config, from one table (pJ; static in mW)."""

    # A MAC slot by its GEMM `pack`: its 2**pack multiplies of operand_width(pack) bits, the
    # adds of their sum and the accumulating add (acc_bits); pack 0 is the int8 MAC.
    slot: tuple[float, ...]
    mac_gated: float
    register_bit: float
    register_bits_per_mac: int  # operand + accumulator register per MAC slot
    register_bits_per_weight_byte: int  # weight registers written per weight byte loaded
    read_byte: dict[Buffer, float]  # per byte read of each on-chip buffer (by its capacity)
    write_byte: dict[Buffer, float]  # per byte written
    main_read_byte: float
    main_write_byte: float
    fetch_byte: float  # per byte of instruction memory read
    control_cycle: float
    static_mw: float

    @property
    def mac(self) -> float:
        """One int8 MAC: an 8-bit multiply and the accumulating add."""
        return self.slot[0]

    def mac_at(self, pack: int) -> float:
        """One MAC (one product) of a GEMM with `pack`: its slot's share."""
        return self.slot[pack] / (1 << pack)


def prices(config: AccelConfig, table: EnergyTable, *, dram: bool = False) -> Prices:
    """The per-action energies of `config` under `table`: each memory priced at its own
    capacity (buffers: rows * row bytes; instruction memory: capacity * 16 bytes; main
    memory: `main_memory_bytes` of on-chip SRAM, or off-chip DRAM with `dram`)."""
    ob, ab = LANE_BITS, config.acc_bits

    def sram(action: str, capacity: int) -> float:
        return table.memory_pj_per_byte("sram", action, capacity)

    capacity = {b: buffer_rows(config, b) * row_bytes(config, b) for b in Buffer}
    if dram:
        main_read = table.energy("dram", "read", width=64) / 8
        main_write = table.energy("dram", "write", width=64) / 8
    else:
        main_read = sram("read", config.main_memory_bytes)
        main_write = sram("write", config.main_memory_bytes)

    def slot(pack: int) -> float:
        width, products = operand_width(pack), 1 << pack
        return (
            products * table.energy("multiplier", "multiply", width=width)
            + (products - 1) * table.energy("adder", "add", width=2 * width)
            + table.energy("adder", "add", width=ab)
        )

    return Prices(
        slot=tuple(slot(pack) for pack in range(len(OPERAND_WIDTHS))),
        mac_gated=table.energy("mac", "gated", width=ob),
        register_bit=table.energy("register", "write", width=1),
        # ws: the activation passes on (a_out) and the partial sum moves down (psum_out);
        # os: the activation moves on and the PE's own sum is written. Both: ob + ab bits.
        register_bits_per_mac=ob + ab,
        # ws: a loaded weight goes into the shadow register and, at the swap, the active
        # one; os: into its bank register only (hw/array.py, hw/array_os.py).
        register_bits_per_weight_byte=8 * (2 if config.dataflow == "ws" else 1),
        read_byte={b: sram("read", capacity[b]) for b in Buffer},
        write_byte={b: sram("write", capacity[b]) for b in Buffer},
        main_read_byte=main_read,
        main_write_byte=main_write,
        fetch_byte=sram("read", config.instruction_capacity * INSTRUCTION_BYTES),
        control_cycle=table.energy("control", "cycle"),
        static_mw=table.static_power_mw,
    )
