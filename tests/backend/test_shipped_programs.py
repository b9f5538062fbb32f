"""Every shipped model compiled for tiny, default and large runs on the instruction
simulator with outputs bit-identical to the golden model; compiling is deterministic."""

import itertools
from pathlib import Path

import numpy as np
import pytest

from tests.support.graphs import matmul_graph
from tests.support.tiny_models import BUILDERS, FORMATS, calibration_inputs, quantize
from verdigris.arch.activity import pe_utilization
from verdigris.arch.config import load_config
from verdigris.arch.program import ProgramError, load_program, program_bytes, save_program
from verdigris.compiler.backend import CompileError, compile_graph
from verdigris.compiler.frontend import import_model
from verdigris.sim.golden import run_device
from verdigris.sim.host import quantize_input
from verdigris.sim.isasim import run_program

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MODELS = sorted(p.name for p in (EXAMPLES / "models").glob("*_q*.onnx"))


@pytest.fixture(autouse=True)
def verify_every_graph(monkeypatch):
    """Imported graphs are checked by the graph verifier after every pass."""
    monkeypatch.setenv("VERDIGRIS_VERIFY_GRAPH", "1")


@pytest.fixture(scope="module")
def samples():
    return np.load(EXAMPLES / "digits_samples.npy")[:2]


@pytest.mark.parametrize("config", ["tiny", "default", "large"])
@pytest.mark.parametrize("model", MODELS)
def test_isasim_matches_golden(model, config, samples):
    graph = import_model(EXAMPLES / "models" / model)
    program = compile_graph(graph, load_config(config))
    graph_input = graph.inputs[0]
    for sample in samples:
        device_input = quantize_input(graph_input, sample[None])
        expected = run_device(graph, {graph_input.tensor.name: device_input})
        outputs, activity = run_program(program, {graph_input.tensor.name: device_input})
        for graph_output in graph.outputs:
            name = graph_output.tensor.name
            np.testing.assert_array_equal(outputs[name], expected[name])
        pes = program.config.pe_count
        assert 0 < activity.macs <= activity.cycles * pes  # MAC slots fit in the PE-cycles
        useful = sum(layer.macs for layer in program.layers)
        assert 0 < pe_utilization(useful, activity.cycles, pes) <= 1


def test_compiling_twice_gives_identical_bytes():
    graph = import_model(EXAMPLES / "models" / "resnet_qdq.onnx")
    config = load_config("default")
    first = program_bytes(compile_graph(graph, config))
    second = program_bytes(
        compile_graph(import_model(EXAMPLES / "models" / "resnet_qdq.onnx"), config)
    )
    assert first == second


def test_saved_program_loads_and_a_flipped_byte_is_rejected(tmp_path):
    graph = import_model(EXAMPLES / "models" / "lenet_qdq.onnx")
    path = save_program(compile_graph(graph, load_config("tiny")), tmp_path / "lenet.vgp")
    assert load_program(path).config.name == "tiny"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))
    with pytest.raises(ProgramError, match="checksum mismatch"):
        load_program(path)


def test_program_for_another_config_is_rejected(tmp_path):
    graph = import_model(EXAMPLES / "models" / "mlp_qdq.onnx")
    path = save_program(compile_graph(graph, load_config("tiny")), tmp_path / "mlp.vgp")
    with pytest.raises(ProgramError, match="compiled for config 'tiny', not 'default'"):
        load_program(path, config=load_config("default"))


def test_model_too_big_for_memory_names_the_tensor():
    graph = import_model(EXAMPLES / "models" / "resnet_qdq.onnx")
    config = load_config("tiny")
    small = type(config)(**{**config.to_dict(), "main_memory_bytes": 8192})
    with pytest.raises(
        CompileError,
        match=r"needs [\d,]+ bytes of main memory .* largest "
        r"tensor, '.*', takes",
    ):
        compile_graph(graph, small)


def test_more_output_channels_than_requant_rows_names_the_op():
    graph = matmul_graph(np.random.default_rng(0), m=2, k=8, n=72, zero_point=0)
    config = load_config("tiny")  # 4 columns, 16 requant rows: 64 channels at most
    with pytest.raises(
        CompileError,
        match=r"^op matmul: 72 output channels need 18 requant rows; config 'tiny' has 16$",
    ):
        compile_graph(graph, config)


@pytest.mark.parametrize("fmt", ["qdq-s8-perchannel", "qop-u8"])
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_every_tiny_op_graph_runs_bit_exact(name, fmt):
    """The per-op graphs of the frontend tests (Concat, Requantize, Add, pools, ...)
    compiled for a small config and run on the instruction simulator."""
    model = quantize(BUILDERS[name](), **FORMATS[fmt])
    graph = import_model(model, name=name)
    program = compile_graph(graph, load_config("tiny"))
    shape = [d.dim_value or 1 for d in model.graph.input[0].type.tensor_type.shape.dim]
    x = calibration_inputs(shape, 1, seed=11)
    device_input = quantize_input(graph.inputs[0], x)
    expected = run_device(graph, {graph.inputs[0].tensor.name: device_input})
    outputs, _ = run_program(program, {graph.inputs[0].tensor.name: device_input})
    for graph_output in graph.outputs:
        name = graph_output.tensor.name
        np.testing.assert_array_equal(outputs[name], expected[name])


@pytest.mark.parametrize(
    "case",
    ["test_convinteger_with_padding", "test_convinteger_without_padding", "test_matmulinteger"],
)
def test_int32_outputs_compile_and_run_bit_exact(case):
    """ConvInteger / MatMulInteger: raw int32 results (the STORE's raw mode, bias added)."""
    import onnx
    from onnx import numpy_helper

    folder = Path(onnx.__file__).parent / "backend" / "test" / "data" / "node" / case
    model = onnx.load(folder / "model.onnx")

    def tensor(path):
        proto = onnx.TensorProto()
        proto.ParseFromString(path.read_bytes())
        return numpy_helper.to_array(proto)

    inputs = [tensor(p) for p in sorted((folder / "test_data_set_0").glob("input_*.pb"))]
    names = [value.name for value in model.graph.input]
    graph = import_model(model, constants=dict(zip(names[1:], inputs[1:], strict=True)))
    program = compile_graph(graph, load_config("tiny"))
    device_input = quantize_input(graph.inputs[0], inputs[0])
    outputs, _ = run_program(program, {graph.inputs[0].tensor.name: device_input})
    expected = tensor(folder / "test_data_set_0" / "output_0.pb")
    np.testing.assert_array_equal(outputs[graph.outputs[0].tensor.name], expected)


def test_the_requant_table_loads_with_the_second_step_and_results_stay_exact():
    """Only the stores read a layer's requant table, so its first step leaves it to the
    second: the first GEMMs (which wait for the first step's token) do not wait for it."""
    from verdigris.arch.isa import Buffer, Load

    graph = matmul_graph(np.random.default_rng(4), m=3, k=40, n=20, zero_point=-7)
    program = compile_graph(graph, load_config("tiny"))
    loads = [(i, ins) for i, ins in enumerate(program.instructions) if isinstance(ins, Load)]
    first_token = next(i for i, ins in loads if ins.deps.push_next)
    req = [i for i, ins in loads if ins.buffer == Buffer.REQ]
    assert len(req) == 1 and req[0] > first_token
    x = np.random.default_rng(5).integers(-128, 128, graph.inputs[0].tensor.shape)
    outputs, _ = run_program(program, {"x": x})
    np.testing.assert_array_equal(outputs["y"], run_device(graph, {"x": x})["y"])


def test_short_gemm_steps_release_their_buffers_as_the_gemms_end():
    """An FC layer at batch 1 streams one row per weight tile: its steps release their
    buffer halves through a compute NOP that completes as the GEMMs end, while the stores
    still wait for the last GEMM to complete."""
    from verdigris.arch.isa import Gemm, Nop, Unit

    graph = matmul_graph(np.random.default_rng(6), m=1, k=40, n=20, zero_point=5)
    program = compile_graph(graph, load_config("tiny"))
    compute = [i for i in program.instructions if i.unit == Unit.COMPUTE]
    releases = [
        ins
        for before, ins in itertools.pairwise(compute)
        if isinstance(before, Gemm) and isinstance(ins, Nop) and ins.deps.push_prev
    ]
    assert releases
    to_store = [ins for ins in compute if ins.deps.push_next]
    assert to_store and all(isinstance(ins, Gemm) for ins in to_store)
    x = np.random.default_rng(7).integers(-128, 128, (1, 40))
    outputs, _ = run_program(program, {"x": x})
    np.testing.assert_array_equal(outputs["y"], run_device(graph, {"x": x})["y"])


def test_the_first_and_last_m_tiles_ramp_and_results_stay_exact():
    """The first tile's loads and the last tile's stores overlap nothing, so the layer's
    first and last M-tiles are cut, a quarter at each end."""
    from verdigris.arch.isa import Gemm
    from verdigris.compiler.backend.lower import Lowerer

    lowerer = Lowerer(load_config("default"))
    assert lowerer._ramped(1200, 512, True, True) == [
        (0, 128),
        (128, 384),
        (512, 512),
        (1024, 132),
        (1156, 44),
    ]
    assert lowerer._ramped(1200, 512, False, False) == [(0, 512), (512, 512), (1024, 176)]
    assert lowerer._ramped(100, 512, True, True) == [(0, 100)]  # too short to cut
    graph = matmul_graph(np.random.default_rng(8), m=1200, k=16, n=8, zero_point=-3)
    program = compile_graph(graph, load_config("default"))
    rows = [ins.rows for ins in program.instructions if isinstance(ins, Gemm)]
    assert min(rows) < max(rows) // 2
    x = np.random.default_rng(9).integers(-128, 128, (1200, 16))
    outputs, _ = run_program(program, {"x": x})
    np.testing.assert_array_equal(outputs["y"], run_device(graph, {"x": x})["y"])
