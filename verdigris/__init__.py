"""Verdigris: energy-efficient quantized inference on an open systolic-array accelerator.

The public API (see verdigris.api):

    graph = verdigris.load_model("model.onnx")                 # the integer IR
    outputs = verdigris.run(graph, {"input": x})                # golden model
    program = verdigris.compile_model("model.onnx", "default")  # a Program (.vgp)
    outputs, activity = verdigris.run_program(program, {"input": x}, backend="isasim")
"""

__version__ = "0.1.0"

__all__ = ["compile_model", "load_model", "run", "run_program"]


def __getattr__(name: str):
    # Imported on first use, so `verdigris doctor` starts without numpy or onnx.
    if name in __all__:
        from verdigris import api

        return getattr(api, name)
    raise AttributeError(f"module 'verdigris' has no attribute {name!r}")
