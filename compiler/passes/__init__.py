"""Graph passes: pure functions `Graph -> Graph` between the frontend and the backend.

`PASSES` is the pipeline, in the order it runs; `run_passes` runs it (the frontend's
`import_model` does, on every imported graph) and, when asked, checks the graph with
`verify_graph` before the first pass and after each one. docs/compiler.md lists the passes.
`lookups_on_device` depends on the AccelConfig, so the backend runs it (`compile_graph`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence

from verdigris.compiler import ir
from verdigris.compiler.passes.gates import gates_on_device
from verdigris.compiler.passes.lookups import lookups_on_device
from verdigris.compiler.passes.rescales import elide_identity_rescales, fold_clamps
from verdigris.compiler.passes.reshapes import reshapes_on_host
from verdigris.compiler.passes.verify import GraphError, verify_graph

__all__ = [
    "PASSES",
    "GraphError",
    "Pass",
    "elide_identity_rescales",
    "fold_clamps",
    "gates_on_device",
    "lookups_on_device",
    "reshapes_on_host",
    "run_passes",
    "verify_graph",
]

logger = logging.getLogger(__name__)

Pass = Callable[[ir.Graph], ir.Graph]

# The pipeline. Each pass takes a graph and returns a new one (or the same, unchanged).
PASSES: tuple[Pass, ...] = (
    # Requantize ops that map every integer to itself (DequantizeLinear -> QuantizeLinear
    # with the same parameters, Concat inputs already in the output's quantization, a
    # ReLU that clamps nothing) go; their readers read the input.
    elide_identity_rescales,
    # Rescales that only clamp (a narrow range, a QCDQ Clip to fewer bits) go into the op
    # that makes their input, where nothing else reads it.
    fold_clamps,
    # Reshapes whose output cannot alias its input's memory for its readers (a channel
    # shuffle's 5-D -> 4-D before a Conv) run on the host.
    reshapes_on_host,
    # A host op that multiplies a feature map by its per-channel gate (squeeze-excitation)
    # runs on the device.
    gates_on_device,
)

# Set (to anything but "" or "0") to verify every graph between passes.
VERIFY_ENVIRONMENT = "VERDIGRIS_VERIFY_GRAPH"


def run_passes(
    graph: ir.Graph, *, passes: Sequence[Pass] = PASSES, verify: bool | None = None
) -> ir.Graph:
    """`graph` through `passes` in order. With `verify` (default: the environment variable
    VERDIGRIS_VERIFY_GRAPH), `verify_graph` checks the input and every pass's result."""
    if verify is None:
        verify = os.environ.get(VERIFY_ENVIRONMENT, "") not in ("", "0")
    if verify:
        _verify(graph, "the frontend")
    for step in passes:
        before = len(graph.nodes)
        graph = step(graph)
        logger.debug("%s: %s, %d -> %d ops", graph.name, step.__name__, before, len(graph.nodes))
        if verify:
            _verify(graph, step.__name__)
    return graph


def _verify(graph: ir.Graph, after: str) -> None:
    try:
        verify_graph(graph)
    except GraphError as error:
        raise GraphError(f"after {after}: {error}") from None
