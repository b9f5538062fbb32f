"""ONNX frontend, integer IR, passes, tiling, scheduling and code generation.

Not built yet (issues 3 and 4).
"""
