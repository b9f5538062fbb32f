"""The core's performance counters: their port names, in the order every host reports them,
and the map from counter values to an Activity (docs/isa.md, docs/host-port.md).

hw/core.py builds one port per name; the cocotb bench, the C++ harness and a board's host
read them in this order.
"""

from __future__ import annotations

from collections.abc import Mapping

from verdigris.arch.activity import UNITS, Activity
from verdigris.arch.isa import OPERAND_WIDTHS, Buffer, operand_width

__all__ = [
    "ACTIVITY_COUNTERS",
    "BYTE_COUNTERS",
    "COMPLETION_COUNTERS",
    "COUNTERS",
    "LOAD_WRITE_COUNTERS",
    "PACKED_MAC_COUNTERS",
    "activity_from_counters",
]

# Bytes through each memory port (docs/isa.md, "Activity counters"): main memory, the
# compute unit's buffer reads and accumulator writes, LOAD's writes into each buffer
# (`LOAD_WRITE_COUNTERS`), the STORE's requant-table and lookup-table reads.
BYTE_COUNTERS = (
    "main_read_bytes",
    "main_write_bytes",
    "inp_read_bytes",
    "wgt_read_bytes",
    "acc_read_bytes",
    "acc_write_bytes",
    "inp_write_bytes",
    "wgt_write_bytes",
    "acc_load_bytes",
    "req_write_bytes",
    "req_read_bytes",
    "lut_write_bytes",
    "lut_read_bytes",
)

# The counter of the bytes LOAD writes into each buffer (a LOAD into the accumulator is
# `acc_load_bytes`, apart from the compute unit's `acc_write_bytes`).
LOAD_WRITE_COUNTERS = {
    Buffer.INP: "inp_write_bytes",
    Buffer.WGT: "wgt_write_bytes",
    Buffer.ACC: "acc_load_bytes",
    Buffer.REQ: "req_write_bytes",
    Buffer.LUT: "lut_write_bytes",
}

# The MAC slots of GEMMs with packed operands, per `pack` (1: int4, 2: int2; a slot then
# computes 2**pack products): a part of `macs`, which counts every slot, so that energy can
# price MACs by width.
PACKED_MAC_COUNTERS = {
    pack: f"macs_int{operand_width(pack)}" for pack in range(1, len(OPERAND_WIDTHS))
}

# The counters an Activity is made of, in port order.
ACTIVITY_COUNTERS = (
    "cycles",
    "instruction_fetches",
    "macs",
    *PACKED_MAC_COUNTERS.values(),
    "zero_macs",
    *BYTE_COUNTERS,
    *(
        f"{unit}_{counter}"
        for unit in UNITS
        for counter in ("busy_cycles", "stall_cycles", "instructions")
    ),
)

# Instructions completed up to and including the current cycle, per unit, and of those on
# the compute unit the NOPs: the layer-boundary detectors (see `boundary_reached`).
COMPLETION_COUNTERS = (
    "load_completed",
    "compute_completed",
    "compute_nops_completed",
    "store_completed",
)

# Every counter port of the core, in the order hosts report them.
COUNTERS = ACTIVITY_COUNTERS + COMPLETION_COUNTERS


def activity_from_counters(counters: Mapping[str, int]) -> Activity:
    """The Activity record of counter values (names of ACTIVITY_COUNTERS; others ignored)."""
    return Activity(
        cycles=counters["cycles"],
        busy={u: counters[f"{u}_busy_cycles"] for u in UNITS},
        stall={u: counters[f"{u}_stall_cycles"] for u in UNITS},
        instructions={u: counters[f"{u}_instructions"] for u in UNITS},
        instruction_fetches=counters["instruction_fetches"],
        macs=counters["macs"],
        **{name: counters[name] for name in PACKED_MAC_COUNTERS.values()},
        zero_macs=counters["zero_macs"],
        **{name: counters[name] for name in BYTE_COUNTERS},
    )
