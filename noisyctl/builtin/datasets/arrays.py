"""Arrays in an .npz or HDF5 file: images or plain feature vectors (e.g. precomputed embeddings).

Keys (``x_key``/``y_key`` options override the first two):
``x`` (or ``images``, ``features``, ``x_train``), ``y`` (or ``labels``, ``targets``, ``y_train``), optional ``ids``,
``class_names``, and a test subset ``x_test``, ``y_test``, ``ids_test``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from noisyctl.api import DatasetData, NoisyctlError, SampleSet, atomic_output
from .common import (ArraySampleSet, channels_first, check_labels, copy_target, feature_stats, integer_classes,
                     kept_samples, pixel_scale, require_root, standardize_features)

X_KEYS = ("x", "images", "features", "x_train")  # x_train, y_train, x_test, y_test: Keras' own .npz files
Y_KEYS = ("y", "labels", "targets", "y_train")


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


def _label_values(values, name: str, path: Path) -> np.ndarray:
    """Labels as saved: class indices (integers, or floats that are whole numbers, as pandas and
    one-column CSVs leave them) or class names (strings)."""
    labels = np.asarray(values)
    if labels.ndim == 2 and labels.shape[1] > 1:
        raise NoisyctlError(f"{path}: labels '{name}' are {labels.shape[1]} columns a sample (one-hot or "
                            f"scores?); save one class index or name a sample, e.g. y.argmax(1)")
    labels = labels.reshape(-1) if labels.ndim == 2 else labels
    if labels.ndim != 1:
        raise NoisyctlError(f"{path}: labels '{name}' must be one class a sample, not shape {labels.shape}")
    if labels.dtype.kind in "USO":
        return np.array(_strings(labels))
    if labels.dtype.kind == "f":
        whole = np.isfinite(labels) & (labels == np.round(labels))
        if not whole.all():
            first = int(np.flatnonzero(~whole)[0])
            raise NoisyctlError(f"{path}: labels '{name}' hold {labels[first]} (at {first}), not a class index")
        return labels.astype(np.int64)
    if labels.dtype.kind not in "iub":
        raise NoisyctlError(f"{path}: labels '{name}' must be class indices or names, not {labels.dtype}")
    return labels.astype(np.int64)


def _indices(labels: np.ndarray, classes: list[str], path: Path) -> np.ndarray:
    """Class names as indices into ``classes``; indices as they are."""
    if labels.dtype.kind != "U":
        return labels
    position = {name: c for c, name in enumerate(classes)}
    unknown = next((v for v in labels if v not in position), None)
    if unknown is not None:
        raise NoisyctlError(f"{path}: label '{unknown}' is not one of class_names")
    return np.array([position[v] for v in labels], dtype=np.int64)


def _assemble(path: Path, read, keys, x_key, y_key, make_set, stats_of, standardize, copier=None) -> DatasetData:
    """The dataset the arrays hold; ``copier(x_name, y_name, ids, classes, class of each sample)``,
    where given, makes its ``relabeled_copy``."""
    x_name = _pick(keys, x_key, X_KEYS, path, "input")
    y_name = _pick(keys, y_key, Y_KEYS, path, "label")
    labels = _label_values(read(y_name), y_name, path)
    test_name = next((k for k in (f"{x_name}_test", "x_test") if k in keys), None)
    test_y = next((k for k in (f"{y_name}_test", "y_test") if k in keys), None)
    test_labels = _label_values(read(test_y), test_y, path) if test_name and test_y else None
    if (test_labels is not None) and (labels.dtype.kind == "U") != (test_labels.dtype.kind == "U"):
        raise NoisyctlError(f"{path}: '{y_name}' and '{test_y}' must both be class names or both indices")
    if "class_names" in keys:
        classes = _strings(read("class_names"))
    elif labels.dtype.kind == "U":  # names, sorted, as the text loader orders them
        classes = sorted(set(labels.tolist()))
    else:  # class indices, as the text loader reads integer labels
        found = integer_classes(np.unique(np.concatenate([labels, labels[:0] if test_labels is None else test_labels])))
        classes = [str(c) for c in found]
        if found[0] >= 1:  # the values present: each label becomes its position among them
            labels, test_labels = (None if part is None else np.searchsorted(found, part)
                                   for part in (labels, test_labels))
    labels = _indices(labels, classes, path)
    test_labels = None if test_labels is None else _indices(test_labels, classes, path)

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
    notes = standardize_features((train, test), lambda: stats_of(x_name), standardize, path, len(shape) == 1)
    return DatasetData(train=train, test=test, class_names=classes, input_shape=shape,
                       default_augment="none" if len(shape) == 1 else "crop", notes=notes,
                       relabeled_copy=copier and copier(x_name, y_name, train.ids, classes, train.labels))


def _relabeled_labels(saved: np.ndarray, ids: list[str], classes: list[str], classes_of: np.ndarray,
                      named: bool, labels: dict[str, str | None]) -> tuple[np.ndarray, np.ndarray]:
    """The training labels as the file holds them (``saved``, one a sample), each set as it now stands
    (``labels``, as ``kept_samples`` reads them) in the file's own encoding: as a sample of its class
    holds it, else its name, or its index where the file names its classes (``named``); and which
    samples the copy keeps."""
    flat = saved.reshape(len(ids))
    first = {int(c): i for i, c in reversed(list(enumerate(classes_of)))}

    def raw(c: int):
        if c in first:
            return flat[first[c]]
        if flat.dtype.kind in "USO":
            return classes[c] if flat.dtype.kind != "S" else classes[c].encode()
        return c if named else int(classes[c])

    if flat.dtype.kind in "US":  # wide enough for any class's name
        names = np.array(classes if flat.dtype.kind == "U" else [name.encode() for name in classes])
        relabeled = flat.astype(np.result_type(flat.dtype, names.dtype))
    else:
        relabeled = flat.copy()
    kept = np.zeros(len(ids), dtype=bool)
    for position, name in kept_samples(ids, labels):
        kept[position] = True
        if name:
            relabeled[position] = raw(classes.index(name))
    return relabeled.reshape(saved.shape), kept


def _npz_copy(path: Path, arrays: dict[str, np.ndarray]):
    """``relabeled_copy`` for an .npz: the same arrays as an .npz, the training labels set as they
    stand (``_relabeled_labels``), and the removed samples' rows left out of the training inputs,
    labels and ids."""
    def copier(x_name: str, y_name: str, ids: list[str], classes: list[str], classes_of: np.ndarray):
        def copy(labels: dict[str, str | None], out: Path) -> int:
            out = copy_target(out, (".npz",), [path], "a copy of an .npz dataset is an .npz")
            relabeled, kept = _relabeled_labels(np.asarray(arrays[y_name]), ids, classes, classes_of,
                                                "class_names" in arrays, labels)
            written = dict(arrays)
            written[y_name] = relabeled[kept]
            for key in (x_name, "ids"):
                if key in arrays:
                    written[key] = arrays[key][kept]
            with atomic_output(out) as tmp, open(tmp, "wb") as handle:  # a handle: savez adds no suffix
                np.savez(handle, **written)
            return int(kept.sum())

        return copy

    return copier


def _hdf5_copy(path: Path, small: dict[str, np.ndarray]):
    """``relabeled_copy`` for an HDF5 file: the same datasets and attributes as an HDF5 file, the
    training labels set as they stand (``_relabeled_labels``), and the removed samples' rows left out
    of the training inputs (copied a block at a time: they may not fit in memory), labels and ids."""
    def copier(x_name: str, y_name: str, ids: list[str], classes: list[str], classes_of: np.ndarray):
        def copy(labels: dict[str, str | None], out: Path) -> int:
            import h5py

            out = copy_target(out, (".h5", ".hdf5"), [path], "a copy of an HDF5 dataset is an .h5 file")
            relabeled, kept = _relabeled_labels(small[y_name], ids, classes, classes_of, "class_names" in small,
                                                labels)
            with atomic_output(out) as tmp, h5py.File(path, "r") as source, h5py.File(tmp, "w") as copied:
                copied.attrs.update(source.attrs)
                for name in source:
                    if name not in (x_name, y_name, "ids"):
                        source.copy(source[name], copied, name=name)
                        continue
                    original = source[name]
                    if name == y_name:
                        rows = copied.create_dataset(name, data=relabeled[kept].astype(original.dtype)
                                                     if original.dtype.kind != "S" else relabeled[kept])
                    else:
                        rows = copied.create_dataset(name, shape=(int(kept.sum()), *original.shape[1:]),
                                                     dtype=original.dtype, chunks=original.chunks,
                                                     compression=original.compression)
                        done, block = 0, max(1, 2 ** 26 // max(1, original.dtype.itemsize
                                                               * int(np.prod(original.shape[1:], dtype=np.int64))))
                        for start in range(0, len(kept), block):
                            chosen = kept[start:start + block]
                            values = original[start:start + len(chosen)][chosen]
                            rows[done:done + len(values)] = values
                            done += len(values)
                    rows.attrs.update(original.attrs)
            return int(kept.sum())

        return copy

    return copier


def load_npz(root=None, x_key: str | None = None, y_key: str | None = None,
             standardize: bool | str = "auto") -> DatasetData:
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
        if inputs.dtype.kind == "f" and len(inputs) == len(ids):
            bad = ~np.isfinite(inputs.reshape(len(inputs), -1)).all(axis=1)
            if bad.any():  # else training fails later, as if the learning rate were to blame
                raise NoisyctlError(f"{path}: '{name}' has NaN or infinite values in {int(bad.sum()):,} of "
                                    f"{len(bad):,} samples (first: {ids[int(np.flatnonzero(bad)[0])]}); fill or "
                                    f"drop them")
        inputs = inputs if inputs.ndim == 2 else channels_first(inputs, str(path))
        return ArraySampleSet(ids, labels, inputs)

    def stats_of(name):
        return feature_stats(arrays[name], len(arrays[name]))

    return _assemble(path, arrays.__getitem__, set(arrays), x_key, y_key, make_set, stats_of, standardize,
                     _npz_copy(path, arrays))


class HDF5SampleSet(SampleSet):
    """Reads one sample at a time from an HDF5 dataset; each process opens the file itself."""

    def __init__(self, ids, labels, path: Path, key: str, shape, dtype) -> None:
        super().__init__(ids, labels)
        self.path, self.key, self.shape = path, key, shape
        self.scale = pixel_scale(dtype, images=len(shape) > 2)
        self.channels_last = len(shape) == 4 and shape[-1] in (1, 3, 4) and shape[1] not in (1, 3, 4)
        self._opened = None  # (pid, h5py file); a handle must not cross a fork into a worker
        self.mean = self.std = None  # feature scaling, set by the loader

    def __getstate__(self):
        return {**self.__dict__, "_opened": None}

    def load(self, index: int):
        import h5py
        import torch

        if self._opened is None or self._opened[0] != os.getpid():
            self._opened = (os.getpid(), h5py.File(self.path, "r"))
        x = np.asarray(self._opened[1][self.key][index], dtype=np.float32) * self.scale
        if self.mean is not None:
            x = (x - self.mean) / self.std
        if x.ndim == 2:
            x = x[None]
        elif self.channels_last:
            x = x.transpose(2, 0, 1)
        return torch.from_numpy(np.ascontiguousarray(x))


def load_hdf5(root=None, x_key: str | None = None, y_key: str | None = None,
              standardize: bool | str = "auto") -> DatasetData:
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

    def stats_of(name):
        with h5py.File(path, "r") as h5:
            return feature_stats(h5[name], h5[name].shape[0])

    return _assemble(path, read, keys, x_key, y_key, make_set, stats_of, standardize, _hdf5_copy(path, small))
