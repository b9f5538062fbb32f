"""The host side of a compiled Program: a graph's inputs, outputs and host steps.

The IR's graph inputs and outputs are the Program's own host types
(verdigris.arch.host_steps), so packaging them is taking them as they are; the .vgp file
format (arch/program.py) writes and reads them.
"""

from __future__ import annotations

from verdigris.arch.host_steps import HostSide
from verdigris.compiler import ir

__all__ = ["host_side"]


def host_side(graph: ir.Graph) -> HostSide:
    """What the host does around the device for `graph`: its inputs, outputs and steps."""
    return HostSide(tuple(graph.inputs), tuple(graph.outputs), graph.dynamic_batch)
