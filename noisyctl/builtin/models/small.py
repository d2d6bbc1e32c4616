"""Small built-in architectures: quick on a CPU, sized for digits, MNIST, CIFAR and feature vectors."""

from __future__ import annotations

from noisyctl.api import ModelSpec, NoisyctlError


def _not_text(spec: ModelSpec, model: str) -> None:
    if spec.input_kind == "text":
        raise NoisyctlError(f"{model} cannot read text; use text-bag (built in) or hf:<folder> (a Hugging Face "
                            f"model and tokenizer on disk)")


def _image_channels(spec: ModelSpec, model: str) -> int:
    _not_text(spec, model)
    if len(spec.input_shape) != 3:
        raise NoisyctlError(f"{model} needs image inputs (channels, height, width), not {spec.input_shape}; "
                            f"use mlp for feature vectors")
    return spec.input_shape[0]


def small_cnn(spec: ModelSpec, width: int = 32):
    """A four-layer CNN with batch norm; adapts to any input size and channel count."""
    from torch import nn

    width = int(width)
    if width < 1:
        raise NoisyctlError(f"small-cnn: width must be at least 1, not {width}")
    channels = _image_channels(spec, "small-cnn")

    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    return nn.Sequential(
        *block(channels, width), *block(width, width), nn.MaxPool2d(2),
        *block(width, 2 * width), *block(2 * width, 2 * width),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(2 * width, spec.num_classes),
    )


def lenet(spec: ModelSpec):
    """LeNet-5 (two 5x5 convolutions, three dense layers); any input size and channel count."""
    from torch import nn

    channels = _image_channels(spec, "lenet")
    return nn.Sequential(
        nn.Conv2d(channels, 6, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2, ceil_mode=True),
        nn.Conv2d(6, 16, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2, ceil_mode=True),
        nn.AdaptiveAvgPool2d(5), nn.Flatten(),
        nn.Linear(16 * 25, 120), nn.ReLU(inplace=True), nn.Linear(120, 84), nn.ReLU(inplace=True),
        nn.Linear(84, spec.num_classes),
    )


def mlp(spec: ModelSpec, hidden: int = 256, layers: int = 2, dropout: float = 0.0):
    """A multilayer perceptron on feature vectors (or flattened images); options hidden, layers, dropout."""
    import math

    from torch import nn

    _not_text(spec, "mlp")
    hidden, layers, dropout = int(hidden), int(layers), float(dropout)
    if layers < 1 or hidden < 1 or not 0 <= dropout < 1:
        raise NoisyctlError("mlp: layers and hidden must be positive and dropout in [0, 1)")
    width = math.prod(spec.input_shape)
    stack: list = [nn.Flatten()]
    for _ in range(layers):
        stack += [nn.Linear(width, hidden), nn.ReLU(inplace=True)]
        if dropout:
            stack.append(nn.Dropout(dropout))
        width = hidden
    return nn.Sequential(*stack, nn.Linear(width, spec.num_classes))
