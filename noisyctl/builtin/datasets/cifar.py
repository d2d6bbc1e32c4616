"""CIFAR-10 and CIFAR-100 from their python pickle batches, read without running pickled code."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np

from noisyctl.api import DatasetData, NoisyctlError
from .common import (CIFAR10_STATS, CIFAR100_STATS, COPY_SUFFIXES, ArraySampleSet, check_labels, kept_samples,
                     link_or_copy, new_folder, require_root)


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, bytes, strings and numpy arrays, and refuses everything else.

    The CIFAR batches are pickles; a file from elsewhere must not be able to run code.
    """

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it asks to run {module}.{name}, which a CIFAR batch never does")


def read_batch(path: Path) -> dict:
    try:
        with open(path, "rb") as handle:
            batch = _ArraysOnlyUnpickler(handle, encoding="bytes").load()
    except FileNotFoundError:
        raise NoisyctlError(f"CIFAR file {path} is missing") from None
    except Exception as exc:
        raise NoisyctlError(f"cannot read CIFAR file {path}: {exc}") from None
    if not isinstance(batch, dict):
        raise NoisyctlError(f"{path} is not a CIFAR batch (no dictionary inside)")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}


class _Python2Pickler(pickle._Pickler):
    """Pickles bytes as Python 2 strings, as the CIFAR batches were written: they load as bytes with
    ``encoding="bytes"`` (the CIFAR page's own reader) and as str with ``encoding="latin1"``
    (torchvision's), which Python 3's protocol-2 bytes (a call to ``_codecs.encode``) do not."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_python2_string(self, text: bytes) -> None:
        size = len(text)
        opcode = pickle.SHORT_BINSTRING + bytes([size]) if size < 256 else pickle.BINSTRING + struct.pack("<i", size)
        self.write(opcode + text)
        self.memoize(text)

    dispatch[bytes] = save_python2_string


def write_batch(path: Path, batch: dict) -> None:
    """A batch (``read_batch``'s dict) written as the CIFAR files are: a protocol-2 pickle whose
    keys, names and file names are Python 2 strings."""
    encoded = {key.encode() if isinstance(key, str) else key: value for key, value in batch.items()}
    with open(path, "wb") as handle:
        _Python2Pickler(handle, protocol=2).dump(encoded)


def _relabeled_copy(folder: Path, train_names: list[str], label_key: str, classes: list[str],
                    coarse_of: dict[int, int] | None = None):
    """``DatasetData.relabeled_copy`` for CIFAR: a folder laid out as ``folder`` (its batches), each
    training batch with its samples' labels as they now stand (a CIFAR-100 fine label's coarse one
    with it: ``coarse_of``) and the removed samples' rows left out; the test batch and meta file as
    they are (hard links where the disk allows)."""
    def copy(labels: dict[str, str | None], out: Path) -> int:
        written = 0
        with new_folder(out, folder, COPY_SUFFIXES) as building:
            for path in folder.iterdir():
                if path.is_file() and path.name not in train_names:
                    link_or_copy(path, building / path.name)
            for name in train_names:
                batch = read_batch(folder / name)
                given = [int(c) for c in _field(batch, label_key, folder / name)]
                kept, relabeled = [], []
                for position, class_name in kept_samples([f"{name}/{i:05d}" for i in range(len(given))], labels):
                    kept.append(position)
                    relabeled.append(classes.index(class_name) if class_name else given[position])
                rows = {}
                for key, value in batch.items():
                    if key == label_key:
                        rows[key] = relabeled
                    elif key == "coarse_labels" and coarse_of is not None:
                        rows[key] = [coarse_of.get(c, value[i]) for c, i in zip(relabeled, kept)]
                    elif isinstance(value, np.ndarray) and value.ndim and len(value) == len(given):
                        rows[key] = value[kept]
                    elif isinstance(value, list) and len(value) == len(given):  # file names
                        rows[key] = [value[i] for i in kept]
                    else:
                        rows[key] = value
                write_batch(building / name, rows)
                written += len(kept)
        return written

    return copy


def _field(batch: dict, key: str, path: Path):
    if key not in batch:
        raise NoisyctlError(f"{path} is not a CIFAR batch: it has no '{key}'")
    return batch[key]


def _images(batch: dict, path: Path) -> np.ndarray:
    data = np.asarray(_field(batch, "data", path), dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3072:
        raise NoisyctlError(f"{path}: CIFAR data must be [N, 3072] bytes, not {data.shape}")
    return data.reshape(-1, 3, 32, 32)


def _folder(root, dataset: str, subfolder: str, marker: str) -> Path:
    root = require_root(root, dataset, f"the folder holding {subfolder}/ (the python version of {dataset}, "
                                       "extracted)")
    for candidate in (root / subfolder, root):
        if (candidate / marker).exists():
            return candidate
    raise NoisyctlError(f"{dataset}: no {subfolder}/{marker} under {root}; extract the python version of "
                        f"{dataset} there")


def _names(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def load_cifar10(root=None, normalize: bool = True) -> DatasetData:
    """CIFAR-10 from cifar-10-batches-py/ (data_batch_1..5, test_batch, batches.meta)."""
    folder = _folder(root, "cifar10", "cifar-10-batches-py", "batches.meta")
    meta_path = folder / "batches.meta"
    classes = _names(_field(read_batch(meta_path), "label_names", meta_path))
    stats = CIFAR10_STATS if normalize else None

    def subset(names):
        ids, images, labels = [], [], []
        for name in names:
            path = folder / name
            batch = read_batch(path)
            batch_images = _images(batch, path)
            batch_labels = np.asarray(_field(batch, "labels", path), dtype=np.int64)
            if len(batch_labels) != len(batch_images):
                raise NoisyctlError(f"{path}: {len(batch_images)} images but {len(batch_labels)} labels")
            ids += [f"{name}/{i:05d}" for i in range(len(batch_images))]
            images.append(batch_images)
            labels.append(batch_labels)
        labels = np.concatenate(labels)
        check_labels(labels, len(classes), ids, str(folder))
        return ArraySampleSet(ids, labels, np.concatenate(images), stats)

    train_names = sorted(p.name for p in folder.glob("data_batch_*"))
    if not train_names:
        raise NoisyctlError(f"cifar10: {folder} has no data_batch_* files")
    test = subset(["test_batch"]) if (folder / "test_batch").exists() else None
    return DatasetData(train=subset(train_names), test=test, class_names=classes, input_shape=(3, 32, 32),
                       default_augment="flip-crop",
                       relabeled_copy=_relabeled_copy(folder, train_names, "labels", classes))


def load_cifar100(root=None, normalize: bool = True) -> DatasetData:
    """CIFAR-100 from cifar-100-python/ (train, test, meta), with its 20 superclasses as class groups."""
    folder = _folder(root, "cifar100", "cifar-100-python", "meta")
    meta_path = folder / "meta"
    meta = read_batch(meta_path)
    classes = _names(_field(meta, "fine_label_names", meta_path))
    stats = CIFAR100_STATS if normalize else None
    groups: dict[int, set[int]] = {}

    def subset(name):
        path = folder / name
        batch = read_batch(path)
        images = _images(batch, path)
        fine = np.asarray(_field(batch, "fine_labels", path), dtype=np.int64)
        coarse = np.asarray(_field(batch, "coarse_labels", path), dtype=np.int64)
        if not len(fine) == len(coarse) == len(images):
            raise NoisyctlError(f"{path}: {len(images)} images but {len(fine)} labels")
        ids = [f"{name}/{i:05d}" for i in range(len(images))]
        check_labels(fine, len(classes), ids, str(path))
        for f, c in zip(fine.tolist(), coarse.tolist()):
            groups.setdefault(c, set()).add(f)
        return ArraySampleSet(ids, fine, images, stats)

    train = subset("train")
    test = subset("test") if (folder / "test").exists() else None
    coarse_of = {fine: coarse for coarse, members in groups.items() for fine in members}
    return DatasetData(train=train, test=test, class_names=classes, input_shape=(3, 32, 32),
                       default_augment="flip-crop", class_groups=[sorted(groups[c]) for c in sorted(groups)],
                       relabeled_copy=_relabeled_copy(folder, ["train"], "fine_labels", classes, coarse_of))
