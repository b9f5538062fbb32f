"""IR op builders shared by the QDQ and QOperator handlers: from an ONNX node, the device
tensors it reads and writes and its (integer) constants to one IR op, with the input zero
point folded into the bias and the scales folded into a requantization."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import onnx

from verdigris.compiler import ir
from verdigris.compiler.frontend.values import QConst, Skip, bits_for, per_channel
from verdigris.compiler.quantize import add_multipliers, make_requant

__all__ = ["add", "avgpool", "concat", "conv", "matmul", "maxpool", "rescale"]


def conv(
    node: onnx.NodeProto,
    x: ir.Tensor,
    weight: QConst,
    bias,
    attrs: dict,
    out: ir.Tensor,
    clamp: tuple[int, int] | None,
) -> ir.Conv:
    group = attrs.get("group", 1)
    w = weight.centred()
    if weight.values.ndim != 4 or len(x.shape) != 4:
        raise Skip(f"only 2-D convolutions are supported (weight {list(w.shape)})")
    if x.shape[1] != w.shape[1] * group:
        raise Skip(f"input has {x.shape[1]} channels; weight expects {w.shape[1] * group}")
    w_scale = per_channel(weight.scale, w.shape[0])
    bias_int = accumulator_bias(bias, x, w_scale, w.shape[0])
    folded = bias_int - x.zero_point * w.reshape(w.shape[0], -1).sum(axis=1)
    pads = attrs.get("pads", [0, 0, 0, 0])
    return ir.Conv(
        **_weighted(node, x, w, w_scale, folded, out, clamp),
        strides=tuple(attrs.get("strides", [1, 1])),
        pads=(pads[0], pads[1], pads[2], pads[3]),
        dilations=tuple(attrs.get("dilations", [1, 1])),
        groups=group,
    )


def matmul(
    node: onnx.NodeProto,
    x: ir.Tensor,
    weight: QConst,
    bias,
    out: ir.Tensor,
    clamp: tuple[int, int] | None,
    *,
    alpha: float = 1.0,
    beta: float = 1.0,
) -> ir.MatMul:
    w = weight.centred()
    if w.ndim < 2 or x.shape[-1] != w.shape[-2]:
        raise Skip(f"cannot multiply {list(x.shape)} by weight {list(w.shape)}")
    columns = w.shape[-1]
    w_scale = per_channel(weight.scale, columns) * alpha
    bias_int = accumulator_bias(bias, x, w_scale, columns, beta=beta)
    folded = bias_int - x.zero_point * w.sum(axis=-2, keepdims=True)
    if w.ndim == 2:
        folded = folded.reshape(columns)
    return ir.MatMul(**_weighted(node, x, w, w_scale, folded, out, clamp))


def _weighted(
    node: onnx.NodeProto,
    x: ir.Tensor,
    w: np.ndarray,
    w_scale: np.ndarray,
    bias: np.ndarray,
    out: ir.Tensor,
    clamp: tuple[int, int] | None,
) -> dict:
    """The fields Conv and MatMul share: weights, the folded `bias`, and a requantization
    to `out` (none for a raw int32 output, whose scale is None)."""
    requant = None
    if out.scale is not None:
        requant = make_requant(x.scale * w_scale / out.scale, out.zero_point, clamp)
    return {
        "name": node.name or out.name,
        "inputs": (x.name,),
        "output": out.name,
        "weight": w,
        "weight_bits": bits_for(w),
        "bias": bias.astype(np.int64),
        "input_zero_point": x.zero_point,
        "requant": requant,
        "weight_scale": None if np.isnan(w_scale).any() else w_scale,
    }


def accumulator_bias(bias, x: ir.Tensor, w_scale, channels: int, beta=1.0) -> np.ndarray:
    """The bias in accumulator units (scale x_scale * w_scale), as int64 (channels,)."""
    if bias is None:
        return np.zeros(channels, np.int64)
    acc_scale = x.scale * w_scale
    if isinstance(bias, QConst):
        if np.isnan(bias.scale).all():  # QOperator int32 bias: accumulator units
            if beta != 1.0:
                raise Skip("beta != 1 with an int32 bias is not supported")
            return np.broadcast_to(bias.values.astype(np.int64).reshape(-1), (channels,))
        bias_scale = np.broadcast_to(bias.scale.reshape(-1), (channels,))
        if beta == 1.0 and np.allclose(bias_scale, acc_scale, rtol=1e-6):
            # The quantizer's int32 bias is already in accumulator units: use it unrounded.
            return np.broadcast_to(bias.centred().reshape(-1), (channels,)).astype(np.int64)
        real = bias.real()
    else:
        real = np.asarray(bias, np.float64)
    real = np.broadcast_to(real.reshape(-1) * beta, (channels,))
    return np.rint(real / acc_scale).astype(np.int64)


def add(
    node: onnx.NodeProto, a: ir.Tensor, b: ir.Tensor, out: ir.Tensor, clamp: tuple[int, int]
) -> ir.Add:
    ma, mb, shift = add_multipliers(a.scale / out.scale, b.scale / out.scale)
    requant = ir.Requant(
        multiplier=np.array([1], np.int64),
        shift=np.array([shift], np.int64),
        zero_point=out.zero_point,
        qmin=clamp[0],
        qmax=clamp[1],
    )
    return ir.Add(
        name=node.name or out.name,
        inputs=(a.name, b.name),
        output=out.name,
        a_zero_point=a.zero_point,
        b_zero_point=b.zero_point,
        a_multiplier=ma,
        b_multiplier=mb,
        requant=requant,
    )


def maxpool(node: onnx.NodeProto, x: ir.Tensor, out_name: str, attrs: dict) -> ir.MaxPool:
    return ir.MaxPool(
        name=node.name or out_name,
        inputs=(x.name,),
        output=out_name,
        kernel=tuple(attrs["kernel_shape"]),
        strides=tuple(attrs.get("strides", [1, 1])),
        pads=tuple(attrs.get("pads", [0, 0, 0, 0])),
        dilations=tuple(attrs.get("dilations", [1, 1])),
        ceil_mode=bool(attrs.get("ceil_mode", 0)),
    )


def avgpool(
    node: onnx.NodeProto,
    x: ir.Tensor,
    out: ir.Tensor,
    attrs: dict,
    clamp: tuple[int, int],
    x_scale: float,
) -> ir.AvgPool:
    kernel = tuple(attrs["kernel_shape"])
    count = kernel[0] * kernel[1]
    return ir.AvgPool(
        name=node.name or out.name,
        inputs=(x.name,),
        output=out.name,
        kernel=kernel,
        strides=tuple(attrs.get("strides", [1, 1])),
        pads=tuple(attrs.get("pads", [0, 0, 0, 0])),
        input_zero_point=x.zero_point,
        requant=make_requant(x_scale / (out.scale * count), out.zero_point, clamp),
    )


def rescale(name: str, x: ir.Tensor, out: ir.Tensor, clamp: tuple[int, int]) -> ir.Requantize:
    """x requantized to `out`'s scale and zero point, clamped to `clamp`."""
    return ir.Requantize(
        name=name,
        inputs=(x.name,),
        output=out.name,
        input_zero_point=x.zero_point,
        requant=make_requant(x.scale / out.scale, out.zero_point, clamp),
    )


def concat(
    node: onnx.NodeProto,
    parts: list[ir.Tensor],
    out: ir.Tensor,
    clamp: tuple[int, int],
    axis: int,
) -> tuple[list[ir.Op], list[ir.Tensor]]:
    """The Concat and, before it, one rescale per input to the output's quantization and
    clamp (the pass `elide_identity_rescales` removes those that change nothing); the ops
    and the new (int8) tensors they write."""
    ops: list[ir.Op] = []
    tensors: list[ir.Tensor] = []
    names = []
    for index, part in enumerate(parts):
        rescaled = replace(out, name=f"{out.name}__part{index}", shape=part.shape)
        tensors.append(rescaled)
        ops.append(rescale(f"{node.name}__rescale{index}", part, rescaled, clamp))
        names.append(rescaled.name)
    ops.append(
        ir.Concat(name=node.name or out.name, inputs=tuple(names), output=out.name, axis=axis)
    )
    return ops, tensors
