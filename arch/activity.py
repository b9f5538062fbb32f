"""Activity: what an execution did, in counts every executor can produce identically.

The instruction simulator derives it from its cycle model; the RTL reads it from its
performance counters; the energy model turns it into joules. Definitions: docs/isa.md.

An Activity of a program run also holds its per-layer breakdown (`layers`, one
`LayerActivity` per `Program.layers` entry): the counters of each layer's time window,
which sum exactly to the total (docs/isa.md, "Activity per layer").
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

__all__ = ["UNITS", "Activity", "LayerActivity", "in_sequence", "pe_utilization"]

UNITS = ("load", "compute", "store")


def pe_utilization(useful_macs: int, cycles: int, pe_count: int) -> float:
    """PE utilization, the one utilization figure Verdigris reports (docs/isa.md): the
    model's own MACs over the PE-cycles of the run, so padding a layer to the array's size
    does not count as work."""
    return useful_macs / (cycles * pe_count) if cycles else 0.0


def _per_unit() -> dict[str, int]:
    return dict.fromkeys(UNITS, 0)


@dataclass
class Activity:
    """Counters of one execution (docs/isa.md, "Activity counters"), and for a program run
    the same counters per layer (`layers`; empty when the layers are not known, as for a
    bare instruction list)."""

    cycles: int = 0
    busy: dict[str, int] = field(default_factory=_per_unit)
    stall: dict[str, int] = field(default_factory=_per_unit)
    instructions: dict[str, int] = field(default_factory=_per_unit)
    instruction_fetches: int = 0
    macs: int = 0
    macs_int4: int = 0
    macs_int2: int = 0
    macs_int1: int = 0
    zero_macs: int = 0
    main_read_bytes: int = 0
    main_write_bytes: int = 0
    inp_read_bytes: int = 0
    wgt_read_bytes: int = 0
    acc_read_bytes: int = 0
    acc_write_bytes: int = 0
    inp_write_bytes: int = 0
    wgt_write_bytes: int = 0
    acc_load_bytes: int = 0
    req_write_bytes: int = 0
    req_read_bytes: int = 0
    lut_write_bytes: int = 0
    lut_read_bytes: int = 0
    layers: tuple[LayerActivity, ...] = ()

    def __add__(self, other: Activity) -> Activity:
        """The activity of running `self` then `other`. Layers add element-wise when both
        have the same layers (names and ops); when one side has none, the other's are kept
        (so `Activity() + a` is `a`); different layers raise ValueError."""
        if not isinstance(other, Activity):
            return NotImplemented
        total = Activity()
        for name, value in self.to_dict().items():
            theirs = getattr(other, name)
            if isinstance(value, dict):
                setattr(total, name, {k: value[k] + theirs[k] for k in value})
            else:
                setattr(total, name, value + theirs)
        total.layers = _add_layers(self.layers, other.layers)
        return total

    def to_dict(self) -> dict:
        """The total's counters by name (per-unit counters as dicts), without the layers."""
        return {f.name: _copy(getattr(self, f.name)) for f in fields(self) if f.name != "layers"}

    def to_report(self, config: str) -> dict:
        """The JSON-ready record `verdigris run --activity-json` writes: the config's name,
        the total and each layer's counters (docs/isa.md, "Activity per layer")."""
        return {
            "config": config,
            "total": self.to_dict(),
            "layers": [
                {"name": layer.name, "op": layer.op, "activity": layer.activity.to_dict()}
                for layer in self.layers
            ],
        }

    def check_layers(self) -> None:
        """ValueError unless the layers' counters sum exactly to the total (every counter,
        cycles included); nothing to check without layers."""
        if not self.layers:
            return
        summed = Activity()
        for layer in self.layers:
            summed = summed + layer.activity
        if summed.to_dict() != self.to_dict():
            differ = sorted(
                name for name, value in summed.to_dict().items() if getattr(self, name) != value
            )
            raise ValueError(
                f"the per-layer activity does not sum to the total ({', '.join(differ)} differ)"
            )


@dataclass(frozen=True)
class LayerActivity:
    """The Activity of one layer's time window (no layers of its own): `name` and `op` are
    the layer's `LayerInfo.name` and `kind` in the Program."""

    name: str
    op: str
    activity: Activity


def in_sequence(parts: list[Activity]) -> Activity:
    """The Activity of running `parts` one after another, each with layers of its own (the
    device segments of one Program): totals add, layers follow each other."""
    total = Activity()
    for part in parts:
        total = total + replace(part, layers=())
    total.layers = tuple(layer for part in parts for layer in part.layers)
    return total


def _copy(value):
    return dict(value) if isinstance(value, dict) else value


def _add_layers(
    ours: tuple[LayerActivity, ...], theirs: tuple[LayerActivity, ...]
) -> tuple[LayerActivity, ...]:
    if not ours or not theirs:
        return ours or theirs
    if [(a.name, a.op) for a in ours] != [(b.name, b.op) for b in theirs]:
        raise ValueError(
            f"cannot add activities of different layers ({len(ours)} layers "
            f"{[a.name for a in ours][:3]}... and {len(theirs)} layers "
            f"{[b.name for b in theirs][:3]}...)"
        )
    return tuple(
        LayerActivity(a.name, a.op, a.activity + b.activity)
        for a, b in zip(ours, theirs, strict=True)
    )
