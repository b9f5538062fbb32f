"""Figures of an energy report (docs/energy.md, "Figures"), drawn with matplotlib on bare
Figures (no display, no pyplot state) and written as PNG:

- `energy_figure`: energy per inference of each layer, stacked by component, with the
  layer's physical floor marked;
- `utilization_figure`: PE utilization of each layer, and its share of the cycles;
- `roofline_figure`: the config's roofline, operations per cycle against operations per
  byte of main-memory traffic, with every layer that does MACs placed on it.

`write_plots` writes all three into a folder and returns their paths.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

# Figures are drawn on a bare Figure, whose PNG output goes through the Agg canvas: no
# window, no pyplot state, and the caller's matplotlib backend is left alone.
from matplotlib.figure import Figure

from verdigris.arch.activity import Activity
from verdigris.arch.config import AccelConfig
from verdigris.energy.model import COMPONENTS, EnergyReport
from verdigris.energy.report import layer_utilization

__all__ = [
    "PLOT_NAMES",
    "energy_figure",
    "roofline_figure",
    "utilization_figure",
    "write_plots",
]

# The files write_plots writes, by figure.
PLOT_NAMES = {
    "energy": "energy_per_layer.png",
    "utilization": "utilization_per_layer.png",
    "roofline": "roofline.png",
}

_DPI = 120


def _layer_labels(report: EnergyReport) -> list[str]:
    """Short x-axis labels: the layer's number, op and name (at most 22 characters)."""
    labels = []
    for index, layer in enumerate(report.layers):
        name = layer.name.strip("/")
        name = name if len(name) <= 22 else "…" + name[-21:]
        labels.append(f"{index} {layer.op}\n{name}")
    return labels


def _title(report: EnergyReport, what: str) -> str:
    return f"{what} — config '{report.config}', table {report.table}"


def energy_figure(report: EnergyReport) -> Figure:
    """Stacked bars: each layer's energy per inference (nJ) by component, largest
    components at the bottom; a black bar marks the layer's floor."""
    n = report.inferences
    shown = [c for c in COMPONENTS if any(layer.energy_pj[c] for layer in report.layers)]
    shown.sort(key=lambda c: -report.energy_pj[c])
    layers = report.layers
    width = max(7.0, 0.7 * len(layers) + 3.5)
    figure = Figure(figsize=(width, 5.2), dpi=_DPI, layout="constrained")
    ax = figure.subplots()
    x = list(range(len(layers)))
    bottom = [0.0] * len(layers)
    colours = matplotlib.colormaps["tab20"]
    total = report.energy_pj_total
    for index, component in enumerate(shown):
        heights = [layer.energy_pj[component] / n / 1e3 for layer in layers]
        share = report.energy_pj[component] / total if total else 0.0
        ax.bar(
            x,
            heights,
            bottom=bottom,
            width=0.7,
            color=colours(index % 20),
            label=f"{component} ({share:.0%})",
        )
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    floors = [(i, layer.floor_pj / n / 1e3) for i, layer in enumerate(layers) if layer.floor_pj]
    if floors:
        ax.scatter(
            [i for i, _ in floors],
            [f for _, f in floors],
            marker="_",
            s=400,
            linewidths=2.5,
            color="black",
            zorder=3,
            label="physical floor",
        )
    ax.set_xticks(x, _layer_labels(report), rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("energy per inference (nJ)")
    ax.set_title(
        _title(report, f"Energy per layer: {report.uj_per_inference:.3g} µJ per inference")
    )
    ax.grid(axis="y", alpha=0.3)
    ax.legend(title="component (share of total)", loc="upper left", bbox_to_anchor=(1.01, 1))
    return figure


def utilization_figure(report: EnergyReport, pe_count: int) -> Figure:
    """Bars: each layer's PE utilization (useful MACs over the layer's PE-cycles), each
    labelled with the layer's share of the run's cycles; a line at the whole run's."""
    layers = report.layers
    width = max(8.0, 0.7 * len(layers) + 2.5)
    figure = Figure(figsize=(width, 4.8), dpi=_DPI, layout="constrained")
    ax = figure.subplots()
    x = list(range(len(layers)))
    values = [100 * (layer_utilization(layer, pe_count) or 0.0) for layer in layers]
    bars = ax.bar(x, values, width=0.7, color="tab:blue")
    cycles = report.cycles or 1
    for bar, layer in zip(bars, layers, strict=True):
        ax.annotate(
            f"{layer.cycles / cycles:.0%}",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            xytext=(0, 2),
            textcoords="offset points",
            ha="center",
            fontsize=7,
            color="dimgray",
        )
    useful = sum(layer.useful_macs or 0 for layer in layers)
    if report.cycles:
        overall = 100 * useful / (report.cycles * pe_count)
        ax.axhline(overall, color="tab:red", linestyle="--", label=f"whole run: {overall:.1f}%")
        ax.legend(loc="upper right")
    ax.set_xticks(x, _layer_labels(report), rotation=45, ha="right", fontsize=8)
    ax.set_ylim(0, 105)
    ax.set_ylabel(f"PE utilization (%: useful MACs / ({pe_count} PEs x cycles))")
    ax.set_title(_title(report, "PE utilization per layer"))
    ax.text(
        0.01,
        0.98,
        "above each bar: the layer's share of the run's cycles",
        transform=ax.transAxes,
        va="top",
        fontsize=8,
        color="dimgray",
    )
    ax.grid(axis="y", alpha=0.3)
    return figure


def roofline_points(report: EnergyReport, activity: Activity) -> list[tuple[str, float, float]]:
    """(layer label, ops per byte of main-memory traffic, ops per cycle) of every layer
    with useful MACs and main-memory traffic; an operation is half a MAC (2 ops per MAC)."""
    points = []
    for index, (layer, counted) in enumerate(zip(report.layers, activity.layers, strict=True)):
        a = counted.activity
        ops = 2 * (layer.useful_macs or 0)
        traffic = a.main_read_bytes + a.main_write_bytes
        if ops and traffic and a.cycles:
            points.append((f"{index} {layer.op}", ops / traffic, ops / a.cycles))
    return points


def roofline_figure(report: EnergyReport, activity: Activity, config: AccelConfig) -> Figure:
    """The config's roofline on log-log axes: compute roof 2·PEs ops per cycle, memory
    roof `dma_bytes` bytes per cycle of main-memory traffic times the intensity; each layer
    with MACs placed at its ops per byte of main-memory traffic (reads and writes) and its
    ops per cycle."""
    peak = 2 * config.pe_count
    bandwidth = config.dma_bytes
    points = roofline_points(report, activity)
    figure = Figure(figsize=(7.5, 5.2), dpi=_DPI, layout="constrained")
    ax = figure.subplots()
    ridge = peak / bandwidth
    xs = [p[1] for p in points] + [ridge]
    low, high = min(xs) / 4, max(xs) * 4
    grid = [low * (high / low) ** (i / 200) for i in range(201)]
    memory = [g for g in grid if g <= ridge] + [ridge]
    compute = [ridge] + [g for g in grid if g > ridge]
    ax.plot(
        memory,
        [bandwidth * g for g in memory],
        color="black",
        linewidth=2,
        label=f"memory roof: {bandwidth} B/cycle (dma_bytes) x intensity",
    )
    ax.plot(
        compute,
        [peak] * len(compute),
        color="dimgray",
        linewidth=2,
        linestyle="--",
        label=f"compute roof: {peak} ops/cycle (2 ops x {config.pe_count} PEs)",
    )
    ax.axvline(ridge, color="gray", linestyle=":", linewidth=1)
    colours = matplotlib.colormaps["tab10"]
    for index, (label, intensity, rate) in enumerate(points):
        ax.scatter(intensity, rate, s=45, color=colours(index % 10), zorder=3, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(low, high)
    ax.set_ylim(min([p[2] for p in points] + [peak]) / 4, peak * 2.5)
    ax.set_xlabel("operational intensity (ops per byte of main-memory traffic)")
    ax.set_ylabel("performance (ops per cycle; 1 MAC = 2 ops)")
    ax.set_title(_title(report, f"Roofline of {config.rows}x{config.cols}"))
    ax.grid(which="both", alpha=0.2)
    skipped = len(report.layers) - len(points)
    if points:
        ax.legend(
            title="roofs; layers" + (f" ({skipped} without MACs not shown)" if skipped else ""),
            loc="upper left",
            bbox_to_anchor=(1.01, 1),
            fontsize=8,
        )
    return figure


def write_plots(
    report: EnergyReport, activity: Activity, config: AccelConfig, folder: str | Path
) -> dict[str, Path]:
    """Write the three figures as PNG files into `folder` (made if missing); their paths
    by figure name (PLOT_NAMES)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    figures = {
        "energy": energy_figure(report),
        "utilization": utilization_figure(report, config.pe_count),
        "roofline": roofline_figure(report, activity, config),
    }
    paths = {}
    for name, figure in figures.items():
        path = folder / PLOT_NAMES[name]
        figure.savefig(path, format="png")
        paths[name] = path
    return paths
