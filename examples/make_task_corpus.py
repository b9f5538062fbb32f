"""Add networks beyond image classifiers to the real-model corpus (issue #12): a text
detector, a text recognizer, a super-resolution net and a voice-activity detector, small
but built like the real ones, with seeded random weights, exported to ONNX and quantized by
onnxruntime exactly as examples/make_torchvision_corpus.py does.

Models, defined here in torch (no pretrained weights exist offline; the architecture is
what the compiler meets):

- `dbnet_det`, 1x3x128x128 -> 1x1x128x128: a DBNet text detector (Liao et al. 2020, as in
  PaddleOCR's det models). A ResNet-style backbone (a stride-2 stem, four stages of basic
  blocks with 1x1 shortcuts at the stride-2 ones, at 1/4 to 1/32 of the input); an FPN neck
  (1x1 lateral convs, top-down nearest x2 upsampling and Add, a 3x3 conv per level, the
  coarser levels upsampled by 8, 4 and 2 and all four concatenated at 1/4); the
  probability-map head: Conv-BN-ReLU, ConvTranspose2d(2x2, stride 2)-BN-ReLU,
  ConvTranspose2d(2x2, stride 2) and Sigmoid.
- `crnn_rec`, 1x3x32x128 -> 1x32x37: a CRNN text recognizer (Shi et al. 2015, as in
  PaddleOCR's rec models without the LSTM): a VGG-style conv stack whose poolings take the
  height from 32 to 1 (2x2 twice, then 2x1 three times) and the width to 32; squeeze of the
  height, permute to a sequence of 32 time steps; a linear classifier per time step (36
  characters and the CTC blank); log_softmax over the classes. `CRNN(lstm=True)` puts a
  bidirectional LSTM before the classifier, as the paper does; it is off here (the issue
  leaves LSTMs out).
- `espcn_sr`, 1x1x64x64 -> 1x1x192x192: ESPCN super-resolution x3 (Shi et al. 2016) on a
  luminance channel: Conv 5x5 (64)-Tanh-Conv 3x3 (32)-Tanh-Conv 3x3 (9), PixelShuffle(3)
  (DepthToSpace in ONNX).
- `vad_conv`, 1x1x64x100 -> 1x1: a convolutional voice-activity detector on a log-mel
  spectrogram (64 mel bands, 100 frames): three Conv-BN-ReLU (the last two of stride 2),
  global average pooling, Linear to one logit and Sigmoid (speech probability).

Each is built under `torch.manual_seed` of a seed from its name, in eval mode, refitted to
the calibration images by make_torchvision_corpus's `_keep_alive` (BatchNorm statistics of
the images, each Conv2d and Linear centred and scaled to a standard deviation of 1), and
then by `_keep_rest_alive` for what `_keep_alive` does not know: ConvTranspose2d and the
per-time-step classifier (channels last) get the same treatment, and the BatchNorms are
measured again after them. It is exported by make_torchvision_corpus's `export_network`
(TorchScript exporter, opset 17, constant folding, input `input`, output `output`) and
quantized by make_corpus's `quantize_forms`. The files are those of the other corpus
scripts, in the same cache (default `~/.cache/verdigris/corpus/`, or `--out DIR`), per
model NAME: `NAME_fp32.onnx`, `NAME_calib.npy` (`--images` seeded images of the model's
input shape, standard normal clipped to +-3), `NAME_qdq.onnx` (QDQ, s8s8, per-channel
weights) and `NAME_qop.onnx` (QOperator, u8s8, per-tensor weights). `vad_conv`'s single
logit needs at least 2 images to be centred and scaled.

The outputs are not class scores (a probability map, per-time-step log-probabilities,
an image, one probability), so bench/corpus.py's top-1 column says little for them: its
LSB columns and the isasim check are what count.

Usage (offline, in the torch venv of make_torchvision_corpus.py; seconds per model)::

    ~/.venvs/verdigris-torch/bin/python examples/make_task_corpus.py
    ~/.venvs/verdigris-torch/bin/python examples/make_task_corpus.py \\
        --models dbnet_det,espcn_sr --out /tmp/corpus

Without torch it says how to make that venv and exits 2. Warnings of the exporter and of
onnxruntime's quantizer are counted per model and the first one is shown. A model that
fails to export or quantize gets one error line on stderr and the others go on; the exit
status is 1 if any failed. `bench/corpus.py` (project venv) reads the cache.
"""

from __future__ import annotations

import argparse
import sys
import zlib
from pathlib import Path

# make_corpus.py and make_torchvision_corpus.py lie beside this file; examples/ is no package.
sys.path.insert(0, str(Path(__file__).resolve().parent))

# Input shape by model name.
MODELS: dict[str, tuple[int, ...]] = {
    "dbnet_det": (1, 3, 128, 128),
    "crnn_rec": (1, 3, 32, 128),
    "espcn_sr": (1, 1, 64, 64),
    "vad_conv": (1, 1, 64, 100),
}


def networks():
    """The model classes, by name (defined here so that torch is imported only when needed)."""
    import torch
    from torch import nn
    from torch.nn import functional

    def conv_bn_relu(cin: int, cout: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )

    class BasicBlock(nn.Module):
        """ResNet's basic block; a 1x1 conv with BN on the shortcut where the shape changes."""

        def __init__(self, cin: int, cout: int, stride: int):
            super().__init__()
            self.body = nn.Sequential(
                conv_bn_relu(cin, cout, 3, stride),
                nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
                nn.BatchNorm2d(cout),
            )
            self.shortcut = nn.Identity()
            if stride != 1 or cin != cout:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
                )

        def forward(self, x):
            return torch.relu(self.body(x) + self.shortcut(x))

    class DBNet(nn.Module):
        """Backbone (1/4 .. 1/32), FPN neck (concatenated at 1/4), probability-map head."""

        def __init__(self, widths=(16, 24, 32, 48), inner: int = 32):
            super().__init__()
            self.stem = nn.Sequential(conv_bn_relu(3, 16, 3, 2), nn.MaxPool2d(3, 2, 1))
            stages, cin = [], 16
            for i, width in enumerate(widths):
                stride = 1 if i == 0 else 2
                stages.append(
                    nn.Sequential(BasicBlock(cin, width, stride), BasicBlock(width, width, 1))
                )
                cin = width
            self.stages = nn.ModuleList(stages)
            self.lateral = nn.ModuleList(nn.Conv2d(w, inner, 1, bias=False) for w in widths)
            self.smooth = nn.ModuleList(
                nn.Conv2d(inner, inner // 4, 3, 1, 1, bias=False) for _ in widths
            )
            self.head = nn.Sequential(
                conv_bn_relu(inner, inner // 4, 3),
                nn.ConvTranspose2d(inner // 4, inner // 4, 2, 2),
                nn.BatchNorm2d(inner // 4),
                nn.ReLU(inplace=True),
                nn.ConvTranspose2d(inner // 4, 1, 2, 2),
                nn.Sigmoid(),
            )

        def forward(self, x):
            x = self.stem(x)
            features = []
            for stage in self.stages:
                x = stage(x)
                features.append(x)
            laterals = [conv(f) for conv, f in zip(self.lateral, features, strict=True)]
            for i in range(len(laterals) - 1, 0, -1):  # top-down: upsample x2 and add
                up = functional.interpolate(laterals[i], scale_factor=2.0, mode="nearest")
                laterals[i - 1] = laterals[i - 1] + up
            maps = [conv(p) for conv, p in zip(self.smooth, laterals, strict=True)]
            maps = [maps[0]] + [
                functional.interpolate(p, scale_factor=float(2**i), mode="nearest")
                for i, p in enumerate(maps[1:], 1)
            ]
            return self.head(torch.cat(maps[::-1], 1))

    class TimeLinear(nn.Module):
        """A linear layer on the last axis of a sequence (N, T, C); not an nn.Linear, whose
        refit in `_keep_alive` takes axis 1 for the channels."""

        def __init__(self, cin: int, cout: int):
            super().__init__()
            reference = nn.Linear(cin, cout)  # torch's initialization
            self.weight = nn.Parameter(reference.weight.detach().clone())
            self.bias = nn.Parameter(reference.bias.detach().clone())

        def forward(self, x):
            return functional.linear(x, self.weight, self.bias)

    class CRNN(nn.Module):
        """VGG-style conv stack (height 32 -> 1, width / 4), sequence, per-step classifier."""

        def __init__(self, classes: int = 37, lstm: bool = False):
            super().__init__()
            self.features = nn.Sequential(
                conv_bn_relu(3, 16),
                nn.MaxPool2d(2, 2),  # 16 x 64
                conv_bn_relu(16, 32),
                nn.MaxPool2d(2, 2),  # 8 x 32
                conv_bn_relu(32, 48),
                conv_bn_relu(48, 48),
                nn.MaxPool2d((2, 1), (2, 1)),  # 4 x 32
                conv_bn_relu(48, 64),
                conv_bn_relu(64, 64),
                nn.MaxPool2d((2, 1), (2, 1)),  # 2 x 32
                conv_bn_relu(64, 64),
                nn.MaxPool2d((2, 1), (2, 1)),  # 1 x 32
            )
            self.lstm = nn.LSTM(64, 32, bidirectional=True, batch_first=True) if lstm else None
            self.classifier = TimeLinear(64, classes)

        def forward(self, x):
            x = self.features(x).squeeze(2).permute(0, 2, 1)  # N, T, C
            if self.lstm is not None:
                x, _ = self.lstm(x)
            return functional.log_softmax(self.classifier(x), dim=2)

    class ESPCN(nn.Module):
        def __init__(self, upscale: int = 3):
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(1, 64, 5, 1, 2),
                nn.Tanh(),
                nn.Conv2d(64, 32, 3, 1, 1),
                nn.Tanh(),
                nn.Conv2d(32, upscale**2, 3, 1, 1),
                nn.PixelShuffle(upscale),
            )

        def forward(self, x):
            return self.body(x)

    class VAD(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                conv_bn_relu(1, 16, 3),
                conv_bn_relu(16, 32, 3, 2),
                conv_bn_relu(32, 32, 3, 2),
                nn.AdaptiveAvgPool2d(1),
                nn.Flatten(),
            )
            self.classifier = nn.Linear(32, 1)

        def forward(self, x):
            return torch.sigmoid(self.classifier(self.features(x)))

    return {"dbnet_det": DBNet, "crnn_rec": CRNN, "espcn_sr": ESPCN, "vad_conv": VAD}


def _keep_rest_alive(network, images) -> None:
    """After `_keep_alive`: centre and scale the layers it does not know, ConvTranspose2d
    (channels on axis 1) and the per-time-step classifier (channels last), like it does
    Conv2d and Linear, in one forward pass of `images`; each BatchNorm2d measures its input
    again (those after a rescaled layer see a new one, the others the same)."""
    import torch
    from torch import nn

    done = set()

    def hook(layer, inputs, output):
        if layer in done:
            return None
        done.add(layer)
        if isinstance(layer, nn.BatchNorm2d):
            (x,) = inputs
            axes = [axis for axis in range(x.dim()) if axis != 1]
            layer.running_mean.copy_(x.mean(axes))
            layer.running_var.copy_(x.var(axes, unbiased=False))
            return layer(x)
        channel = 1 if isinstance(layer, nn.ConvTranspose2d) else output.dim() - 1
        axes = [axis for axis in range(output.dim()) if axis != channel]
        if layer.bias is not None:
            mean = output.mean(axes, keepdim=True)
            layer.bias -= mean.flatten()
            output = output - mean
        scale = output.std()
        layer.weight /= scale
        if layer.bias is not None:
            layer.bias /= scale
        return output / scale

    kinds = (nn.ConvTranspose2d, nn.BatchNorm2d)
    handles = [
        m.register_forward_hook(hook)
        for m in network.modules()
        if isinstance(m, kinds) or type(m).__name__ == "TimeLinear"
    ]
    with torch.no_grad():
        network(torch.from_numpy(images))
    for handle in handles:
        handle.remove()


def build(name: str, out: Path, count: int, caught: list[str]) -> list[str]:
    """Write the four files of one model; returns the steps that failed (with why)."""
    import numpy as np
    import onnx
    import torch
    from make_corpus import calibration_images, first_line, quantize_forms
    from make_torchvision_corpus import _keep_alive, export_network

    if name == "vad_conv" and count < 2:
        return ["refit: one logit needs at least 2 calibration images to be centred"]
    seed = zlib.crc32(name.encode())
    shape = MODELS[name]
    fp32 = out / f"{name}_fp32.onnx"
    # The calibration images are needed before the export (the weights are fitted to them):
    # make_corpus's, of a model that is only the input.
    shape_only = onnx.helper.make_model(
        onnx.helper.make_graph(
            [],
            name,
            [onnx.helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, shape)],
            [],
        )
    )
    images = calibration_images(shape_only, count, seed)
    try:
        torch.manual_seed(seed)
        network = networks()[name]().eval()
        _keep_alive(network, images)
        _keep_rest_alive(network, images)
        export_network(network, fp32, shape, caught)
        model = onnx.load(fp32)
        onnx.checker.check_model(model)
    except Exception as error:  # the exporter's errors have no common type
        fp32.unlink(missing_ok=True)
        return [f"export: {first_line(error)}"]
    np.save(out / f"{name}_calib.npy", images)
    return quantize_forms(model, name, out, images, None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="cache folder (default: make_corpus's)")
    parser.add_argument("--models", help="comma-separated names (default: all)")
    parser.add_argument("--images", type=int, default=4, help="calibration images per model")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (fixes results)")
    args = parser.parse_args(argv)
    from make_torchvision_corpus import build_models, chosen_models, missing_packages

    names = chosen_models(parser, args, MODELS, MODELS)
    if missing_packages(["numpy", "onnx", "onnxruntime", "torch"], "torch"):
        return 2
    import torch
    from make_corpus import DEFAULT_OUT

    torch.set_num_threads(args.threads)
    return build_models(names, args.out or DEFAULT_OUT, args.images, build)


if __name__ == "__main__":
    sys.exit(main())
