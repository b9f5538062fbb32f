"""bench/layers.py's yardstick: SCALE-Sim's closed forms give the totals issue #13 quotes,
and each benchmark layer compiles to the work its shape says."""

import importlib.util
import sys
from pathlib import Path

import pytest

from verdigris.api import program_report
from verdigris.compiler.backend import compile_graph

_PATH = Path(__file__).resolve().parents[2] / "bench" / "layers.py"
_SPEC = importlib.util.spec_from_file_location("bench_layers", _PATH)
layers = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = layers  # dataclasses look their module up there
_SPEC.loader.exec_module(layers)


def test_closed_forms_reproduce_scalesims_total_for_resnet18_conv4_1b():
    conv4_1b = next(layer for layer in layers._resnet18() if layer.name == "Conv4_1b")
    cycles = layers.scalesim_cycles(conv4_1b, 16, 16)
    assert cycles["ws"] == 2_304 * 190 == 437_760  # folds x (T + 2R + C - 2), 12x12 out
    assert cycles["os"] == 9 * 16 * (2_304 + 16 + 16 - 2)  # folds x (K + R + C - 2)


def test_a_depthwise_layer_is_its_channels_one_after_another():
    dw = layers.Layer("dw", 14, 14, 3, 512, 512, depthwise=True)
    one = layers.Layer("one", 14, 14, 3, 1, 1)
    assert layers.scalesim_cycles(dw, 8, 8) == {
        key: 512 * value for key, value in layers.scalesim_cycles(one, 8, 8).items()
    }


@pytest.mark.parametrize("layer", [*layers._lenet(), layers.Layer("dw", 9, 9, 3, 8, 8, 2, True)])
def test_each_layer_compiles_to_the_macs_of_its_shape(layer):
    program = compile_graph(layers.layer_graph(layer), layers.array_config(8, "ws"))
    report = program_report(program)
    assert report.macs == layer.macs
    assert report.cycles > report.ideal_cycles
