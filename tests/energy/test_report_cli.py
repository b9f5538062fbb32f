"""`verdigris report` (docs/energy.md, "The report"): the JSON equals `energy_report` on the
same run, the printed table and totals, the API it calls, and the errors a user can hit."""

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from verdigris.api import compile_model, energy_report_of, program_report, run_program
from verdigris.cli import main
from verdigris.energy import COMPONENTS, energy_report, load_table

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
LENET = EXAMPLES / "models" / "lenet_qdq.onnx"
SAMPLES = EXAMPLES / "digits_samples.npy"  # 8 digit images


@pytest.fixture(scope="module")
def expected():
    """energy_report of LeNet on `tiny`, on the 8 sample images, by hand through the API."""
    program = compile_model(LENET, "tiny")
    _, activity = run_program(program, {"input": np.load(SAMPLES)})
    report = energy_report(
        activity, program.config, load_table("asic-45nm"), program=program, runs=8
    )
    return program, report


def _report(tmp_path, capsys, *extra):
    target = tmp_path / "report.json"
    arguments = ["report", str(LENET), "--config", "tiny", "--input", str(SAMPLES)]
    assert main([*arguments, "--json", str(target), *extra]) == 0
    return json.loads(target.read_text()), capsys.readouterr().out


def test_the_json_is_energy_report_of_the_same_run(tmp_path, capsys, expected):
    _, report = expected
    got, _ = _report(tmp_path, capsys)
    assert got == json.loads(json.dumps(report.to_dict()))
    # The fields tools may rely on (docs/energy.md, "Report fields").
    assert (got["config"], got["table"]) == ("tiny", "asic-45nm")
    total = got["total"]
    assert total["cycles"] == report.cycles and total["macs"] == report.macs
    assert total["energy_pj"] == pytest.approx(report.energy_pj_total)
    assert total["floor_pj"] == pytest.approx(report.floor_pj)
    assert [layer["name"] for layer in got["layers"]] == [layer.name for layer in report.layers]
    for mine, layer in zip(report.layers, got["layers"], strict=True):
        assert layer["op"] == mine.op
        assert (layer["cycles"], layer["macs"]) == (mine.cycles, mine.macs)
        assert set(layer["energy_pj"]) == set(COMPONENTS)
        assert layer["energy_pj_total"] == pytest.approx(sum(layer["energy_pj"].values()))
        assert layer["floor_pj"] == pytest.approx(mine.floor_pj)
    assert got["inferences"] == 8 and total["uj_per_inference"] == pytest.approx(
        report.energy_pj_total * 1e-6 / 8
    )


def test_the_printed_table_and_totals(tmp_path, capsys, expected):
    program, report = expected
    _, out = _report(tmp_path, capsys)
    lines = out.splitlines()
    assert all(len(line) <= 120 for line in lines if not line.startswith("lenet_qdq.onnx on"))
    header = next(line for line in lines if line.startswith("layer "))
    for column in ("MACs", "cycles", "util", "acc_buf", "other", "total", "/floor"):
        assert column in header
    for layer in report.layers:
        row = next(line for line in lines if line.startswith(layer.name[:22]))
        # per inference, in nJ
        assert f"{layer.energy_pj_total / 8 / 1e3:.2f}" in row
    total = next(line for line in lines if line.startswith("total "))
    assert f"{report.energy_pj_total / 8 / 1e3:.2f}" in total
    assert f"{report.floor_ratio:.1f}x" in total
    assert f"energy per inference: {report.uj_per_inference:.4g} µJ (mean of 8" in out
    assert "inferences per joule" in out and "mW at 50 MHz" in out
    cycles = program_report(program).cycles  # one image per run, at 50 MHz
    assert f"latency {cycles / 50:.1f} µs per inference ({cycles:,} cycles)" in out
    assert "480 gCO2/kWh, the 2023 world average by Ember" in out
    assert "wrote" in out and "report.json" in out


def test_grid_intensity_and_table_are_the_users(tmp_path, capsys, expected):
    _, report = expected
    got, out = _report(tmp_path, capsys, "--grid-intensity", "100", "--table", "ecp5")
    assert got["grid_intensity_gco2_per_kwh"] == 100 and got["table"] == "ecp5"
    assert "100 gCO2/kWh (given)" in out and "Ember" not in out
    ecp5 = got["total"]["uj_per_inference"]
    assert got["total"]["gco2_per_million_inferences"] == pytest.approx(ecp5 / 3.6e6 * 100)
    assert ecp5 > report.uj_per_inference  # the FPGA costs more than the 45 nm ASIC


def test_dram_prices_main_memory_off_chip(tmp_path, capsys, expected):
    program, report = expected
    got, out = _report(tmp_path, capsys, "--dram")
    dram = energy_report(
        program_activity(program),
        program.config,
        load_table("asic-45nm"),
        program=program,
        runs=8,
        dram=True,
    )
    assert got == json.loads(json.dumps(dram.to_dict()))
    assert "main memory as off-chip DRAM" in out.splitlines()[0]
    # DRAM costs far more per byte than on-chip SRAM; nothing else changes.
    assert got["total"]["energy_pj"] > 2 * report.energy_pj_total


def program_activity(program):
    return run_program(program, {"input": np.load(SAMPLES)})[1]


def test_a_compiled_program_reports_alike(tmp_path, capsys, expected):
    program = tmp_path / "lenet.vgp"
    assert main(["compile", str(LENET), "--config", "tiny", "-o", str(program)]) == 0
    target = tmp_path / "r.json"
    arguments = ["report", str(program), "--input", str(SAMPLES), "--json", str(target)]
    assert main(arguments) == 0
    assert json.loads(target.read_text()) == json.loads(json.dumps(expected[1].to_dict()))
    capsys.readouterr()
    assert main([*arguments, "--config", "default"]) == 2
    assert "tiny" in capsys.readouterr().err


def test_the_api_counts_every_sample_and_warns_of_constant_inputs(caplog):
    program = compile_model(LENET, "tiny")
    x = np.load(SAMPLES)[:3]
    run = energy_report_of(program, {"input": x}, table="ecp5", grid_intensity=0)
    assert (run.report.runs, run.report.inferences, run.report.table) == (3, 3, "ecp5")
    assert run.report.gco2_per_million_inferences == 0
    assert run.outputs["output"].shape == (3, 10)
    assert not caplog.records
    with caplog.at_level(logging.WARNING):
        zeros = energy_report_of(program, {"input": np.zeros_like(x)})
    assert "the inputs are constant" in caplog.text
    # zero-operand MACs depend on the data, so the energy does
    assert zeros.report.energy_pj["mac_gated"] != run.report.energy_pj["mac_gated"]


def test_errors_are_one_line_and_nothing_runs(tmp_path, capsys):
    bad_table = tmp_path / "bad.toml"
    bad_table.write_text("format = 1\nname = 'x'\n[[entry]]\ncomponent = 'mac'\n")
    inputs = tmp_path / "x.npy"
    np.save(inputs, np.load(SAMPLES))
    base = ["report", str(LENET), "--input", str(inputs)]
    cases = [
        ([*base, "--table", "nowhere"], "nowhere: neither a shipped table"),
        ([*base, "--table", str(bad_table)], "bad.toml: entry 1: unknown action None of mac"),
        ([*base, "--backend", "golden"], "golden model counts no cycles"),
        (["report", str(LENET), "--input", "nowhere.npy"], "nowhere.npy: no such input file"),
        ([*base, "--json", str(tmp_path / "r.txt")], "must be a .json file"),
        ([*base, "--json", str(tmp_path)], "is a directory"),
        ([*base, "--plots", str(inputs)], "is a file; the plots folder must be a folder"),
        ([*base, "--config", "huge"], "huge: neither a preset"),
    ]
    for arguments, message in cases:
        assert main(arguments) == 2, arguments
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (arguments, err)
    with pytest.raises(SystemExit):
        main([*base, "--grid-intensity", "-3"])
    assert "must be a finite number >= 0" in capsys.readouterr().err
    assert not (tmp_path / "r.txt").exists()


def test_the_demo_ends_with_the_energy_report_and_its_figures(tmp_path, capsys, expected):
    from verdigris.cli import _demo_energy

    program, _ = expected
    _, activity = run_program(program, {"input": np.load(SAMPLES)[:2]})
    _demo_energy(program, activity, 2, tmp_path / "demo")
    out = capsys.readouterr().out
    assert "Energy of LeNet" in out and "energy per inference:" in out and "(mean of 2" in out
    for name in ("energy_per_layer", "utilization_per_layer", "roofline"):
        assert f"wrote {tmp_path / 'demo' / name}.png" in out
