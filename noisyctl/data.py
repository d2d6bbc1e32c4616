"""Loading datasets by name and tying labels files to them."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from noisyctl import plugins
from noisyctl.api import DatasetData
from noisyctl.errors import NoisyctlError
from noisyctl.recipe import InvalidYaml, load_yaml
from noisyctl.store import Labels


def parse_options(pairs: list[str] | tuple[str, ...] | dict | None, what: str) -> dict[str, Any]:
    """``["rate=0.2", "pairs=cat:dog"]`` -> ``{"rate": 0.2, "pairs": "cat:dog"}`` (values read as YAML scalars)."""
    if not pairs:
        return {}
    if isinstance(pairs, dict):
        return dict(pairs)
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise NoisyctlError(f"{what} option '{pair}' is not KEY=VALUE")
        try:
            options[key.strip()] = load_yaml(value, f"{what} option {key.strip()}") if value.strip() else ""
        except InvalidYaml:
            options[key.strip()] = value
    return options


# What a file or folder given where a dataset's name belongs most likely holds, by its suffix.
KIND_BY_SUFFIX = {**dict.fromkeys((".csv", ".tsv", ".jsonl", ".json", ".txt", ".parquet", ".arrow", ".feather",
                                    ".xlsx", ".xlsm"), "text"),
                  ".data": "table", ".npz": "npz", ".h5": "hdf5", ".hdf5": "hdf5"}
COMPRESSED = (".gz", ".bz2", ".xz")  # train.csv.gz: a .csv


def _path_kind(path: Path) -> str:
    """What a file or folder most likely holds: a folder by its files (``_folder_kind``), a file by
    its suffix (``KIND_BY_SUFFIX``, a compressed one by the suffix before; "NAME": unknown)."""
    suffix = Path(path.stem).suffix if path.suffix.lower() in COMPRESSED else path.suffix
    return _folder_kind(path) if path.is_dir() else KIND_BY_SUFFIX.get(suffix.lower(), "NAME")


def _labels_hint(path, kind: str) -> str:
    return f"--labels {path} if it came from synth, or " if kind == "hdf5" else ""


def dataset_spec(name: str, root: str | None, options: dict[str, Any]) -> dict[str, Any]:
    path = Path(name).expanduser()
    if root is None and name not in plugins.registry().names("dataset") and path.exists():
        found = _path_kind(path)
        kind = "text" if found == "text files" else found
        labels = _labels_hint(name, kind)
        table = " (--dataset table for feature columns)" if found == "text" else ""  # records hold either
        raise NoisyctlError(f"'{name}' is a {'folder' if path.is_dir() else 'file'}, not a dataset's name: give "
                            f"{labels}what it holds and where, --dataset {kind} --data-root {name}{table} (noisyctl "
                            f"plugins lists the datasets)")
    if "root" in options:  # every loader's first argument, never one of its options
        raise NoisyctlError(f"where dataset '{name}' lives is --data-root PATH (data_root: in a recipe), "
                            f"not a dataset option")
    return {"name": name, "root": recorded_root(root), "options": options}


# The dataset a --data-root given without --dataset holds, where its files say so plainly.
PLAIN_KINDS = {"imagefolder": "imagefolder", "text files": "text", "npz": "npz", "table": "table"}


def dataset_of_root(root: str | Path) -> str:
    """The dataset plugin that reads ``root`` where the user named none: a folder of images, a
    folder of text files per class, an .npz, a UCI .data table. Records files (a CSV, a Hub
    folder) hold either texts or a table, and an HDF5 file may be a labels file: those are refused,
    naming the choices."""
    path = Path(root).expanduser()
    if not path.exists():
        raise NoisyctlError(f"--data-root {root} does not exist")
    found = _path_kind(path)
    if found in PLAIN_KINDS:
        return PLAIN_KINDS[found]
    if found == "text":
        raise NoisyctlError(f"--data-root {root} holds records: give what they are, --dataset text (a text and a "
                            f"label column) or --dataset table (feature columns)")
    raise NoisyctlError(f"--data-root {root}: give {_labels_hint(root, found)}the dataset that reads it, --dataset "
                        f"NAME (noisyctl plugins lists them)")


def _folder_kind(folder: Path, looked_at: int = 200) -> str:
    """What a folder most likely holds, by the first files found in it: images (``imagefolder``)
    where there are image files, or Parquet or Arrow files that hold images (a Hub image dataset);
    else records (``text``: a dataset cloned from the Hugging Face Hub, or saved by its datasets
    library) where there are files of them; else ``text files``, a file a text (.txt or no suffix:
    the IMDb reviews, 20 Newsgroups)."""
    import itertools
    import mimetypes

    files = [file for file in itertools.islice(folder.rglob("*"), looked_at * 5) if file.is_file()]
    suffixes = {file.suffix.lower() for file in files}
    if any((mimetypes.guess_type("file" + suffix)[0] or "").startswith("image/") for suffix in suffixes):
        return "imagefolder"
    columnar = next((file for file in files if file.suffix.lower() in (".parquet", ".arrow")), None)
    if columnar is not None and _holds_images(columnar):  # a Hub image dataset's Parquet files
        return "imagefolder"
    if any(KIND_BY_SUFFIX.get(suffix) == "text" for suffix in suffixes - {".txt", ".json"}):
        return "text"
    return "text files" if suffixes & {"", ".txt"} else "imagefolder"


def _holds_images(file: Path) -> bool:
    """Whether a Parquet or Arrow file holds images, as a column of the Hugging Face datasets
    library's Image feature ({bytes, path} structs) does; False where pyarrow cannot tell."""
    try:
        import pyarrow as pa
        import pyarrow.ipc as ipc
        import pyarrow.parquet as parquet

        if file.suffix.lower() == ".parquet":
            schema = parquet.read_schema(file)
        else:
            with pa.memory_map(str(file)) as source:
                schema = ipc.open_stream(source).schema
    except Exception:  # no pyarrow, or a file it cannot read: the loader will say why
        return False
    return any(pa.types.is_struct(field.type) and field.type.get_field_index("bytes") >= 0 for field in schema)


def recorded_root(root: str | Path | None) -> str | None:
    """A dataset's root as a labels or run file records it: absolute when it is a local path, so the
    file reads the same from any folder; a root that names no local path (a third-party loader's URL
    or key) is kept as given."""
    if root is None:
        return None
    path = Path(root).expanduser()
    return str(path.resolve()) if path.exists() else str(root)


def recorded_dataset(spec: dict[str, Any], data: DatasetData) -> dict[str, Any]:
    """A dataset spec as files record it, with what its inputs are (``kind``: image, features or
    text) and whether its samples read as text (``texts``: a text's words, a table's cells), so
    that commands that show samples know whether there is text to show without loading the data."""
    texts = len(data.train) > 0 and data.train.text(0) is not None
    return {**spec, "kind": data.kind, "texts": texts}


def load_labels_dataset(labels: Labels, source: str, data_root: str | Path | None = None,
                        options: dict[str, Any] | None = None) -> tuple[Labels, DatasetData]:
    """The dataset a labels or run file names, checked to hold the same samples and classes.

    ``data_root`` says where the data lives now, when it moved since the file was written; ``options``
    change how it is read (a text's ``max_bytes``, an image's ``size``), over those the file records:
    the labels come back recording both. Options that change the samples (``test_fraction``) are
    refused by the check."""
    if data_root is not None:
        labels = replace(labels, dataset={**labels.dataset, "root": recorded_root(data_root)})
    if options:
        merged = {**labels.dataset.get("options", {}), **options}
        labels = replace(labels, dataset={**labels.dataset, "options": merged})
    try:
        data = load_dataset(labels.dataset)
    except NoisyctlError as exc:
        root = labels.dataset.get("root")
        if data_root is None and root and not Path(root).expanduser().exists():
            where = ("run from the folder it is relative to, or" if not Path(root).expanduser().is_absolute()
                     else "if it has moved,")
            raise NoisyctlError(f"{exc} ({source} names its data as {root}: {where} give train --data-root "
                                f"PATH)") from None
        raise
    check_labels_match(labels, data, source)
    return labels, data


def load_dataset(spec: dict[str, Any]) -> DatasetData:
    registration = plugins.get("dataset", spec["name"])
    # A loader's own failure (a bad option value included) names the plugin, never "internal error".
    data = registration.call(spec.get("root"), options=spec.get("options"))
    if len(data.train) == 0:
        raise NoisyctlError(f"dataset '{spec['name']}' has no training samples")
    for subset in (data.train, data.test):
        bad = np.zeros(0, dtype=bool) if subset is None else (subset.labels < 0) | (subset.labels >= data.num_classes)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise NoisyctlError(f"dataset '{spec['name']}': sample {subset.ids[first]} has label "
                                f"{subset.labels[first]} outside 0..{data.num_classes - 1}")
    if len(set(data.train.ids)) != len(data.train.ids):
        raise NoisyctlError(f"dataset '{spec['name']}' gives two samples the same id")
    data.notes = list(data.notes) + _look_alike_classes(data) + _sparse_classes(data)
    return data


# A class with fewer training samples than this is one a model barely learns, and in which a wrong
# label cannot be told from a rare right one.
FEWEST_SAMPLES = 3


def _sparse_classes(data: DatasetData) -> list[str]:
    """A note where half the classes or more, of ten or more, have under ``FEWEST_SAMPLES`` training
    samples (a label column of ids or free text, or far too little data for the classes)."""
    counts = np.bincount(data.train.labels, minlength=data.num_classes)
    sparse = int((counts < FEWEST_SAMPLES).sum())
    if data.num_classes < 10 or 2 * sparse < data.num_classes:
        return []
    return [f"{sparse:,} of the {data.num_classes:,} classes have fewer than {FEWEST_SAMPLES} training samples: too "
            f"few for a model to learn them, or to tell a wrong label from a rare one (is the label column the "
            f"right one?)"]


# Class names that are numbers are never one class written two ways (-1 and 1); at most this many
# groups of look-alike names are noted.
NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
LOOK_ALIKE_SHOWN = 5


def _look_alike_classes(data: DatasetData) -> list[str]:
    """Notes on class names that differ only in case, spaces or punctuation ('positive' and
    'Positive ', 'Sci/Tech' and 'scitech'): usually one class written two ways, a labelling slip
    that noisyctl, keeping them apart, would count among the noise the model cannot learn."""
    counts = np.bincount(data.train.labels, minlength=data.num_classes)
    groups: dict[str, list[int]] = {}
    for c, name in enumerate(data.class_names):
        if not NUMBER.fullmatch(str(name).strip()):  # -1 and 1 are two classes
            groups.setdefault(re.sub(r"[\W_]+", "", str(name).casefold()), []).append(c)
    alike = [group for key, group in groups.items() if key and len(group) > 1]
    notes = [f"classes {' and '.join(repr(data.class_names[c]) + f' ({counts[c]:,})' for c in group)} differ only "
             f"in case, spaces or punctuation: one class written {len(group)} ways? (they stay apart: fix the "
             f"labels to merge them)" for group in alike[:LOOK_ALIKE_SHOWN]]
    if len(alike) > LOOK_ALIKE_SHOWN:
        notes.append(f"... and {len(alike) - LOOK_ALIKE_SHOWN:,} more groups of classes alike")
    return notes



def labels_from_dataset(spec: dict[str, Any], data: DatasetData) -> Labels:
    """The dataset's own labels, truth unknown (a real dataset, not a synthesized one)."""
    name = spec["name"]
    return Labels(ids=list(data.train.ids), given_labels=data.train.labels.copy(),
                  class_names=list(data.class_names), dataset=recorded_dataset(spec, data),
                  plugins={f"dataset:{name}": plugins.get("dataset", name).origin},
                  annotations=None if data.annotations is None else data.annotations.checked(
                      len(data.train.ids), data.num_classes, f"dataset '{name}'"))


def check_labels_match(labels: Labels, data: DatasetData, source: str) -> None:
    if len(labels.ids) != len(data.train.ids):
        raise NoisyctlError(f"{source} has {len(labels.ids)} samples but dataset "
                            f"'{labels.dataset.get('name')}' has {len(data.train.ids)}: it was made for other data")
    if labels.ids != list(data.train.ids):
        first = next(i for i, (a, b) in enumerate(zip(labels.ids, data.train.ids)) if a != b)
        raise NoisyctlError(f"{source} does not match dataset '{labels.dataset.get('name')}': sample {first} is "
                            f"'{labels.ids[first]}' in the file but '{data.train.ids[first]}' in the data")
    if labels.class_names != list(data.class_names):
        raise NoisyctlError(f"{source} has classes {labels.class_names[:5]}... but the dataset has "
                            f"{list(data.class_names)[:5]}...")


def sample_texts(spec: dict[str, Any], ids: list[str]) -> list[str] | None:
    """The texts of these samples (a text's words, a table row's cells) when the dataset has them
    and loads here (for the suspects, the review CSV and the report); None otherwise, without
    loading a dataset recorded as having none (files from before ``texts`` was recorded: all but
    text data)."""
    if not spec.get("texts", spec.get("kind", "text") == "text"):
        return None
    try:
        data = load_dataset(spec)
    except NoisyctlError:
        return None
    subsets = [s for s in (data.train, data.test) if s is not None]
    if not len(subsets[0]) or subsets[0].text(0) is None:
        return None
    where = {sample_id: (subset, i) for subset in subsets for i, sample_id in enumerate(subset.ids)}
    return [where[i][0].text(where[i][1]) if i in where else "" for i in ids]
