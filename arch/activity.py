"""Activity: what an execution did, in counts every executor can produce identically.

The instruction simulator derives it from its cycle model; the RTL reads it from its
performance counters; the energy model turns it into joules. Definitions: docs/isa.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

__all__ = ["UNITS", "Activity", "pe_utilization"]

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
    cycles: int = 0
    busy: dict[str, int] = field(default_factory=_per_unit)
    stall: dict[str, int] = field(default_factory=_per_unit)
    instructions: dict[str, int] = field(default_factory=_per_unit)
    macs: int = 0
    zero_macs: int = 0
    main_read_bytes: int = 0
    main_write_bytes: int = 0
    inp_read_bytes: int = 0
    wgt_read_bytes: int = 0
    acc_read_bytes: int = 0
    acc_write_bytes: int = 0
    buffer_write_bytes: int = 0

    def __add__(self, other: Activity) -> Activity:
        """The activity of running `self` then `other`."""
        total = Activity()
        for name, value in self.to_dict().items():
            theirs = getattr(other, name)
            if isinstance(value, dict):
                setattr(total, name, {k: value[k] + theirs[k] for k in value})
            else:
                setattr(total, name, value + theirs)
        return total

    def to_dict(self) -> dict:
        return asdict(self)
