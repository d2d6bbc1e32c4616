"""The HDF5 file format shared by every subcommand, defined once.

Two kinds of file use one schema: a *labels* file (``synth`` output: which
sample carries which label, and the truth when known) and a *run* file
(``train`` output: the labels plus the recorded dynamics, per-epoch figures and,
after ``detect``, detector scores). ``FIELDS`` and ``ATTRIBUTES`` below are the
schema; every write goes through :func:`write_field`, and ``docs/schema.md`` is
generated from them (``noisyctl schema --markdown``), so code and docs cannot
drift apart.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Iterator

import h5py
import numpy as np

from noisyctl.agreement import Annotations
from noisyctl.errors import NoisyctlError
from noisyctl.fileio import atomic_output, exclusive, remove_debris

SCHEMA_NAME = "noisyctl"
SCHEMA_VERSION = 1
LABELS, RUN = "labels", "run"
BOTH = (LABELS, RUN)

# Chunks of [samples, epochs] arrays hold CHUNK_EPOCHS epochs of a few thousand
# samples (~256 KiB): one sample's whole series and one epoch's column are both
# a handful of chunk reads.
CHUNK_EPOCHS = 16
CHUNK_BYTES = 256 * 1024


@dataclass(frozen=True)
class Field:
    path: str
    dtype: str
    shape: str
    files: tuple[str, ...]
    required: bool
    description: str


@dataclass(frozen=True)
class Attribute:
    name: str
    type: str
    files: tuple[str, ...]
    required: bool
    description: str


FIELDS: tuple[Field, ...] = (
    Field("samples/id", "string", "N", BOTH, True,
          "Stable sample id: a path relative to the dataset root, or the dataset's own key."),
    Field("samples/given_label", "int32", "N", BOTH, True,
          "The label training uses (after synthesized noise, when there is some)."),
    Field("samples/true_label", "int32", "N", BOTH, False,
          "The label before noise was synthesized; present only when the truth is known."),
    Field("samples/is_noisy", "bool", "N", BOTH, False,
          "given_label != true_label; present only when the truth is known."),
    Field("samples/threshold", "bool", "N", (RUN,), False,
          "AUM threshold samples of this run (train --aum-threshold-set): trained on a fake class C, so their "
          "dynamics refer to it and detectors do not judge them here."),
    Field("samples/removed", "bool", "N", (LABELS,), False,
          "Samples `prune` removed: `train` trains on the others only (the run file then holds the kept ones)."),
    Field("samples/removal_score", "float32", "N", (LABELS,), False,
          "With samples/removed: the pruning detector's score of each sample (NaN where it gave none)."),
    Field("samples/removal_rank", "int32", "N", (LABELS,), False,
          "With samples/removed: 1 for the most suspect removed sample, 2 for the next, ...; 0 for kept ones."),
    Field("samples/reviewed", "bool", "N", BOTH, False,
          "Labels a person confirmed or set (`import-review`, or synth --reviewed-per-class simulating one); "
          "`train --trusted FILE` uses these samples as its trusted set."),
    Field("samples/corrected", "bool", "N", BOTH, False,
          "Labels replaced by `correct --apply` or by a review; given_label holds the new label."),
    Field("samples/text", "string", "N", (RUN,), False,
          "Each sample's text (its first 1,000 bytes), where a loop of the user's recorded it "
          "(`Recorder(texts=...)`): the suspects, the review CSV and the report show it. Runs of noisyctl's "
          "text datasets read it from the data instead."),
    Field("classes/name", "string", "C", BOTH, True, "Class names; a label is an index into this."),
    Field("annotators/name", "string", "A", BOTH, False,
          "The annotators whose own labels the file keeps beside samples/given_label (a Label Studio export "
          "with overlap, synth -n from-file -N annotators=KEYS, a Recorder's annotations=, a dataset plugin's "
          "DatasetData.annotations)."),
    Field("annotators/label", "int32", "N x A", BOTH, False,
          "Each annotator's label of each sample (-1: they gave none); samples/given_label is their majority or "
          "the label the file chose. `detect` counts the given labels' noise from them too (Dawid-Skene)."),
    Field("dynamics/train_loss", "float32", "N x E", (RUN,), False,
          "Training-mode cross-entropy of the given label at the sample's presentation in epoch e "
          "(taken from the training forward pass, so free; the mean of its presentations where a sampler drew it "
          "more than once or several ranks presented it, NaN where none did); `train` always records it, and the "
          "Recorder in "
          "every epoch its loop hands it training batches (`update`); runs imported from tools that record "
          "eval-mode probabilities or margins only (import-dynamics) lack it."),
    Field("dynamics/train_margin", "float32", "N x E", (RUN,), False,
          "Training-mode logit margin z_y - max_{k!=y} z_k at that presentation (AUM's margin); `train` always "
          "records it, runs imported from other tools (import-otx, import-dynamics) may lack it."),
    Field("dynamics/train_step", "int32", "N x E", (RUN,), False,
          "Global optimizer step at which the sample was presented (the last, if several); orders presentations "
          "(-1: not presented that epoch). Imported runs that do not know the order hold the epoch number; runs of eval-mode "
          "dynamics only lack it."),
    Field("dynamics/eval_loss", "float32", "N x E", (RUN,), False,
          "Eval-mode cross-entropy of the given label after epoch e (recording pass)."),
    Field("dynamics/eval_prob", "float32", "N x E", (RUN,), False,
          "Eval-mode softmax probability of the given label after epoch e."),
    Field("dynamics/eval_margin", "float32", "N x E", (RUN,), False,
          "Eval-mode logit margin of the given label after epoch e."),
    Field("dynamics/eval_pred", "int32", "N x E", (RUN,), False,
          "Eval-mode predicted class (argmax) after epoch e."),
    Field("dynamics/sample_weight", "float32", "N x E", (RUN,), False,
          "train --strategy reweight: the sample's meta-learned weight at that presentation, scaled so a batch's "
          "weights average 1 (0 = ignored)."),
    Field("dynamics/corrected_label", "int32", "N x E", (RUN,), False,
          "train --strategy self-learning: the label the prototypes gave the sample in epoch e (-1 before the "
          "first correction)."),
    Field("epochs/train_loss", "float32", "E", (RUN,), True,
          "Mean training-mode loss over the epoch's presentations."),
    Field("epochs/train_accuracy", "float32", "E", (RUN,), True,
          "Training-mode accuracy against the given labels during the epoch."),
    Field("epochs/eval_accuracy", "float32", "E", (RUN,), False,
          "Eval-mode accuracy against the given labels after the epoch."),
    Field("epochs/eval_true_accuracy", "float32", "E", (RUN,), False,
          "Eval-mode accuracy against the true labels after the epoch (truth known only)."),
    Field("epochs/test_accuracy", "float32", "E", (RUN,), False,
          "Accuracy on the dataset's clean test subset after the epoch (when it has one)."),
    Field("epochs/learning_rate", "float32", "E", (RUN,), True, "Learning rate used during the epoch."),
    Field("epochs/seconds", "float32", "E", (RUN,), True, "Wall time of the epoch, recording included."),
    Field("probs/late_mean", "float16", "N x C", (RUN,), False,
          "Mean eval-mode class probabilities over the last quarter of the epochs (in-sample); recorded "
          "when there are at most 100 classes, or with train --record-probs."),
    Field("probs/out_of_fold", "float16", "N x C", (RUN,), False,
          "Class probabilities from models that never trained on the sample (train --folds K)."),
    Field("features/penultimate", "float16", "N x D", (RUN,), False,
          "Eval-mode input of the model's last linear layer for every sample after the last epoch (what the "
          "prototypes and knn correctors compare); recorded when it takes at most 1 GiB, or with "
          "train --record-features."),
    Field("scores/<detector>", "float32", "N", (RUN,), False,
          "A detector's score (higher = more likely mislabeled). Attributes: description, "
          "options (JSON), info (JSON), plugin (JSON: [distribution, version]), position (0 for the "
          "detector that ranked the suspects in the latest detect, then the rest in order)."),
    Field("flags/<detector>", "bool", "N", (RUN,), False,
          "The detector's own decision that a sample is mislabeled, for detectors that make one."),
)

ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute("schema", "string", BOTH, True, 'Always "noisyctl".'),
    Attribute("schema_version", "int", BOTH, True, f"Schema version; this document describes {SCHEMA_VERSION}."),
    Attribute("file_kind", "string", BOTH, True, '"labels" (from synth) or "run" (from train).'),
    Attribute("noisyctl_version", "string", BOTH, True, "Version of noisyctl that wrote the file."),
    Attribute("created_utc", "string", BOTH, True, "ISO 8601 time the file was written."),
    Attribute("file_id", "string", BOTH, False,
              "A random id given when the file is created and kept when detect adds scores: detect saves only "
              "into the file it scored, not one written at that path meanwhile."),
    Attribute("dataset", "JSON", BOTH, True, 'The dataset to load: {"name", "root", "options"}, and "kind" (image, '
              'features or text) and "texts" (whether its samples read as text: a text\'s words, a table row\'s '
              'cells) when noisyctl loaded it. A root that is a local path is recorded absolute, so the '
              'file reads the same from any folder; `train --labels FILE --data-root PATH` reads data that moved.'),
    Attribute("noise", "JSON", BOTH, False,
              'Synthesized noise: {"name", "rate", "seed", "options", "flipped"}; absent for given labels.'),
    Attribute("plugins", "JSON", BOTH, True,
              'Plugins that produced the file: {"kind:name": [distribution, version]}.'),
    Attribute("pruning", "JSON", BOTH, False,
              'How `prune` chose the removed samples: {"detector", "rule", "removed", "from"}; a run trained '
              "on a pruned labels file keeps it."),
    Attribute("correction", "JSON", BOTH, False,
              'How labels were changed: {"by", "changed", "from"} (a corrector or a review CSV).'),
    Attribute("training", "JSON", (RUN,), True,
              "Every train option (model, epochs, optimizer, seed, ...), the device used, and software: the "
              'versions that trained it ({"torch", "numpy", "python"}), as the same options and seed give '
              "other losses under another torch."),
    Attribute("recipe", "JSON", BOTH, False, "The recipe step that produced the file, when run from a recipe."),
    Attribute("num_epochs", "int", (RUN,), True, "Number of epochs recorded (E)."),
)

_DTYPES = {
    "int32": np.int32,
    "float16": np.float16,
    "float32": np.float32,
    "bool": np.bool_,
    # "string" has no entry: its width comes from the data (write_field, _fixed_strings).
}

# The channels a detector can ask for: the [N x E] fields under dynamics/.
CHANNELS = tuple(f.path.split("/", 1)[1] for f in FIELDS if f.path.startswith("dynamics/"))


def field_for(path: str) -> Field:
    for f in FIELDS:
        if f.path == path or (f.path.endswith("/<detector>") and path.rsplit("/", 1)[0] == f.path.rsplit("/", 1)[0]):
            return f
    raise ValueError(f"{path} is not part of schema version {SCHEMA_VERSION}")


def create_field(h5: h5py.File, path: str, shape: tuple[int, ...], *, dtype: Any = None,
                 **attrs: Any) -> h5py.Dataset:
    """Create one schema field with the dtype, chunking and compression the schema gives it.

    Callers fill it in slices, so large [N x E] arrays never sit in memory whole. Every field carries
    a Fletcher-32 checksum per chunk, so a damaged file fails to read instead of giving wrong numbers.
    """
    f = field_for(path)
    dtype = _DTYPES[f.dtype] if dtype is None else dtype
    options: dict[str, Any] = {}
    size = int(np.prod(shape))
    if f.shape == "N x E" and size:
        rows = max(1, CHUNK_BYTES // (np.dtype(dtype).itemsize * CHUNK_EPOCHS))
        options["chunks"] = (min(shape[0], rows), min(shape[1], CHUNK_EPOCHS))
    if size:
        options["fletcher32"] = True
    # Floats are close to incompressible; labels, predictions, flags and ids shrink a lot.
    if not f.dtype.startswith("float") and size:
        options.update(compression="gzip", compression_opts=4, shuffle=f.dtype != "string")
    if path in h5:
        del h5[path]
    dataset = h5.create_dataset(path, shape=shape, dtype=dtype, **options)
    for key, value in attrs.items():
        set_attr(dataset.attrs, key, value)
    return dataset


def _utf8(values: Any) -> tuple[list[bytes], np.dtype]:
    """Strings as UTF-8 bytes, and the fixed-length dtype that holds the longest. Variable-length
    strings live in HDF5's global heap, and a damaged global heap can send libhdf5 into an endless
    loop; fixed-length ones live in the chunks, which the checksum guards."""
    encoded = [str(v).encode("utf-8") for v in np.asarray(values, dtype=object).ravel()]
    return encoded, h5py.string_dtype("utf-8", max([1, *map(len, encoded)]))


def _fixed_strings(values: Any) -> np.ndarray:
    """Strings as one fixed-length UTF-8 array (``_utf8``), shaped as ``values``."""
    encoded, dtype = _utf8(values)
    return np.array(encoded, dtype=dtype).reshape(np.shape(values))


TEXT_KEPT = 1000  # bytes of a sample's text a run file keeps (samples/text): enough to judge its label by
STRING_BLOCK = 65536  # strings written at once: fixed-length, each takes the longest one's width in memory


def kept_text(text: Any) -> str:
    """A sample's text as a run file keeps it: its first ``TEXT_KEPT`` bytes, cut at a character;
    a missing one (None, pandas' NaN) is no text, and a NUL, which would end it early when read back
    (fixed-length strings pad with NULs), is dropped."""
    if text is None or text != text:
        return ""
    return str(text).replace("\x00", "").encode("utf-8")[:TEXT_KEPT].decode("utf-8", errors="ignore")


def write_field(h5: h5py.File, path: str, data: Any, **attrs: Any) -> h5py.Dataset:
    """Create a schema field and write ``data`` into it (strings, 1-D, a block at a time)."""
    if field_for(path).dtype == "string":
        encoded, dtype = _utf8(data)
        dataset = create_field(h5, path, (len(encoded),), dtype=dtype, **attrs)
        for start in range(0, len(encoded), STRING_BLOCK):
            dataset[start:start + STRING_BLOCK] = np.array(encoded[start:start + STRING_BLOCK], dtype=dtype)
        return dataset
    data = np.asarray(data)
    dataset = create_field(h5, path, data.shape, **attrs)
    if data.size:
        dataset[...] = data
    return dataset


def set_attr(attrs: h5py.AttributeManager, name: str, value: Any) -> None:
    """Text (and JSON) attributes are fixed-length UTF-8, for the reason _fixed_strings gives."""
    if isinstance(value, (dict, list)):
        value = json.dumps(value)
    if isinstance(value, str):
        value = _fixed_strings(value)
    attrs[name] = value


def _text(value: Any) -> Any:
    """Fixed-length strings read back as bytes; variable-length ones (older files) as str."""
    return value.decode("utf-8") if isinstance(value, bytes) else value


def get_attr(attrs: h5py.AttributeManager, name: str, default: Any = None) -> Any:
    """An attribute as written: text as str."""
    return _text(attrs.get(name, default))


def set_root_attrs(h5: h5py.File, **attrs: Any) -> None:
    known = {a.name for a in ATTRIBUTES}
    for name, value in attrs.items():
        if name not in known:
            raise ValueError(f"attribute {name} is not part of schema version {SCHEMA_VERSION}")
        if value is None:
            continue
        set_attr(h5.attrs, name, value)


def new_file(h5: h5py.File, kind: str, **attrs: Any) -> None:
    from datetime import datetime, timezone

    from noisyctl import __version__

    set_root_attrs(h5, schema=SCHEMA_NAME, schema_version=SCHEMA_VERSION, file_kind=kind,
                   noisyctl_version=__version__, file_id=uuid.uuid4().hex,
                   created_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"), **attrs)


def _json_attr(h5: h5py.File, name: str) -> Any:
    """A JSON attribute, refused in one line when it is not the object the schema says (a damaged or
    hand-edited file); only ever parsed as JSON, so a file's attributes cannot run code."""
    try:
        value = get_attr(h5.attrs, name)
        if value is None:
            return None
        parsed = json.loads(value)
    except (TypeError, ValueError):
        raise NoisyctlError(f"{h5.filename} is damaged: its '{name}' attribute is not valid JSON") from None
    if parsed is not None and not isinstance(parsed, dict):
        raise NoisyctlError(f"{h5.filename} is damaged: its '{name}' attribute is not a JSON object")
    return parsed


def checkpoint_folder(path: str | Path) -> Path:
    """``PATH.ckpt/``: where a run being recorded into ``path`` keeps its sealed epochs."""
    path = Path(path)
    return path.with_name(path.name + ".ckpt")


def open_checked(path: str | Path, want: str | None = None, mode: str = "r") -> h5py.File:
    """Open a noisyctl file, refusing anything else with a one-line reason."""
    path = Path(path)
    if not path.exists():
        folder = checkpoint_folder(path)
        if folder.is_dir():  # a Recorder's sealed epochs, not yet assembled
            raise NoisyctlError(f"{path} does not exist yet: its recording is unfinished ({folder}/); "
                                f"recorder.close() writes it, and training again resumes it")
        raise NoisyctlError(f"{path} does not exist")
    if path.is_dir():
        raise NoisyctlError(f"{path} is a folder, not a noisyctl file")
    if not path.is_file():
        raise NoisyctlError(f"{path} is not a regular file (a pipe or device), not a noisyctl file")
    try:
        h5 = h5py.File(path, mode)
    except OSError:
        raise NoisyctlError(f"{path} is not a readable HDF5 file (truncated, corrupt or another format)") from None
    try:
        if get_attr(h5.attrs, "schema") != SCHEMA_NAME:
            raise NoisyctlError(f"{path} is an HDF5 file but not a noisyctl file")
        version = _integer_attr(h5, "schema_version", path)
        if version != SCHEMA_VERSION:
            advice = ("upgrade noisyctl to read it" if version > SCHEMA_VERSION
                      else "re-create it with this noisyctl (synth/train again)")
            raise NoisyctlError(f"{path} uses noisyctl schema version {version}, this noisyctl reads "
                                f"version {SCHEMA_VERSION}: {advice}")
        kind = get_attr(h5.attrs, "file_kind")
        if want == RUN and kind != RUN:
            raise NoisyctlError(f"{path} is a {kind} file, not a run file: train on it first "
                                f"(noisyctl train --labels {path} --out run.h5)")
        if kind not in BOTH:
            raise NoisyctlError(f"{path}: its file_kind attribute is {kind!r}, not one of {', '.join(BOTH)}")
        check_contents(h5, path, kind)
    except BaseException:
        h5.close()
        raise
    return h5


# --- the boundary: a file from elsewhere is checked against the schema before any command uses it ---

# The keys of JSON attributes that commands read, and their types.
JSON_KEYS = {"noise": {"name": str}, "pruning": {"removed": int}, "correction": {"by": str, "changed": int}}

# Bounds that keep a crafted file from making noisyctl allocate what no real run needs.
MAX_EPOCHS = 100_000
MAX_NAME_BYTES = 4096  # an id or class name


def _integer_attr(h5: h5py.File, name: str, path) -> int:
    value = get_attr(h5.attrs, name)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise NoisyctlError(f"{path}: its '{name}' attribute should be an integer, not {value!r:.40}")
    return int(value)


def _objects(group: h5py.Group, prefix: str = ""):
    """Every (path, object) under ``group``, refusing links that lead elsewhere: a noisyctl file
    never makes noisyctl read another file (external links, external storage, virtual datasets)
    or wander (soft links)."""
    for name in group:
        link = group.get(name, getlink=True)
        where = f"{prefix}{name}"
        if not isinstance(link, h5py.HardLink):
            raise NoisyctlError(f"{group.file.filename}: {where} is a {type(link).__name__} (to another file or "
                                f"place); noisyctl reads only what a file itself holds")
        obj = group[name]
        if isinstance(obj, h5py.Dataset):
            if obj.is_virtual or obj.external:
                raise NoisyctlError(f"{group.file.filename}: {where} keeps its data in another file; noisyctl "
                                    f"reads only what a file itself holds")
            yield where, obj
        elif isinstance(obj, h5py.Group):
            yield where, obj
            yield from _objects(obj, f"{where}/")


_DTYPE_KINDS = {"int32": "iu", "float16": "f", "float32": "f", "bool": "b", "string": "SOU"}


def _expected_shape(spec: str, sizes: dict[str, int]) -> tuple | None:
    """``"N x E"`` with the file's sizes; None for a free dimension (D, features' width)."""
    return tuple(sizes.get(part.strip()) for part in spec.split("x"))


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 40


def check_contents(h5: h5py.File, path, kind: str) -> None:
    """Every field's type, rank and length against the schema, with one line naming the file, the field
    and what was expected; sizes no machine could hold are refused before anything is read. (The
    labels' range is checked where they are read, ``_read_labels``; predictions' where they are, ``RunFile._read``.)"""
    objects = dict(_objects(h5))
    for f in FIELDS:
        if f.required and kind in f.files and f.path not in objects:
            raise NoisyctlError(f"{path} lacks {f.path}, which every noisyctl {kind} file holds (written by "
                                f"another tool or an incomplete copy?)")
    for name in ("samples/id", "classes/name", "samples/given_label"):
        if not isinstance(objects[name], h5py.Dataset) or objects[name].ndim != 1:
            raise NoisyctlError(f"{path}: {name} should be a one-dimensional array")
    ids = objects["samples/id"]
    if ids.dtype.kind not in "SOU" or (ids.dtype.kind == "S" and ids.dtype.itemsize > MAX_NAME_BYTES):
        raise NoisyctlError(f"{path}: samples/id should hold strings of at most {MAX_NAME_BYTES} bytes, not {ids.dtype}")
    n, classes = ids.shape[0], objects["classes/name"].shape[0]
    if n == 0:
        raise NoisyctlError(f"{path} holds no samples")
    if classes == 0:
        raise NoisyctlError(f"{path} names no classes (classes/name is empty)")
    if n * max(ids.dtype.itemsize, 8) * 4 > _memory_bytes():
        raise NoisyctlError(f"{path} declares {n:,} samples, more than this machine's memory could read")
    sizes = {"N": n, "C": classes}
    if ("annotators/label" in objects) != ("annotators/name" in objects):
        raise NoisyctlError(f"{path} holds one of annotators/label and annotators/name without the other")
    if "annotators/name" in objects and isinstance(objects["annotators/name"], h5py.Dataset):
        sizes["A"] = objects["annotators/name"].shape[0] if objects["annotators/name"].ndim == 1 else -1
    if kind == RUN:
        epochs = _integer_attr(h5, "num_epochs", path)
        if not 1 <= epochs <= MAX_EPOCHS:
            raise NoisyctlError(f"{path}: num_epochs is {epochs}; a run records 1 to {MAX_EPOCHS:,} epochs")
        sizes["E"] = epochs
    for where, obj in objects.items():
        if isinstance(obj, h5py.Group):
            if any(f.path == where for f in FIELDS):
                raise NoisyctlError(f"{path}: {where} should be an array, not a group")
            continue
        try:
            f = field_for(where)
        except ValueError:
            continue  # fields of a later minor version, which this one does not read
        if kind not in f.files:
            continue
        if obj.dtype.kind not in _DTYPE_KINDS[f.dtype]:
            raise NoisyctlError(f"{path}: {where} should be {f.dtype}, not {obj.dtype}")
        expected = _expected_shape(f.shape, sizes)
        if len(obj.shape) != len(expected) or any(e is not None and s != e for s, e in zip(obj.shape, expected)):
            shown = " x ".join(str(e) if e is not None else part.strip()
                               for e, part in zip(expected, f.shape.split("x")))
            raise NoisyctlError(f"{path}: {where} has shape {' x '.join(map(str, obj.shape)) or 'scalar'}; the "
                                f"schema says {f.shape} = {shown}")
    dataset = _json_attr(h5, "dataset")
    if not isinstance(dataset, dict) or not isinstance(dataset.get("name"), str) or not dataset["name"]:
        raise NoisyctlError(f"{path}: its 'dataset' attribute names no dataset (it should be a JSON object with "
                            f"a \"name\")")
    for name, keys in JSON_KEYS.items():
        value = _json_attr(h5, name)
        if value is None:
            continue
        for key, kind in keys.items():
            if not isinstance(value.get(key), kind) or isinstance(value.get(key), bool) and kind is not bool:
                raise NoisyctlError(f"{path}: its '{name}' attribute lacks \"{key}\" ({kind.__name__}); it holds "
                                    f"{json.dumps(value)[:80]}")


# Optional per-sample fields a labels or run file may carry beside the labels, and their dtypes.
SAMPLE_MARKS = {"removed": bool, "removal_score": np.float32, "removal_rank": np.int32, "reviewed": bool,
                "corrected": bool}


@dataclass
class Labels:
    """The sample table of a labels or run file."""

    ids: list[str]
    given_labels: np.ndarray
    class_names: list[str]
    dataset: dict[str, Any]
    true_labels: np.ndarray | None = None
    noise: dict[str, Any] | None = None
    plugins: dict[str, Any] | None = None
    removed: np.ndarray | None = None  # prune: samples train leaves out
    removal_score: np.ndarray | None = None
    removal_rank: np.ndarray | None = None
    reviewed: np.ndarray | None = None  # labels a person confirmed: train --trusted uses these
    corrected: np.ndarray | None = None  # labels correct --apply or a review replaced
    pruning: dict[str, Any] | None = None
    correction: dict[str, Any] | None = None
    annotations: Annotations | None = None  # each annotator's own label, where the data kept them

    @property
    def is_noisy(self) -> np.ndarray | None:
        return None if self.true_labels is None else self.given_labels != self.true_labels

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def mark(self, name: str) -> np.ndarray:
        """A copy of the per-sample bool mark ``name`` (removed, reviewed, corrected), all False where
        the file has none."""
        values = getattr(self, name)
        return np.zeros(len(self.ids), dtype=bool) if values is None else values.copy()

    def subset(self, indices: np.ndarray) -> "Labels":
        """The same table for some samples only (per-sample arrays indexed, the rest kept)."""
        indices = np.asarray(indices)
        take = {name: None if getattr(self, name) is None else getattr(self, name)[indices]
                for name in ("given_labels", "true_labels", *SAMPLE_MARKS)}
        annotations = None if self.annotations is None else self.annotations.subset(indices)
        return replace(self, ids=[self.ids[i] for i in indices], annotations=annotations, **take)

    def write(self, h5: h5py.File) -> None:
        bad = next((i for i in self.ids if "\x00" in i), None)
        if bad is not None:
            raise NoisyctlError(f"sample id {bad!r} holds a NUL character, which HDF5 strings cannot store")
        write_field(h5, "samples/id", np.array(self.ids, dtype=object))
        write_field(h5, "samples/given_label", self.given_labels)
        if self.true_labels is not None:
            write_field(h5, "samples/true_label", self.true_labels)
            write_field(h5, "samples/is_noisy", self.is_noisy)
        for name, dtype in SAMPLE_MARKS.items():
            values = getattr(self, name)
            if values is not None and (name not in ("reviewed", "corrected") or values.any()):
                write_field(h5, f"samples/{name}", np.asarray(values, dtype=dtype))
        write_field(h5, "classes/name", np.array(self.class_names, dtype=object))
        if self.annotations is not None:
            write_field(h5, "annotators/name", np.array(self.annotations.names, dtype=object))
            write_field(h5, "annotators/label", self.annotations.labels.astype(np.int32))


def _in_classes(values: np.ndarray, name: str, classes: int, path: str) -> np.ndarray:
    if len(values) and (values.min() < 0 or values.max() >= classes):
        raise NoisyctlError(f"{path}: {name} holds {values.min() if values.min() < 0 else values.max()}, "
                            f"outside the {classes} classes 0..{classes - 1}")
    return values


def _read_labels(h5: h5py.File) -> Labels:
    with damaged_on_error(h5.filename):
        marks = {name: h5[f"samples/{name}"][:] if f"samples/{name}" in h5 else None for name in SAMPLE_MARKS}
        classes = len(h5["classes/name"])
        return Labels(
            ids=[_text(s) for s in h5["samples/id"][:]],
            given_labels=_in_classes(h5["samples/given_label"][:].astype(np.int64), "samples/given_label", classes,
                                     h5.filename),
            class_names=[_text(s) for s in h5["classes/name"][:]],
            dataset=_json_attr(h5, "dataset") or {},
            true_labels=_in_classes(h5["samples/true_label"][:].astype(np.int64), "samples/true_label", classes,
                                    h5.filename) if "samples/true_label" in h5 else None,
            noise=_json_attr(h5, "noise"),
            plugins=_json_attr(h5, "plugins"),
            pruning=_json_attr(h5, "pruning"),
            correction=_json_attr(h5, "correction"),
            annotations=_read_annotations(h5, len(h5["samples/id"]), classes),
            **marks,
        )


def _read_annotations(h5: h5py.File, samples: int, classes: int) -> Annotations | None:
    if "annotators/name" not in h5:
        return None
    kept = Annotations([_text(name) for name in h5["annotators/name"][:]], h5["annotators/label"][:])
    try:
        return kept.checked(samples, classes, h5.filename)
    except NoisyctlError as exc:
        raise NoisyctlError(f"{exc} (annotators/label, annotators/name)") from None


@contextmanager
def damaged_on_error(filename: str):
    """What libhdf5 raises on damaged bytes (checksum mismatch, bad heap, undecodable text) as one line
    naming the file."""
    try:
        yield
    except (OSError, RuntimeError, KeyError, ValueError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise NoisyctlError(f"{filename} is damaged and cannot be read ({reason})") from None


def read_labels(path: str | Path) -> Labels:
    with open_checked(path) as h5:
        return _read_labels(h5)


def write_labels_file(path: str | Path, labels: Labels, recipe: dict | None = None) -> None:
    # Built in memory (a labels file is small: tens of bytes a sample) and written with plain file I/O:
    # a disk that fills up is then one OSError, never libhdf5 failing halfway through its own writes.
    image = io.BytesIO()
    with h5py.File(image, "w") as h5:
        new_file(h5, LABELS, dataset=labels.dataset, noise=labels.noise, plugins=labels.plugins or {},
                 pruning=labels.pruning, correction=labels.correction, recipe=recipe)
        labels.write(h5)
    with atomic_output(path) as tmp:
        tmp.write_bytes(image.getbuffer())


# What a plugin's ``reads`` may name besides dynamics channels, and which train option records what
# a run may lack (imported runs get no hint: another tool recorded them).
READABLE = {"probabilities": "class probabilities", "features": "penultimate features",
            "annotations": "several annotators' own labels"}
RECORDED_BY = {
    "eval_*": "train records eval_* channels unless --no-record-eval",
    "sample_weight": "train --strategy reweight records it",
    "corrected_label": "train --strategy self-learning records it",
    "probabilities": "train records them for at most 100 classes, or with --record-probs; --folds K for "
                     "out-of-fold ones",
    "features": "train records them when they fit in 1 GiB, or with --record-features",
    "annotations": "a Label Studio export with overlap keeps them, and synth -n from-file -N annotators=KEYS",
}
# The same for a run a user's loop recorded through the Recorder.
RECORDED_IN_A_LOOP = {
    "eval_*": "a loop records them with recorder.record_eval(indices, logits) or recorder.evaluate(model, loader)",
    "probabilities": "record_eval records them for at most 100 classes, or with Recorder(..., record_probs=True); "
                     "recorder.close(out_of_fold=...) takes out-of-fold ones",
    "features": "recorder.evaluate(model, loader, features=True) in the last epoch records them",
    "annotations": "Recorder(..., annotations=Annotations(names, labels)) keeps them",
}


class RunFile:
    """A run file opened for reading; implements :class:`noisyctl.api.Dynamics`."""

    # Rows per streamed block: a multiple of the chunk rows, ~64 MiB per float32 channel at 256 epochs.
    BLOCK_ROWS = 65536

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._h5 = open_checked(self.path, want=RUN)
        remove_debris(self.path)  # what a killed detect or train left beside the run
        try:
            self.labels = _read_labels(self._h5)
            self.num_samples = len(self.labels.ids)
            self.num_classes = self.labels.num_classes
            self.given_labels = self.labels.given_labels
            self.training = _json_attr(self._h5, "training") or {}
            self.identity = file_identity(self._h5)
            with damaged_on_error(str(self.path)):
                self.num_epochs = int(self._h5.attrs["num_epochs"])
                has_thresholds = "samples/threshold" in self._h5
                self.threshold_samples = self._h5["samples/threshold"][()] if has_thresholds else None
        except BaseException:
            self._h5.close()
            raise

    def __enter__(self) -> "RunFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._h5.close()

    @property
    def recorded_by(self) -> str | None:
        """Who recorded a run noisyctl did not train itself (a user's loop through the Recorder, or the
        tool an import came from); None for a run from ``train``."""
        if "imported_from" in self.training:
            return f"{self.training['imported_from']} (imported)"
        return self.training.get("recorded_by")

    def has_channel(self, name: str) -> bool:
        return f"dynamics/{name}" in self._h5

    def has(self, item: str) -> bool:
        """Whether the run holds ``item`` of a plugin's ``reads``: a dynamics channel, ``probabilities``
        (late-mean or out-of-fold), ``features`` (penultimate) or ``annotations`` (several
        annotators' own labels, ``labels.annotations``)."""
        if item == "annotations":
            return self.labels.annotations is not None
        if item == "probabilities":
            return "probs/late_mean" in self._h5 or "probs/out_of_fold" in self._h5
        if item == "features":
            return "features/penultimate" in self._h5
        return self.has_channel(item)

    def lacking(self, reads: Iterable[str]) -> str | None:
        """What the run lacks of ``reads``, and which train option records it; None when it has all."""
        missing = next((item for item in reads if not self.has(item)), None)
        if missing is None:
            return None
        what = READABLE.get(missing, f"the '{missing}' dynamics")
        hints = RECORDED_IN_A_LOOP if self.recorded_by else RECORDED_BY
        hint = hints.get("eval_*" if missing.startswith("eval_") else missing)
        hint = f" ({hint})" if hint and "imported_from" not in self.training else ""
        return f"{what}, which {self.path} lacks{hint}"

    def best_probabilities(self) -> tuple[np.ndarray, str] | None:
        """Class probabilities [N x C] (float64, clipped away from 0, rows summing to 1) and their
        source: out-of-fold when the run recorded them (what cleanlab is designed for), else the
        in-sample late-epoch mean. None when it recorded neither."""
        for source in ("out_of_fold", "late_mean"):
            probs = self.probabilities(source)
            if probs is not None:
                probs = np.clip(probs.astype(np.float64), 1e-12, None)
                return probs / probs.sum(axis=1, keepdims=True), source
        return None

    def _dataset(self, name: str) -> h5py.Dataset:
        if not self.has_channel(name):
            raise NoisyctlError(f"reading needs {self.lacking([name])}")
        return self._h5[f"dynamics/{name}"]

    def _read(self, dataset: h5py.Dataset, selection: Any = ()) -> np.ndarray:
        with damaged_on_error(str(self.path)):
            values = dataset[selection]
        if dataset.name in ("/dynamics/eval_pred", "/dynamics/corrected_label") and values.size:
            # -1: an epoch without a prediction; C: the fake class of AUM threshold samples
            highest = self.num_classes if self.threshold_samples is not None else self.num_classes - 1
            if values.min() < -1 or values.max() > highest:
                raise NoisyctlError(f"{self.path}: {dataset.name[1:]} holds a class outside 0..{highest}")
        return values

    def channel(self, name: str) -> np.ndarray:
        return self._read(self._dataset(name))

    def texts(self, ids: list[str]) -> list[str] | None:
        """The recorded texts (``samples/text``) of the samples ``ids`` ("" for an id the run lacks);
        None when the run recorded none."""
        if "samples/text" not in self._h5:
            return None
        position = {sample_id: i for i, sample_id in enumerate(self.labels.ids)}
        rows = np.array([position.get(sample_id, -1) for sample_id in ids], dtype=np.int64)
        unique = np.unique(rows[rows >= 0])
        read = {}
        if len(unique):
            with damaged_on_error(str(self.path)):
                read = dict(zip(unique.tolist(), (_text(t) for t in self._h5["samples/text"][unique])))
        return [read.get(int(row), "") for row in rows]

    def channel_rows(self, name: str, rows) -> np.ndarray:
        """The series of a few samples (rows in any order), without reading the whole channel."""
        rows = np.asarray(rows, dtype=np.int64)
        unique, back = np.unique(rows, return_inverse=True)
        return self._read(self._dataset(name), unique)[back] if len(rows) else np.zeros((0, self.num_epochs))

    def iter_blocks(self, channels: tuple[str, ...]) -> Iterator[tuple[slice, dict[str, np.ndarray]]]:
        datasets = {name: self._dataset(name) for name in channels}
        for start in range(0, self.num_samples, self.BLOCK_ROWS):
            where = slice(start, min(start + self.BLOCK_ROWS, self.num_samples))
            block = {name: self._read(ds, where) for name, ds in datasets.items()}
            block["given_label"] = self.given_labels[where]
            yield where, block

    def iter_epoch_blocks(self, channels: tuple[str, ...]) -> Iterator[tuple[slice, dict[str, np.ndarray]]]:
        datasets = {name: self._dataset(name) for name in channels}
        for start in range(0, self.num_epochs, CHUNK_EPOCHS):
            where = slice(start, min(start + CHUNK_EPOCHS, self.num_epochs))
            yield where, {name: self._read(ds, (slice(None), where)) for name, ds in datasets.items()}

    def epochs(self) -> dict[str, np.ndarray]:
        return {name: self._read(ds) for name, ds in self._h5["epochs"].items()}

    def probabilities(self, name: str) -> np.ndarray | None:
        """``late_mean`` or ``out_of_fold`` class probabilities [N x C], if the run recorded them."""
        path = f"probs/{name}"
        return self._read(self._h5[path]).astype(np.float32) if path in self._h5 else None

    def features(self, name: str = "penultimate") -> np.ndarray | None:
        """Per-sample features [N x D] (``features/penultimate``), if the run recorded them."""
        path = f"features/{name}"
        return self._read(self._h5[path]).astype(np.float32) if path in self._h5 else None

    def scores(self) -> dict[str, np.ndarray]:
        """Stored detector scores, the detector that ranked the latest suspects first."""
        if "scores" not in self._h5:
            return {}
        stored = sorted(self._h5["scores"].items(), key=lambda item: int(item[1].attrs.get("position", 0)))
        return {name: self._read(ds) for name, ds in stored}

    def flags(self) -> dict[str, np.ndarray]:
        if "flags" not in self._h5:
            return {}
        return {name: self._read(ds) for name, ds in self._h5["flags"].items()}

    def score_attrs(self, name: str) -> dict[str, Any]:
        attrs = self._h5[f"scores/{name}"].attrs
        values = {k: get_attr(attrs, k) for k in attrs}
        try:
            return {k: (json.loads(v) if k in ("options", "info", "plugin") else v) for k, v in values.items()}
        except (TypeError, ValueError):
            raise NoisyctlError(f"{self.path} is damaged: the attributes of scores/{name} are not valid JSON") from None


def file_identity(h5: h5py.File) -> str:
    """What tells one file from another written at the same path: its ``file_id`` (older files: the
    time it was created and its first ids)."""
    file_id = get_attr(h5.attrs, "file_id")
    if file_id:
        return str(file_id)
    ids = h5["samples/id"][:3].tolist() if "samples/id" in h5 else []
    return f"{get_attr(h5.attrs, 'created_utc')}:{ids}"


def save_scores(path: str | Path, results: dict[str, dict[str, Any]], scored: str | None = None) -> None:
    """Store detector results in a run file, atomically (copy, write, move into place).

    ``results`` maps a detector name to ``{"scores", "flagged", "description", "options", "info", "plugin"}``.
    ``scored`` is the ``RunFile.identity`` of the file the scores came from: when another file has
    been written at ``path`` meanwhile (a ``train -o`` finishing), nothing is saved.
    """
    lock = Path(path).with_name(f".{Path(path).name}.lock")
    with exclusive(lock, f"saving scores into {path}", remove=True), atomic_output(path) as tmp:
        with open_checked(path, want=RUN) as current:
            if scored is not None and file_identity(current) != scored:
                raise NoisyctlError(f"{path} was replaced by another file while it was scored (a train or import "
                                    f"writing there?); the scores were not saved: run detect again")
        shutil.copyfile(path, tmp)
        with h5py.File(tmp, "r+") as h5:
            # The latest detect's detectors come first, in its order; older scores keep theirs after them.
            older = sorted((int(ds.attrs.get("position", 0)), name) for name, ds in h5.get("scores", {}).items()
                           if name not in results)
            for position, (_, name) in enumerate(older, start=len(results)):
                set_attr(h5[f"scores/{name}"].attrs, "position", position)
            for position, (name, result) in enumerate(results.items()):
                write_field(h5, f"scores/{name}", result["scores"], description=result.get("description", ""),
                            options=result.get("options", {}), info=result.get("info", {}),
                            plugin=result.get("plugin", []), position=position)
                if f"flags/{name}" in h5:
                    del h5[f"flags/{name}"]
                if result.get("flagged") is not None:
                    write_field(h5, f"flags/{name}", result["flagged"])


def schema_markdown() -> str:
    """The schema as the Markdown tables in docs/schema.md."""
    lines = [f"Schema version: **{SCHEMA_VERSION}**", "",
             "### Root attributes", "",
             "| attribute | type | files | required | meaning |", "| --- | --- | --- | --- | --- |"]
    for a in ATTRIBUTES:
        lines.append(f"| `{a.name}` | {a.type} | {', '.join(a.files)} | {'yes' if a.required else 'no'} | "
                     f"{a.description} |")
    lines += ["", "### Datasets", "",
              "| path | dtype | shape | files | required | meaning |", "| --- | --- | --- | --- | --- | --- |"]
    for f in FIELDS:
        lines.append(f"| `{f.path}` | {f.dtype} | {f.shape} | {', '.join(f.files)} | "
                     f"{'yes' if f.required else 'no'} | {f.description} |")
    return "\n".join(lines) + "\n"
