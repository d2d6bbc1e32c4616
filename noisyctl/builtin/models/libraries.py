"""Models from timm and torchvision, by name: ``timm:<name>``, ``torchvision:<name>``."""

from __future__ import annotations

from noisyctl.api import ModelSpec, NoisyctlError


def timm_model(spec: ModelSpec, pretrained: bool = False, **options):
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
    if pretrained:
        raise NoisyctlError("noisyctl never downloads weights: save them to a file and pass --weights FILE")
    if spec.input_kind == "text":
        raise NoisyctlError(f"timm:{name} cannot read text; use text-bag or hf:<folder>")
    if len(spec.input_shape) != 3:
        raise NoisyctlError(f"timm:{name} needs image inputs, not {spec.input_shape} (mlp reads feature vectors)")
    channels = spec.input_shape[0]
    try:
        return timm.create_model(name, pretrained=False, num_classes=spec.num_classes, in_chans=channels, **options)
    except TypeError as exc:
        raise NoisyctlError(f"timm:{name}: {exc}") from None


def torchvision_model(spec: ModelSpec, pretrained: bool = False, weights=None, **options):
    """Any torchvision classification model as torchvision:<name>; weights only from a local file."""
    import torch
    from torch import nn
    from torchvision import models

    name = spec.variant
    if not name:
        raise NoisyctlError("say which torchvision model: torchvision:<name>, for example torchvision:resnet18")
    available = models.list_models(module=models)
    if name not in available:
        import difflib

        close = difflib.get_close_matches(name, available, n=5)
        raise NoisyctlError(f"torchvision has no classification model '{name}'"
                            + (f"; similar: {', '.join(close)}" if close else ""))
    if pretrained or weights:
        raise NoisyctlError("noisyctl never downloads weights: save them to a file and pass --weights FILE")
    if len(spec.input_shape) != 3:
        raise NoisyctlError(f"torchvision:{name} needs image inputs, not {spec.input_shape}")
    try:
        model = models.get_model(name, weights=None, num_classes=spec.num_classes, **options)
    except TypeError as exc:
        raise NoisyctlError(f"torchvision:{name}: {exc}") from None
    channels = spec.input_shape[0]
    if channels == 3:
        return model

    class ToRGB(nn.Module):
        """torchvision models take RGB: grayscale is repeated, other channel counts mixed by a 1x1 convolution."""

        def __init__(self) -> None:
            super().__init__()
            self.mix = None if channels == 1 else nn.Conv2d(channels, 3, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.expand(-1, 3, -1, -1) if self.mix is None else self.mix(x)

    return nn.Sequential(ToRGB(), model)
