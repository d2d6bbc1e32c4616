"""Helpers shared by the built-in dataset loaders."""

from __future__ import annotations

import bz2
import csv
import gzip
import itertools
import json
import lzma
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from noisyctl.api import (AGGREGATES, ANNOTATION_COLUMNS, NOT_LABELED, Annotations, NoisyctlError, SampleSet,
                          aggregate_labels, agreement_by_person, annotation_choices, annotator, answered_annotations,
                          atomic_folder, atomic_output, check_share, is_label_studio_export, is_label_studio_flat_export,
                          majority)

CIFAR10_STATS = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
CIFAR100_STATS = ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
MNIST_STATS = ((0.1307,), (0.3081,))
IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
# Feature vectors whose values reach this size (raw measurements: a price beside a ratio) make a
# network's first steps diverge; by default ("auto") only such features are standardized, since
# equalising well-scaled features also equalises the variance that tells classes apart (measured:
# make_classification at 10% noise, mAP 0.80 -> 0.79 standardized).
LARGE_FEATURE = 10.0


def require_root(root, dataset: str, what: str) -> Path:
    """The dataset's folder or file, or one line saying what is needed."""
    if root is None:
        raise NoisyctlError(f"{dataset} needs --data-root: {what}")
    path = Path(root).expanduser()
    if not path.exists():
        raise NoisyctlError(f"{dataset}: {path} does not exist; it should be {what}")
    return path


def reads_no_root(root, dataset: str) -> None:
    """Bundled and generated datasets read nothing from disk: a --data-root given one was meant for
    another dataset, and is refused rather than ignored (noise and training on the wrong data)."""
    if root is not None:
        raise NoisyctlError(f"{dataset} is built in and reads nothing from --data-root {root}: give the dataset "
                            f"that reads it, --dataset imagefolder, text, table, ... (noisyctl plugins lists them)")


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


def standardize_features(sample_sets, stats_of, standardize, source, features: bool = True) -> list[str]:
    """Feature vectors standardized per feature by the training samples' ``stats_of()`` (mean, std),
    set on each of ``sample_sets`` (None skipped), when ``standardize`` is true, or auto and a
    feature's RMS exceeds LARGE_FEATURE; the note to show where it did. Images (not ``features``)
    are left alone, the option still checked."""
    standardize = str(standardize).lower()
    if standardize not in ("auto", "true", "false"):
        raise NoisyctlError(f"{source}: standardize is auto, true or false, not '{standardize}'")
    if standardize == "false" or not features:
        return []
    stats = stats_of()
    largest = float(np.sqrt(np.square(stats[0]) + np.square(stats[1])).max())  # the largest feature's RMS
    if standardize == "auto" and largest <= LARGE_FEATURE:
        return []
    for sample_set in sample_sets:
        if sample_set is not None:
            sample_set.mean, sample_set.std = per_position(stats, 1)
    scale = f"{largest:,.0f}" if largest >= 10 else f"{largest:.3g}"
    return [f"feature vectors on scales up to {scale}: standardized to mean 0, std 1 per feature over the "
            f"training samples (-D standardize=false keeps them as saved)"]


def check_labels(labels: np.ndarray, num_classes: int, ids: list[str], source: str) -> None:
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise NoisyctlError(f"{source}: sample {ids[i]} has label {labels[i]} outside 0..{num_classes - 1}")


def generated_total(samples: int, test_fraction: float) -> int:
    """How many samples to generate so that ``samples`` train and the test subset is ``test_fraction``."""
    check_share(test_fraction, "test_fraction")
    return samples + int(round(samples * test_fraction / (1 - test_fraction)))


def positive_int(value, name: str, dataset: str) -> int:
    """An option that must be a positive integer, or one line saying so."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1:
        raise NoisyctlError(f"{dataset}: {name} must be a positive integer, not '{value}'")
    return number


def fraction_option(value, dataset: str) -> float:
    """``test_fraction`` as a number in [0, 1), or one line saying so."""
    try:
        fraction = float(value)
    except (TypeError, ValueError):
        fraction = -1.0
    if not 0.0 <= fraction < 1.0:
        raise NoisyctlError(f"{dataset}: test_fraction must be in [0, 1), not '{value}'")
    return fraction


RECORD_FILES = ".csv, .tsv, .jsonl, .json, .txt (fastText), .xlsx, .parquet or .arrow"
# Read by pyarrow: Parquet; Arrow IPC, the stream format the Hugging Face datasets library's
# save_to_disk and cache write (.arrow) or the file format (.feather, pandas' to_feather).
ARROW_SUFFIXES = (".parquet", ".arrow", ".feather")
# fastText's lines, "__label__NAME text" (.txt: its tutorials, Amazon's review polarity set), or
# tab-separated cells (the UCI repository's sentiment labelled sentences: "text<TAB>1").
FASTTEXT_SUFFIX = ".txt"
# Delimited text: a .tsv's cells are split by tabs, the others' by commas (.data: the UCI repository's).
CSV_SUFFIXES = (".csv", ".tsv", ".data")
# Excel workbooks, as annotators and spreadsheets deliver labels: the first sheet, its first row the header.
EXCEL_SUFFIXES = (".xlsx", ".xlsm")
RECORD_SUFFIXES = CSV_SUFFIXES + (".jsonl", ".ndjson", ".json", FASTTEXT_SUFFIX) + ARROW_SUFFIXES + EXCEL_SUFFIXES
# Text files as datasets are often shipped, compressed whole (train.csv.gz, train.ft.txt.bz2).
COMPRESSIONS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
FASTTEXT_LABEL = "__label__"


def record_suffix(path: Path) -> str:
    """A records file's format, its compression aside: train.csv.gz -> .csv."""
    suffixes = [suffix.lower() for suffix in path.suffixes]
    if len(suffixes) >= 2 and suffixes[-1] in COMPRESSIONS:
        return suffixes[-2]
    return path.suffix.lower()


def _open_text(path: Path):
    """A text file for reading, decompressed where its name says it is compressed."""
    opener = COMPRESSIONS.get(path.suffix.lower())
    if opener is None:
        return open(path, encoding="utf-8-sig", newline="")
    return opener(path, "rt", encoding="utf-8-sig", newline="")


def read_records(path: Path, dataset: str, header: bool = True) -> list[dict]:
    """The records of a .csv / .tsv / .data (UCI's CSV) file (a header row; without ``header``,
    columns named by position from "1"), .jsonl (one JSON object per line), .json (an array of
    objects), .txt (fastText's "__label__NAME text" lines, as label and text; else tab-separated
    cells), .parquet file (what the Hugging Face Hub, pandas and data lakes store tables as) or
    .arrow / .feather file (``datasets``' save_to_disk, pandas' to_feather; both need pyarrow), each
    a dict of column -> cell (CSV cells are strings; a short CSV row leaves its last cells None).
    Text files may be compressed (.gz, .bz2, .xz). A CSV row with more cells than the header is
    refused: an unquoted delimiter inside a cell would otherwise shift or cut it silently."""
    suffix = record_suffix(path)
    if suffix in ARROW_SUFFIXES:
        return _arrow_table(path).to_pylist()
    if suffix in EXCEL_SUFFIXES:
        return _excel_records(path)
    if suffix not in RECORD_SUFFIXES:
        raise NoisyctlError(f"{dataset}: {path} should be a {RECORD_FILES} file")
    limit = csv.field_size_limit(2**31 - 1)  # a long document is one cell; the default limit is 128 KiB
    try:
        with _open_text(path) as handle:
            if suffix == ".json":  # one JSON array of records
                try:
                    rows = json.load(handle)
                except json.JSONDecodeError as exc:
                    raise NoisyctlError(f"{path}, line {exc.lineno}: not valid JSON ({exc.msg})") from None
                if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
                    raise NoisyctlError(f"{path}: a .json file holds one array of records (objects); one record "
                                        f"a line is .jsonl")
                return _label_studio_records(rows) if is_label_studio_export(rows) else _flat_export_grouped(rows)
            if suffix in (".jsonl", ".ndjson"):
                rows = []
                for number, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError:
                        raise NoisyctlError(f"{path}, line {number}: not a JSON object (JSONL holds one per "
                                            f"line)") from None
                    if not isinstance(row, dict):
                        raise NoisyctlError(f"{path}, line {number}: not a JSON object (JSONL holds one per line)")
                    rows.append(row)
                return rows
            if suffix == ".tsv":
                return _csv_records(handle, path, "\t", header)
            # What the first line holds tells the format: a .txt's fastText labels or tab-separated
            # cells (UCI's labelled sentences); a .csv's ';' where a comma-decimal locale's
            # spreadsheet (German, French Excel) saved it.
            first = next((line for line in handle if line.strip()), "")
            lines = itertools.chain([first], handle)
            if suffix == FASTTEXT_SUFFIX:
                if first.lstrip().startswith(FASTTEXT_LABEL) or "\t" not in first:
                    return _fasttext_records(lines, path)
                return _csv_records(lines, path, "\t", header)
            return _flat_export_grouped(_csv_records(lines, path, ";" if first.count(";") > first.count(",") else ",",
                                                     header))
    except UnicodeDecodeError:
        raise NoisyctlError(f"{path} is not UTF-8 text") from None
    except csv.Error as exc:
        raise NoisyctlError(f"{path} is not a readable CSV file ({exc})") from None
    except (OSError, EOFError) as exc:  # a compressed file's errors included (a .gz that is not gzip)
        raise NoisyctlError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    finally:
        csv.field_size_limit(limit)


# A number as a comma-decimal locale writes it (72,5), in the ';'-separated files it saves.
DECIMAL_COMMA = re.compile(r"[+-]?\d*,\d+")


def _csv_records(handle, path: Path, delimiter: str, header: bool) -> list[dict]:
    """A CSV or TSV file's records, keyed by its header's names or (without ``header``) by position;
    in a ';'-separated file, numbers with a decimal comma read as numbers."""
    reader = csv.reader(handle, delimiter=delimiter)
    if delimiter == ";":
        reader = ([cell.replace(",", ".") if DECIMAL_COMMA.fullmatch(cell) else cell for cell in cells]
                  for cells in reader)
    names = next((cells for cells in reader if cells), None) if header else None
    rows = []
    for cells in reader:
        if not cells:  # a blank line
            continue
        if names is None:
            names = [str(position) for position in range(1, len(cells) + 1)]
        if len(cells) > len(names):
            raise NoisyctlError(f"{path}, record {len(rows) + 1}: more cells than the "
                                f"{'header' if header else 'first record'}'s {len(names)} columns (a "
                                f"delimiter inside an unquoted cell?)")
        row = dict(zip(names, cells))
        for name in names[len(cells):]:
            row.setdefault(name, None)
        rows.append(row)
    return rows


def _fasttext_records(handle, path: Path) -> list[dict]:
    """fastText's lines as records: the ``__label__`` word a line starts with as ``label``, the rest
    of it as ``text``; a line with several (a multi-label set, as fastText's cooking tutorial) is
    refused: noisyctl classifies one label a sample."""
    rows = []
    for number, line in enumerate(handle, start=1):
        words = line.split()
        if not words:
            continue
        labels = []
        while words and words[0].startswith(FASTTEXT_LABEL):
            labels.append(words.pop(0)[len(FASTTEXT_LABEL):])
        if not labels:
            raise NoisyctlError(f"{path}, line {number}: no {FASTTEXT_LABEL} word first (a .txt file holds "
                                f"fastText's lines, '{FASTTEXT_LABEL}NAME text', or tab-separated cells)")
        if len(labels) > 1:
            raise NoisyctlError(f"{path}, line {number}: several labels ({', '.join(labels[:3])}); noisyctl reads "
                                f"one class a sample")
        rows.append({"label": labels[0], "text": " ".join(words)})
    return rows


def _excel_records(path: Path) -> list[dict]:
    """The first sheet of an Excel workbook as records: its first non-empty row names the columns
    (an unnamed one by its position from 1), each later non-empty row is a record of the values
    the cells show (a formula's last computed value; numbers stay numbers)."""
    try:
        import openpyxl
    except ImportError:
        raise NoisyctlError(f"reading {path.name} needs openpyxl: pip install 'noisyctl[excel]'") from None
    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl's own errors (InvalidFileException, BadZipFile) for a file it cannot read
        raise NoisyctlError(f"{path} is not a readable Excel workbook ({str(exc).splitlines()[0][:160]})") from None
    try:
        rows = (row for row in workbook.worksheets[0].iter_rows(values_only=True)
                if any(cell is not None and str(cell).strip() for cell in row))
        header = next(rows, None)
        if header is None:
            return []
        names = [str(name).strip() if name is not None and str(name).strip() else str(k) for k, name in
                 enumerate(header, start=1)]
        records = [dict(zip(names, [*row, *[None] * (len(names) - len(row))])) for row in rows]
        # A sheet's used range often runs past its data: unnamed columns with nothing in them are none.
        empty = [name for name, cell in zip(names, header) if cell is None and all(r[name] is None for r in records)]
        return [{name: cell for name, cell in record.items() if name not in empty} for record in records]
    finally:
        workbook.close()


class Records(list):
    """Records, and the ``notes`` their reading left for the user (a Label Studio export's
    annotators' agreement); ``answers``, of a Label Studio export, each record's answers by
    control, as (annotator, choice) pairs (``record_annotations`` reads them)."""

    def __init__(self, rows=(), notes: list[str] | None = None,
                 answers: list[dict[str, list[tuple[str | None, Any]]]] | None = None) -> None:
        super().__init__(rows)
        self.notes = list(notes or [])
        self.answers = answers


def record_annotations(rows: list[dict], label_column: str, classes: list[str]) -> Annotations | None:
    """Each annotator's own label of each record, as indices into ``classes`` (``NOT_LABELED``
    where they gave none, or a class no record holds): the ``label_column`` answers of a Label
    Studio export's records (``Records.answers``). None for records of another kind, or where no
    task was answered by two annotators or more (nothing to weigh them by)."""
    answers = getattr(rows, "answers", None)
    if not answers or not any(len(answer.get(label_column, [])) > 1 for answer in answers):
        return None
    names = sorted({str(who) for answer in answers for who, _ in answer.get(label_column, []) if who is not None})
    if len(names) < 2:
        return None
    index = {name: c for c, name in enumerate(classes)}
    samples, gave, said = [], [], []
    for row, answer in enumerate(answers):
        for who, choice in answer.get(label_column, []):
            text = "" if choice is None or isinstance(choice, (list, dict)) else str(choice).strip()
            if who is not None and text in index:
                samples.append(row)
                gave.append(str(who))
                said.append(index[text])
    return Annotations.from_rows(len(rows), np.array(samples, dtype=np.int64), gave, np.array(said, dtype=np.int64),
                                 names=names)


def aggregated_labels(annotations: Annotations | None, labels: np.ndarray, aggregate: str | None, classes: int,
                      dataset: str, notes: list[str]) -> np.ndarray:
    """The training ``labels`` (N,) as the annotators' ``aggregate`` of their own labels
    (``aggregate_labels``: majority or dawid-skene) where the data keeps them (``record_annotations``,
    of the same N samples); a sample no annotator named keeps its label (a task's ground truth
    settles it). As given where ``aggregate`` is None (a note offers it where some sample has three
    annotators' labels) or the majority (the records' labels are their vote); else a note says how many labels
    it changed."""
    if aggregate is None:
        if annotations is not None and (annotations.per_sample() >= 3).any():
            notes.append("-D aggregate=dawid-skene trains on the class the annotators' Dawid-Skene model makes most "
                         "probable instead of their vote, weighing each by their estimated accuracy")
        return labels
    if annotations is None:
        raise NoisyctlError(f"{dataset}: aggregate={aggregate} needs several annotators' own labels of the samples, as "
                            f"a Label Studio export with overlap keeps them; these records have none")
    if str(aggregate).strip().lower() == AGGREGATES[0]:
        return labels  # the records' labels are their vote already, a tie broken as the export ordered it
    chosen = aggregate_labels(annotations, aggregate, classes, dataset)
    chosen = np.where(chosen == NOT_LABELED, labels, chosen)
    notes.append(f"labels: the class the annotators' Dawid-Skene model makes most probable, which differs from "
                 f"their vote on {int((chosen != labels).sum()):,} of {len(labels):,} samples")
    return chosen


def _label_studio_records(tasks: list[dict]) -> Records:
    """Label Studio's tasks as flat records: the task's data, its id, and each choices control's
    answer under the control's name (``sentiment``, ``choice``), several chosen as a list (which
    the loaders refuse as multi-label). A task's answer is its ground-truth annotation, else what
    most of its annotations not cancelled chose (``_task_records``)."""
    return _task_records((task.get("id"), task["data"], [(annotator(a), annotation_choices(a))
                                                         for a in answered_annotations(task)]) for task in tasks)


def _flat_export_grouped(rows: list[dict]) -> list[dict]:
    """A Label Studio JSON-MIN or CSV export's records (``is_label_studio_flat_export``: one an
    annotation) as one record a task, as its JSON export reads (``_task_records``: each column as
    most of the task's annotations give it). Other records are returned as they are."""
    if not is_label_studio_flat_export(rows):
        return rows
    tasks: dict[str, list[dict]] = {}
    for row in rows:
        if row.get("annotation_id") not in (None, ""):  # a task nobody answered has none
            tasks.setdefault(str(row["id"]), []).append(row)
    return _task_records((answered[0]["id"], {}, [
        (annotator({"completed_by": row.get("annotator")}),
         {column: value for column, value in row.items() if column not in ("id", *ANNOTATION_COLUMNS)
          and value not in (None, "")}) for row in answered]) for answered in tasks.values())


def _task_records(tasks) -> Records:
    """Records of Label Studio's tasks, given as (id, data, answers: each annotation's annotator and
    its answers by control): the task's data and id, and each control as most of its annotations
    answered (``majority``: of a tie, the latest: with overlap set, the last annotator alone would
    outvote the others), each one's answers kept (``Records.answers``). Tasks nobody answered hold
    no label and are left out. Where annotators shared tasks, the notes say how often they agreed."""
    records, shared = Records(answers=[]), []
    for task_id, data, answers in tasks:
        if not answers:
            continue
        record, by_control = {"id": task_id, **data}, {}
        for control in dict.fromkeys(name for _, answer in answers for name in answer):
            said = [(who, answer[control]) for who, answer in answers if control in answer]
            record[control] = majority([choice for _, choice in said])
            by_control[control] = said
        if len(answers) > 1:  # each annotator's whole answer
            shared.append([(who, json.dumps(answer, sort_keys=True, default=str)) for who, answer in answers])
        records.append(record)
        records.answers.append(by_control)
    records.notes = _agreement_notes(shared, len(records))
    return records


def _agreement_notes(shared: list[list[tuple[str | None, Any]]], answered: int) -> list[str]:
    """What a Label Studio export's tasks answered by several annotators (``shared``: each one's
    answers, by whom) say of its labels, out of the ``answered`` tasks."""
    if not shared:
        return []
    split = sum(len({str(choice) for _, choice in said}) > 1 for said in shared)
    notes = [f"Label Studio: {len(shared):,} of {answered:,} tasks were answered by several annotators, who "
             f"disagreed on {split:,}: each is labeled as most of them answered (of a tie, the latest)"]
    people = [p for p in agreement_by_person(shared) if p["shared"]]
    if people:
        notes.append("annotators who answered as the others did, of the tasks they shared: " + ", ".join(
            f"{p['reviewer']} on {p['agreed']:,} of {p['shared']:,}" for p in people))
    return notes


def _arrow_table(path: Path, schema_only: bool = False):
    """A Parquet or Arrow IPC file as a pyarrow Table (or only its schema)."""
    try:
        import pyarrow as pa
        import pyarrow.ipc as ipc
        import pyarrow.parquet as parquet
    except ImportError:
        raise NoisyctlError(f"reading {path.name} needs pyarrow: pip install 'noisyctl[parquet]'") from None
    kind = "Parquet" if path.suffix.lower() == ".parquet" else "Arrow"
    try:
        if kind == "Parquet":
            return parquet.read_schema(path) if schema_only else parquet.read_table(path)
        with pa.memory_map(str(path)) as source:
            try:  # the stream format (datasets' .arrow), else the file format (Feather v2)
                reader = ipc.open_stream(source)
            except pa.ArrowInvalid:
                source.seek(0)
                reader = ipc.open_file(source)
            return reader.schema if schema_only else reader.read_all()
    except Exception as exc:  # pyarrow's own errors (ArrowInvalid, OSError) for a file it cannot read
        raise NoisyctlError(f"{path} is not a readable {kind} file ({str(exc).splitlines()[0][:200]})") from None


def hub_class_names(path: Path, column: str, labels: list[str]) -> tuple[list[str], list[str] | None]:
    """Integer labels of a Parquet or Arrow file the Hugging Face ``datasets`` library wrote, as the
    class names its metadata gives the column (a ClassLabel), with those names in their order; else
    the labels as they are and None."""
    if path.suffix.lower() not in ARROW_SUFFIXES or not all(label.isdigit() for label in labels):
        return labels, None
    try:
        metadata = _arrow_table(path, schema_only=True).metadata or {}
        feature = json.loads(metadata.get(b"huggingface", b"{}"))["info"]["features"][column]
        names = [str(name) for name in feature["names"]] if feature.get("_type") == "ClassLabel" else None
    except (KeyError, TypeError, ValueError, AttributeError):
        return labels, None
    if not names or any(int(label) >= len(names) for label in labels):
        return labels, None
    return [names[int(label)] for label in labels], names


# Columns found by name where none is given, case aside (pandas and spreadsheets write Text, Label):
# what public text and table datasets call their labels and texts (SST-2's sentence, the IMDb
# reviews' review and sentiment, intents' utterance and intent).
LABEL_COLUMNS = ("label", "labels", "target", "class", "category", "sentiment", "intent", "y", "choice")
TEXT_COLUMNS = ("text", "sentence", "review", "content", "comment", "tweet", "document", "body", "message",
                "question", "utterance")


def column_name(value) -> str | None:
    """A column option as the records name it: -D label_column=5 (a position, read as a number) is
    column "5"."""
    return None if value is None else str(value)


def find_column(columns: list, given: str | None, candidates: tuple[str, ...], what: str, path: Path,
                hint: str) -> str:
    """The column ``given``, else the first of ``candidates`` that ``columns`` holds (case aside);
    none of them is refused, naming the columns there are and ``hint``."""
    if given is not None:
        return given
    by_name = {}
    for column in columns:
        by_name.setdefault(str(column).lower(), column)
    found = next((by_name[name] for name in candidates if name in by_name), None)
    if found is None:
        shown = ", ".join(map(str, columns[:12])) + (" ..." if len(columns) > 12 else "")
        raise NoisyctlError(f"{path} has no {what} column ({', '.join(candidates)}); it has {shown} ({hint})")
    return found


def is_number(text: str) -> bool:
    """Whether a cell reads as a finite number."""
    try:
        return math.isfinite(float(text))
    except (TypeError, ValueError):
        return False


# A cell this long is a record's text, never a column's name.
LONGEST_NAME = 60


def header_is_record(rows: list[dict], files: list[Path], given: list[str], looked_for: tuple[str, ...]) -> bool:
    """Whether CSV or TSV ``files`` have no header row, as the text classification sets of Zhang et
    al. (2015) come (AG News: ``"3","Wall St. Bears Claw Back ...","Reuters - ..."``): the row read
    as the header names none of the columns ``given`` by name or ``looked_for``, and holds a number
    or a long text. (Given as numbers, columns are positions.) A header that starts 0, 1, 2, ...
    (or 1, 2, 3) is pandas' names for unnamed columns, as ``DataFrame(x).assign(digit=y)`` writes."""
    if not rows or not all(record_suffix(file) in CSV_SUFFIXES + (FASTTEXT_SUFFIX,) for file in files):
        return False
    names = [str(name) for name in rows[0]]
    lowered = {name.lower() for name in names}
    if any(name in names for name in given if not name.isdigit()) or lowered & set(looked_for):
        return False
    first = names[:3]
    if first in ([str(k) for k in range(len(first))], [str(k + 1) for k in range(len(first))]):
        return False
    return any(is_number(name) or len(name) > LONGEST_NAME for name in names)


def read_headerless(files: list[Path], dataset: str, notes: list[str]) -> list[dict]:
    """The records of CSV or TSV ``files`` without a header row, columns named by position from "1";
    ``notes`` says so."""
    rows = read_record_files(files, dataset, header=False)
    notes.append(f"{records_source(files).name} has no header row: its columns are named by position, 1 to "
                 f"{len(rows[0])}")
    return rows


CLASS_LIST = "classes.txt"
CLASS_MAP_BYTES = 1 << 20  # a .json file this large holds data, not class names


def listed_class_names(folder: Path, labels: list[str]) -> tuple[dict[str, str], Path] | None:
    """What the integer ``labels`` are named by a class list in ``folder``, and the list: a
    ``classes.txt``, a class a line (AG News, DBpedia and Yahoo Answers ship one: label 1 is its first
    line, or label 0 where one is 0), else the one small .json file there holding an object that
    names every label (Kaggle's cassava set: ``{"0": "Cassava Bacterial Blight (CBB)", ...}``).
    None without one, or where a label has no name."""
    if not labels or not all(label.isdigit() for label in labels):
        return None
    try:
        listed = folder / CLASS_LIST
        if listed.is_file():
            names = [line.strip() for line in listed.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
            first = 0 if any(int(label) == 0 for label in labels) else 1
            if len(set(names)) != len(names) or any(int(label) - first >= len(names) for label in labels):
                return None
            return {str(first + k): name for k, name in enumerate(names)}, listed
        maps = []
        for file in sorted(folder.glob("*.json")):
            if file.stat().st_size < CLASS_MAP_BYTES:
                found = json.loads(file.read_text(encoding="utf-8-sig"))
                if isinstance(found, dict) and found and all(key.isdigit() and isinstance(name, str)
                                                             for key, name in found.items()):
                    maps.append((file, {str(int(key)): name.strip() for key, name in found.items()}))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if len(maps) != 1 or not set(labels) <= set(maps[0][1]) or len(set(maps[0][1].values())) != len(maps[0][1]):
        return None
    file, names = maps[0]
    return dict(sorted(names.items(), key=lambda item: int(item[0]))), file


def named_by_class_list(folder: Path, labels: list[str], test_labels: list[str] | None,
                        notes: list[str]) -> tuple[list[str], list[str] | None, list[str] | None]:
    """Training and test labels named by a class list in ``folder`` (``listed_class_names``), with
    the class names in its order; else as they are, and None."""
    found = listed_class_names(folder, labels)
    if found is None:
        return labels, test_labels, None
    listed, file = found
    notes.append(f"class names from {file}")
    named_test = None if test_labels is None else [listed.get(label, label) for label in test_labels]
    return [listed[label] for label in labels], named_test, list(listed.values())


def column_values(rows: list[dict], name: str, path: Path, hint: str) -> list:
    """Every record's cell in column ``name``; a column the file lacks names the ones it has and
    ``hint`` (the options that name columns)."""
    if rows and name not in rows[0]:
        raise NoisyctlError(f"{path} has no column '{name}'; it has {', '.join(map(str, rows[0]))} ({hint})")
    missing = next((i for i, row in enumerate(rows) if row.get(name) is None), None)
    if missing is not None:
        raise NoisyctlError(f"{path}: record {missing + 1} has no '{name}'")
    return [row[name] for row in rows]


# Labels that are numbers with decimals are classes only where they take a few values (half-star
# ratings: 1.0, 1.5, ..., 5.0); many of them are a regression target (a price, a score).
MOST_DECIMAL_CLASSES = 50


def label_strings(values: list, column: str, path: Path, empty: frozenset = frozenset({""})) -> list[str]:
    """A label column's values as text: stripped, whole-number floats as integers (``1.0``: pandas
    writes integer labels so beside a missing one). A record with no label (a value in ``empty``)
    is refused, else it would become a class of its own; so is one holding several (a list: a
    multi-label dataset, such as the Hub's ``labels`` sequences): noisyctl classifies one label a
    sample."""
    several = next((i for i, value in enumerate(values) if isinstance(value, (list, tuple, dict))), None)
    if several is not None:
        raise NoisyctlError(f"{path}: record {several + 1}'s '{column}' holds several labels "
                            f"({str(values[several])[:40]}); noisyctl reads one class a sample: name a column "
                            f"with one (-D label_column=...)")
    labels = ["" if value is None else str(value).strip() for value in values]
    missing = next((i for i, label in enumerate(labels) if label in empty), None)
    if missing is not None:
        raise NoisyctlError(f"{path}: record {missing + 1} has an empty '{column}'")
    try:
        numbers = [float(label) for label in labels]
    except ValueError:
        return labels
    whole = all(number.is_integer() and number >= 0 for number in numbers)
    if not whole and len(set(numbers)) > MOST_DECIMAL_CLASSES:
        shown = ", ".join(labels[:3])
        raise NoisyctlError(f"{path}: column '{column}' holds {len(set(numbers)):,} different numbers ({shown}, ...): "
                            f"a quantity to predict, not classes; noisyctl classifies (-D label_column=NAME names "
                            f"a column of classes)")
    return [str(int(number)) for number in numbers] if whole else labels


# A label spread over columns of 0s and 1s, a column a class, with one 1 in each record: ISIC
# 2018's skin lesions (image,MEL,NV,BCC,... as 0.0 and 1.0), Kaggle's plant pathology
# (image_id,healthy,multiple_diseases,rust,scab), UCI's steel plate faults (the last seven columns).
# The loaders read it as one label column of this name, which none of the file's columns has.
ONE_HOT_LABEL = "label"
BINARY_CELLS = {"0": 0, "1": 1, "0.0": 0, "1.0": 1, "false": 0, "true": 1}


def _binary(cell) -> int | None:
    if isinstance(cell, (bool, int, float)):
        return int(cell) if cell in (0, 1) else None
    return None if cell is None else BINARY_CELLS.get(str(cell).strip().lower())


def read_one_hot_label(rows: list[dict], columns: list[str], path: Path, several_refused: bool) -> list[str]:
    """The columns at the end of ``columns`` that one-hot encode the label (the longest run of two
    or more whose cells are 0 or 1, with one 1 in every record), each record given its class as its
    ``ONE_HOT_LABEL``; [] where there is none. A run of such columns whose records hold several 1s
    or none is multi-label data (Jigsaw's toxic comments, CheXpert's findings): refused where
    ``several_refused`` (where no other column can be the label), since noisyctl reads one class a
    sample."""
    run: list[tuple[str, np.ndarray]] = []
    for name in reversed(columns):
        cells = [_binary(row.get(name)) for row in rows]
        if None in cells:
            break
        run.append((name, np.array(cells)))
    ones, longest = np.zeros(len(rows), dtype=np.int64), 0
    for length, (_, cells) in enumerate(run, start=1):
        ones += cells
        if length >= 2 and (ones == 1).all():
            longest = length
    if longest:
        one_hot = [name for name, _ in reversed(run[:longest])]
        add_one_hot_label(rows, one_hot, path)
        return one_hot
    if several_refused and len(run) >= 2:
        several = int((ones != 1).sum())
        names = ", ".join(name for name, _ in reversed(run[:8])) + (" ..." if len(run) > 8 else "")
        raise NoisyctlError(f"{path}: columns {names} mark classes with 0s and 1s, and {several:,} records hold "
                            f"several 1s or none: a multi-label dataset; noisyctl reads one class a sample "
                            f"(-D label_column=NAME reads one column as a label)")
    return []


def _marked(row: dict, columns: list[str]) -> list[str]:
    """The one-hot ``columns`` that hold a 1 in ``row``."""
    return [name for name in columns if _binary(row.get(name)) == 1]


def add_one_hot_label(rows: list[dict], columns: list[str], path: Path) -> None:
    """Each record's class, the name of the one of ``columns`` that holds its 1, as its
    ``ONE_HOT_LABEL``; a record with several 1s or none (in a test file read alike) is refused."""
    for number, row in enumerate(rows, start=1):
        marked = _marked(row, columns)
        if len(marked) != 1:
            raise NoisyctlError(f"{path}: record {number} marks {len(marked)} of the classes {', '.join(columns)} "
                                f"with a 1, not one")
        row[ONE_HOT_LABEL] = marked[0]


def one_hot_note(columns: list[str]) -> str:
    return f"labels from {len(columns)} one-hot columns, '{columns[0]}' to '{columns[-1]}', a class each"


def integer_classes(values) -> list[int]:
    """The classes of integer labels, in numeric order: counting from 0 (or below, which the loaders
    refuse) they are class indices 0..K-1 (a missing index is a class without samples); from 1 up
    (star ratings 1-5, MATLAB's and SVHN's 1-10) the values present, with no empty class 0 for noise
    to flip labels into."""
    values = sorted({int(value) for value in values})
    return values if values and values[0] >= 1 else list(range(values[-1] + 1 if values else 1))


def class_names_of(labels: list[str]) -> list[str]:
    """Integer labels as ``integer_classes``; other labels are class names, sorted."""
    if all(label.isdigit() for label in labels):
        return [str(c) for c in integer_classes(labels)]
    return sorted(set(labels))


def class_indices(names: list[str], labels: list[str], test_labels: list[str] | None,
                  source: Path, dataset: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Training and test labels as indices into ``names``; one class only, or a test label the
    training records lack, is refused."""
    if len(names) < 2:
        raise NoisyctlError(f"{source}: every record has the label '{names[0]}'; classification needs two classes")
    position = {name: c for c, name in enumerate(names)}
    unknown = next((label for label in test_labels or [] if label not in position), None)
    if unknown is not None:
        raise NoisyctlError(f"{dataset}: the test file has label '{unknown}', which the training file lacks")
    return (np.array([position[label] for label in labels], dtype=np.int64),
            None if test_labels is None else np.array([position[label] for label in test_labels], dtype=np.int64))


def unique_ids(ids: list[str], id_column: str | None, source: Path) -> list[str]:
    """``ids``, refused where two records share one."""
    if len(set(ids)) != len(ids):
        raise NoisyctlError(f"{source}: the ids in column '{id_column}' are not unique")
    return ids


def find_test_file(path: Path, test: str) -> Path:
    """A test file named relative to the folder noisyctl runs in, else beside the training file
    ``path`` (or inside it, a folder; labels and run files record it absolute, so later commands
    run anywhere)."""
    beside = (path if path.is_dir() else path.parent) / Path(test).expanduser()
    return beside if not Path(test).expanduser().exists() and beside.exists() else Path(test).expanduser()


# A folder of records is read as the Hugging Face Hub lays a dataset out (data/train-00000-of-00002.parquet,
# data/test-00000-of-00001.parquet; or train/0000.parquet), and as datasets' save_to_disk does
# (train/data-00000-of-00001.arrow beside train/state.json): a file belongs to the split its name
# starts or ends with (``split_name``), or its folder's name starts with; the library's own JSON
# beside the data is not records.
TRAIN_SPLITS = ("train", "training")
TEST_SPLITS = (("test", "testing"), ("validation", "valid", "val", "dev"))
DATASETS_METADATA = {"state.json", "dataset_info.json", "dataset_dict.json", "dataset_infos.json"}


def record_files(root: Path, dataset: str, test: str | None) -> tuple[list[Path], list[Path]]:
    """The training and test files of a text or table dataset: ``root`` itself, or the split files
    of a folder (``TRAIN_SPLITS``, and ``TEST_SPLITS``: test, else validation; or the shards of one
    split saved with ``datasets``' save_to_disk); the test files are ``test`` where given
    (``find_test_file``)."""
    tested = [] if test is None else [require_root(find_test_file(root, test), dataset, "the test file")]
    if not root.is_dir():
        return [root], tested
    files = sorted(file for file in root.rglob("*") if file.is_file() and record_suffix(file) in RECORD_SUFFIXES
                   and file.name.lower() not in DATASETS_METADATA
                   and not any(part.startswith(".") for part in file.relative_to(root).parts))

    def split(names: tuple[str, ...]) -> list[Path]:
        return [file for file in files if split_name(file.name) in names or file.parent.name.lower() in names]

    train = split(TRAIN_SPLITS)
    if not train and (root / "state.json").is_file():  # one Dataset (no splits) saved with save_to_disk
        train = [file for file in files if file.parent == root]
    if not train:
        raise NoisyctlError(f"{dataset}: the folder {root} holds no training file "
                            f"({' or '.join(name + '*' for name in TRAIN_SPLITS)}: {RECORD_FILES}); give the file "
                            f"itself")
    return train, tested or next((found for names in TEST_SPLITS if (found := split(names))), [])


SHARD = re.compile(r"\d+|of")
SPLIT_NAMES = TRAIN_SPLITS + sum(TEST_SPLITS, ())


def split_name(file_name: str) -> str:
    """The split a file's name starts or ends with, shard numbers aside: train-00000-of-00002.parquet,
    news_test.csv (a dataset's name, then the split), imdb-train.arrow (datasets' cache) -> train, test,
    train; sample_submission.csv is neither."""
    words = [word for word in Path(file_name).stem.lower().replace("_", "-").replace(".", "-").split("-") if word]
    named = [word for word in words if not SHARD.fullmatch(word)] or [""]
    return named[0] if named[0] in SPLIT_NAMES else named[-1]


def labeled_test_records(files: list[Path], dataset: str, label_column: str, given: bool,
                         notes: list[str], header: bool = True, one_hot: list[str] | None = None) -> list[dict] | None:
    """The records of the test ``files`` (``read_record_files``, with or without a ``header`` row as
    the training files); None where there are none, or where those found in a dataset's folder have
    no labels (a competition's test.csv, whose labels are withheld; ``notes`` says so): they cannot
    be a test subset. A test file the user named (``given``) must have them. Where the training
    records' labels are ``one_hot`` columns, so are the test records'."""
    if not files:
        return None
    rows = read_record_files(files, dataset, header)
    if one_hot and all(name in rows[0] for name in one_hot):
        add_one_hot_label(rows, one_hot, records_source(files))
    if given or label_column in rows[0]:
        return rows
    notes.append(f"{records_source(files).name} has no '{label_column}' column (labels withheld, as in a "
                 f"competition's test set): no test subset (-D test_fraction=0.2 holds out training records)")
    return None


# What a relabeled copy of a dataset's records may be written as.
COPY_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet")


def copy_target(out, suffixes: tuple[str, ...], sources: list[Path], what: str) -> Path:
    """Where a relabeled copy goes (``DatasetData.relabeled_copy``'s ``out``): a file of one of
    ``suffixes`` (``what`` names them), never one of the dataset's own ``sources``."""
    out = Path(out)
    if out.suffix.lower() not in suffixes:
        raise NoisyctlError(f"{out}: {what}")
    if any(out.resolve() == source.resolve() for source in sources):
        raise NoisyctlError(f"{out} is the dataset's own file; write the copy elsewhere, and put it in the "
                            f"file's place once you have checked it")
    return out


def new_folder(out, root: Path, refused_suffixes: tuple[str, ...] = ()):
    """Where a relabeled copy that is a folder is built (``DatasetData.relabeled_copy``'s ``out``,
    laid out as the dataset's ``root``): ``atomic_folder(out)``, so the copy appears whole or not at
    all. ``out`` must not end in one of ``refused_suffixes`` (a file was meant) and be neither inside
    the dataset nor hold it."""
    out = Path(out)
    if out.suffix.lower() in refused_suffixes:
        raise NoisyctlError(f"{out}: a copy of this dataset is a folder, laid out as {root} is; give a folder")
    inside, target = Path(root).resolve(), out.resolve()
    if target.is_relative_to(inside) or inside.is_relative_to(target):
        raise NoisyctlError(f"{out} is inside the dataset {root} (or holds it); write the copy elsewhere")
    return atomic_folder(out)


def link_or_copy(source: Path, destination: Path) -> None:
    """``destination`` as a hard link to ``source`` where the disk allows (no space taken), else a copy."""
    import shutil

    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def kept_samples(ids: list[str], labels: dict[str, str | None]):
    """(position, class) of each sample of ``ids`` that a relabeled copy keeps, by the ``labels`` it
    was given: a class name where the sample has one now, "" where it keeps its own (an id
    ``labels`` lacks); those mapped to None are left out."""
    for position, sample_id in enumerate(ids):
        name = labels.get(sample_id, "")
        if name is not None:
            yield position, name


def relabeled_copy(files: list[Path], dataset: str, header: bool, ids: list[str], label_column: str,
                   one_hot: list[str], names: list[str]):
    """``DatasetData.relabeled_copy`` for data read from the records ``files`` (with or without a
    ``header`` row): ``ids`` and ``names`` (each record's class name) one a record, in the files'
    order. A relabeled record's cell becomes the cell of a record of its new class (a ClassLabel's
    integer, a rating's 5); where the label is ``one_hot`` columns, the 1 moves to the new class's
    column."""
    files, ids = list(files), list(ids)

    def copy(labels: dict[str, str | None], out: Path) -> int:
        out = copy_target(out, COPY_SUFFIXES, files, f"a copy of the data is written as {', '.join(COPY_SUFFIXES)}")
        # A Label Studio export copied as one is read once, as tasks; its records are theirs.
        tasks = _label_studio_tasks(files) if out.suffix.lower() == ".json" else None
        rows = read_record_files(files, dataset, header) if tasks is None else _label_studio_records(tasks)
        if len(rows) != len(ids):
            raise NoisyctlError(f"{records_source(files)} holds {len(rows):,} records, not the {len(ids):,} it "
                                f"held when read: it changed")
        cell_of: dict[str, Any] = {}  # each class as the file writes it
        for name, row in zip(names, rows):
            cell_of.setdefault(name, row.get(label_column))
        if tasks is not None:
            return _label_studio_copy(tasks, rows, ids, labels, label_column, cell_of, out)
        kept = []
        for position, name in kept_samples(ids, labels):
            row = rows[position]
            if name and one_hot:
                marked = _marked(row, one_hot)[0]
                row[marked], row[name] = row[name], row[marked]
            elif name:
                row[label_column] = cell_of.get(name, name)
            kept.append(row)
        schema = _arrow_table(files[0], schema_only=True) if record_suffix(files[0]) in ARROW_SUFFIXES else None
        columns = list(dict.fromkeys(name for row in rows for name in row))  # JSON records may differ in keys
        write_records(kept, columns, out, header, schema)
        return len(kept)

    return copy


def _label_studio_tasks(files: list[Path]) -> list[dict] | None:
    """The tasks of a Label Studio JSON export, where that is what the records were read from."""
    if len(files) != 1 or record_suffix(files[0]) != ".json":
        return None
    try:
        with _open_text(files[0]) as handle:
            tasks = json.load(handle)
    except (OSError, ValueError, EOFError):  # read_records says what is wrong with it
        return None
    return tasks if isinstance(tasks, list) and is_label_studio_export(tasks) else None


def _label_studio_copy(tasks: list[dict], records: list[dict], ids: list[str], labels: dict[str, str | None],
                       control: str, cell_of: dict[str, Any], out: Path) -> int:
    """A Label Studio export written back as one (``out``, a project imports it): the tasks of removed
    samples left out, and each one whose label is not the task's answer (``records``, one an answered
    task: a relabeled one, or one its annotators' Dawid-Skene aggregate decided) given an annotation
    marked ground truth with its class, which settles its answer (``answered_annotations``) while
    its annotators' own stay. Tasks nobody answered are no sample, and are written as they are
    (``ids``: the answered ones', in order). Returns the samples written."""
    answered = [task for task in tasks if answered_annotations(task)]
    decided = {id(task): (labels.get(sample_id, ""), record.get(control))
               for task, record, sample_id in zip(answered, records, ids)}
    written, samples = [], 0
    for task in tasks:
        name, answer = decided.get(id(task), ("", None))
        if name is None:
            continue
        samples += id(task) in decided
        if name and cell_of.get(name, name) != answer:
            regions = [r for a in task["annotations"] for r in a.get("result") or []
                       if isinstance(r, dict) and r.get("from_name") == control]
            region = {"from_name": control, "to_name": regions[0].get("to_name") if regions else "text",
                      "type": "choices", "value": {"choices": [cell_of.get(name, name)]}, "origin": "noisyctl"}
            truth = {"result": [region], "ground_truth": True, "was_cancelled": False}
            task = {**task, "annotations": [*task["annotations"], truth]}
        written.append(task)
    with atomic_output(out) as tmp:
        tmp.write_text(json.dumps(written, ensure_ascii=False, indent=1), encoding="utf-8")
    return samples


def write_records(rows: list[dict], columns: list[str], out: Path, header: bool = True, schema=None) -> None:
    """Records written atomically as ``out``'s suffix says: CSV or TSV (with a ``header`` row unless
    the source had none), JSONL, a JSON array, or Parquet (in ``schema`` where the source was
    Arrow or Parquet, so that its types and a Hub dataset's class names stay)."""
    suffix = out.suffix.lower()
    with atomic_output(out) as tmp:
        if suffix == ".parquet":
            try:
                import pyarrow as pa
                import pyarrow.parquet as parquet
            except ImportError:
                raise NoisyctlError(f"writing {out.name} needs pyarrow: pip install 'noisyctl[parquet]'") from None
            table = pa.Table.from_pylist(rows, schema=schema) if schema is not None or rows else \
                pa.table({name: pa.array([], pa.string()) for name in columns})
            parquet.write_table(table, tmp)
        elif suffix in (".jsonl", ".json"):
            with open(tmp, "w", encoding="utf-8") as handle:
                # default=str: a spreadsheet's dates and times, which JSON has no type for
                if suffix == ".json":
                    json.dump(rows, handle, ensure_ascii=False, indent=1, default=str)
                else:
                    handle.writelines(json.dumps(row, ensure_ascii=False, default=str) + "\n" for row in rows)
        else:
            with open(tmp, "w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle, delimiter="\t" if suffix == ".tsv" else ",")
                if header:
                    writer.writerow(columns)
                writer.writerows([_written_cell(row.get(name)) for name in columns] for row in rows)


def _written_cell(value) -> str:
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False, default=str) if isinstance(value, (list, dict)) else str(value)


def records_source(files: list[Path]) -> Path:
    """What messages name for records read from ``files``: the file, or the folder of several (a
    record's number counts across them)."""
    return files[0] if len(files) == 1 else files[0].parent


def read_record_files(files: list[Path], dataset: str, header: bool = True) -> Records:
    """The records of every file (``read_records``), in order, with the notes their reading left;
    none at all is refused."""
    parts = [read_records(file, dataset, header) for file in files]
    answers = [getattr(part, "answers", None) for part in parts]
    rows = Records((row for part in parts for row in part),
                   [note for part in parts for note in getattr(part, "notes", [])],
                   # one file's answers, or several files' where each is a Label Studio export
                   None if any(a is None for a in answers) else [answer for part in answers for answer in part])
    if not rows:
        raise NoisyctlError(f"{records_source(files)} holds no records")
    return rows


def split_off(count: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded ``fraction`` of ``count`` records held out as the test subset: (kept, held) indices,
    each in file order."""
    order = np.random.default_rng(int(seed)).permutation(count)
    held = order[:int(round(count * fraction))]
    return np.sort(order[len(held):]), np.sort(held)
