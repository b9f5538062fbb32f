"""Property tests: random conv / GEMM / pool / add shapes, compiled for small configs that
force tiling, run on the instruction simulator, bit-identical to the golden model."""

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.support.graphs import (
    add_graph,
    conv_graph,
    matmul_graph,
    mul_graph,
    pool_graph,
    random_inputs,
    with_table,
)
from verdigris.arch.config import AccelConfig
from verdigris.compiler.backend import compile_graph
from verdigris.compiler.backend.constants import conv_row_chunks
from verdigris.compiler.passes import verify_graph
from verdigris.sim.golden import run_device
from verdigris.sim.isasim import run_program

# Room for two lookup tables: per-channel tables of up to 2 * dim channels.
LUT_ROWS = 512
# Small buffers so that M-tiles, output-channel groups and both buffer halves all occur.
SMALL = AccelConfig(
    name="small",
    rows=4,
    cols=4,
    inp_rows=64,
    wgt_rows=16,
    acc_rows=64,
    req_rows=16,
    lut_rows=LUT_ROWS,
    main_memory_bytes=65536,
    instruction_capacity=65536,
    dma_bytes=4,
    queue_depth=4,
)
WIDE = AccelConfig(
    name="wide",
    rows=8,
    cols=8,
    inp_rows=256,
    wgt_rows=64,
    acc_rows=128,
    req_rows=8,
    lut_rows=LUT_ROWS,
    main_memory_bytes=65536,
    instruction_capacity=65536,
    dma_bytes=8,
    queue_depth=8,
)
CONFIGS = st.sampled_from([SMALL, WIDE])
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check(graph, config, seed):
    verify_graph(graph)  # the hand-built graphs keep the IR's invariants too
    rng = np.random.default_rng(seed)
    inputs = random_inputs(rng, graph)
    expected = run_device(graph, inputs)[graph.outputs[0].tensor.name]
    program = compile_graph(graph, config)
    outputs, activity = run_program(program, inputs)
    np.testing.assert_array_equal(outputs[graph.outputs[0].tensor.name], expected)
    assert activity.cycles > 0


@PROPERTY
@given(
    config=CONFIGS,
    c=st.integers(1, 10),
    oc=st.integers(1, 10),
    size=st.integers(3, 9),
    kernel=st.integers(1, 3),
    stride=st.integers(1, 2),
    pad=st.tuples(*[st.integers(0, 2)] * 4),
    dilation=st.integers(1, 2),
    grouping=st.sampled_from(["dense", "depthwise", "two groups"]),
    zero_point=st.integers(-128, 127),
    relu=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_conv(config, c, oc, size, kernel, stride, pad, dilation, grouping, zero_point, relu, seed):
    if grouping == "depthwise":
        groups, oc = c, c
    elif grouping == "two groups":
        groups, c, oc = 2, 2 * (c // 2 + 1), 2 * (oc // 2 + 1)
    else:
        groups = 1
    span = dilation * (kernel - 1) + 1
    assume(size + pad[0] + pad[2] >= span and size + pad[1] + pad[3] >= span)
    rng = np.random.default_rng(seed)
    graph = conv_graph(
        rng,
        n=1,
        c=c,
        h=size,
        w=size + 1,
        oc=oc,
        kernel=(kernel, kernel),
        stride=stride,
        pad=pad,
        dilation=dilation,
        groups=groups,
        zero_point=zero_point,
        relu=relu,
    )
    _check(graph, config, seed)


@PROPERTY
@given(
    config=CONFIGS,
    n=st.integers(1, 2),
    c=st.integers(1, 10),
    oc=st.integers(1, 10),
    h=st.integers(1, 8),
    w=st.integers(3, 12),
    kh=st.integers(1, 4),
    kw=st.integers(2, 5),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    pad=st.tuples(*[st.integers(0, 2)] * 4),
    zero_point=st.integers(-128, 127),
    seed=st.integers(0, 2**16),
)
def test_conv_with_kernel_rows_unrolled(
    config, n, c, oc, h, w, kh, kw, stride, pad, zero_point, seed
):
    """Convs with few channels run a kernel row's taps in one step (`conv_row_chunks`),
    reading consecutive bytes of the window row; with horizontal padding, after a copy of
    the input with its padding columns (`pad_columns`)."""
    top, left, bottom, right = pad
    assume(conv_row_chunks_for(c, kw, config.dim))
    assume(h + top + bottom >= kh and w + left + right >= kw)
    rng = np.random.default_rng(seed)
    graph = conv_graph(
        rng,
        n=n,
        c=c,
        h=h,
        w=w,
        oc=oc,
        kernel=(kh, kw),
        stride=stride,
        pad=pad,
        dilation=1,
        groups=1,
        zero_point=zero_point,
        relu=False,
    )
    _check(graph, config, seed)


def conv_row_chunks_for(c: int, kw: int, dim: int) -> int:
    """`conv_row_chunks` of a dense, unpadded, undilated conv."""
    node = conv_graph(
        np.random.default_rng(0),
        n=1,
        c=c,
        h=kw,
        w=kw,
        oc=1,
        kernel=(1, kw),
        stride=1,
        pad=(0, 0, 0, 0),
        dilation=1,
        groups=1,
        zero_point=0,
        relu=False,
    ).nodes[0]
    return conv_row_chunks(node, c, dim)


@PROPERTY
@given(
    config=CONFIGS,
    m=st.integers(1, 40),
    k=st.integers(1, 40),
    n=st.integers(1, 40),
    zero_point=st.integers(-128, 127),
    seed=st.integers(0, 2**16),
)
def test_matmul(config, m, k, n, zero_point, seed):
    graph = matmul_graph(np.random.default_rng(seed), m=m, k=k, n=n, zero_point=zero_point)
    _check(graph, config, seed)


@PROPERTY
@given(
    config=CONFIGS,
    kind=st.sampled_from(["max", "avg"]),
    c=st.integers(1, 10),
    size=st.integers(2, 8),
    kernel=st.integers(1, 3),
    stride=st.integers(1, 3),
    pad=st.integers(0, 1),
    zero_point=st.integers(-128, 127),
    seed=st.integers(0, 2**16),
)
def test_pool(config, kind, c, size, kernel, stride, pad, zero_point, seed):
    assume(size + 2 * pad >= kernel and pad < kernel)
    graph = pool_graph(
        np.random.default_rng(seed),
        kind=kind,
        n=1,
        c=c,
        h=size,
        w=size,
        kernel=kernel,
        stride=stride,
        pad=(pad,) * 4,
        zero_point=zero_point,
    )
    _check(graph, config, seed)


@PROPERTY
@given(
    config=CONFIGS,
    c=st.integers(1, 12),
    size=st.integers(1, 6),
    za=st.integers(-128, 127),
    zb=st.integers(-128, 127),
    seed=st.integers(0, 2**16),
)
def test_add(config, c, size, za, zb, seed):
    graph = add_graph(np.random.default_rng(seed), shape=(1, c, size, size), za=za, zb=zb)
    _check(graph, config, seed)


@PROPERTY
@given(
    config=CONFIGS,
    n=st.integers(1, 2),
    c=st.integers(1, 12),
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    zx=st.integers(-128, 127),
    zg=st.integers(-128, 127),
    seed=st.integers(0, 2**16),
)
def test_mul_by_a_channel_gate(config, n, c, h, w, zx, zg, seed):
    graph = mul_graph(np.random.default_rng(seed), n=n, c=c, h=h, w=w, zx=zx, zg=zg)
    _check(graph, config, seed)


@PROPERTY
@given(
    config=CONFIGS,
    op=st.sampled_from(["conv", "matmul", "add", "avgpool"]),
    per_channel=st.booleans(),
    c=st.integers(1, 8),
    seed=st.integers(0, 2**16),
)
def test_lookup_tables_after_any_requantizing_op(config, op, per_channel, c, seed):
    rng = np.random.default_rng(seed)
    if op == "conv":
        graph = conv_graph(
            rng,
            n=1,
            c=3,
            h=5,
            w=4,
            oc=c,
            kernel=(3, 3),
            stride=1,
            pad=(1, 1, 1, 1),
            dilation=1,
            groups=1,
            zero_point=3,
            relu=False,
        )
    elif op == "matmul":
        graph = matmul_graph(rng, m=9, k=10, n=c, zero_point=-4)
    elif op == "add":
        graph = add_graph(rng, shape=(1, c, 3, 5), za=5, zb=-9)
    else:
        graph = pool_graph(
            rng, kind="avg", n=1, c=c, h=6, w=6, kernel=2, stride=2, pad=(0,) * 4, zero_point=1
        )
    channels_fit = -(-c // config.dim) * 256 <= LUT_ROWS
    assume(channels_fit or not per_channel)
    _check(with_table(rng, graph, per_channel=per_channel), config, seed)
