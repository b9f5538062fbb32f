"""Energy: Activity → joules (docs/energy.md).

`load_table` reads an energy table (a shipped one by name, `asic-45nm` or `ecp5`, or a
user's TOML file); `energy_report` turns a run's Activity into energy per layer and per
component; `layer_floors` gives each layer's physical floor.
"""

from verdigris.energy.floor import LayerFloor, layer_floors
from verdigris.energy.model import (
    COMPONENTS,
    DEFAULT_GRID_INTENSITY,
    EnergyReport,
    LayerEnergy,
    energy_report,
)
from verdigris.energy.table import TABLES, EnergyTable, EnergyTableError, load_table

__all__ = [
    "COMPONENTS",
    "DEFAULT_GRID_INTENSITY",
    "TABLES",
    "EnergyReport",
    "EnergyTable",
    "EnergyTableError",
    "LayerEnergy",
    "LayerFloor",
    "energy_report",
    "layer_floors",
    "load_table",
]
