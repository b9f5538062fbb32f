"""Add *trained* torchvision architectures to the real-model corpus: each trained on the
scikit-learn digits at 32x32, exported to ONNX and quantized as make_torchvision_corpus.py
quantizes its random ones.

Why: the random (LSUV-refitted) networks of make_torchvision_corpus.py are chaotic, so that
a rare one-LSB difference of one op (a rounding tie) grows layer by layer and golden and
onnxruntime end up far apart although each op agrees; trained networks should damp such
perturbations. These models test that, offline and in minutes.

Data: make_digits_models.py's split of the 8x8 digits (`load_digits_split`, 1437 training
and 360 test images; the test part is examples/digits_test.npz), upsampled bilinearly to
`--size` (32) pixels square, repeated over 3 channels and standardized with the training
part's mean and standard deviation. Models (torchvision, `weights=None, num_classes=10`):
by default mobilenet_v2, mobilenet_v3_small, resnet18, efficientnet_b0, shufflenet_v2_x1_0
and squeezenet1_1; with `--models` also mobilenet_v3_large, regnet_x_400mf and googlenet
(aux_logits=False). Each is trained from its own initialization under a seed from its name,
with AdamW (weight decay 1e-4), a one-cycle schedule peaking at 3e-3 and minibatches of 32
in a seeded order for 5 epochs, or, where 5 leave it below 95% test accuracy in float,
the fewest of 8, 12, 16 and 20 that reach it (mobilenet_v2 8, efficientnet_b0 12,
regnet_x_400mf 12 at a peak of 1e-2; squeezenet1_1 15 at 3e-4; see TRAINING), on one
thread (`--threads`), so that a rerun with the same package versions writes byte-identical
files. Then every BatchNorm's running statistics are re-estimated on the training images
(`recalibrate`: MobileNetV3's momentum of 0.01 leaves them near their initial values after
so few steps, and it scores 10% without this).

The network is exported as make_torchvision_corpus.py does (TorchScript exporter, opset
17, constant folding, a fixed 1x3x32x32 input `input`, output `output`) and written, per
model NAME, as `digits_NAME` into make_corpus's cache (default `~/.cache/verdigris/corpus/`,
or `--out DIR`), with the same files:

- `digits_NAME_fp32.onnx`: the float model;
- `digits_NAME_calib.npy`: `--images` (32) training images, a seeded choice, 1x3x32x32 each;
- `digits_NAME_qdq.onnx`: QDQ, int8 activations, per-channel int8 weights (s8s8);
- `digits_NAME_qop.onnx`: QOperator, uint8 activations, per-tensor int8 weights (u8s8);

the quantized ones by make_corpus's `quantize_forms` (quant_pre_process, MinMax calibration
on the calibration images). The log gives each model's top-1 accuracy on the 360 test
images under onnxruntime (default options) for the three files. Measured (torch 2.14.1,
torchvision 0.29.1, onnxruntime 1.32.0; fp32 / QDQ / QOperator):

    mobilenet_v2        95.8 / 96.1 / 95.6 %      mobilenet_v3_large  95.8 / 96.4 / 96.4 %
    mobilenet_v3_small  96.9 / 96.9 / 96.9 %      regnet_x_400mf      98.1 / 97.8 / 97.8 %
    resnet18            98.6 / 98.3 / 98.3 %      googlenet           98.1 / 98.1 / 98.1 %
    efficientnet_b0     96.1 / 96.4 / 95.6 %
    shufflenet_v2_x1_0  96.4 / 96.1 / 95.8 %
    squeezenet1_1       96.4 / 96.4 / 96.1 %

The files are 0.8 to 45 MB each (210 MB for all nine). The weights are trained, but on a
toy task: the accuracy only shows that training worked; what bench/corpus.py measures is
agreement between golden and onnxruntime.

What bench/corpus.py found on them (32 calibration images each; the table is in
docs/frontend.md, "Real-model corpus"): golden and onnxruntime agree on top-1 for every
image and within one output LSB on 99.38 to 100% of outputs, never more than 2 LSBs
apart, in all 27 model/form pairs (the lowest: QDQ and float+calibration of
mobilenet_v3_small). Trained for 5 epochs at 3e-3 instead (93.9% and 89.4% accurate),
efficientnet_b0 reached only 97.81% in QDQ and float+calibration (one image 8 LSBs off, its
top-1 flipped) and regnet_x_400mf 96.88% (6 LSBs), both 100% in QOperator form: networks
trained too little amplify the rare one-LSB differences at rounding ties, better-trained
ones damp them. The same architectures with make_torchvision_corpus.py's random weights at
32x32 reach 78 to 97% in QDQ.

Needs torch, torchvision and scikit-learn (for the digits), in the venv of
make_torchvision_corpus.py (its docstring says how to make it) plus
`pip install scikit-learn==1.9.1`. Usage (offline; 8.8 minutes of wall time, 8.5 of CPU,
for all nine on a busy 2-core machine: 5.7 for the default six, efficientnet_b0 the
longest at 2.7, and 3.1 for the other three)::

    ~/.venvs/verdigris-torch/bin/python examples/make_trained_corpus.py
    ~/.venvs/verdigris-torch/bin/python examples/make_trained_corpus.py \\
        --models googlenet,resnet18 --out /tmp/corpus
    python bench/corpus.py --models digits_resnet18,digits_mobilenet_v2   # project venv

`--epochs` and `--lr` override every model's training. Warnings of the exporter and of
onnxruntime's quantizer are counted per model and the first one is shown; a model that
fails gets one error line on stderr and the others go on; the exit status is 1 if any
failed, 2 without torch, torchvision or scikit-learn.
"""

from __future__ import annotations

import argparse
import sys
import time
import zlib
from pathlib import Path

# make_corpus.py, make_torchvision_corpus.py and make_digits_models.py lie beside this file.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_torchvision_corpus import (
    MODELS,  # torchvision builder keyword arguments beyond `weights=None`, by name
    chosen_models,
    log_to_stderr,
    missing_packages,
)

PREFIX = "digits_"
# Built when no --models is given (about 6 minutes); the others take 3 more.
DEFAULT = (
    "mobilenet_v2",
    "mobilenet_v3_small",
    "resnet18",
    "efficientnet_b0",
    "shufflenet_v2_x1_0",
    "squeezenet1_1",
)
BATCH = 32
EPOCHS, LR = 5, 3e-3
# Training beyond EPOCHS and LR, by model name. The rule: every model reaches at least 95%
# fp32 test accuracy, with the fewest epochs of 8, 12, 16 and 20 that do so at LR (another
# LR only where LR fails at all four); fp32 test accuracy per epoch count in the comments.
# At LR (and 1e-3) squeezenet1_1's last convolution (followed by ReLU) dies, all its
# outputs 0, and it scores 10%; at 3e-4 it needs more epochs (5: 67%).
TRAINING: dict[str, dict] = {
    "squeezenet1_1": {"epochs": 15, "lr": 3e-4},
    "mobilenet_v2": {"epochs": 8},  # 5: 93.9%, 8: 95.8%
    "efficientnet_b0": {"epochs": 12},  # 5: 93.9%, 8: 94.7%, 12: 96.1%
    # At LR 5: 89.4%, 8: 92.8%, 12: 94.2%, 16: 93.3%, 20: 94.4%; at 1e-3 8: 84.7%,
    # 12: 85.6%; at 1e-2 8: 93.6%, 12: 98.1%.
    "regnet_x_400mf": {"epochs": 12, "lr": 1e-2},
}


def digits(size: int):
    """The digits split of make_digits_models.py (the test part is examples/digits_test.npz),
    upsampled bilinearly from 8x8 to `size`x`size`, repeated over 3 channels and
    standardized with the training part's mean and standard deviation: (x_train, y_train,
    x_test, y_test), float32 NCHW and int64."""
    import numpy as np
    import torch
    from make_digits_models import load_digits_split

    split = load_digits_split()
    mean, std = float(split.x_train.mean()), float(split.x_train.std())

    def prepare(x):
        x = torch.nn.functional.interpolate(
            torch.from_numpy(x), size=(size, size), mode="bilinear", align_corners=False
        )
        return np.ascontiguousarray(((x.repeat(1, 3, 1, 1) - mean) / std).numpy())

    return prepare(split.x_train), split.y_train, prepare(split.x_test), split.y_test


def train(name: str, seed: int, x, y, epochs: int, lr: float):
    """torchvision's `name` (random init under `seed`, 10 classes) trained with AdamW and a
    one-cycle schedule on minibatches of BATCH in a seeded order, then `recalibrate`d;
    returned in eval mode."""
    import torch
    import torchvision
    from torch import nn

    torch.manual_seed(seed)
    network = torchvision.models.get_model(name, weights=None, num_classes=10, **MODELS[name])
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    steps = epochs * ((len(x) + BATCH - 1) // BATCH)
    optimizer = torch.optim.AdamW(network.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    loss_fn = nn.CrossEntropyLoss()
    order = torch.Generator().manual_seed(seed)
    network.train()
    for _ in range(epochs):
        permutation = torch.randperm(len(x), generator=order)
        for start in range(0, len(x), BATCH):
            batch = permutation[start : start + BATCH]
            if len(batch) < 2:  # BatchNorm needs two samples
                continue
            optimizer.zero_grad()
            loss_fn(network(x[batch]), y[batch]).backward()
            optimizer.step()
            schedule.step()
    return recalibrate(network.eval(), x)


def recalibrate(network, x):
    """`network` with each BatchNorm's running statistics replaced by their exact average
    over `x` (in batches of BATCH, everything else in eval mode). A few epochs leave some of
    them far from the truth: torchvision's MobileNetV3 uses momentum 0.01, so that after
    some 200 steps its running statistics are still mostly the initial 0 and 1, and it
    scores 10% in eval mode."""
    import torch
    from torch import nn

    norms = [m for m in network.modules() if isinstance(m, nn.BatchNorm2d)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average
        norm.train()
    with torch.no_grad():
        for start in range(0, len(x), BATCH):
            network(x[start : start + BATCH])
    return network.eval()


def accuracy(path: Path, x, y) -> float:
    """Top-1 accuracy of an ONNX file under onnxruntime (default options), one image at a
    time (the exported batch is 1)."""
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    logits = [session.run(None, {"input": x[i : i + 1]})[0] for i in range(len(x))]
    return float(np.mean(np.concatenate(logits).argmax(1) == y))


def build(name: str, data, args, caught: list[str]) -> tuple[list[str], dict[str, float]]:
    """Train, export and quantize one model and measure its test accuracy in every form;
    returns the steps that failed (with why) and the accuracies by form."""
    import numpy as np
    import onnx
    from make_corpus import first_line, quantize_forms
    from make_torchvision_corpus import export_network

    x_train, y_train, x_test, y_test = data
    stem = PREFIX + name
    seed = zlib.crc32(stem.encode())
    fp32 = args.out / f"{stem}_fp32.onnx"
    recipe = {"epochs": EPOCHS, "lr": LR, **TRAINING.get(name, {})}
    epochs, lr = args.epochs or recipe["epochs"], args.lr or recipe["lr"]
    network = train(name, seed, x_train, y_train, epochs, lr)
    try:
        export_network(network, fp32, (1, 3, args.size, args.size), caught)
        model = onnx.load(fp32)
        onnx.checker.check_model(model)
    except Exception as error:  # the exporter's errors have no common type
        fp32.unlink(missing_ok=True)
        return [f"export: {first_line(error)}"], {}
    # Calibration images: a seeded choice of training images.
    chosen = np.random.default_rng(seed + 1).permutation(len(x_train))[: args.images]
    images = np.ascontiguousarray(x_train[np.sort(chosen)])
    np.save(args.out / f"{stem}_calib.npy", images)
    failures = quantize_forms(model, stem, args.out, images, None)
    accuracies = {}
    for form in ("fp32", "qdq", "qop"):
        path = args.out / f"{stem}_{form}.onnx"
        if path.exists():
            accuracies[form] = accuracy(path, x_test, y_test)
    return failures, accuracies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="cache folder (default: make_corpus's)")
    parser.add_argument(
        "--models",
        help=f"comma-separated names, of {', '.join(MODELS)} (default: {', '.join(DEFAULT)})",
    )
    parser.add_argument("--images", type=int, default=32, help="calibration images per model")
    parser.add_argument("--size", type=int, default=32, help="input height and width")
    parser.add_argument("--epochs", type=int, help="training epochs (default: per model)")
    parser.add_argument("--lr", type=float, help="peak learning rate (default: per model)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (fixes results)")
    args = parser.parse_args(argv)
    names = chosen_models(parser, args, MODELS, DEFAULT, PREFIX)
    modules = ["numpy", "onnx", "onnxruntime", "sklearn", "torch", "torchvision"]
    extra = " (and pip install scikit-learn==1.9.1 into it)"
    if missing_packages(modules, "torch, torchvision and scikit-learn", extra):
        return 2
    import torch
    from make_corpus import DEFAULT_OUT, first_line, logger

    torch.set_num_threads(args.threads)
    args.out = args.out or DEFAULT_OUT
    quantizer = log_to_stderr(args.out)
    data = digits(args.size)
    failed = 0
    begun = time.perf_counter()
    for name in names:
        start = time.perf_counter()
        logger.info("%s%s: training, exporting, calibrating, quantizing ...", PREFIX, name)
        caught: list[str] = []
        try:
            failures, accuracies = build(name, data, args, caught)
        except Exception as error:
            failures, accuracies = [first_line(error)], {}
        for failure in failures:
            logger.error("%s%s: FAILED %s", PREFIX, name, failure)
        for source, messages in (("the exporter", caught), ("onnxruntime", quantizer.messages)):
            if messages:
                logger.info(
                    "%s%s: %s warned %d time(s), first: %s",
                    PREFIX,
                    name,
                    source,
                    len(messages),
                    messages[0],
                )
        quantizer.messages.clear()
        failed += bool(failures)
        cells = ", ".join(f"{form} {value:.2%}" for form, value in accuracies.items())
        logger.info(
            "%s%s: done in %.1f s; test accuracy %s",
            PREFIX,
            name,
            time.perf_counter() - start,
            cells or "-",
        )
    logger.info(
        "wrote %s in %.0f s (%d of %d models with a failure)",
        args.out,
        time.perf_counter() - begun,
        failed,
        len(names),
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
