"""Noisy labels that people made, read from a file: CIFAR-10N's and CIFAR-100N's human annotations
(Wei et al. 2022, ``CIFAR-10_human.pt``), a second annotator's labels, a crowd's vote. The
dataset's own labels are the truth, so ``detect`` measures detectors against real human noise,
which follows neither uniform nor pair-flip patterns."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from noisyctl.api import NOT_LABELED, Annotations, NoiseContext, NoisyctlError, aggregate_labels

LABEL_FILES = ".pt, .pth, .npy, .npz, .csv or .tsv"
TABLE_SUFFIXES = (".csv", ".tsv")
# A crowd's table of one row a label keeps samples x annotators cells; past this many (1 GiB as
# int32) it is refused in words rather than run out of memory
MAX_ANNOTATION_CELLS = 2**28
# The keys of a CIFAR-N file that hold the original labels, checked against the dataset's.
CLEAN_KEYS = ("clean_label",)


def from_file(context: NoiseContext, rate: float | None, path: str | None = None, key: str | None = None,
              annotators: str | None = None, id: str = "id", aggregate: str | None = None) -> np.ndarray:
    """The labels in ``path``, one a training sample: an array in the samples' order (``.npy``; a
    ``.npz`` or a ``torch.save`` dict of arrays, as CIFAR-N ships them, names one with ``key``), or
    a CSV (or TSV) of ``id`` and ``label`` (or ``key``) columns, ``id`` naming another id column.
    Labels are class indices or names. Where the file holds a ``clean_label`` too, it must match
    the dataset's labels, so a file for other data or another order is refused rather than read as
    noise.

    ``annotators=KEY1,KEY2,...`` names the arrays (or CSV columns) of several annotators' own
    labels, kept beside the labels (-1 or an empty cell: that annotator gave none): CIFAR-10N's
    ``random_label1,random_label2,random_label3``. The labels are then ``key``'s, or without it
    the annotators' majority, or with ``aggregate=dawid-skene`` the class Dawid and Skene's model
    of them makes most probable (``aggregate_labels``).

    ``annotators=COLUMN``, one column of a CSV or TSV, reads a crowd's table of one row a label
    (Amazon Mechanical Turk's batch results, Toloka's and most crowdsourcing tools' exports): each
    row's sample ``id``, the annotator its ``COLUMN`` names, and the label in ``key`` (else
    ``label``). Of an annotator's two labels of a sample the later row counts, rows of samples
    outside the dataset are skipped, and the labels are the annotators' majority (or ``aggregate``)."""
    if rate is not None:
        raise NoisyctlError("from-file noise takes its labels from the file: drop --rate")
    if path is None:
        raise NoisyctlError(f"from-file noise needs the option -N path=FILE: the labels' file ({LABEL_FILES})")
    file = Path(path).expanduser()
    if not file.is_file():
        raise NoisyctlError(f"from-file: {file} is not a file")
    suffix = file.suffix.lower()
    if suffix not in TABLE_SUFFIXES + (".pt", ".pth", ".npz", ".npy"):
        raise NoisyctlError(f"from-file: {file} should be a {LABEL_FILES} file")
    if aggregate is not None and annotators is None:
        raise NoisyctlError("from-file: aggregate= needs annotators=...: it chooses how several annotators' labels "
                            "make one")
    if aggregate is not None and key is not None and "," in str(annotators):
        raise NoisyctlError("from-file: aggregate= and key= both choose the labels to train on: drop one")
    rows = _csv_rows(file, suffix) if suffix in TABLE_SUFFIXES else None
    if rows is not None and annotators is not None and "," not in str(annotators):
        context.annotations = _one_row_a_label(rows, file, str(id), str(annotators).strip(), key or "label", context)
        return _aggregated(context.annotations, file, aggregate, context.num_classes)
    arrays = None if rows is not None else _arrays(file, suffix)
    if annotators is not None:
        context.annotations = _annotations(file, rows, arrays, str(annotators), str(id), context)
        if key is None:
            return _aggregated(context.annotations, file, aggregate, context.num_classes)
    labels = _csv_labels(rows, file, str(id), key, context) if rows is not None \
        else _chosen(arrays, key, file, context)
    return _class_indices(labels, file, context)


def _one_row_a_label(rows: list[dict], file: Path, id_column: str, annotator_column: str, label_column: str,
                     context: NoiseContext) -> Annotations:
    """A crowd's labels from a table of one row a label: (sample id, annotator, label) in the
    three columns named, as (samples, annotators) in the order the annotators first appear."""
    columns = (id_column, annotator_column, label_column)
    if not rows or any(column not in rows[0] for column in columns):
        has = ", ".join(rows[0]) if rows else "none"
        raise NoisyctlError(f"from-file: {file} needs the columns {', '.join(map(repr, columns))} (a sample's id, who "
                            f"labeled it, and the label, one row a label); it has {has}")
    position = {sample_id: i for i, sample_id in enumerate(_training_ids(context))}
    kept = [(position[row[id_column]], (row[annotator_column] or "").strip(), (row[label_column] or "").strip())
            for row in rows if row[id_column] in position and (row[label_column] or "").strip()]
    unnamed = sum(1 for _, who, _ in kept if not who)
    if unnamed:
        raise NoisyctlError(f"from-file: {file}: {unnamed:,} labels name no annotator in column '{annotator_column}'")
    annotators = len({who for _, who, _ in kept})
    if len(context.labels) * annotators > MAX_ANNOTATION_CELLS:
        raise NoisyctlError(f"from-file: {file} holds {annotators:,} annotators' labels of {len(context.labels):,} "
                            f"samples, more than noisyctl keeps as one table ({MAX_ANNOTATION_CELLS:,} cells); "
                            f"give the labels alone with -N key=COLUMN of a table of one row a sample")
    labeled = np.zeros(len(context.labels), dtype=bool)
    labeled[[sample for sample, _, _ in kept]] = True
    if not labeled.all():
        first = _training_ids(context)[int(np.flatnonzero(~labeled)[0])]
        raise NoisyctlError(f"from-file: {file} labels {int(labeled.sum()):,} of the {len(context.labels):,} samples; "
                            f"no annotator labeled {int((~labeled).sum()):,} (first: {first})")
    classes = _as_class_indices(np.array([label for _, _, label in kept]), file, context)
    annotations = Annotations.from_rows(len(context.labels), np.array([sample for sample, _, _ in kept]),
                                        [who for _, who, _ in kept], classes)
    if annotations.per_sample().max() < 2:
        raise NoisyctlError(f"from-file: {file}: no sample has two annotators' labels in it, as a table of one row a "
                            f"label (annotators={annotator_column}) should; name two columns or more of a table of "
                            f"one row a sample (annotators=COLUMN1,COLUMN2)")
    return annotations


def _annotations(file: Path, rows: list[dict] | None, arrays, keys: str, id_column: str,
                 context: NoiseContext) -> Annotations:
    """The annotators' own labels that ``keys`` (comma-separated) name, as class indices: columns of
    the CSV ``rows`` (their sample ids in ``id_column``), else named ``arrays``."""
    names = [name.strip() for name in keys.split(",") if name.strip()]
    if len(names) < 2 or len(set(names)) < len(names):
        raise NoisyctlError(f"from-file: annotators=KEY1,KEY2,... names two annotators' labels or more, each once "
                            f"(or the one column naming the annotator of a .csv or .tsv of one row a label), "
                            f"not '{keys}'")
    if arrays is not None and not isinstance(arrays, dict):
        raise NoisyctlError(f"from-file: {file} holds one array, not named ones: annotators= needs a .npz, .pt or "
                            f".csv file of several")
    columns = []
    for name in names:
        if rows is not None:
            labels = _csv_labels(rows, file, id_column, name, context)
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


def _aggregated(annotations: Annotations, file: Path, aggregate: str | None, classes: int) -> np.ndarray:
    """One label a sample from the annotators' own (``aggregate_labels``), every sample labeled."""
    labels = aggregate_labels(annotations, aggregate, classes, "from-file")
    unlabeled = int((labels == NOT_LABELED).sum())
    if unlabeled:
        raise NoisyctlError(f"from-file: {file}: no annotator labeled {unlabeled:,} samples; name the labels to train "
                            f"on with -N key=NAME")
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


def _csv_rows(file: Path, suffix: str) -> list[dict]:
    """A CSV's (or TSV's) records, read once for the labels and every annotator's column."""
    try:
        with open(file, encoding="utf-8-sig", newline="") as handle:
            return list(csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ","))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise NoisyctlError(f"from-file: cannot read {file} ({exc})") from None


def _training_ids(context: NoiseContext) -> list[str]:
    return list(context.dataset.train.ids) if context.dataset is not None else []


def _csv_labels(rows: list[dict], file: Path, id_column: str, key: str | None, context: NoiseContext) -> np.ndarray:
    """A CSV's labels by sample id: its ``id_column`` and its ``label`` (or ``key``) column."""
    column = key or "label"
    if not rows or id_column not in rows[0] or column not in rows[0]:
        raise NoisyctlError(f"from-file: {file} needs an '{id_column}' and a '{column}' column (the samples' ids and "
                            f"their labels)")
    by_id = {row[id_column]: (row[column] or "").strip() for row in rows}
    ids = _training_ids(context)
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
