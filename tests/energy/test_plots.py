"""The report's figures (docs/energy.md, "Figures"): written as PNG by the API and by
`verdigris report --plots`, and drawn from the report's own numbers."""

import itertools
from pathlib import Path

import numpy as np
import pytest
from matplotlib.patches import Rectangle

from verdigris.api import energy_report_of
from verdigris.cli import main
from verdigris.energy.plots import (
    PLOT_NAMES,
    energy_figure,
    roofline_figure,
    roofline_points,
    utilization_figure,
    write_plots,
)
from verdigris.energy.report import layer_utilization

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
LENET = EXAMPLES / "models" / "lenet_qdq.onnx"
SAMPLES = EXAMPLES / "digits_samples.npy"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run():
    return energy_report_of(LENET, {"input": np.load(SAMPLES)[:2]}, config="tiny")


def _bars(figure):
    return [p for p in figure.axes[0].patches if isinstance(p, Rectangle)]


def test_the_stacked_bars_sum_to_each_layers_energy(run):
    report = run.report
    bars = _bars(energy_figure(report))
    for index, layer in enumerate(report.layers):
        mine = [b for b in bars if abs(b.get_x() + b.get_width() / 2 - index) < 1e-9]
        assert sum(b.get_height() for b in mine) == pytest.approx(
            layer.energy_pj_total / report.inferences / 1e3  # nJ per inference
        )
        # stacked: each bar starts where the one below ends
        tops = sorted((b.get_y(), b.get_y() + b.get_height()) for b in mine)
        assert all(a[1] == pytest.approx(b[0]) for a, b in itertools.pairwise(tops))
    labels = [t.get_text() for t in energy_figure(report).axes[0].get_legend().get_texts()]
    assert "physical floor" in labels and any(label.startswith("acc_buffer") for label in labels)


def test_utilization_bars_are_each_layers(run):
    config = run.program.config
    bars = _bars(utilization_figure(run.report, config.pe_count))
    assert [b.get_height() for b in bars] == pytest.approx(
        [100 * (layer_utilization(layer, config.pe_count) or 0) for layer in run.report.layers]
    )


def test_roofline_places_layers_with_macs_under_the_compute_roof(run):
    config = run.program.config
    points = roofline_points(run.report, run.activity)
    with_macs = [layer for layer in run.report.layers if layer.useful_macs]
    assert len(points) == len(with_macs) == 4  # LeNet: two Conv, two MatMul
    for _, intensity, rate in points:
        assert intensity > 0 and 0 < rate <= 2 * config.pe_count
    figure = roofline_figure(run.report, run.activity, config)
    labels = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert any("compute roof: 32 ops/cycle" in label for label in labels)
    assert any("memory roof: 4 B/cycle" in label for label in labels)


def test_write_plots_writes_three_pngs(run, tmp_path):
    paths = write_plots(run.report, run.activity, run.program.config, tmp_path / "new" / "dir")
    assert set(paths) == set(PLOT_NAMES)
    for path in paths.values():
        data = path.read_bytes()
        assert data.startswith(PNG) and len(data) > 10_000


def test_report_plots_prints_where_they_are(tmp_path, capsys):
    folder = tmp_path / "figures"
    arguments = ["report", str(LENET), "--config", "tiny", "--input", str(SAMPLES)]
    assert main([*arguments, "--plots", str(folder)]) == 0
    out = capsys.readouterr().out
    for name in PLOT_NAMES.values():
        assert f"wrote {folder / name}" in out
        assert (folder / name).read_bytes().startswith(PNG)
