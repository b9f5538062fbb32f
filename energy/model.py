"""The energy model: a run's Activity, the AccelConfig and an energy table → energy in pJ,
per layer and per component (docs/energy.md).

    energy = Σ actions * energy per action + static power * time

Every action is a counter of the Activity (docs/isa.md, "Activity counters") or follows
from counters (the PE registers), so a run is priced the same, per layer too, with or
without its Program; the Program (`program=`) adds each layer's useful MACs and floor.
`energy_report` is a pure function: same inputs, same report.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from verdigris.arch.activity import Activity
from verdigris.arch.config import AccelConfig
from verdigris.arch.counters import PACKED_MAC_COUNTERS
from verdigris.arch.isa import BINARY_PACK, INSTRUCTION_BYTES, Buffer
from verdigris.arch.program import Program
from verdigris.energy.floor import LayerFloor, layer_floors
from verdigris.energy.prices import Prices, prices
from verdigris.energy.table import EnergyTable

__all__ = [
    "COMPONENTS",
    "DEFAULT_GRID_INTENSITY",
    "EnergyReport",
    "LayerEnergy",
    "energy_report",
]

# The 2023 world-average carbon intensity of electricity, gCO2 per kWh (Ember, Global
# Electricity Review 2024).
DEFAULT_GRID_INTENSITY = 480.0

# Where the energy goes, in report order (docs/energy.md, "Components").
COMPONENTS = (
    "mac",  # MACs with both operands non-zero: multiply + accumulate add
    "mac_gated",  # MACs with a zero operand (padding included): gated
    "pe_registers",  # PE pipeline registers per MAC slot, weight registers per weight load
    "inp_buffer",  # input-buffer reads (GEMM, VECTOR)
    "wgt_buffer",  # weight-buffer reads (GEMM weight loads)
    "acc_buffer",  # accumulator reads and writes by GEMM, VECTOR, STORE
    "req_table",  # requant-table reads (one table row per STORE row)
    "lut_table",  # lookup-table reads (one table row per row of a STORE with a lookup)
    "buffer_loads",  # LOAD writes into the inp, wgt, acc, req and lut buffers
    "main_memory",  # LOAD reads and STORE writes of main memory (SRAM, or DRAM)
    "instruction_fetch",  # one 16-byte instruction-memory read per fetch (FINISH's too)
    "control",  # controller, queues and token counters, per cycle
    "static",  # static power * time
)


@dataclass(frozen=True)
class LayerEnergy:
    """One layer's energy by component (pJ, every name of COMPONENTS), its cycles and MAC
    slots (from the Activity), its useful MACs and floor (from the Program, else None)."""

    name: str
    op: str
    cycles: int
    macs: int
    energy_pj: dict[str, float]
    useful_macs: int | None = None
    floor: LayerFloor | None = None

    @property
    def energy_pj_total(self) -> float:
        return sum(self.energy_pj.values())

    @property
    def floor_pj(self) -> float | None:
        return None if self.floor is None else self.floor.energy_pj

    @property
    def floor_ratio(self) -> float | None:
        """Energy / floor (None without a floor, or for a layer whose floor is 0)."""
        floor = self.floor_pj
        return self.energy_pj_total / floor if floor else None


@dataclass(frozen=True)
class EnergyReport:
    """The energy of a run: per layer and in total, and what follows from it.

    `runs` is how many times the program ran in the Activity, `inferences` how many
    inferences those runs computed (both 1 for one run of a batch-1 program)."""

    config: str
    table: str
    dram: bool
    clock_mhz: float
    cycles: int
    macs: int
    runs: int
    inferences: int
    grid_intensity: float  # gCO2 per kWh
    energy_pj: dict[str, float]
    layers: tuple[LayerEnergy, ...] = ()
    floor_pj: float | None = None

    @property
    def energy_pj_total(self) -> float:
        return sum(self.energy_pj.values())

    @property
    def floor_ratio(self) -> float | None:
        return self.energy_pj_total / self.floor_pj if self.floor_pj else None

    @property
    def time_s(self) -> float:
        """Seconds the Activity's cycles take at the config's clock."""
        return self.cycles / (self.clock_mhz * 1e6)

    @property
    def latency_s(self) -> float:
        """Seconds of one run of the program (cycles per run / clock)."""
        return self.time_s / self.runs

    @property
    def uj_per_inference(self) -> float:
        return self.energy_pj_total * 1e-6 / self.inferences

    @property
    def inferences_per_joule(self) -> float:
        total = self.energy_pj_total
        return self.inferences / (total * 1e-12) if total else float("inf")

    @property
    def average_power_mw(self) -> float:
        return self.energy_pj_total * 1e-12 / self.time_s * 1e3 if self.cycles else 0.0

    @property
    def gco2_per_million_inferences(self) -> float:
        """gCO2 for a million inferences at `grid_intensity`: a million inferences take
        `uj_per_inference` J (µJ * 10^6 * 10^-6), i.e. that / 3.6e6 kWh."""
        return self.uj_per_inference / 3.6e6 * self.grid_intensity

    def dominant_component(self) -> str:
        return max(self.energy_pj, key=self.energy_pj.__getitem__)

    def to_dict(self) -> dict:
        """The JSON-ready report (docs/energy.md, "Report fields")."""
        return {
            "config": self.config,
            "table": self.table,
            "dram": self.dram,
            "clock_mhz": self.clock_mhz,
            "runs": self.runs,
            "inferences": self.inferences,
            "grid_intensity_gco2_per_kwh": self.grid_intensity,
            "total": {
                "cycles": self.cycles,
                "macs": self.macs,
                "energy_pj": self.energy_pj_total,
                "energy_pj_by_component": dict(self.energy_pj),
                "floor_pj": self.floor_pj,
                "floor_ratio": self.floor_ratio,
                "uj_per_inference": self.uj_per_inference,
                "inferences_per_joule": self.inferences_per_joule,
                "average_power_mw": self.average_power_mw,
                "latency_s": self.latency_s,
                "gco2_per_million_inferences": self.gco2_per_million_inferences,
            },
            "layers": [
                {
                    "name": layer.name,
                    "op": layer.op,
                    "cycles": layer.cycles,
                    "macs": layer.macs,
                    "useful_macs": layer.useful_macs,
                    "energy_pj": dict(layer.energy_pj),
                    "energy_pj_total": layer.energy_pj_total,
                    "floor_pj": layer.floor_pj,
                    "floor_ratio": layer.floor_ratio,
                }
                for layer in self.layers
            ],
        }


def _mac_energy(a: Activity, p: Prices) -> float:
    """The MAC slots with no zero operand, each at its width's price. Zero slots are not
    counted by width: each width that has them (binary slots have none) is taken to have
    its share of them."""
    packed = {pack: getattr(a, counter) for pack, counter in PACKED_MAC_COUNTERS.items()}
    binary = packed.pop(BINARY_PACK)
    int8 = a.macs - binary - sum(packed.values())
    slots = int8 * p.mac + sum(count * p.slot[pack] for pack, count in packed.items())
    with_zeros = a.macs - binary
    nonzero = slots * (with_zeros - a.zero_macs) / with_zeros if with_zeros else 0.0
    return nonzero + binary * p.slot[BINARY_PACK]


def _energy(a: Activity, config: AccelConfig, p: Prices) -> dict[str, float]:
    """The energy of Activity `a` by component (pJ): every action a counter, or follows from
    counters."""
    return {
        "mac": _mac_energy(a, p),
        "mac_gated": a.zero_macs * p.mac_gated,
        "pe_registers": (
            a.macs * p.register_bits_per_mac + a.wgt_read_bytes * p.register_bits_per_weight_byte
        )
        * p.register_bit,
        "inp_buffer": a.inp_read_bytes * p.read_byte[Buffer.INP],
        "wgt_buffer": a.wgt_read_bytes * p.read_byte[Buffer.WGT],
        "acc_buffer": a.acc_read_bytes * p.read_byte[Buffer.ACC]
        + a.acc_write_bytes * p.write_byte[Buffer.ACC],
        "req_table": a.req_read_bytes * p.read_byte[Buffer.REQ],
        "lut_table": a.lut_read_bytes * p.read_byte[Buffer.LUT],
        "buffer_loads": a.inp_write_bytes * p.write_byte[Buffer.INP]
        + a.wgt_write_bytes * p.write_byte[Buffer.WGT]
        + a.acc_load_bytes * p.write_byte[Buffer.ACC]
        + a.req_write_bytes * p.write_byte[Buffer.REQ]
        + a.lut_write_bytes * p.write_byte[Buffer.LUT],
        "main_memory": a.main_read_bytes * p.main_read_byte
        + a.main_write_bytes * p.main_write_byte,
        "instruction_fetch": a.instruction_fetches * INSTRUCTION_BYTES * p.fetch_byte,
        "control": a.cycles * p.control_cycle,
        # mW * cycles / MHz = 1e-3 W * 1e-6 s = 1e-9 J = 1e3 pJ
        "static": p.static_mw * a.cycles / config.clock_mhz * 1e3,
    }


def energy_report(
    activity: Activity,
    config: AccelConfig,
    table: EnergyTable,
    *,
    program: Program | None = None,
    runs: int = 1,
    inferences: int | None = None,
    dram: bool = False,
    grid_intensity: float = DEFAULT_GRID_INTENSITY,
) -> EnergyReport:
    """The energy of the run that produced `activity` on `config`, priced by `table`.

    Every component is priced from the Activity's counters, in total and per layer. With
    `program` (the one that ran, `runs` times; its layers must be the Activity's), the
    report also gives each layer's useful MACs and floor (`layer_floors`). `inferences`
    (default `runs`) is how many inferences the Activity covers; `dram` prices main-memory
    traffic as off-chip DRAM instead of on-chip SRAM.
    """
    if runs < 1:
        raise ValueError(f"runs must be at least 1, not {runs}")
    inferences = runs if inferences is None else inferences
    if inferences < 1:
        raise ValueError(f"inferences must be at least 1, not {inferences}")
    # The clock changes nothing but time: a program may be priced at another clock.
    if program is not None and replace(program.config, clock_mhz=config.clock_mhz) != config:
        raise ValueError(
            f"the program was compiled for config {program.config.name!r}, not for "
            f"{config.name!r} ({config}): pass the config it was compiled for"
        )
    p = prices(config, table, dram=dram)
    floors = None
    if program is not None:
        if [(a.name, a.op) for a in activity.layers] != [
            (layer.name, layer.kind) for layer in program.layers
        ]:
            raise ValueError(
                f"the activity's layers ({len(activity.layers)}) are not the program's "
                f"({len(program.layers)}): pass the activity of a run of this program"
            )
        floors = layer_floors(program, table, dram=dram)
    layers = []
    for index, layer in enumerate(activity.layers):
        a = layer.activity
        floor = None if floors is None else floors[index].times(runs)
        layers.append(
            LayerEnergy(
                name=layer.name,
                op=layer.op,
                cycles=a.cycles,
                macs=a.macs,
                energy_pj=_energy(a, config, p),
                useful_macs=None if program is None else program.layers[index].macs * runs,
                floor=floor,
            )
        )
    if layers:
        total = {c: sum(layer.energy_pj[c] for layer in layers) for c in COMPONENTS}
    else:
        total = _energy(activity, config, p)
    return EnergyReport(
        config=config.name,
        table=table.name,
        dram=dram,
        clock_mhz=config.clock_mhz,
        cycles=activity.cycles,
        macs=activity.macs,
        runs=runs,
        inferences=inferences,
        grid_intensity=grid_intensity,
        energy_pj=total,
        layers=tuple(layers),
        floor_pj=None if floors is None else sum(f.energy_pj for f in floors) * runs,
    )
