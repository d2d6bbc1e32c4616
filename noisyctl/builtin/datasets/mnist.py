"""MNIST and Fashion-MNIST from their idx files (gzipped or not)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from noisyctl.api import DatasetData, NoisyctlError
from .common import (COPY_SUFFIXES, MNIST_STATS, ArraySampleSet, check_labels, kept_samples, link_or_copy,
                     new_folder, require_root)

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]
IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """An idx array: magic (0, 0, type, ndim), big-endian int32 dimensions, then the data."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as exc:
        raise NoisyctlError(f"cannot read idx file {path}: {exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_TYPES:
        raise NoisyctlError(f"{path} is not an idx file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int(d) for d in np.frombuffer(raw[4:header], dtype=">i4")) if len(raw) >= header else ()
    dtype = np.dtype(IDX_TYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize if shape else -1
    if len(raw) - header != expected:
        raise NoisyctlError(f"{path} is truncated or damaged: the header promises {shape}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def write_idx(path: Path, array: np.ndarray) -> None:
    """``array`` as an idx file (gzipped where ``path`` ends in .gz), as ``read_idx`` reads it."""
    code = next(code for code, dtype in IDX_TYPES.items() if np.dtype(dtype) == array.dtype)
    raw = bytes([0, 0, code, array.ndim]) + np.array(array.shape, dtype=">i4").tobytes() + array.tobytes()
    with (gzip.open(path, "wb") if path.suffix == ".gz" else open(path, "wb")) as handle:
        handle.write(raw)


def _relabeled_copy(root: Path, files: dict[str, Path], classes: list[str]):
    """``DatasetData.relabeled_copy`` for idx files (``files``: each found, by its stem): a folder
    laid out as ``root``, the training labels as they now stand and the removed samples' images
    and labels left out, the test files as they are (hard links where the disk allows), each
    gzipped or not as its original."""
    def copy(labels: dict[str, str | None], out: Path) -> int:
        images, given = read_idx(files["train-images-idx3-ubyte"]), read_idx(files["train-labels-idx1-ubyte"])
        kept, relabeled = [], given.copy()
        for position, class_name in kept_samples([f"train/{i:05d}" for i in range(len(given))], labels):
            kept.append(position)
            if class_name:
                relabeled[position] = classes.index(class_name)
        with new_folder(out, root, COPY_SUFFIXES) as building:
            for stem, path in files.items():
                target = building / path.relative_to(root)
                target.parent.mkdir(parents=True, exist_ok=True)
                if stem == "train-images-idx3-ubyte":
                    write_idx(target, images[kept])
                elif stem == "train-labels-idx1-ubyte":
                    write_idx(target, relabeled[kept])
                else:
                    link_or_copy(path, target)
        return len(kept)

    return copy


def _find(root: Path, stem: str, dataset: str) -> Path:
    for folder in (root, root / "raw", root / "MNIST" / "raw", root / "FashionMNIST" / "raw"):
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    raise NoisyctlError(f"{dataset}: {stem}[.gz] not found under {root} (nor its raw/ subfolder)")


def _load(root, dataset: str, classes: list[str], normalize: bool) -> DatasetData:
    root = require_root(root, dataset, "the folder holding the idx files (train-images-idx3-ubyte.gz, ...)")
    stats = MNIST_STATS if normalize else None
    found: dict[str, Path] = {}

    def subset(prefix: str, required: bool):
        try:
            images_path = _find(root, f"{prefix}-images-idx3-ubyte", dataset)
            labels_path = _find(root, f"{prefix}-labels-idx1-ubyte", dataset)
        except NoisyctlError:
            if required:
                raise
            return None
        found.update({f"{prefix}-images-idx3-ubyte": images_path, f"{prefix}-labels-idx1-ubyte": labels_path})
        images, labels = read_idx(images_path), read_idx(labels_path).astype(np.int64)
        if images.ndim != 3 or labels.ndim != 1:
            raise NoisyctlError(f"{images_path}: expected [N, H, W] images and [N] labels")
        if len(images) != len(labels):
            raise NoisyctlError(f"{labels_path} has {len(labels)} labels for {len(images)} images in {images_path}")
        ids = [f"{prefix}/{i:05d}" for i in range(len(labels))]
        check_labels(labels, len(classes), ids, str(labels_path))
        return ArraySampleSet(ids, labels, images[:, None], stats)

    train = subset("train", required=True)
    test = subset("t10k", required=False)
    return DatasetData(train=train, test=test, class_names=classes, input_shape=(1, *train.inputs.shape[2:]),
                       default_augment="crop", relabeled_copy=_relabeled_copy(root, found, classes))


def load_mnist(root=None, normalize: bool = True) -> DatasetData:
    """MNIST from its idx files (train-*, t10k-*), gzipped or not."""
    return _load(root, "mnist", [str(d) for d in range(10)], normalize)


def load_fashion_mnist(root=None, normalize: bool = True) -> DatasetData:
    """Fashion-MNIST from its idx files (train-*, t10k-*), gzipped or not."""
    return _load(root, "fashion-mnist", FASHION_CLASSES, normalize)
