"""Helpers shared by the built-in dataset loaders."""

from __future__ import annotations

from pathlib import Path
import numpy as np

from noisyctl.api import NoisyctlError, SampleSet

CIFAR10_STATS = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
CIFAR100_STATS = ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
MNIST_STATS = ((0.1307,), (0.3081,))
IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def require_root(root, dataset: str, what: str) -> Path:
    """The dataset's folder or file, or one line saying what is needed."""
    if root is None:
        raise NoisyctlError(f"{dataset} needs --data-root: {what}")
    path = Path(root).expanduser()
    if not path.exists():
        raise NoisyctlError(f"{dataset}: {path} does not exist; it should be {what}")
    return path


def channels_first(images: np.ndarray, source: str) -> np.ndarray:
    """``[N, H, W]``, ``[N, H, W, C]`` or ``[N, C, H, W]`` images as ``[N, C, H, W]``."""
    if images.ndim == 3:
        return images[:, None]
    if images.ndim == 4:
        if images.shape[-1] in (1, 3, 4) and images.shape[1] not in (1, 3, 4):
            return images.transpose(0, 3, 1, 2)
        return images
    raise NoisyctlError(f"{source}: images must have 3 or 4 dimensions, not shape {images.shape}")


class ArraySampleSet(SampleSet):
    """Images or feature vectors in one in-memory array, converted to float one sample at a time.

    ``uint8`` and ``uint16`` images are scaled to [0, 1]; with ``stats`` (mean, std) they are then normalised per
    channel, and feature vectors per feature.
    """

    def __init__(self, ids, labels, inputs: np.ndarray, stats=None) -> None:
        super().__init__(ids, labels)
        self.inputs = inputs
        self.scale = pixel_scale(inputs.dtype, images=inputs.ndim > 2)
        self.mean, self.std = (None, None) if stats is None else per_position(stats, inputs.ndim - 1)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.inputs.shape

    def load(self, index: int):
        import torch

        x = np.asarray(self.inputs[index], dtype=np.float32) * self.scale
        if self.mean is not None:
            x = (x - self.mean) / self.std
        return torch.from_numpy(np.ascontiguousarray(x))


def pixel_scale(dtype, images: bool) -> float:
    """What 8-bit values, and 16-bit images' pixels (scans, microscopy, whose raw values made an
    MLP's first epoch diverge), are multiplied by to lie in [0, 1]; 16-bit feature vectors (counts)
    and other types are taken as they are."""
    if np.dtype(dtype) == np.uint8:
        return 1 / 255
    return 1 / 65535 if images and np.dtype(dtype) == np.uint16 else 1.0


def per_position(stats, sample_dims: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) shaped to broadcast over one sample: per channel of an image, per feature of a vector."""
    shape = (-1,) + (1,) * (sample_dims - 1)
    return tuple(np.asarray(s, dtype=np.float32).reshape(shape) for s in stats)


def feature_stats(rows, count: int, limit: int = 10_000) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation of ``rows`` ([N, D] features: an array or an HDF5
    dataset, which need not fit in memory), from up to ``limit`` rows spread over them; a constant
    feature gets std 1."""
    picked = np.unique(np.linspace(0, count - 1, min(count, limit)).round().astype(np.int64))
    shift = total = squares = 0.0
    for start in range(0, len(picked), 1024):  # a block at a time: 10,000 wide embeddings would take GBs
        block = np.asarray(rows[picked[start:start + 1024]], dtype=np.float64).reshape(-1, *np.shape(rows)[1:])
        if start == 0:
            shift = block[0].copy()  # sums about a typical row keep the variance of large values exact
        total = total + (block - shift).sum(axis=0)
        squares = squares + np.square(block - shift).sum(axis=0)
    mean = total / len(picked)
    std = np.sqrt(np.maximum(squares / len(picked) - np.square(mean), 0.0))
    mean = mean + shift
    return mean, np.where(std > 1e-12 * np.maximum(1.0, np.abs(mean)), std, 1.0)


def check_labels(labels: np.ndarray, num_classes: int, ids: list[str], source: str) -> None:
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise NoisyctlError(f"{source}: sample {ids[i]} has label {labels[i]} outside 0..{num_classes - 1}")


def generated_total(samples: int, test_fraction: float) -> int:
    """How many samples to generate so that ``samples`` train and the test subset is ``test_fraction``."""
    if not 0.0 <= test_fraction < 1.0:
        raise NoisyctlError(f"test_fraction {test_fraction} is outside [0, 1)")
    return samples + int(round(samples * test_fraction / (1 - test_fraction)))
