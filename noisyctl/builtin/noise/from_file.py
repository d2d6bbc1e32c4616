"""Noisy labels that people made, read from a file: CIFAR-10N's and CIFAR-100N's human annotations
(Wei et al. 2022, ``CIFAR-10_human.pt``), a second annotator's labels, a crowd's vote. The
dataset's own labels are the truth, so ``detect`` measures detectors against real human noise,
which follows neither uniform nor pair-flip patterns."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from noisyctl.api import NOT_LABELED, Annotations, NoiseContext, NoisyctlError

LABEL_FILES = ".pt, .pth, .npy, .npz or .csv"
# The keys of a CIFAR-N file that hold the original labels, checked against the dataset's.
CLEAN_KEYS = ("clean_label",)


def from_file(context: NoiseContext, rate: float | None, path: str | None = None, key: str | None = None,
              annotators: str | None = None) -> np.ndarray:
    """The labels in ``path``, one a training sample: an array in the samples' order (``.npy``; a
    ``.npz`` or a ``torch.save`` dict of arrays, as CIFAR-N ships them, names one with ``key``), or
    a CSV of ``id`` and ``label`` (or ``key``) columns. Labels are class indices or names. Where
    the file holds a ``clean_label`` too, it must match the dataset's labels, so a file for other
    data or another order is refused rather than read as noise.

    ``annotators=KEY1,KEY2,...`` names the arrays (or CSV columns) of several annotators' own
    labels, kept beside the labels (-1 or an empty cell: that annotator gave none): CIFAR-10N's
    ``random_label1,random_label2,random_label3``. The labels are then ``key``'s, or without it
    the annotators' majority."""
    if rate is not None:
        raise NoisyctlError("from-file noise takes its labels from the file: drop --rate")
    if path is None:
        raise NoisyctlError(f"from-file noise needs the option -N path=FILE: the labels' file ({LABEL_FILES})")
    file = Path(path).expanduser()
    if not file.is_file():
        raise NoisyctlError(f"from-file: {file} is not a file")
    suffix = file.suffix.lower()
    if suffix not in (".csv", ".pt", ".pth", ".npz", ".npy"):
        raise NoisyctlError(f"from-file: {file} should be a {LABEL_FILES} file")
    rows = _csv_rows(file) if suffix == ".csv" else None
    arrays = None if rows is not None else _arrays(file, suffix)
    if annotators is not None:
        context.annotations = _annotations(file, rows, arrays, str(annotators), context)
        if key is None:
            return _majority(context.annotations, file)
    labels = _csv_labels(rows, file, key, context) if rows is not None else _chosen(arrays, key, file, context)
    return _class_indices(labels, file, context)


def _annotations(file: Path, rows: list[dict] | None, arrays, keys: str, context: NoiseContext) -> Annotations:
    """The annotators' own labels that ``keys`` (comma-separated) name, as class indices: columns of
    the CSV ``rows``, else named ``arrays``."""
    names = [name.strip() for name in keys.split(",") if name.strip()]
    if len(names) < 2 or len(set(names)) < len(names):
        raise NoisyctlError(f"from-file: annotators=KEY1,KEY2,... names two annotators' labels or more, each once, "
                            f"not '{keys}'")
    if arrays is not None and not isinstance(arrays, dict):
        raise NoisyctlError(f"from-file: {file} holds one array, not named ones: annotators= needs a .npz, .pt or "
                            f".csv file of several")
    columns = []
    for name in names:
        if rows is not None:
            labels = _csv_labels(rows, file, name, context)
            given = labels != ""
        else:
            if name not in arrays:
                raise NoisyctlError(f"from-file: {file} has no '{name}'; it holds {', '.join(arrays)}")
            labels = np.asarray(arrays[name]).reshape(-1)
            if len(labels) != len(context.labels):
                raise NoisyctlError(f"from-file: {file}'s '{name}' holds {len(labels):,} labels, not one for each "
                                    f"of the {len(context.labels):,} training samples")
            given = labels != NOT_LABELED if np.issubdtype(labels.dtype, np.integer) else np.ones(len(labels), bool)
        column = np.full(len(labels), NOT_LABELED, dtype=np.int64)
        if given.any():
            column[given] = _as_class_indices(labels[given], file, context)
        columns.append(column)
    return Annotations(names, np.stack(columns, axis=1))


def _majority(annotations: Annotations, file: Path) -> np.ndarray:
    labels = annotations.majority()
    if (labels == NOT_LABELED).any():
        raise NoisyctlError(f"from-file: {file}: no annotator labeled {int((labels == NOT_LABELED).sum()):,} samples; "
                            f"name the labels to train on with -N key=NAME")
    return labels


def _arrays(file: Path, suffix: str) -> dict[str, np.ndarray] | np.ndarray:
    """The arrays of a label file: one (.npy, a saved tensor) or a dict of them."""
    try:
        if suffix == ".npy":
            return np.load(file, allow_pickle=False)
        if suffix == ".npz":
            with np.load(file, allow_pickle=False) as arrays:
                return {name: arrays[name] for name in arrays.files}
        loaded = _torch_load(file)
    except (OSError, ValueError, EOFError) as exc:
        raise NoisyctlError(f"from-file: cannot read {file} ({' '.join(str(exc).split())[:160]})") from None
    if isinstance(loaded, dict):
        return {str(name): np.asarray(value) for name, value in loaded.items()}
    return np.asarray(loaded)


def _torch_load(file: Path):
    """A ``torch.save`` file of tensors or numpy arrays (CIFAR-N's), read without running pickled
    code: numpy's array reconstruction is the only thing allowed beyond tensors."""
    import pickle

    import torch

    safe_globals = getattr(torch.serialization, "safe_globals", None)
    if safe_globals is None:
        raise NoisyctlError(f"from-file: reading {file.name} needs torch 2.5 or later; save the labels with "
                            f"numpy.save as .npy instead")
    multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    allowed = [np.ndarray, np.dtype, multiarray._reconstruct,
               (multiarray._reconstruct, "numpy.core.multiarray._reconstruct")]  # as numpy 1 names it
    dtypes = getattr(np, "dtypes", None)
    allowed += [getattr(dtypes, name) for name in dir(dtypes) if name.endswith("DType")] if dtypes else []
    try:
        with safe_globals(allowed):
            return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise NoisyctlError(f"from-file: {file} holds more than arrays of labels, which noisyctl does not run "
                            f"({str(exc).splitlines()[0][:120]})") from None
    except RuntimeError as exc:  # not a torch.save file
        raise NoisyctlError(f"from-file: {file} is not a torch.save file ({str(exc).splitlines()[0][:120]})") \
            from None


def _chosen(arrays: dict[str, np.ndarray] | np.ndarray, key: str | None, file: Path,
            context: NoiseContext) -> np.ndarray:
    """The array ``key`` names (a file of one needs none), checked against a ``clean_label`` beside it."""
    if not isinstance(arrays, dict):
        if key is not None:
            raise NoisyctlError(f"from-file: {file} holds one array, not named ones (drop -N key)")
        return arrays
    names = list(arrays)
    if key is None:
        candidates = [name for name in names if name not in CLEAN_KEYS]
        if len(candidates) != 1:
            raise NoisyctlError(f"from-file: {file} holds {', '.join(names)}: name the labels with -N key=NAME")
        key = candidates[0]
    if key not in arrays:
        raise NoisyctlError(f"from-file: {file} has no '{key}'; it holds {', '.join(names)}")
    for clean_key in CLEAN_KEYS:
        if clean_key in arrays and clean_key != key:
            clean = _class_indices(arrays[clean_key], file, context)
            differ = int((clean != context.labels).sum())
            if differ:
                raise NoisyctlError(f"from-file: {file}'s {clean_key} differs from the dataset's labels in {differ:,} "
                                    f"of {len(clean):,} samples: the file is for other data, or in another order")
    return arrays[key]


def _csv_rows(file: Path) -> list[dict]:
    """A CSV's records, read once for the labels and every annotator's column."""
    try:
        with open(file, encoding="utf-8-sig", newline="") as handle:
            return list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise NoisyctlError(f"from-file: cannot read {file} ({exc})") from None


def _csv_labels(rows: list[dict], file: Path, key: str | None, context: NoiseContext) -> np.ndarray:
    """A CSV's labels by sample id: its ``id`` column and its ``label`` (or ``key``) column."""
    column = key or "label"
    if not rows or "id" not in rows[0] or column not in rows[0]:
        raise NoisyctlError(f"from-file: {file} needs an 'id' and a '{column}' column (the samples' ids and their "
                            f"labels)")
    by_id = {row["id"]: (row[column] or "").strip() for row in rows}
    ids = context.dataset.train.ids if context.dataset is not None else []
    missing = [sample_id for sample_id in ids if sample_id not in by_id]
    if missing or len(ids) != len(context.labels):
        first = f" (first: {missing[0]})" if missing else ""
        raise NoisyctlError(f"from-file: {file} lacks {len(missing):,} of the {len(context.labels):,} samples{first}")
    return np.array([by_id[sample_id] for sample_id in ids])


def _class_indices(labels: np.ndarray, file: Path, context: NoiseContext) -> np.ndarray:
    """One label a training sample (``_as_class_indices``), or one line saying the file holds others."""
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:  # a column vector
        labels = labels[:, 0]
    if labels.ndim != 1 or len(labels) != len(context.labels):
        raise NoisyctlError(f"from-file: {file} holds {labels.shape[0] if labels.ndim else 0:,} labels in shape "
                            f"{labels.shape}, not one for each of the {len(context.labels):,} training samples")
    return _as_class_indices(labels, file, context)


def _as_class_indices(labels: np.ndarray, file: Path, context: NoiseContext) -> np.ndarray:
    """Labels (N,) as class indices: integers in range, or class names (or their indices as text)."""
    if np.issubdtype(labels.dtype, np.integer):
        outside = (labels < 0) | (labels >= context.num_classes)
        if outside.any():
            raise NoisyctlError(f"from-file: {file} has label {int(labels[outside][0])}; the classes are 0 to "
                                f"{context.num_classes - 1}")
        return labels.astype(np.int64)
    try:
        index = {value: context.class_index(value) for value in np.unique(labels.astype(str))}
    except NoisyctlError as exc:
        raise NoisyctlError(f"from-file: {file}: {exc}") from None
    return np.array([index[value] for value in labels.astype(str)], dtype=np.int64)
