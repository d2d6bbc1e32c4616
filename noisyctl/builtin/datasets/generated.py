"""Datasets noisyctl generates itself, reproducibly by seed: for benchmarks and for training learned
detectors on data no user dataset shares."""

from __future__ import annotations

import numpy as np

from noisyctl.api import DatasetData, NoisyctlError, TensorSampleSet

from .common import generated_total, reads_no_root

def _subsets(ids: list[str], labels, inputs, samples: int):
    """The first ``samples`` for training, the rest (if any) as the test subset."""
    train = TensorSampleSet(ids[:samples], labels[:samples], inputs[:samples])
    test = TensorSampleSet(ids[samples:], labels[samples:], inputs[samples:]) if len(ids) > samples else None
    return train, test


SHAPES = ["circle", "square", "triangle", "cross", "ring", "hbar", "vbar", "diagonal", "x", "diamond"]


def _draw(kind: str, draw, cx: float, cy: float, r: float, width: int) -> None:
    box = (cx - r, cy - r, cx + r, cy + r)
    if kind == "circle":
        draw.ellipse(box, fill=255)
    elif kind == "square":
        draw.rectangle(box, fill=255)
    elif kind == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=255)
    elif kind == "cross":
        draw.line([(cx - r, cy), (cx + r, cy)], fill=255, width=width)
        draw.line([(cx, cy - r), (cx, cy + r)], fill=255, width=width)
    elif kind == "ring":
        draw.ellipse(box, outline=255, width=width)
    elif kind == "hbar":
        draw.rectangle((cx - r, cy - r / 3, cx + r, cy + r / 3), fill=255)
    elif kind == "vbar":
        draw.rectangle((cx - r / 3, cy - r, cx + r / 3, cy + r), fill=255)
    elif kind == "diagonal":
        draw.line([(cx - r, cy + r), (cx + r, cy - r)], fill=255, width=width)
    elif kind == "x":
        draw.line([(cx - r, cy - r), (cx + r, cy + r)], fill=255, width=width)
        draw.line([(cx - r, cy + r), (cx + r, cy - r)], fill=255, width=width)
    elif kind == "diamond":
        draw.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=255)


def load_shapes(root=None, samples: int | str = 2000, size: int | str = 16, classes: int | str = 10,
                noise: float | str = 0.25, seed: int | str = 0, test_fraction: float | str = 0.2) -> DatasetData:
    """Generated grayscale shapes (circle, square, triangle, ...) at random places, sizes and clutter."""
    reads_no_root(root, "shapes")
    import torch
    from PIL import Image, ImageDraw

    samples, size, classes, seed = int(samples), int(size), int(classes), int(seed)
    noise, test_fraction = float(noise), float(test_fraction)
    if not 2 <= classes <= len(SHAPES) or samples < classes or size < 8:
        raise NoisyctlError(f"shapes: classes in 2..{len(SHAPES)}, samples >= classes and size >= 8")
    rng = np.random.default_rng(seed)
    total = generated_total(samples, test_fraction)
    labels = np.arange(total) % classes
    rng.shuffle(labels)
    images = np.zeros((total, 1, size, size), dtype=np.float32)
    scale = size * 4  # draw large, then shrink: anti-aliased edges
    for i, label in enumerate(labels):
        canvas = Image.new("L", (scale, scale), 0)
        draw = ImageDraw.Draw(canvas)
        r = rng.uniform(0.18, 0.38) * scale
        cx, cy = rng.uniform(r, scale - r, size=2)
        _draw(SHAPES[label], draw, cx, cy, r, width=max(2, int(r / 3)))
        pixels = np.asarray(canvas.resize((size, size), Image.BILINEAR), dtype=np.float32) / 255.0
        clutter = rng.normal(0.0, noise, (size, size)) + rng.uniform(0, noise) * rng.random((size, size))
        images[i, 0] = np.clip(pixels * rng.uniform(0.6, 1.0) + clutter, 0.0, 1.0)
    train, test = _subsets([f"shapes/{i:05d}" for i in range(total)], labels, torch.from_numpy(images), samples)
    return DatasetData(train=train, test=test, class_names=SHAPES[:classes], input_shape=(1, size, size),
                       default_augment="crop")


def load_blobs(root=None, samples: int | str = 2000, features: int | str = 20, classes: int | str = 5,
               separation: float | str = 1.0, seed: int | str = 0, test_fraction: float | str = 0.2) -> DatasetData:
    """Generated feature vectors (scikit-learn's make_classification): clusters per class, tunable overlap."""
    reads_no_root(root, "blobs")
    import torch
    from sklearn.datasets import make_classification

    samples, features, classes, seed = int(samples), int(features), int(classes), int(seed)
    test_fraction = float(test_fraction)
    if classes < 2 or features < 2 or samples < classes:
        raise NoisyctlError("blobs: classes >= 2, features >= 2 and samples >= classes")
    total = generated_total(samples, test_fraction)
    informative = max(2, min(features, int(np.ceil(np.log2(classes * 2))) + features // 2))
    x, y = make_classification(n_samples=total, n_features=features, n_informative=informative,
                               n_redundant=min(features - informative, features // 4), n_classes=classes,
                               n_clusters_per_class=2, class_sep=float(separation), flip_y=0.0, random_state=seed)
    x = ((x - x.mean(axis=0)) / x.std(axis=0)).astype(np.float32)
    train, test = _subsets([f"blobs/{i:05d}" for i in range(total)], y, torch.from_numpy(x), samples)
    return DatasetData(train=train, test=test, class_names=[f"class{c}" for c in range(classes)],
                       input_shape=(features,))
