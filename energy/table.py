"""Energy tables: energy per action of each hardware component, with its source.

A table is a TOML file (docs/energy.md, "Table format"), close to Accelergy's energy
reference tables: a list of entries, each a component, an action, its arguments and the
energy of one action in pJ (or, for `static`, a power in mW), the source of the number
and, where the number is not the source's own, `scaled = true` and the rule that gave it.
The shipped tables live in energy/tables/ (`asic-45nm`, `ecp5`); users pass their own file.

Lookups: arithmetic components by exact width; memories (`sram`) by capacity, interpolated
log-log between the table's capacities (see `EnergyTable.memory_pj_per_byte`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from verdigris.arch.config import read_named_toml

__all__ = [
    "SCHEMA",
    "TABLES",
    "TABLES_DIR",
    "EnergyTable",
    "EnergyTableError",
    "Entry",
    "load_table",
]

TABLES_DIR = Path(__file__).parent / "tables"
TABLES = tuple(sorted(p.stem for p in TABLES_DIR.glob("*.toml")))
FORMAT = 1
_DOCS = "docs/energy.md"

# Every component a table must describe: its actions (all required) and the arguments each
# entry gives (all required, positive integers). `static` gives `power` (mW); every other
# component gives `energy` (pJ per action).
SCHEMA: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "multiplier": (("multiply",), ("width",)),
    "adder": (("add",), ("width",)),
    "mac": (("gated",), ("width",)),
    "register": (("write",), ("width",)),
    "sram": (("read", "write"), ("capacity_bytes", "width")),
    "dram": (("read", "write"), ("width",)),
    "control": (("cycle",), ()),
    "static": (("leak",), ()),
}
_ENTRY_KEYS = {"component", "action", "arguments", "energy", "power", "source", "scaled", "rule"}
_TOP_KEYS = {"format", "name", "description", "derivation", "entry"}


class EnergyTableError(ValueError):
    """An energy table that cannot be used: the message names the file, the entry and what
    is wrong with it."""


@dataclass(frozen=True)
class Entry:
    """One action of one component. `value` is pJ per action (mW for `static`)."""

    component: str
    action: str
    arguments: tuple[tuple[str, int], ...]
    value: float
    source: str
    scaled: bool = False
    rule: str = ""

    @property
    def args(self) -> dict[str, int]:
        return dict(self.arguments)

    def label(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.arguments)
        return f"{self.component} {self.action}" + (f" ({args})" if args else "")


@dataclass(frozen=True)
class EnergyTable:
    """A checked energy table: `name` (the file's `name`), `path` (where it was read) and
    its entries in file order."""

    name: str
    description: str
    path: str
    entries: tuple[Entry, ...]

    def _error(self, problem: str) -> EnergyTableError:
        return EnergyTableError(f"{self.path}: {problem} ({_DOCS})")

    def find(self, component: str, action: str, **arguments: int) -> Entry:
        """The entry with exactly these arguments; EnergyTableError if there is none."""
        wanted = tuple(sorted(arguments.items()))
        for entry in self.entries:
            if (entry.component, entry.action, entry.arguments) == (component, action, wanted):
                return entry
        have = sorted(
            e.label() for e in self.entries if e.component == component and e.action == action
        )
        args = ", ".join(f"{k}={v}" for k, v in arguments.items())
        raise self._error(
            f"no entry for {component} {action} ({args}); the table has {', '.join(have)}"
        )

    def energy(self, component: str, action: str, **arguments: int) -> float:
        """pJ of one action (exact arguments)."""
        return self.find(component, action, **arguments).value

    @property
    def static_power_mw(self) -> float:
        return self.find("static", "leak").value

    def memory_pj_per_byte(self, component: str, action: str, capacity_bytes: int) -> float:
        """pJ per byte of one access to a memory of `capacity_bytes`.

        Each entry gives the energy of one access of `width` bits at one capacity; per byte
        that is `energy / (width / 8)`. Between the table's capacities the per-byte energy
        is interpolated linearly in log(capacity)-log(energy); outside them the nearest
        segment is extended (so with the 8 KB and 32 KB points of asic-45nm, energy grows as
        capacity**0.5 below 8 KB); a single capacity gives a constant.
        """
        points = sorted(
            (e.args["capacity_bytes"], e.value / (e.args["width"] / 8))
            for e in self.entries
            if e.component == component and e.action == action
        )
        if not points:
            raise self._error(f"no entry for {component} {action}")
        if len(points) == 1 or capacity_bytes == points[0][0]:
            return points[0][1]
        index = next((i for i, p in enumerate(points) if p[0] >= capacity_bytes), len(points))
        index = min(max(index, 1), len(points) - 1)
        (c0, e0), (c1, e1) = points[index - 1], points[index]
        slope = math.log(e1 / e0) / math.log(c1 / c0)
        return e0 * (capacity_bytes / c0) ** slope


def load_table(name_or_path: str | Path) -> EnergyTable:
    """A shipped table by name (TABLES) or a TOML file by path (docs/energy.md).

    Raises EnergyTableError, naming the file and the entry, for a missing file, bad TOML,
    an unknown component or action, a missing action, an energy that is not a non-negative
    number, an entry without a source, or a scaled entry without its rule."""
    path, data = read_named_toml(
        name_or_path, folder=TABLES_DIR, names=TABLES, error=EnergyTableError, kind="shipped table"
    )
    return parse_table(data, str(path))


def parse_table(data: dict, path: str) -> EnergyTable:
    """The checked table that parsed TOML `data` describes; errors start with `path`."""

    def fail(problem: str) -> EnergyTableError:
        return EnergyTableError(f"{path}: {problem} ({_DOCS})")

    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise fail(f"unknown key(s) {unknown}; a table has {sorted(_TOP_KEYS)}")
    if data.get("format") != FORMAT:
        raise fail(f"format must be {FORMAT}, not {data.get('format')!r}")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise fail(f"name must be a non-empty string, not {name!r}")
    raw_entries = data.get("entry")
    if not isinstance(raw_entries, list) or not raw_entries:
        raise fail("the table has no [[entry]] tables")
    entries = tuple(_entry(raw, number, fail) for number, raw in enumerate(raw_entries, 1))
    seen: dict[tuple, int] = {}
    for number, entry in enumerate(entries, 1):
        key = (entry.component, entry.action, entry.arguments)
        if key in seen:
            raise fail(f"entry {number} ({entry.label()}) repeats entry {seen[key]}")
        seen[key] = number
    for component, (actions, _) in SCHEMA.items():
        for action in actions:
            if not any(e.component == component and e.action == action for e in entries):
                raise fail(f"missing action: no entry for {component} {action}")
    return EnergyTable(name, str(data.get("description", "")), path, entries)


def _entry(raw: object, number: int, fail) -> Entry:
    where = f"entry {number}"
    if not isinstance(raw, dict):
        raise fail(f"{where} must be a table, not {raw!r}")
    component, action = raw.get("component"), raw.get("action")
    if isinstance(component, str) and isinstance(action, str):
        where = f"entry {number} ({component} {action})"
    unknown = sorted(set(raw) - _ENTRY_KEYS)
    if unknown:
        raise fail(f"{where}: unknown key(s) {unknown}; an entry has {sorted(_ENTRY_KEYS)}")
    if component not in SCHEMA:
        raise fail(f"{where}: unknown component {component!r}; known: {', '.join(SCHEMA)}")
    actions, argument_names = SCHEMA[component]
    if action not in actions:
        raise fail(f"{where}: unknown action {action!r} of {component}; known: {actions}")
    arguments = raw.get("arguments", {})
    if not isinstance(arguments, dict) or sorted(arguments) != sorted(argument_names):
        raise fail(f"{where}: arguments must be exactly {list(argument_names)}, not {arguments!r}")
    for key, value in arguments.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise fail(f"{where}: argument {key} must be a positive integer, not {value!r}")
    unit, other = ("power", "energy") if component == "static" else ("energy", "power")
    if other in raw:
        raise fail(f"{where}: {component} gives {unit}, not {other}")
    value = raw.get(unit)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise fail(f"{where}: {unit} must be a number, not {value!r}")
    if value < 0:
        raise fail(f"{where}: {unit} must not be negative, not {value!r}")
    source = raw.get("source")
    if not isinstance(source, str) or not source.strip():
        raise fail(f"{where}: every entry needs a source (a non-empty string)")
    scaled = raw.get("scaled", False)
    if not isinstance(scaled, bool):
        raise fail(f"{where}: scaled must be true or false, not {scaled!r}")
    rule = raw.get("rule", "")
    if not isinstance(rule, str) or (scaled and not rule.strip()):
        raise fail(f"{where}: a scaled entry needs its rule (a non-empty string)")
    return Entry(
        component,
        action,
        tuple(sorted(arguments.items())),
        float(value),
        source,
        scaled,
        rule,
    )
