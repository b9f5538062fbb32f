"""Errors a user can hit when handing a model to the frontend."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ModelError", "ModelFileError", "Problem", "UnsupportedModelError"]


class ModelError(ValueError):
    """The model cannot be imported."""


class ModelFileError(ModelError):
    """The file is missing, unreadable, truncated or not an ONNX model."""


@dataclass(frozen=True)
class Problem:
    """One node the frontend cannot import, and why."""

    node: str
    op_type: str
    reason: str

    def __str__(self) -> str:
        return f"  - node '{self.node}' ({self.op_type}): {self.reason}"


class UnsupportedModelError(ModelError):
    """The model uses ops or attributes the toolkit does not support. Lists every one."""

    def __init__(self, model: str, problems: list[Problem], advice: str = ""):
        self.problems = list(problems)
        lines = [f"{model}: {len(problems)} node(s) cannot be imported:"]
        lines += [str(p) for p in problems]
        lines.append(
            advice
            or "On the device: Conv, Gemm/MatMul, Relu, Clip, MaxPool, AveragePool, "
            "GlobalAveragePool, Add, Concat (channels), Flatten/Reshape, in QDQ or QOperator "
            "int8/uint8 form, or QONNX/QCDQ with 1 to 8 bits; on the host, between them, most "
            "other ONNX ops (Sigmoid, Mul, Resize, Transpose, ...). See docs/frontend.md."
        )
        super().__init__("\n".join(lines))
