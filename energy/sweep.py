"""Design-space sweeps (docs/energy.md, "Sweeps"): a grid over AccelConfig fields, every
point compiled, run on the instruction simulator and priced, on the local cores or on a
Dask distributed cluster; results cached per point, written as CSV and JSON, and plotted
as energy per inference against latency with its Pareto front.

This module owns the grid, the cache, the scheduling and the outputs; running one point
(compile, run, price) is the caller's `evaluate` function (`verdigris.api.sweep_point`),
since energy/ does not import the compiler. A point is a `SweepTask`, which carries the
model, the inputs and a user's table as bytes, so a remote worker needs no shared files.

Cache: `DIR/points/<key>.json` per point, the key a hash of the config (every field but
its name), the model's, the inputs' and the table's contents, the grid intensity and the
caller's `salt` (a digest of Verdigris' code, `verdigris.api.code_digest`, so that
changed code never reuses a stale point). A point with a cached record is not run again, so an
interrupted sweep resumes where it stopped; a point that failed for a reason of its own
(its config cannot be compiled for) is cached too, an internal error is not.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import as_completed as futures_completed
from dataclasses import dataclass, fields, replace
from pathlib import Path

from verdigris.arch.config import AccelConfig, ConfigError
from verdigris.arch.isa import Buffer, buffer_rows, row_bytes
from verdigris.energy.model import EnergyReport
from verdigris.energy.table import TABLES

__all__ = [
    "CSV_FIELDS",
    "SweepError",
    "SweepTask",
    "onchip_bytes",
    "pareto_figure",
    "pareto_front",
    "parse_axis",
    "record_of",
    "run_sweep",
    "sweep_tasks",
    "write_results",
]

# What a sweep writes into its folder.
POINTS_DIR = "points"
CSV_NAME = "sweep.csv"
JSON_NAME = "sweep.json"
PARETO_NAME = "pareto.png"

# The CSV's columns after the swept parameters.
CSV_FIELDS = (
    "label",
    "status",
    "pareto",
    "pe_count",
    "onchip_bytes",
    "uj_per_inference",
    "latency_s",
    "cycles",
    "utilization",
    "energy_pj",
    "floor_pj",
    "floor_ratio",
    "dominant",
    "average_power_mw",
    "gco2_per_million_inferences",
    "reason",
    "key",
)


class SweepError(ValueError):
    """A sweep that cannot be set up as asked: a bad parameter name or value."""


@dataclass(frozen=True)
class SweepTask:
    """One point of a sweep: its config (every AccelConfig field), what to run it on and
    how to price it. `params` are the swept values that make this point, `label` says them
    in short ("8x8 os dma16")."""

    key: str
    label: str
    params: tuple[tuple[str, object], ...]
    config: dict
    model_name: str
    model_data: bytes
    input_name: str
    input_data: bytes
    table: str  # a shipped table's name, or a user table's file name
    table_data: bytes | None  # a user table's contents
    grid_intensity: float


def _field_types() -> dict[str, type]:
    types = {"name": str, "dataflow": str, "clock_mhz": float}
    return {f.name: types.get(f.name, int) for f in fields(AccelConfig)}


def parse_axis(name: str, text: str) -> list:
    """The values of one swept AccelConfig field from "V1,V2,...": ints, floats (clock_mhz)
    or text (dataflow), by the field's type. SweepError naming the field and value."""
    types = _field_types()
    if name not in types or name in ("name", "cols"):
        known = ", ".join(k for k in types if k not in ("name", "cols"))
        hint = " (rows sets cols too: arrays are square)" if name == "cols" else ""
        raise SweepError(f"--param {name}: not a sweepable config field{hint}; known: {known}")
    values = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            raise SweepError(f"--param {name}: an empty value in {text!r}")
        try:
            value = types[name](item)
        except ValueError:
            kind = "an integer" if types[name] is int else "a number"
            raise SweepError(f"--param {name}: {item!r} is not {kind}") from None
        if value not in values:
            values.append(value)
    return values


def _label(params: Sequence[tuple[str, object]]) -> str:
    parts = []
    for name, value in params:
        if name == "rows":
            parts.append(f"{value}x{value}")
        elif name == "dataflow":
            parts.append(str(value))
        elif name == "dma_bytes":
            parts.append(f"dma{value}")
        else:
            parts.append(f"{name}={value}")
    return " ".join(parts)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _key(config: dict, parts: dict) -> str:
    """The cache key of a point: its config but for the name, and what it runs on."""
    mine = {k: v for k, v in config.items() if k != "name"}
    text = json.dumps({"config": mine, **parts}, sort_keys=True)
    return _digest(text.encode())[:20]


def sweep_tasks(
    base: AccelConfig,
    axes: dict[str, list],
    *,
    model: str | Path,
    inputs: str | Path,
    table: str | Path,
    grid_intensity: float,
    salt: str = "",
) -> tuple[list[SweepTask], list[dict]]:
    """The grid: one task per combination of `axes` (field -> values, in the given order;
    `rows` sets `cols` too) on top of `base`. Combinations that make no valid config are
    returned as failed records with the reason instead of tasks."""
    model, inputs = Path(model), Path(inputs)
    model_data, input_data = model.read_bytes(), inputs.read_bytes()
    if str(table) in TABLES:
        table_name, table_data = str(table), None
    else:
        table_name, table_data = Path(table).name, Path(table).read_bytes()
    parts = {
        "model": _digest(model_data),
        "inputs": _digest(input_data),
        "table": table_name if table_data is None else _digest(table_data),
        "grid_intensity": grid_intensity,
        "salt": salt,
    }
    combos: list[list[tuple[str, object]]] = [[]]
    for name, values in axes.items():
        combos = [[*combo, (name, value)] for combo in combos for value in values]
    tasks, invalid = [], []
    for combo in combos:
        label = _label(combo)
        overrides = dict(combo)
        if "rows" in overrides:
            overrides["cols"] = overrides["rows"]
        slug = "-".join(f"{k}{v}" for k, v in combo).replace(".", "_")
        overrides["name"] = f"{base.name}-{slug}" if slug else base.name
        try:
            config = replace(base, **overrides)
        except ConfigError as error:
            reason = str(error).split(": ", 1)[-1]
            invalid.append(_failed(combo, label, f"invalid config: {reason}"))
            continue
        values = config.to_dict()
        tasks.append(
            SweepTask(
                key=_key(values, parts),
                label=label,
                params=tuple(combo),
                config=values,
                model_name=model.name,
                model_data=model_data,
                input_name=inputs.name,
                input_data=input_data,
                table=table_name,
                table_data=table_data,
                grid_intensity=grid_intensity,
            )
        )
    return tasks, invalid


def _failed(params, label: str, reason: str) -> dict:
    return {**dict(params), "label": label, "status": "failed", "reason": reason, "key": ""}


def onchip_bytes(config: AccelConfig) -> int:
    """Bytes of the on-chip buffers: input, weight, accumulator and requant table."""
    return sum(buffer_rows(config, b) * row_bytes(config, b) for b in Buffer)


def record_of(report: EnergyReport, config: AccelConfig) -> dict:
    """A point's figures from its energy report (per inference where it says so)."""
    useful = sum(layer.useful_macs or 0 for layer in report.layers)
    return {
        "status": "ok",
        "pe_count": config.pe_count,
        "onchip_bytes": onchip_bytes(config),
        "uj_per_inference": report.uj_per_inference,
        "latency_s": report.latency_s,
        "cycles": report.cycles // report.runs,
        "utilization": useful / (report.cycles * config.pe_count) if report.cycles else 0.0,
        "energy_pj": report.energy_pj_total / report.inferences,
        "floor_pj": None if report.floor_pj is None else report.floor_pj / report.inferences,
        "floor_ratio": report.floor_ratio,
        "dominant": report.dominant_component(),
        "average_power_mw": report.average_power_mw,
        "gco2_per_million_inferences": report.gco2_per_million_inferences,
        "energy_pj_by_component": {c: e / report.inferences for c, e in report.energy_pj.items()},
    }


def _read_cached(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("status") in ("ok", "failed") else None


def _write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file renamed into place, so that an
    interrupted sweep leaves whole records or none."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _complete(task: SweepTask, result: dict) -> dict:
    return {**dict(task.params), "label": task.label, **result, "key": task.key}


def run_sweep(
    tasks: Sequence[SweepTask],
    evaluate: Callable[[SweepTask], dict],
    folder: str | Path,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: Callable[[int, int, dict], None] | None = None,
) -> tuple[list[dict], int]:
    """Run every task without a cached record in `folder`/points with `evaluate`, caching
    each result as it arrives; returns the records in task order and how many ran now.

    Locally, `workers` processes (default: the CPU count; 1 runs in this process); with
    `scheduler`, the address of a Dask distributed scheduler, on that cluster. `progress`
    hears (done, total, record) after every point, cached ones first."""
    cache = Path(folder) / POINTS_DIR
    cache.mkdir(parents=True, exist_ok=True)
    records: dict[str, dict] = {}
    pending = []
    for task in tasks:
        cached = _read_cached(cache / f"{task.key}.json")
        if cached is not None:
            records[task.key] = cached
        else:
            pending.append(task)
    total = len(tasks)
    if progress:
        for index, record in enumerate(records.values(), 1):
            progress(index, total, record)

    def finish(task: SweepTask, result: dict) -> None:
        record = _complete(task, result)
        if record["status"] in ("ok", "failed"):
            _write_atomic(cache / f"{task.key}.json", json.dumps(record, indent=1) + "\n")
        records[task.key] = record
        if progress:
            progress(len(records), total, record)

    if pending:
        for task, result in _execute(pending, evaluate, scheduler, workers):
            finish(task, result)
    return [records[task.key] for task in tasks], len(pending)


def _execute(
    tasks: list[SweepTask],
    evaluate: Callable[[SweepTask], dict],
    scheduler: str | None,
    workers: int | None,
) -> Iterable[tuple[SweepTask, dict]]:
    """(task, result) as each task finishes, on a Dask cluster or local processes."""
    if scheduler is not None:
        from distributed import Client, as_completed

        with Client(scheduler, set_as_default=False) as client:
            futures = {
                client.submit(evaluate, task, key=f"verdigris-sweep-{task.key}", pure=False): task
                for task in tasks
            }
            try:
                for future in as_completed(futures, loop=client.loop):
                    yield futures[future], future.result()
            finally:
                client.cancel(list(futures))
        return
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(tasks) == 1:
        for task in tasks:
            yield task, evaluate(task)
        return
    pool = ProcessPoolExecutor(max_workers=min(workers, len(tasks)))
    try:
        futures = {pool.submit(evaluate, task): task for task in tasks}
        for future in futures_completed(futures):
            yield futures[future], future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def pareto_front(records: Sequence[dict]) -> list[dict]:
    """The ok records no other beats on both energy per inference and latency, by latency."""
    ok = [r for r in records if r.get("status") == "ok"]
    front = []
    for r in ok:
        dominated = any(
            q["uj_per_inference"] <= r["uj_per_inference"]
            and q["latency_s"] <= r["latency_s"]
            and (q["uj_per_inference"], q["latency_s"]) != (r["uj_per_inference"], r["latency_s"])
            for q in ok
        )
        if not dominated:
            front.append(r)
    return sorted(front, key=lambda r: r["latency_s"])


def write_results(
    records: Sequence[dict], axes: Sequence[str], folder: str | Path, *, title: str = ""
) -> dict[str, Path]:
    """Write the sweep's records as CSV and JSON and its Pareto plot into `folder`; the
    paths by kind ("csv", "json", "pareto")."""
    folder = Path(folder)
    front = {id(r) for r in pareto_front(records)}
    rows = [{**r, "pareto": id(r) in front} for r in records]
    paths = {"csv": folder / CSV_NAME, "json": folder / JSON_NAME, "pareto": folder / PARETO_NAME}
    columns = list(axes) + list(CSV_FIELDS)
    with paths["csv"].open("w", newline="") as stream:
        writer = csv.DictWriter(stream, columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k, "")) for k in columns})
    paths["json"].write_text(json.dumps({"axes": list(axes), "points": rows}, indent=1) + "\n")
    pareto_figure(rows, title=title).savefig(paths["pareto"], format="png")
    return paths


def pareto_figure(records: Sequence[dict], *, title: str = ""):
    """Energy per inference (µJ) against latency (µs), log-log: marker size is the PE
    count, colour the on-chip buffer memory (KiB); the Pareto front is joined and
    labelled. Failed points are counted in the title."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter

    ok = [r for r in records if r.get("status") == "ok"]
    failed = len(records) - len(ok)
    figure = Figure(figsize=(8.5, 6), dpi=120, layout="constrained")
    ax = figure.subplots()
    if ok:
        pes = sorted({r["pe_count"] for r in ok})

        def size(pe_count: int) -> float:
            return 30 + 220 * (pe_count / max(pes)) ** 0.5

        scatter = ax.scatter(
            [r["latency_s"] * 1e6 for r in ok],
            [r["uj_per_inference"] for r in ok],
            s=[size(r["pe_count"]) for r in ok],
            c=[r["onchip_bytes"] / 1024 for r in ok],
            cmap="viridis",
            edgecolors="black",
            linewidths=0.5,
            alpha=0.85,
            zorder=3,
        )
        figure.colorbar(scatter, ax=ax, label="on-chip buffers (KiB: inp + wgt + acc + req)")
        front = pareto_front(ok)
        ax.plot(
            [r["latency_s"] * 1e6 for r in front],
            [r["uj_per_inference"] for r in front],
            color="tab:red",
            linewidth=1.2,
            zorder=2,
        )
        for r in front:
            ax.annotate(
                r["label"],
                (r["latency_s"] * 1e6, r["uj_per_inference"]),
                xytext=(6, 4),
                textcoords="offset points",
                fontsize=8,
                color="tab:red",
            )
        handles = [
            Line2D(
                [],
                [],
                marker="o",
                linestyle="",
                markersize=size(p) ** 0.5,
                markerfacecolor="lightgray",
                markeredgecolor="black",
                label=f"{p} PEs",
            )
            for p in pes
        ]
        handles.append(Line2D([], [], color="tab:red", label="Pareto front"))
        ax.legend(
            handles=handles,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.13),
            ncol=len(handles),
            frameon=False,
            title="marker size: PE count",
        )
        ax.set_xscale("log")
        ax.set_yscale("log")
        plain = FuncFormatter(lambda value, _: f"{value:g}")
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_formatter(plain)
            axis.set_minor_formatter(plain)
    ax.set_xlabel("latency per inference (µs)")
    ax.set_ylabel("energy per inference (µJ)")
    counts = f"{len(ok)} points" + (f", {failed} failed (listed in sweep.csv)" if failed else "")
    ax.set_title(f"{title} — {counts}" if title else counts)
    ax.grid(which="both", alpha=0.2)
    return figure
