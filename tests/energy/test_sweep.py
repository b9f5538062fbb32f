"""Design-space sweeps (docs/energy.md, "Sweeps"): the grid, the CSV and JSON results, the
Pareto plot, failed points with their reasons, resuming from the per-point cache, and the
same sweep on local processes and on a Dask distributed LocalCluster."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from verdigris import api
from verdigris.api import energy_report_of
from verdigris.arch.config import load_config
from verdigris.cli import main
from verdigris.energy.sweep import (
    SweepError,
    pareto_front,
    parse_axis,
    run_sweep,
    sweep_tasks,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
LENET = EXAMPLES / "models" / "lenet_qdq.onnx"
SAMPLES = EXAMPLES / "digits_samples.npy"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Two real digit images (a short run per point)."""
    path = tmp_path_factory.mktemp("inputs") / "two.npy"
    np.save(path, np.load(SAMPLES)[:2])
    return path


def _tasks(inputs, axes, **options):
    return sweep_tasks(
        load_config("default"),
        axes,
        model=LENET,
        inputs=inputs,
        table=options.get("table", "asic-45nm"),
        grid_intensity=480.0,
    )


def test_parse_axis_types_values_by_field():
    assert parse_axis("rows", "4, 8,8,16") == [4, 8, 16]
    assert parse_axis("dataflow", "ws,os") == ["ws", "os"]
    assert parse_axis("clock_mhz", "50,100.5") == [50.0, 100.5]
    for name, text, message in [
        ("cols", "4", "rows sets cols too"),
        ("colour", "4", "not a sweepable config field"),
        ("dma_bytes", "8,x", "'x' is not an integer"),
        ("acc_rows", "512,", "an empty value"),
    ]:
        with pytest.raises(SweepError, match=message):
            parse_axis(name, text)


def test_the_grid_is_every_combination_and_rows_set_cols(inputs):
    tasks, invalid = _tasks(inputs, {"rows": [3, 4, 8], "dataflow": ["ws", "os"]})
    assert [t.label for t in tasks] == ["4x4 ws", "4x4 os", "8x8 ws", "8x8 os"]
    assert all(t.config["rows"] == t.config["cols"] for t in tasks)
    assert {t.config["dataflow"] for t in tasks} == {"ws", "os"}
    assert all(t.config["dma_bytes"] == 8 for t in tasks)  # the base config's
    assert len({t.key for t in tasks}) == 4
    assert [r["label"] for r in invalid] == ["3x3 ws", "3x3 os"]
    assert all("invalid config: rows must be 2, 4, 8, 16 or 32" in r["reason"] for r in invalid)
    # the key follows what the point runs on: another table is another point
    other, _ = _tasks(inputs, {"rows": [4, 8], "dataflow": ["ws", "os"]}, table="ecp5")
    assert not {t.key for t in other} & {t.key for t in tasks}


def test_a_point_is_the_energy_report_of_its_run(inputs):
    (task,), _ = _tasks(inputs, {"rows": [4], "dma_bytes": [16]})
    record = api.sweep_point(task)
    config = load_config("default").__class__(**task.config)
    report = energy_report_of(LENET, inputs, config=config).report
    assert record["status"] == "ok"
    assert record["uj_per_inference"] == pytest.approx(report.uj_per_inference)
    assert record["latency_s"] == pytest.approx(report.latency_s)
    assert record["floor_ratio"] == pytest.approx(report.floor_ratio)
    assert record["dominant"] == report.dominant_component()
    assert (record["pe_count"], record["onchip_bytes"]) == (
        16,
        4 * (1024 + 512 + 4096 + 384 + 1024),
    )


def test_sweep_writes_csv_json_and_pareto_and_lists_failed_points(inputs, tmp_path, capsys):
    out = tmp_path / "sweep"
    arguments = ["sweep", str(LENET), "--input", str(inputs), "--rows", "3,4,8"]
    arguments += ["--param", "main_memory_bytes=4096,65536", "--out", str(out), "--jobs", "1"]
    assert main(arguments) == 0
    printed = capsys.readouterr()
    with (out / "sweep.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    assert [(r["rows"], r["main_memory_bytes"], r["status"]) for r in rows] == [
        ("3", "4096", "failed"),
        ("3", "65536", "failed"),
        ("4", "4096", "failed"),
        ("4", "65536", "ok"),
        ("8", "4096", "failed"),
        ("8", "65536", "ok"),
    ]
    ok = [r for r in rows if r["status"] == "ok"]
    assert all(float(r["uj_per_inference"]) > 0 and r["dominant"] for r in ok)
    assert {r["pe_count"] for r in ok} == {"16", "64"}
    reasons = {r["label"]: r["reason"] for r in rows if r["status"] == "failed"}
    assert "rows must be 2, 4, 8, 16 or 32, not 3" in reasons["3x3 main_memory_bytes=4096"]
    assert "bytes of main memory" in reasons["4x4 main_memory_bytes=4096"]  # cannot compile
    assert "4 point(s) failed:" in printed.out and "Traceback" not in printed.err
    assert "  4x4 main_memory_bytes=4096: the model needs" in printed.out
    data = json.loads((out / "sweep.json").read_text())
    assert data["axes"] == ["rows", "main_memory_bytes"] and len(data["points"]) == 6
    front = [p["label"] for p in data["points"] if p["pareto"]]
    assert front == [r["label"] for r in pareto_front(data["points"])]
    assert (out / "pareto.png").read_bytes().startswith(PNG)
    assert "sweep [" in printed.err and "6/6" not in printed.err  # 4 tasks; 2 never ran
    assert "4/4 points" in printed.err


def test_an_interrupted_sweep_resumes_where_it_stopped(inputs, tmp_path, capsys, monkeypatch):
    out = tmp_path / "sweep"
    arguments = ["sweep", str(LENET), "--input", str(inputs), "--rows", "4,8"]
    arguments += ["--dma-bytes", "8,16", "--out", str(out), "--jobs", "1"]
    assert main(arguments) == 0
    first = (out / "sweep.csv").read_text()
    points = sorted((out / "points").glob("*.json"))
    assert len(points) == 4
    lost = json.loads(points[0].read_text())
    points[0].unlink()  # as if the sweep had stopped before this point
    damaged = json.loads(points[1].read_text())
    points[1].write_text("{trunc")  # a record cut short
    ran = []

    def counting(task):
        ran.append(task.label)
        return evaluate(task)

    evaluate = api.sweep_point
    monkeypatch.setattr(api, "sweep_point", counting)
    capsys.readouterr()
    assert main(arguments) == 0
    assert sorted(ran) == sorted([lost["label"], damaged["label"]])  # only those two ran
    assert "2 point(s) run now, 2 from the cache" in capsys.readouterr().out
    assert (out / "sweep.csv").read_text() == first
    capsys.readouterr()
    assert main(arguments) == 0
    assert len(ran) == 2  # everything cached now
    assert "0 point(s) run now, 4 from the cache" in capsys.readouterr().out


def _energies(records):
    return {r["label"]: (r["status"], r.get("uj_per_inference")) for r in records}


def test_local_processes_and_a_dask_cluster_give_the_same_results(inputs, tmp_path):
    from distributed import LocalCluster

    tasks, _ = _tasks(inputs, {"rows": [4, 8]})
    local, ran = run_sweep(tasks, api.sweep_point, tmp_path / "local", workers=2)
    assert ran == 2 and all(r["status"] == "ok" for r in local)
    with LocalCluster(
        n_workers=1, processes=False, threads_per_worker=1, dashboard_address=None
    ) as cluster:
        seen = []
        remote, ran = run_sweep(
            tasks,
            api.sweep_point,
            tmp_path / "dask",
            scheduler=cluster.scheduler_address,
            progress=lambda done, total, record: seen.append((done, total, record["label"])),
        )
    assert ran == 2
    assert _energies(remote) == _energies(local)
    assert sorted(seen) == [(1, 2, seen[0][2]), (2, 2, seen[1][2])]
    assert len(list((tmp_path / "dask" / "points").glob("*.json"))) == 2


def test_sweep_errors_are_one_line(inputs, tmp_path, capsys):
    base = ["sweep", str(LENET), "--input", str(inputs), "--out", str(tmp_path / "s")]
    for arguments, message in [
        ([*base, "--param", "cols=4"], "rows sets cols too"),
        ([*base, "--param", "acc_rows"], "give NAME=V1,V2"),
        ([*base, "--rows", "4,,8"], "an empty value"),
        ([*base, "--table", "nowhere"], "neither a shipped table"),
        ([*base, "--rows", "4", "--param", "rows=8"], "swept twice"),
        (["sweep", str(tmp_path / "m.vgp"), "--input", str(inputs), "--out", "x"], "the .onnx"),
        ([*base[:-2], "--out", str(inputs)], "is a file"),
    ]:
        assert main(arguments) == 2, arguments
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (arguments, err)
    assert not (tmp_path / "s").exists()
