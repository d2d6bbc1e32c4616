"""Training augmentation, applied by the trainer to whole batches on the training device.

Datasets hand over plain tensors; augmentation is a training choice (``train
--augment``). Random draws come from torch's global CPU generator, which the
trainer seeds per epoch, so a resumed run augments exactly as an uninterrupted
one, on any device.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from noisyctl.errors import NoisyctlError

if TYPE_CHECKING:  # torch is imported by whoever holds a batch; commands that never train skip it
    import torch

PRESETS = {
    "none": "no augmentation",
    "crop": "pad by 1/8 of the side and crop back at a random offset (digits, MNIST)",
    "flip-crop": "crop as above and flip horizontally half the time (CIFAR)",
    "resized-crop": "random crop of 8-100% of the area at 3/4-4/3 aspect, resized back, and flip (ImageNet)",
}


def check_preset(name: str) -> str:
    if name not in PRESETS and name != "auto":
        raise NoisyctlError(f"unknown augmentation '{name}'; available: auto, {', '.join(PRESETS)}")
    return name


def _crop(x: torch.Tensor) -> torch.Tensor:
    import torch
    import torch.nn.functional as F

    n, c, h, w = x.shape
    pad = max(1, round(min(h, w) / 8))
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,)).to(x.device)
    dx = torch.randint(0, 2 * pad + 1, (n,)).to(x.device)
    rows = (torch.arange(h, device=x.device)[None, :] + dy[:, None])[:, None, :, None]
    cols = (torch.arange(w, device=x.device)[None, :] + dx[:, None])[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    channel = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


def _flip(x: torch.Tensor) -> torch.Tensor:
    import torch

    flip = (torch.rand(x.shape[0]) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def _resized_crop(x: torch.Tensor) -> torch.Tensor:
    """RandomResizedCrop and horizontal flip for a whole batch, as one affine resampling."""
    import torch
    import torch.nn.functional as F

    n = x.shape[0]
    area = torch.empty(n).uniform_(0.08, 1.0)
    log_ratio = torch.empty(n).uniform_(math.log(3 / 4), math.log(4 / 3))
    ratio = torch.exp(log_ratio)
    scale_x = torch.sqrt(area * ratio).clamp(max=1.0)
    scale_y = torch.sqrt(area / ratio).clamp(max=1.0)
    shift_x = (torch.rand(n) * 2 - 1) * (1 - scale_x)
    shift_y = (torch.rand(n) * 2 - 1) * (1 - scale_y)
    sign = torch.where(torch.rand(n) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = scale_x * sign
    theta[:, 0, 2] = shift_x
    theta[:, 1, 1] = scale_y
    theta[:, 1, 2] = shift_y
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def augment_batch(x: torch.Tensor, preset: str) -> torch.Tensor:
    """Augment a batch of images ``[N, C, H, W]``; anything else (feature vectors) passes through."""
    if preset == "none" or x.dim() != 4:
        return x
    if preset == "crop":
        return _crop(x)
    if preset == "flip-crop":
        return _flip(_crop(x))
    if preset == "resized-crop":
        return _resized_crop(x)
    raise NoisyctlError(f"unknown augmentation '{preset}'")
