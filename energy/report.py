"""An EnergyReport as text: the per-layer table and the totals `verdigris report` prints
(docs/energy.md, "The report").

The table gives each layer's numbers per inference (the run's totals divided by the
report's `inferences`): MAC slots, cycles, PE utilization, energy in nJ of the components
that dominate the whole run (`top` columns, the rest summed in `other`), the layer's total
and its ratio to the floor. The totals follow: µJ per inference, inferences per joule,
average power at the config's clock, latency, energy / floor and gCO2 per million
inferences at the grid intensity (Ember's 2023 world average unless given).
"""

from __future__ import annotations

import textwrap

from verdigris.arch.activity import pe_utilization
from verdigris.energy.model import COMPONENTS, DEFAULT_GRID_INTENSITY, EnergyReport, LayerEnergy

__all__ = ["SHORT_NAMES", "component_shares", "format_report", "layer_utilization"]

# Column headers of the components (at most 8 characters), in COMPONENTS order.
SHORT_NAMES = {
    "mac": "mac",
    "mac_gated": "mac_gate",
    "pe_registers": "pe_regs",
    "inp_buffer": "inp_buf",
    "wgt_buffer": "wgt_buf",
    "acc_buffer": "acc_buf",
    "req_table": "req_tab",
    "lut_table": "lut_tab",
    "buffer_loads": "buf_load",
    "main_memory": "main_mem",
    "instruction_fetch": "ifetch",
    "control": "control",
    "static": "static",
}
assert tuple(SHORT_NAMES) == COMPONENTS

_GRID_SOURCE = "the 2023 world average by Ember"


def layer_utilization(layer: LayerEnergy, pe_count: int) -> float | None:
    """PE utilization of a layer: its useful MACs over its PE-cycles (None for a layer
    without MACs, or without the Program's MAC counts)."""
    if not layer.useful_macs:
        return None
    return pe_utilization(layer.useful_macs, layer.cycles, pe_count)


def component_shares(report: EnergyReport) -> list[tuple[str, float]]:
    """(component, share of the total) for every component, largest first."""
    total = report.energy_pj_total
    shares = [(c, (e / total if total else 0.0)) for c, e in report.energy_pj.items()]
    return sorted(shares, key=lambda item: -item[1])


def _si(value: float, unit: str) -> str:
    """`value` with an SI prefix and about three significant digits: "4.51 M"."""
    prefix, scale = next(
        ((p, s) for p, s in (("G", 1e9), ("M", 1e6), ("k", 1e3)) if abs(value) >= s), ("", 1.0)
    )
    scaled = value / scale
    digits = 0 if abs(scaled) >= 100 else 1 if abs(scaled) >= 10 else 2
    return f"{scaled:.{digits}f}{' ' + prefix if prefix else ''} {unit}"


def _seconds(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if seconds >= scale or unit == "ns":
            value = seconds / scale
            digits = 0 if value >= 100 else 1 if value >= 10 else 2
            return f"{value:.{digits}f} {unit}"
    raise AssertionError("unreachable")


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}x"


def format_report(report: EnergyReport, pe_count: int, *, top: int = 4) -> list[str]:
    """The report as lines of text (at most 120 columns): the per-layer table, per
    inference, with the `top` dominant components as columns, then the totals."""
    n = report.inferences
    shown = [c for c, _ in component_shares(report)[:top]]
    rest = [c for c in COMPONENTS if c not in shown]
    energy_columns = [SHORT_NAMES[c] for c in shown] + (["other"] if rest else [])
    header = (
        f"{'layer':<22} {'op':<8} {'MACs':>9} {'cycles':>8} {'util':>6} "
        + " ".join(f"{name:>8}" for name in energy_columns)
        + f" {'total':>9} {'/floor':>6}"
    )
    lines = [
        f"energy per inference, nJ by component (table {report.table}; the {len(shown)} "
        f"largest components of this run, the rest in 'other'):",
        header,
        "-" * len(header),
    ]

    def row(name: str, op: str, macs, cycles, util, energy: dict, total, ratio) -> str:
        values = [energy[c] for c in shown] + ([sum(energy[c] for c in rest)] if rest else [])
        util_text = "-" if util is None else f"{util:.1%}"
        return (
            f"{name[:22]:<22} {op[:8]:<8} {macs:>9,} {cycles:>8,} {util_text:>6} "
            + " ".join(f"{v / n / 1e3:>8.2f}" for v in values)
            + f" {total / n / 1e3:>9.2f} {_ratio(ratio):>6}"
        )

    for layer in report.layers:
        lines.append(
            row(
                layer.name,
                layer.op,
                (layer.useful_macs if layer.useful_macs is not None else layer.macs) // n,
                layer.cycles // n,
                layer_utilization(layer, pe_count),
                layer.energy_pj,
                layer.energy_pj_total,
                layer.floor_ratio,
            )
        )
    lines.append("-" * len(header))
    useful = sum(layer.useful_macs or 0 for layer in report.layers)
    lines.append(
        row(
            "total",
            "",
            (useful if useful else report.macs) // n,
            report.cycles // n,
            pe_utilization(useful, report.cycles, pe_count) if useful else None,
            report.energy_pj,
            report.energy_pj_total,
            report.floor_ratio,
        )
    )
    lines.append(
        "MACs: the model's own (useful) MACs; util: those over the PE-cycles of the layer; "
        "/floor: energy over the physical floor"
    )
    lines.append("")
    shares = ", ".join(
        f"{SHORT_NAMES[c]} {share:.0%}" for c, share in component_shares(report) if share >= 0.005
    )
    floor = (
        f"; {report.floor_ratio:.1f}x the floor ({report.floor_pj * 1e-6 / n:.3g} µJ)"
        if report.floor_ratio
        else ""
    )
    samples = f" (mean of {n} inferences)" if n > 1 else ""
    batch = n // report.runs
    per_run = "inference" if batch == 1 else f"run of {batch} inferences"
    lines += [
        f"energy per inference: {report.uj_per_inference:.4g} µJ{samples}, "
        f"{_si(report.inferences_per_joule, 'inferences per joule')}{floor}",
        *textwrap.wrap(
            f"by component: {shares}", 110, initial_indent="  ", subsequent_indent="    "
        ),
        f"average power {report.average_power_mw:.3g} mW at {report.clock_mhz:g} MHz; "
        f"latency {_seconds(report.latency_s)} per {per_run} "
        f"({report.cycles // report.runs:,} cycles)",
    ]
    if report.grid_intensity == DEFAULT_GRID_INTENSITY:
        grid = f"{report.grid_intensity:g} gCO2/kWh, {_GRID_SOURCE} (--grid-intensity to change)"
    else:
        grid = f"{report.grid_intensity:g} gCO2/kWh (given)"
    lines.append(
        f"CO2: {report.gco2_per_million_inferences:.3g} g per million inferences at {grid}"
    )
    return lines
