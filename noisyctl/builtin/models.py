"""Built-in models: a small CNN and any timm architecture."""

from __future__ import annotations

from pathlib import Path

from noisyctl.api import ModelSpec, NoisyctlError, hookimpl


def load_local_weights(model, path: Path, drop_mismatched: bool = True) -> None:
    """Load a state dict from a local .safetensors or torch file without unpickling code.

    Tensors whose shape differs (a classifier for another class count) are left as initialised.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise NoisyctlError(f"weights file {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
            state = state.get("state_dict", state) if isinstance(state, dict) else state
    except Exception as exc:
        raise NoisyctlError(f"cannot read weights from {path}: {type(exc).__name__}: {exc}") from None
    if not isinstance(state, dict):
        raise NoisyctlError(f"{path} does not hold a state dict")
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and (not drop_mismatched or v.shape == own[k].shape)}
    if not usable:
        raise NoisyctlError(f"no tensor in {path} matches the model's parameters")
    model.load_state_dict(usable, strict=False)


def small_cnn(spec: ModelSpec):
    """A four-layer CNN with batch norm; adapts to any input size and channel count."""
    from torch import nn

    if len(spec.input_shape) != 3:
        raise NoisyctlError(f"small-cnn needs image inputs (channels, height, width), not {spec.input_shape}")
    width = int(spec.options.get("width", 32))
    channels = spec.input_shape[0]

    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    model = nn.Sequential(
        *block(channels, width), *block(width, width), nn.MaxPool2d(2),
        *block(width, 2 * width), *block(2 * width, 2 * width),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(2 * width, spec.num_classes),
    )
    if spec.weights:
        load_local_weights(model, spec.weights)
    return model


def timm_model(spec: ModelSpec):
    """Any timm architecture as timm:<name>; weights only from a local file (--weights)."""
    try:
        import timm
    except ImportError:
        raise NoisyctlError("timm is not installed (pip install timm)") from None
    name = spec.variant
    if not name:
        raise NoisyctlError("say which timm model: timm:<name>, for example timm:resnet18")
    if not timm.is_model(name):
        import difflib

        close = timm.list_models(f"*{name}*")[:8] or difflib.get_close_matches(name, timm.list_models(), n=5)
        hint = f"; similar: {', '.join(close)}" if close else ""
        raise NoisyctlError(f"timm has no model '{name}'{hint}")
    if spec.options.get("pretrained"):
        raise NoisyctlError("noisyctl never downloads weights: save them to a file and pass --weights FILE")
    channels = spec.input_shape[0] if len(spec.input_shape) == 3 else 1
    options = {k: v for k, v in spec.options.items() if k != "pretrained"}
    model = timm.create_model(name, pretrained=False, num_classes=spec.num_classes, in_chans=channels, **options)
    if spec.weights:
        load_local_weights(model, spec.weights)
    return model


@hookimpl
def register_models(register):
    register("small-cnn", small_cnn)
    register("timm", timm_model)
