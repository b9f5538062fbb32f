"""`verdigris run --activity-json FILE`: the Activity of a run, in total and per layer, as
JSON (docs/isa.md, "Activity per layer"), and the option's errors."""

import json
from pathlib import Path

import numpy as np
import pytest

from verdigris.api import compile_model, run_program
from verdigris.cli import main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
LENET = EXAMPLES / "models" / "lenet_qdq.onnx"
SAMPLES = EXAMPLES / "digits_samples.npy"


@pytest.fixture(scope="module")
def two_samples(tmp_path_factory):
    path = tmp_path_factory.mktemp("inputs") / "x.npy"
    np.save(path, np.load(SAMPLES)[:2])
    return path


def test_run_writes_the_activity_per_layer(tmp_path, two_samples, capsys):
    target = tmp_path / "reports" / "lenet.json"
    command = ["run", str(LENET), "--input", str(two_samples), "--backend", "isasim"]
    assert main([*command, "--config", "tiny", "--activity-json", str(target)]) == 0
    assert f"wrote {target} (Activity in total and per layer)" in capsys.readouterr().out
    report = json.loads(target.read_text())
    assert list(report) == ["config", "total", "layers"]
    assert report["config"] == "tiny"
    program = compile_model(LENET, "tiny")
    assert [(layer["name"], layer["op"]) for layer in report["layers"]] == [
        (layer.name, layer.kind) for layer in program.layers
    ]
    # The two samples' Activity, summed per layer; the layers sum to the total.
    _, activity = run_program(program, {"input": np.load(two_samples)}, backend="isasim")
    assert report == json.loads(json.dumps(activity.to_report("tiny")))
    for name, value in report["total"].items():
        per_layer = [layer["activity"][name] for layer in report["layers"]]
        if isinstance(value, dict):
            assert {k: sum(p[k] for p in per_layer) for k in value} == value
        else:
            assert sum(per_layer) == value
    assert report["total"]["cycles"] > 0 and "layers" not in report["total"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--backend", "golden"],
            "--activity-json needs --backend isasim, rtl, board or board-sim",
        ),
        (["--backend", "isasim", "--activity-json", "a.txt"], "must be a .json file"),
    ],
)
def test_activity_json_errors(extra, message, two_samples, capsys):
    arguments = ["run", str(LENET), "--input", str(two_samples), "--activity-json", "a.json"]
    assert main([*arguments, *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("verdigris run: error: ") and message in err
    assert err.count("\n") == 1


def test_activity_json_never_overwrites_an_input(tmp_path, two_samples, capsys):
    program = tmp_path / "lenet.vgp"
    assert main(["compile", str(LENET), "--config", "tiny", "--output", str(program)]) == 0
    renamed = tmp_path / "lenet.json"  # a Program named .json, given as the model
    program.rename(renamed)
    before = renamed.read_bytes()
    capsys.readouterr()
    command = ["run", str(renamed), "--input", str(two_samples), "--backend", "isasim"]
    assert main([*command, "--activity-json", str(renamed)]) == 2
    assert "refusing to overwrite an input file" in capsys.readouterr().err
    assert renamed.read_bytes() == before
