"""Arrays in an .npz or HDF5 file: images or plain feature vectors (e.g. precomputed embeddings).

Keys (``x_key``/``y_key`` options override the first two):
``x`` (or ``images``, ``features``), ``y`` (or ``labels``, ``targets``), optional ``ids``,
``class_names``, and a test subset ``x_test``, ``y_test``, ``ids_test``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from noisyctl.api import DatasetData, NoisyctlError, SampleSet
from .common import ArraySampleSet, channels_first, check_labels, require_root

X_KEYS = ("x", "images", "features")
Y_KEYS = ("y", "labels", "targets")


def _pick(keys, wanted: str | None, candidates: tuple[str, ...], path: Path, what: str) -> str:
    if wanted is not None:
        if wanted not in keys:
            raise NoisyctlError(f"{path} has no array '{wanted}'; it has {', '.join(sorted(keys))}")
        return wanted
    for key in candidates:
        if key in keys:
            return key
    raise NoisyctlError(f"{path} has no {what} array (looked for {', '.join(candidates)}; it has "
                        f"{', '.join(sorted(keys)) or 'nothing'}); name it with --dataset-option")


def _strings(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(values).tolist()]


def _shape_of(x_shape: tuple[int, ...], path: Path) -> tuple[int, ...]:
    if len(x_shape) == 2:
        return (x_shape[1],)
    if len(x_shape) == 3:
        return (1, *x_shape[1:])
    if len(x_shape) == 4:
        if x_shape[-1] in (1, 3, 4) and x_shape[1] not in (1, 3, 4):
            return (x_shape[3], x_shape[1], x_shape[2])
        return tuple(x_shape[1:])
    raise NoisyctlError(f"{path}: inputs must be [N, D] features or [N, H, W(, C)] images, not {x_shape}")


def _assemble(path: Path, read, keys, x_key, y_key, make_set) -> DatasetData:
    x_name = _pick(keys, x_key, X_KEYS, path, "input")
    y_name = _pick(keys, y_key, Y_KEYS, path, "label")
    labels = np.asarray(read(y_name))
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise NoisyctlError(f"{path}: labels '{y_name}' must be a 1-D integer array, not {labels.dtype} {labels.shape}")
    test_name = next((k for k in (f"{x_name}_test", "x_test") if k in keys), None)
    test_y = next((k for k in (f"{y_name}_test", "y_test") if k in keys), None)
    test_labels = np.asarray(read(test_y)) if test_name and test_y else None
    if "class_names" in keys:
        classes = _strings(read("class_names"))
    else:
        top = max(int(labels.max(initial=0)), int(test_labels.max(initial=0)) if test_labels is not None else 0)
        classes = [str(c) for c in range(top + 1)]

    def subset(x_name: str, labels: np.ndarray, ids_key: str, prefix: str) -> SampleSet:
        ids = _strings(read(ids_key)) if ids_key in keys else [f"{prefix}/{i}" for i in range(len(labels))]
        sample_set = make_set(x_name, ids, labels.astype(np.int64))
        rows = sample_set.shape[0]
        if rows != len(labels) or len(ids) != len(labels):
            raise NoisyctlError(f"{path}: '{x_name}' has {rows:,} rows, its labels {len(labels):,} and its ids "
                                f"{len(ids):,}; they must be as many")
        if len(set(ids)) != len(ids):
            raise NoisyctlError(f"{path}: ids in '{ids_key}' are not unique")
        check_labels(labels, len(classes), ids, str(path))
        return sample_set

    train = subset(x_name, labels, "ids", "train")
    test = subset(test_name, test_labels, "ids_test", "test") if test_labels is not None else None
    shape = _shape_of(train.shape, path)
    return DatasetData(train=train, test=test, class_names=classes, input_shape=shape,
                       default_augment="none" if len(shape) == 1 else "crop")


def load_npz(root=None, x_key: str | None = None, y_key: str | None = None) -> DatasetData:
    """Arrays in a NumPy .npz file (x, y, optional ids, class_names, x_test, y_test); no pickles."""
    path = require_root(root, "npz", "an .npz file with x and y arrays")
    try:
        archive = np.load(path, allow_pickle=False)
        arrays = {key: archive[key] for key in archive.files}
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise NoisyctlError(f"{path} holds Python objects; noisyctl does not unpickle data files") from None
        raise NoisyctlError(f"cannot read {path}: {exc}") from None
    except Exception as exc:
        raise NoisyctlError(f"cannot read {path} as .npz: {exc}") from None

    def make_set(name, ids, labels):
        inputs = arrays[name]
        inputs = inputs if inputs.ndim == 2 else channels_first(inputs, str(path))
        return ArraySampleSet(ids, labels, inputs)

    return _assemble(path, arrays.__getitem__, set(arrays), x_key, y_key, make_set)


class HDF5SampleSet(SampleSet):
    """Reads one sample at a time from an HDF5 dataset; each process opens the file itself."""

    def __init__(self, ids, labels, path: Path, key: str, shape, dtype) -> None:
        super().__init__(ids, labels)
        self.path, self.key, self.shape = path, key, shape
        self.scale = 1 / 255 if dtype == np.uint8 else 1.0
        self.channels_last = len(shape) == 4 and shape[-1] in (1, 3, 4) and shape[1] not in (1, 3, 4)
        self._opened = None  # (pid, h5py file); a handle must not cross a fork into a worker

    def __getstate__(self):
        return {**self.__dict__, "_opened": None}

    def load(self, index: int):
        import h5py
        import torch

        if self._opened is None or self._opened[0] != os.getpid():
            self._opened = (os.getpid(), h5py.File(self.path, "r"))
        x = np.asarray(self._opened[1][self.key][index], dtype=np.float32) * self.scale
        if x.ndim == 2:
            x = x[None]
        elif self.channels_last:
            x = x.transpose(2, 0, 1)
        return torch.from_numpy(np.ascontiguousarray(x))


def load_hdf5(root=None, x_key: str | None = None, y_key: str | None = None) -> DatasetData:
    """Arrays in an HDF5 file (same keys as npz), read lazily one sample at a time."""
    import h5py

    path = require_root(root, "hdf5", "an HDF5 file with x and y datasets")
    try:
        with h5py.File(path, "r") as h5:
            keys = {k for k in h5.keys() if isinstance(h5[k], h5py.Dataset)}
            info = {k: (h5[k].shape, h5[k].dtype) for k in keys}
            small = {k: h5[k][()] for k in keys if h5[k].ndim <= 1}  # labels, ids, names; inputs stay on disk
    except OSError:
        raise NoisyctlError(f"{path} is not a readable HDF5 file") from None

    def read(name):
        return small[name]

    def make_set(name, ids, labels):
        shape, dtype = info[name]
        return HDF5SampleSet(ids, labels, path, name, shape, dtype)

    return _assemble(path, read, keys, x_key, y_key, make_set)
