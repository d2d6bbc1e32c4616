"""Images in one folder per class, optionally under train/ and val/ subsets (Imagenette, Datumaro exports)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from noisyctl.api import DatasetData, NoisyctlError, SampleSet
from .common import IMAGENET_STATS, require_root

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
TRAIN_NAMES = ("train",)
TEST_NAMES = ("val", "validation", "test")


class ImageFileSampleSet(SampleSet):
    """Decodes one image file per sample, resized (shorter side) and centre-cropped to ``size``."""

    def __init__(self, ids, labels, root: Path, size: int, channels: int, normalize: bool) -> None:
        super().__init__(ids, labels)
        self.root, self.size, self.channels = root, size, channels
        mean, std = IMAGENET_STATS if channels == 3 else ((0.5,), (0.5,))
        self.mean = np.asarray(mean, dtype=np.float32).reshape(-1, 1, 1) if normalize else None
        self.std = np.asarray(std, dtype=np.float32).reshape(-1, 1, 1) if normalize else None

    def load(self, index: int):
        import torch
        from PIL import Image, ImageOps

        path = self.root / self.ids[index]
        try:
            with Image.open(path) as image:
                # A JPEG decodes at 1/2, 1/4 or 1/8 scale where that still covers the size trained at:
                # a 2000 x 1500 photo for 224 px in 6 ms instead of 19.
                image.draft(image.mode, (self.size, self.size))
                # A phone photo's pixels are stored as the sensor saw them and its EXIF says how to turn
                # them; read as stored, a portrait photo lies on its side, an outlier any detector flags.
                ImageOps.exif_transpose(image, in_place=True)
                if image.mode.startswith("I;16"):  # 16-bit grayscale (scans, microscopy): PIL's convert clips at 255
                    image = Image.fromarray((np.asarray(image, dtype=np.uint16) >> 8).astype(np.uint8))
                image = image.convert("RGB" if self.channels == 3 else "L")
                scale = self.size / min(image.size)
                width, height = max(self.size, round(image.width * scale)), max(self.size, round(image.height * scale))
                image = image.resize((width, height), Image.BILINEAR)
                left, top = (width - self.size) // 2, (height - self.size) // 2
                image = image.crop((left, top, left + self.size, top + self.size))
                pixels = np.asarray(image, dtype=np.float32) / 255.0
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise NoisyctlError(f"cannot read image {path}: {exc}") from None
        pixels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
        if self.mean is not None:
            pixels = (pixels - self.mean) / self.std
        return torch.from_numpy(np.ascontiguousarray(pixels))


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def _scan(folder: Path, root: Path, classes: list[str] | None):
    """(ids relative to root, labels, class names) of a folder with one subfolder per class."""
    found = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not found:
        raise NoisyctlError(f"imagefolder: {folder} has no class folders (expected one folder per class)")
    if classes is None:
        classes = found
    else:
        unknown = [c for c in found if c not in classes]
        if unknown:
            raise NoisyctlError(f"imagefolder: {folder / unknown[0]} is a class the training subset does not have")
    ids, labels = [], []
    inside = root.resolve()
    for name in found:
        files = _image_files(folder / name)
        if not files:
            raise NoisyctlError(f"imagefolder: class folder {folder / name} has no images "
                                f"({', '.join(sorted(IMAGE_SUFFIXES))})")
        # A symbolic link must not carry reading (and the report's gallery) outside the dataset.
        outside = next((f for f in files if not f.resolve().is_relative_to(inside)), None)
        if outside is not None:
            raise NoisyctlError(f"imagefolder: {outside} links to {outside.resolve()}, outside the dataset root "
                                f"{root}; copy the file in or point --data-root at a folder that holds it")
        ids += [f.relative_to(root).as_posix() for f in files]
        labels += [classes.index(name)] * len(files)
    return ids, np.array(labels, dtype=np.int64), classes


# Images whose sides are all at most SMALL_SIDE are trained at their own size (digits, CIFAR-like
# data, small crops; the median shorter side when they differ): enlarging them adds no detail and
# costs (224/32)^2 = 49 times the compute. Anything larger at LARGE_SIZE, the ImageNet models'
# input. SIZE_SAMPLE images are looked at (headers only) to decide.
SMALL_SIDE = 128
LARGE_SIZE = 224
SIZE_SAMPLE = 64
GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F", "P;L"}


def _look_at(root: Path, ids: list[str]) -> tuple[list[tuple[int, int]], set[str]]:
    """The sizes and modes of up to SIZE_SAMPLE images spread over the dataset (headers only)."""
    from PIL import Image

    sizes, modes, failure = [], set(), None
    for index in np.linspace(0, len(ids) - 1, min(SIZE_SAMPLE, len(ids))).round().astype(int):
        path = root / ids[index]
        try:
            with Image.open(path) as image:
                sizes.append(image.size)
                modes.add(image.mode)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            failure = failure or f"{ids[index]}: {exc}"  # else training names it when it reads it
    if not sizes:
        raise NoisyctlError(f"imagefolder: none of the {min(SIZE_SAMPLE, len(ids))} images looked at decodes "
                            f"(first: {failure})")
    return sizes, modes


def load_imagefolder(root=None, size: int | str | None = None, channels: int | str | None = None,
                     normalize: bool = True) -> DatasetData:
    """One folder per class, or train/ and val/ subsets of them; images resized to size x size.

    By default the data decides: small images (at most 128 px a side) keep their size (the median
    shorter side when sizes differ), others are resized to 224 px; grayscale images keep one
    channel; 16-bit grayscale is scaled to 8 bits; photos are turned as their EXIF orientation
    says. ``size`` and ``channels`` say otherwise."""
    root = require_root(root, "imagefolder", "a folder with one subfolder per class, or train/ and val/ "
                                             "subfolders of such folders")
    if not root.is_dir():
        raise NoisyctlError(f"imagefolder: {root} is not a folder")
    train_dir = next((root / n for n in TRAIN_NAMES if (root / n).is_dir()), None)
    test_dir = next((root / n for n in TEST_NAMES if (root / n).is_dir()), None) if train_dir else None
    ids, labels, classes = _scan(train_dir or root, root, None)
    notes = []
    if size is None or channels is None:
        seen_sizes, seen_modes = _look_at(root, ids)
        if size is None:
            distinct = sorted(set(seen_sizes))
            largest = max(max(s) for s in distinct)
            small = largest <= SMALL_SIDE
            size = int(np.median([min(s) for s in seen_sizes])) if small else LARGE_SIZE
            seen = (f"images are {distinct[0][0]}x{distinct[0][1]} px" if len(distinct) == 1 else
                    f"images of {len(distinct)} sizes, {min(min(s) for s in distinct)}-{largest} px a side")
            notes.append(f"{seen}: {'trained at' if small else 'resized to'} {size} px (-D size=N for another)")
        if channels is None:
            channels = 1 if seen_modes <= GRAY_MODES else 3
            if channels == 1:
                notes.append("grayscale images: one channel (-D channels=3 for RGB)")
    size, channels = int(size), int(channels)
    if size < 1 or channels not in (1, 3):
        raise NoisyctlError("imagefolder: size must be positive and channels 1 or 3")

    def subset(ids, labels):
        return ImageFileSampleSet(ids, labels, root, size, channels, bool(normalize))

    test = None
    if test_dir is not None:
        test_ids, test_labels, _ = _scan(test_dir, root, classes)
        test = subset(test_ids, test_labels)
    return DatasetData(train=subset(ids, labels), test=test, class_names=classes,
                       input_shape=(channels, size, size),
                       default_augment="resized-crop" if size >= 64 else "flip-crop", notes=notes)
