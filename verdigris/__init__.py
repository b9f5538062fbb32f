"""Verdigris: energy-efficient quantized inference on an open systolic-array accelerator.

The public API (see verdigris.api):

    graph = verdigris.load_model("model.onnx")                 # the integer IR
    outputs = verdigris.run(graph, {"input": x})                # golden model
    program = verdigris.compile_model("model.onnx", "default")  # a Program (.vgp)
    outputs, activity = verdigris.run_program(program, {"input": x}, backend="isasim")
"""

__version__ = "0.1.0"

# The public API lives in verdigris.api; these names are imported from it on first use, so
# `verdigris doctor` starts without numpy or onnx.
__all__ = [
    "BACKENDS",
    "compile_model",
    "layer_summaries",
    "load_model",
    "program_report",
    "read_inputs",
    "run",
    "run_program",
    "write_outputs",
]


def __getattr__(name: str):
    if name in __all__:
        from verdigris import api

        return getattr(api, name)
    raise AttributeError(f"module 'verdigris' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
