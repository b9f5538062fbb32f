"""Add torchvision architectures to the real-model corpus: each with seeded random weights,
exported to ONNX and quantized by onnxruntime exactly as examples/make_corpus.py does.

Models: mobilenet_v2, mobilenet_v3_small, mobilenet_v3_large, efficientnet_b0, resnet18,
shufflenet_v2_x1_0, squeezenet1_1, googlenet (aux_logits=False) and regnet_x_400mf. Each
is built by torchvision with `weights=None` (its own initialization, under
`torch.manual_seed` of a seed from the model's name), put in eval mode, refitted to the
calibration images (below) and exported with the TorchScript exporter
(`torch.onnx.export(..., dynamo=False)`, opset 17, constant folding, a fixed 1x3x224x224
input named `input`, output `output`). The files are those of
make_corpus.py, in the same cache (default `~/.cache/verdigris/corpus/`, or `--out DIR`),
per model NAME:

- `NAME_fp32.onnx`: the exported float model;
- `NAME_calib.npy`: `--images` seeded random images, 1x3x224x224 each (float32, standard
  normal clipped to +-3; make_corpus's `calibration_images`);
- `NAME_qdq.onnx`: QDQ, int8 activations, per-channel int8 weights (s8s8);
- `NAME_qop.onnx`: QOperator, uint8 activations, per-tensor int8 weights (u8s8).

Both quantized files come from the float model pre-processed by `quant_pre_process` (shape
inference and onnxruntime's basic optimizations; the exporter has already folded
BatchNormalization into Conv), with MinMax calibration on the calibration images
(make_corpus's `quantize`). No opset conversion is needed: opset 17 is above the 13 that
per-channel DequantizeLinear and the importer need. A rerun with the same package
versions writes byte-identical files; they are 1 to 47 MB each (290 MB for the set).

torchvision's initialization is made for training, not for meaningful outputs: in eval
mode the features of googlenet and shufflenet_v2 fade away, so that their logits are the
classifier's bias, independent of the image, and the logits of the MobileNets and
efficientnet_b0 are 1e-9 to 1e-14. So before the export the weights are refitted to the
calibration images, in one forward pass of them (`_keep_alive`, after LSUV, Mishkin and
Matas 2016): each BatchNorm's running mean and variance become those of its input on the
images, each Conv2d and Linear with a bias gets the bias that centres each of its output
channels on the images, and each Conv2d and Linear has its weight and bias divided by the
standard deviation of its output. The logits then have a standard deviation of 1 on the
images (squeezenet1_1, whose last conv is followed by ReLU and average pooling: 0.06),
most of it from image to image, and the images get mostly different top-1 classes. The weights
remain random: top-1 agreement measures arithmetic, not accuracy.

torch and torchvision are a 5.5 GB install, so they live in a venv of their own, outside
the repository and apart from the project's `.venv` (Python 3.11; onnx and onnxruntime at
the project's versions, so that the files match make_corpus.py's)::

    python3.11 -m venv ~/.venvs/verdigris-torch
    ~/.venvs/verdigris-torch/bin/pip install torch==2.14.1 torchvision==0.29.1 \\
        onnx==1.22.0 onnxruntime==1.32.0 numpy==2.4.6

Usage (offline; about 1.5 min on 2 cores for the whole set)::

    ~/.venvs/verdigris-torch/bin/python examples/make_torchvision_corpus.py
    ~/.venvs/verdigris-torch/bin/python examples/make_torchvision_corpus.py \\
        --models resnet18,mobilenet_v2 --out /tmp/corpus

Without torch or torchvision it says how to make that venv and exits 2. Warnings of the
exporter and of onnxruntime's quantizer are counted per model and the first one is shown.
A model that fails to export or quantize gets one error line on stderr and the others go
on; the exit status is 1 if any failed. `bench/corpus.py` (project venv) reads the cache.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
import zlib
from pathlib import Path

# make_corpus.py lies beside this file; examples/ is no package.
sys.path.insert(0, str(Path(__file__).resolve().parent))

SHAPE = (1, 3, 224, 224)
OPSET = 17
# torchvision builder keyword arguments beyond `weights=None`, by model name.
MODELS: dict[str, dict] = {
    "mobilenet_v2": {},
    "mobilenet_v3_small": {},
    "mobilenet_v3_large": {},
    "efficientnet_b0": {},
    "resnet18": {},
    "shufflenet_v2_x1_0": {},
    "squeezenet1_1": {},
    "googlenet": {"aux_logits": False, "init_weights": True},
    "regnet_x_400mf": {},
}
VENV_HELP = (
    "python3.11 -m venv ~/.venvs/verdigris-torch && ~/.venvs/verdigris-torch/bin/pip install "
    "torch==2.14.1 torchvision==0.29.1 onnx==1.22.0 onnxruntime==1.32.0 numpy==2.4.6, then "
    "~/.venvs/verdigris-torch/bin/python examples/make_torchvision_corpus.py"
)


def _keep_alive(network, images) -> None:
    """Refit `network`'s weights (in eval mode) to `images` so that its activations neither
    fade nor blow up, in one forward pass, in the spirit of LSUV (Mishkin and Matas 2016).

    torchvision's initialization is made for training, where BatchNorm uses batch
    statistics; in eval mode its running statistics (mean 0, variance 1) do not normalize,
    and the features of several networks fade away (googlenet's logits do not depend on the
    image, efficientnet_b0's are 1e-14). So each BatchNorm takes the mean and variance of
    its input on the images as running statistics; each Conv2d and Linear with a bias gets
    the bias that makes every output channel's mean on the images zero (else a constant per
    class dominates the logits and they hardly depend on the image), and then has weight and
    bias divided by one number, the standard deviation of its output on the images. Hooks
    do it at each layer's first call, in forward order, and replace the layer's output with
    the corrected one, so that later layers see what the final network computes.
    """
    import torch
    from torch import nn

    done = set()

    def hook(layer, inputs, output):
        if layer in done:  # a layer called twice keeps what its first call gave it
            return None
        done.add(layer)
        axes = [axis for axis in range(output.dim()) if axis != 1]  # all but the channels
        if isinstance(layer, nn.BatchNorm2d):
            (x,) = inputs
            layer.running_mean.copy_(x.mean(axes))
            layer.running_var.copy_(x.var(axes, unbiased=False))
            return layer(x)  # `done` stops the recursion
        if layer.bias is not None and output.numel() > output.shape[1]:  # one value: no mean
            mean = output.mean(axes, keepdim=True)
            layer.bias -= mean.flatten()
            output = output - mean
        scale = output.std()
        layer.weight /= scale
        if layer.bias is not None:
            layer.bias /= scale
        return output / scale

    kinds = (nn.Conv2d, nn.Linear, nn.BatchNorm2d)
    handles = [m.register_forward_hook(hook) for m in network.modules() if isinstance(m, kinds)]
    with torch.no_grad():
        network(torch.from_numpy(images))
    for handle in handles:
        handle.remove()


def export(name: str, path: Path, seed: int, images, caught: list[str]) -> None:
    """Build torchvision's `name` with seeded random weights, keep it alive on `images`
    (`_keep_alive`) and export it to `path`."""
    import torch
    import torchvision

    torch.manual_seed(seed)
    network = torchvision.models.get_model(name, weights=None, **MODELS[name]).eval()
    _keep_alive(network, images)
    export_network(network, path, SHAPE, caught)


def export_network(network, path: Path, shape: tuple[int, ...], caught: list[str]) -> None:
    """Export `network` to `path` for a fixed input of `shape` (TorchScript exporter, opset
    OPSET, constant folding, input `input`, output `output`); the exporter's warnings are
    added to `caught`."""
    import torch

    example = torch.zeros(shape)  # it only fixes the shapes
    with warnings.catch_warnings(record=True) as seen, torch.no_grad():
        warnings.simplefilter("always")
        # The TorchScript exporter is legacy since torch 2.9 (asked for on purpose) and uses
        # deprecated functions of its own: those notices say nothing about the model.
        warnings.filterwarnings("ignore", "You are using the legacy TorchScript", Warning)
        warnings.filterwarnings("ignore", "The feature will be removed", DeprecationWarning)
        torch.onnx.export(
            network,
            (example,),
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=["input"],
            output_names=["output"],
            do_constant_folding=True,
        )
    caught += [f"{w.category.__name__}: {str(w.message).splitlines()[0]}" for w in seen]


def build(name: str, out: Path, count: int, caught: list[str]) -> list[str]:
    """Write the four files of one model; returns the steps that failed (with why)."""
    import numpy as np
    import onnx
    from make_corpus import calibration_images, first_line, quantize_forms

    seed = zlib.crc32(name.encode())
    fp32 = out / f"{name}_fp32.onnx"
    # The calibration images are needed before the export (the weights are fitted to them):
    # make_corpus's, of a model that is only the input.
    shape_only = onnx.helper.make_model(
        onnx.helper.make_graph(
            [],
            name,
            [onnx.helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, SHAPE)],
            [],
        )
    )
    images = calibration_images(shape_only, count, seed)
    try:
        export(name, fp32, seed, images, caught)
        model = onnx.load(fp32)
        onnx.checker.check_model(model)
    except Exception as error:  # the exporter's errors have no common type
        fp32.unlink(missing_ok=True)
        return [f"export: {first_line(error)}"]
    np.save(out / f"{name}_calib.npy", images)
    return quantize_forms(model, name, out, images, None)


def chosen_models(parser, args, models, default, prefix: str = "") -> list[str]:
    """The model names of `--models` (without `prefix`), else `default`; a parser error for
    an unknown name or fewer than one `--images`."""
    names = [n.removeprefix(prefix) for n in args.models.split(",")] if args.models else default
    unknown = [n for n in names if n not in models]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; available: {', '.join(models)}")
    if args.images < 1:
        parser.error(f"--images must be at least 1, not {args.images}")
    return list(names)


def missing_packages(modules: list[str], what: str, extra: str = "") -> bool:
    """Whether one of `modules` cannot be imported; if so, say which `what` the script
    needs and how to make a venv for them (`extra` appended)."""
    import importlib

    try:
        for module in modules:
            importlib.import_module(module)
    except ImportError as error:
        print(
            f"{Path(sys.argv[0]).name}: needs {what} ({error}); make a venv for them outside "
            f"the repository: {VENV_HELP}{extra}",
            file=sys.stderr,
        )
        return True
    return False


def log_to_stderr(out: Path):
    """Log progress to stderr and catch onnxruntime's warnings (the returned handler's
    `messages`); make the cache folder `out`."""
    from make_corpus import _Warnings, logger

    quantizer = _Warnings()
    logging.basicConfig(level=logging.WARNING, handlers=[quantizer], force=True)
    logger.addHandler(logging.StreamHandler(sys.stderr))
    logger.setLevel(logging.INFO)
    logger.propagate = False
    out.mkdir(parents=True, exist_ok=True)
    return quantizer


def build_models(names: list[str], out: Path, count: int, build) -> int:
    """`build(name, out, count, caught)` for each model, logging its failures, the warnings
    of the exporter (`caught`) and of onnxruntime, and its time; 1 if any failed, else 0."""
    from make_corpus import first_line, logger

    quantizer = log_to_stderr(out)
    failed = 0
    for name in names:
        start = time.perf_counter()
        logger.info("%s: building, exporting, calibrating, quantizing ...", name)
        caught: list[str] = []
        try:
            failures = build(name, out, count, caught)
        except Exception as error:
            failures = [first_line(error)]
        for failure in failures:
            logger.error("%s: FAILED %s", name, failure)
        for source, messages in (("the exporter", caught), ("onnxruntime", quantizer.messages)):
            if messages:
                logger.info(
                    "%s: %s warned %d time(s), first: %s", name, source, len(messages), messages[0]
                )
        quantizer.messages.clear()
        failed += bool(failures)
        logger.info("%s: done in %.1f s", name, time.perf_counter() - start)
    logger.info("wrote %s (%d of %d models with a failure)", out, failed, len(names))
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="cache folder (default: make_corpus's)")
    parser.add_argument("--models", help="comma-separated names (default: all)")
    parser.add_argument("--images", type=int, default=4, help="calibration images per model")
    args = parser.parse_args(argv)
    names = chosen_models(parser, args, MODELS, MODELS)
    modules = ["numpy", "onnx", "onnxruntime", "torch", "torchvision"]
    if missing_packages(modules, "torch and torchvision"):
        return 2
    from make_corpus import DEFAULT_OUT

    return build_models(names, args.out or DEFAULT_OUT, args.images, build)


if __name__ == "__main__":
    sys.exit(main())
