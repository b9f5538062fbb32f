"""Top-1 accuracy on the digits test split: golden model vs onnxruntime, per shipped model.

onnxruntime is run twice: with its default graph optimizations (what a user gets) and with
them off (where it follows the ONNX reference). The golden model must be within 1 point of
onnxruntime on every int8 model. For the low-bit QONNX files (examples/lowbit.md), which
onnxruntime cannot run, both columns are QONNX's own executor.
"""

import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from verdigris.compiler.frontend import import_model
from verdigris.sim.golden import run_graph
from verdigris.verify.reference import run_qonnx

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _onnxruntime(path: Path, x: np.ndarray, optimize: bool) -> np.ndarray:
    options = ort.SessionOptions()
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    if session.get_inputs()[0].shape[0] == 1:  # a file of batch 1: one image at a time
        return np.concatenate([session.run(None, {"input": image[None]})[0] for image in x])
    return session.run(None, {"input": x})[0]


def main() -> int:
    data = np.load(EXAMPLES / "digits_test.npz")
    x, labels = data["x"], data["y"]
    print(f"digits test split: {len(labels)} images")
    print(f"{'model':<22} {'golden':>7} {'ort':>7} {'ort-noopt':>9} {'delta':>6} {'golden s':>9}")
    worst = 0.0
    for path in sorted((EXAMPLES / "models").glob("*.onnx")):
        if path.stem.endswith("_qonnx"):  # onnxruntime has no QONNX ops: QONNX's executor
            logits = run_qonnx(path, {"input": x})["output"]
            onnxruntime = plain = np.mean(logits.argmax(1) == labels)
        else:
            onnxruntime = np.mean(_onnxruntime(path, x, True).argmax(1) == labels)
            plain = np.mean(_onnxruntime(path, x, False).argmax(1) == labels)
        if path.stem.endswith("_fp32"):
            print(f"{path.stem:<22} {'-':>7} {onnxruntime:>7.2%} {plain:>9.2%}   (float)")
            continue
        start = time.perf_counter()
        golden = np.mean(run_graph(import_model(path), {"input": x})["output"].argmax(1) == labels)
        seconds = time.perf_counter() - start
        delta = 100 * (golden - onnxruntime)
        worst = max(worst, abs(delta))
        print(
            f"{path.stem:<22} {golden:>7.2%} {onnxruntime:>7.2%} {plain:>9.2%} {delta:>+6.2f} "
            f"{seconds:>9.2f}"
        )
    verdict = "within" if worst <= 1.0 else "NOT within"
    print(f"largest |golden - onnxruntime| = {worst:.2f} points ({verdict} 1 point)")
    return 0 if worst <= 1.0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
