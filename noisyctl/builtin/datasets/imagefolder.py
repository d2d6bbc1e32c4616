"""Images in one folder per class, optionally under train/ and val/ subsets (Imagenette, Datumaro
exports); or images anywhere under a folder, with a list naming each one's class (Kaggle's
train.csv beside train_images/, the Hugging Face imagefolder's metadata.csv); or images held in
the Parquet or Arrow files of a dataset cloned from the Hugging Face Hub."""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

from noisyctl.api import Annotations, DatasetData, NoisyctlError, SampleSet, atomic_output
from .common import (ARROW_SUFFIXES, COPY_SUFFIXES, CSV_SUFFIXES, IMAGENET_STATS, LABEL_COLUMNS, ONE_HOT_LABEL,
                     TEST_SPLITS, TRAIN_SPLITS, aggregated_labels, class_indices, class_names_of, column_name,
                     copy_target, find_column, find_test_file, hub_class_names, kept_samples, label_strings,
                     labeled_test_records, link_or_copy, named_by_class_list, new_folder, one_hot_note,
                     read_one_hot_label, read_record_files, read_records, record_annotations, record_files,
                     record_suffix, records_source, relabeled_copy, require_root, split_name)

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

    def source(self, index: int):
        """What PIL opens for sample ``index``: its file."""
        return self.root / self.ids[index]

    def picture(self, index: int):
        return self.source(index)

    def load(self, index: int):
        import torch
        from PIL import Image, ImageOps

        path = self.source(index)
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
            where = path if isinstance(path, Path) else f"{self.ids[index]} of {self.root}"
            raise NoisyctlError(f"cannot read image {where}: {exc}") from None
        pixels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
        if self.mean is not None:
            pixels = (pixels - self.mean) / self.std
        return torch.from_numpy(np.ascontiguousarray(pixels))


class ImageBytesSampleSet(ImageFileSampleSet):
    """Images held as their encoded bytes (PNG, JPEG), as a Hub dataset's Parquet files hold them;
    decoded as image files are."""

    def __init__(self, ids, labels, root: Path, encoded: list[bytes], size: int, channels: int,
                 normalize: bool) -> None:
        super().__init__(ids, labels, root, size, channels, normalize)
        self.encoded = encoded

    def source(self, index: int):
        return io.BytesIO(self.encoded[index])


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


# An image list: a records file naming each image and its class, as Kaggle's competitions ship
# them (train.csv: image_id,label beside train_images/; labels.csv: id,breed beside train/), and
# the Hugging Face imagefolder's metadata.csv (file_name, then label) in the folder or its split
# folders. A cell names an image by its path (from the list's folder or the root), its file name
# or its name without the suffix.
IMAGE_COLUMNS = ("file_name", "image", "image_id", "image_name", "filename", "file", "path", "id", "img", "name")
LIST_SUFFIXES = CSV_SUFFIXES + (".jsonl", ".json") + ARROW_SUFFIXES
CHECKED_CELLS = 20  # a column is the images' where most of its first cells name one


# Label Studio stores an uploaded image as /data/upload/<project>/<8 hex digits>-<its name>.
UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-")


class _ImageIndex:
    """Every image under ``root`` (ids: paths relative to it), found by relative path, file name or
    name without the suffix."""

    def __init__(self, root: Path) -> None:
        self.root, self.inside = root, root.resolve()
        self.by_key: dict[str, list[str]] = {}
        for file in _image_files(root):
            if not file.resolve().is_relative_to(self.inside):  # never read (and show) an image outside the dataset
                continue
            relative = file.relative_to(root).as_posix()
            for key in dict.fromkeys((relative, file.name, file.stem)):
                self.by_key.setdefault(key, []).append(relative)

    def find(self, cell: str, folder: Path) -> list[str]:
        """The images a list's cell may name (the list in ``folder``): one, none, or several alike."""
        cell = cell.strip().replace("\\", "/")
        if not cell:
            return []
        beside = (folder / cell).resolve()
        if beside.is_relative_to(self.inside):
            found = self.by_key.get(beside.relative_to(self.inside).as_posix())
            if found:
                return found
        uploaded = UPLOAD_PREFIX.sub("", Path(cell).name)  # Label Studio's name for an uploaded file
        for key in (cell.lstrip("./"), Path(cell).name, Path(cell).stem, uploaded, Path(uploaded).stem):
            if key in self.by_key:
                return self.by_key[key]
        return []


class _ImageList(NamedTuple):
    """A records file that names images and their classes: its records, the columns of the images
    and the labels, and the columns that one-hot encode the label where it is so."""

    file: Path
    rows: list[dict]
    image_column: str
    label_column: str | None
    one_hot: list[str]


def _list_columns(rows: list[dict], list_file: Path, index: _ImageIndex, image_column: str | None,
                  label_column: str | None) -> tuple[str, str | None, list[str]] | None:
    """The image and label columns of a list (None: it names no images), and the columns that
    one-hot encode the label where it is so; the label column is the given one, else the first of
    ``LABEL_COLUMNS``, else the only other column (labels.csv: id,breed) or the only one beside an
    ``id`` (a Label Studio export's choices control), else the one the other
    columns one-hot encode (ISIC's image,MEL,NV,...: ``read_one_hot_label`` gives each record its
    label)."""
    columns = [str(name) for name in rows[0]]

    def names_images(column: str) -> bool:
        cells = [str(row.get(column) or "") for row in rows[:CHECKED_CELLS]]
        return 2 * sum(len(index.find(cell, list_file.parent)) >= 1 for cell in cells) > len(cells)

    if image_column is None:
        lowered = {name.lower(): name for name in columns}
        ordered = [lowered[name] for name in IMAGE_COLUMNS if name in lowered] + columns
        image_column = next((name for name in dict.fromkeys(ordered) if names_images(name)), None)
        if image_column is None:
            return None
    elif image_column not in columns:
        raise NoisyctlError(f"imagefolder: {list_file} has no column '{image_column}'; it has {', '.join(columns)}")
    if label_column is None:
        lowered = {name.lower(): name for name in columns if name != image_column}
        label_column = next((lowered[name] for name in LABEL_COLUMNS if name in lowered), None)
        # beside the images, one other column, or one and the ids (a Label Studio task's choices control)
        others = [name for key, name in lowered.items() if key != "id" or len(lowered) == 1]
        if label_column is None and len(others) == 1:
            label_column = others[0]
        one_hot = [] if label_column else read_one_hot_label(rows, list(lowered.values()), list_file,
                                                             several_refused=True)
        if one_hot:
            return image_column, ONE_HOT_LABEL, one_hot
    elif label_column not in columns:
        raise NoisyctlError(f"imagefolder: {list_file} has no column '{label_column}'; it has {', '.join(columns)}")
    return image_column, label_column, []


def _find_lists(root: Path, image_list: str | None, image_column: str | None, label_column: str | None,
                notes: list[str]):
    """The training and test image lists (file, rows, image column, label column) of ``root``: the
    ``image_list`` given, else its records files (and split folders' metadata files) that name its
    images and a label; None where it has none (a folder per class)."""
    if image_list is not None:
        candidates = [require_root(find_test_file(root, image_list), "imagefolder", "the image list")]
    else:
        candidates = sorted(file for file in root.iterdir() if file.is_file() and record_suffix(file) in LIST_SUFFIXES)
        candidates += sorted(file for folder in root.iterdir() if folder.is_dir() and split_name(folder.name)
                             in TRAIN_SPLITS + sum(TEST_SPLITS, ()) for file in folder.iterdir()
                             if file.is_file() and file.stem == "metadata" and record_suffix(file) in LIST_SUFFIXES)
        if not candidates:
            return None
    index = _ImageIndex(root)
    lists = []
    for file in candidates:
        try:
            rows = read_records(file, "imagefolder")
        except NoisyctlError:
            if image_list is not None:
                raise
            continue  # a file beside the images that holds no records (cassava's label map), or broken
        columns = _list_columns(rows, file, index, image_column, label_column) if rows else None
        if columns is not None and columns[1] is not None:
            lists.append(_ImageList(file, rows, *columns))
        elif image_list is not None:
            raise NoisyctlError(f"imagefolder: {file} names no images under {root} with a label column (name them "
                                f"with -D image_column=... -D label_column=...)")
        elif columns is not None and split_name(file.name) in TRAIN_SPLITS:
            notes.append(f"{file.name} names images but holds no labels (-D label_column=NAME)")

    def split_of(file: Path) -> str:
        return split_name(file.name if file.stem != "metadata" else file.parent.name)

    train = [entry for entry in lists if split_of(entry.file) in TRAIN_SPLITS] or \
        [entry for entry in lists if split_of(entry.file) not in sum(TEST_SPLITS, ())]
    if not train:
        return None
    tested = next((entry for names in TEST_SPLITS for entry in lists if split_of(entry.file) in names), None)
    chosen = train[0]
    shown = chosen.file.relative_to(root) if chosen.file.is_relative_to(root) else chosen.file
    notes.append(f"images and labels from {shown} (" + (one_hot_note(chosen.one_hot) if chosen.one_hot else
                                                        f"columns '{chosen.image_column}' and "
                                                        f"'{chosen.label_column}'") + ")")
    return index, chosen, tested


def _listed(index: _ImageIndex, entry: _ImageList) -> tuple[list[str], list[str]]:
    """The images (ids) and labels a list names, each image once."""
    file, rows, image_column, label_column, _ = entry
    ids, missing = [], []
    for number, row in enumerate(rows, start=1):
        found = index.find(str(row.get(image_column) or ""), file.parent)
        if len(found) > 1:
            raise NoisyctlError(f"imagefolder: {file}, record {number}: '{row.get(image_column)}' may be any of "
                                f"{', '.join(found[:3])}; give paths from the dataset's folder")
        if not found:
            missing.append(str(row.get(image_column)))
        ids.append(found[0] if found else "")
    if missing:
        raise NoisyctlError(f"imagefolder: {file} names {len(missing):,} images not under {index.root} (first: "
                            f"'{missing[0]}')")
    twice = next((sample_id for sample_id, count in Counter(ids).items() if count > 1), None)
    if twice is not None:
        raise NoisyctlError(f"imagefolder: {file} names the image {twice} twice")
    labels = label_strings([row.get(label_column) for row in rows], label_column, file)
    return ids, labels


@dataclass
class _Layout:
    """A folder's samples: ids (paths under the root; ``train/0`` ... in a Hub file), class indices
    (N,), class names, the test subset's alike (None: none), and the encoded images where the
    dataset's files hold them (a Hub dataset; None: image files)."""

    ids: list[str]
    labels: np.ndarray
    classes: list[str]
    test_ids: list[str] | None = None
    test_labels: np.ndarray | None = None
    encoded: list[bytes] | None = None
    test_encoded: list[bytes] | None = None
    relabeled_copy: Callable | None = None  # DatasetData's, of an image list
    annotations: Annotations | None = None  # each annotator's own labels, of a Label Studio export


def _class_folder_layout(root: Path) -> _Layout:
    """A folder per class, in the root or in its train/ subfolder (val/ then the test subset)."""
    train_dir = next((root / n for n in TRAIN_NAMES if (root / n).is_dir()), None)
    test_dir = next((root / n for n in TEST_NAMES if (root / n).is_dir()), None) if train_dir else None
    ids, labels, classes = _scan(train_dir or root, root, None)
    tested = (None, None, None) if test_dir is None else _scan(test_dir, root, classes)
    copy = _class_folder_copy(root, 0 if train_dir is None else 1, ids + (tested[0] or []))
    return _Layout(ids, labels, classes, tested[0], tested[1], relabeled_copy=copy)


def _class_folder_copy(root: Path, depth: int, ids: list[str]) -> Callable:
    """``DatasetData.relabeled_copy`` for class folders: a new folder laid out as ``root`` (the
    class folder is the id's part at ``depth``), each training image in the folder of its class
    as it now stands, the removed ones left out, the test subset's as they are. Files are hard
    links to the originals where the disk allows (no space taken), else copies."""
    def copy(labels: dict[str, str | None], out: Path) -> int:
        written = 0
        with new_folder(out, root, (*IMAGE_SUFFIXES, *COPY_SUFFIXES)) as building:
            for position, name in kept_samples(ids, labels):
                sample_id = ids[position]
                parts = list(Path(sample_id).parts)
                if name:
                    parts[depth] = name
                destination = building.joinpath(*parts)
                if destination.exists():  # two classes' images of one name meeting in one folder
                    destination = destination.with_name(f"{destination.stem}-{written}{destination.suffix}")
                link_or_copy(root / sample_id, destination)
                written += 1
        return written

    return copy


def _list_layout(root: Path, index: _ImageIndex, train_list: _ImageList, test_list: _ImageList | None,
                 notes: list[str]) -> _Layout:
    """The images and classes an image list names (``_find_lists``), a test list's as the test subset."""
    ids, names = _listed(index, train_list)
    notes += getattr(train_list.rows, "notes", [])
    tested = None if test_list is None else _listed(index, test_list)
    names, test_names, classes = named_by_class_list(train_list.file.parent, names,
                                                     None if tested is None else tested[1], notes)
    classes = classes or train_list.one_hot or class_names_of(names)
    labels, test_labels = class_indices(classes, names, test_names, train_list.file, "imagefolder")
    copy = relabeled_copy([train_list.file], "imagefolder", True, ids, train_list.label_column, train_list.one_hot,
                          names)
    return _Layout(ids, labels, classes, None if tested is None else tested[0], test_labels, relabeled_copy=copy,
                   annotations=record_annotations(train_list.rows, train_list.label_column, classes))


def _hub_layout(root: Path, label_column: str | None, notes: list[str]) -> _Layout | None:
    """Images held in the Parquet or Arrow files of a dataset cloned from the Hugging Face Hub (or
    saved with ``datasets``' save_to_disk), its train* and test* files (or ``root``, one such file):
    a column of the library's Image feature ({bytes, path}) and a label column (ClassLabel names
    where the metadata gives them); None where there are no such files."""
    try:
        train_files, test_files = record_files(root, "imagefolder", None)
    except NoisyctlError:
        return None
    if not all(record_suffix(file) in ARROW_SUFFIXES for file in train_files + test_files):
        return None
    rows = read_record_files(train_files, "imagefolder")
    image_column = next((name for name, cell in rows[0].items() if isinstance(cell, dict) and "bytes" in cell), None)
    if image_column is None:
        return None
    label_column = find_column(list(rows[0]), label_column, LABEL_COLUMNS, "label", records_source(train_files),
                               "name it with -D label_column=...")
    notes.append(f"images from column '{image_column}' of {records_source(train_files).name}, labels from "
                 f"'{label_column}'")

    def read(rows: list[dict], files: list[Path]):
        source = records_source(files)
        encoded = [(row.get(image_column) or {}).get("bytes") for row in rows]
        empty = next((number for number, data in enumerate(encoded, start=1) if not data), None)
        if empty is not None:
            raise NoisyctlError(f"imagefolder: {source}, record {empty}: its '{image_column}' holds no image bytes")
        return encoded, hub_class_names(files[0], label_column,
                                        label_strings([row.get(label_column) for row in rows], label_column, source))

    encoded, (names, classes) = read(rows, train_files)
    test_rows = labeled_test_records(test_files, "imagefolder", label_column, False, notes)
    test_encoded, (test_names, _) = (None, (None, None)) if test_rows is None else read(test_rows, test_files)
    classes = classes or class_names_of(names)
    labels, test_labels = class_indices(classes, names, test_names, root, "imagefolder")
    ids = [f"train/{k}" for k in range(len(names))]
    copy = relabeled_copy(train_files, "imagefolder", True, ids, label_column, [], names)  # as the Hub takes it back
    return _Layout(ids, labels, classes, None if test_rows is None else [f"test/{k}" for k in range(len(test_rows))],
                   test_labels, encoded, test_encoded, relabeled_copy=copy)


# Datumaro's own format, which OpenVINO Training Extensions trains from and `datum convert -f
# datumaro` writes: annotations/<subset>.json (the classes in categories.label.labels; items, each
# with a "label" annotation's label_id and its image's path under images/<subset>/, else images/),
# with the images in images/<subset>/.
DATUMARO_ANNOTATIONS = "annotations"
DATUMARO_IMAGE_SUFFIX = ".jpg"  # an item without an image path is <id>.jpg


def _datumaro_files(root: Path) -> dict[str, Path] | None:
    """A Datumaro dataset's annotation files by subset; None where ``root`` is not one."""
    folder = root / DATUMARO_ANNOTATIONS
    if not folder.is_dir() or not (root / "images").is_dir():
        return None
    return {file.stem: file for file in sorted(folder.glob("*.json"))} or None


def _datumaro_subset(file: Path, root: Path) -> tuple[list[str], list[str], list[str]]:
    """(ids: image paths under ``root``, each item's class name, the classes in their label_id
    order) of one Datumaro annotation file; an item with several labels or none is refused."""
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        classes = [str(label["name"]) for label in data["categories"]["label"]["labels"]]
        items = list(data["items"])
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        raise NoisyctlError(f"imagefolder: {file} is not a Datumaro annotation file (categories.label.labels and "
                            f"items)") from None
    ids, names, inside = [], [], root.resolve()
    for item in items:
        item = item if isinstance(item, dict) else {}
        labels = [a.get("label_id") for a in item.get("annotations") or [] if isinstance(a, dict)
                  and a.get("type") == "label"]
        what = f"imagefolder: {file}, item '{item.get('id')}'"
        if len(labels) != 1:
            raise NoisyctlError(f"{what} has {len(labels)} label annotations, not one (noisyctl reads one class a "
                                f"sample)")
        if not isinstance(labels[0], int) or not 0 <= labels[0] < len(classes):
            raise NoisyctlError(f"{what} has label_id {labels[0]}; the file names {len(classes)} classes")
        name = (item.get("image") or {}).get("path") or f"{item.get('id')}{DATUMARO_IMAGE_SUFFIX}"
        image = next((path for path in (root / "images" / file.stem / name, root / "images" / name)
                      if path.is_file() and path.resolve().is_relative_to(inside)), None)
        if image is None:
            raise NoisyctlError(f"{what}: its image {name} is not in {root / 'images' / file.stem}")
        ids.append(image.relative_to(root).as_posix())
        names.append(classes[labels[0]])
    return ids, names, classes


def _datumaro_layout(root: Path, files: dict[str, Path], notes: list[str]) -> _Layout:
    """A Datumaro dataset: its train subset (or its only one, default.json as CVAT exports it), its
    test (else validation) subset as the test subset."""
    train = next((files[name] for name in TRAIN_SPLITS + ("default",) if name in files), None)
    if train is None and len(files) == 1:
        train = next(iter(files.values()))
    if train is None:
        shown = ", ".join(file.name for file in files.values())
        raise NoisyctlError(f"imagefolder: {root / DATUMARO_ANNOTATIONS} holds {shown}; none is the train subset")
    tested = next((files[name] for names in TEST_SPLITS for name in names if name in files), None)
    ids, names, classes = _datumaro_subset(train, root)
    test_ids, test_names, test_classes = _datumaro_subset(tested, root) if tested else (None, None, classes)
    if test_classes != classes:
        raise NoisyctlError(f"imagefolder: {tested} names other classes than {train}")
    labels, test_labels = class_indices(classes, names, test_names, train, "imagefolder")
    notes.append(f"a Datumaro dataset: {train.name}" + (f", and {tested.name} as the test subset" if tested else ""))
    return _Layout(ids, labels, classes, test_ids, test_labels, relabeled_copy=_datumaro_copy(train, ids, classes))


def _datumaro_copy(file: Path, ids: list[str], classes: list[str]) -> Callable:
    """``DatasetData.relabeled_copy`` for a Datumaro subset: its annotation file, as .json, with
    each item's label annotation set to its new class and the removed items left out, for OTX to
    train on as it is."""
    def copy(labels: dict[str, str | None], out: Path) -> int:
        out = copy_target(out, (".json",), [file], "a Datumaro dataset's copy is its annotation file, a .json")
        data = json.loads(file.read_text(encoding="utf-8"))
        if len(data["items"]) != len(ids):
            raise NoisyctlError(f"{file} holds {len(data['items']):,} items, not the {len(ids):,} it held when read")
        kept = []
        for position, name in kept_samples(ids, labels):
            item = data["items"][position]
            if name:
                next(a for a in item["annotations"] if a.get("type") == "label")["label_id"] = classes.index(name)
            kept.append(item)
        with atomic_output(out) as tmp:
            tmp.write_text(json.dumps({**data, "items": kept}, ensure_ascii=False), encoding="utf-8")
        return len(kept)

    return copy


def _layout(root: Path, image_list: str | None, image_column: str | None, label_column: str | None,
            notes: list[str]) -> _Layout:
    """What kind of image folder ``root`` is, and its samples: a Datumaro dataset's, else an image
    list's (``_find_lists``), else a folder per class, else a Hub dataset's files, which are looked
    for only where the folder holds no class folders of images (so that a large image folder is not
    searched twice)."""
    if root.is_dir():
        datumaro = _datumaro_files(root) if image_list is None else None
        if datumaro is not None:
            return _datumaro_layout(root, datumaro, notes)
        lists = _find_lists(root, image_list, image_column, label_column, notes)
        if lists is not None:
            return _list_layout(root, *lists, notes)
        try:
            return _class_folder_layout(root)
        except NoisyctlError:
            hub = _hub_layout(root, label_column, notes)
            if hub is None:
                raise
            return hub
    hub = _hub_layout(root, label_column, notes)
    if hub is None:
        raise NoisyctlError(f"imagefolder: {root} holds no column of images (the Hugging Face datasets library's "
                            f"Image feature); give a folder of images")
    return hub


# Images whose sides are all at most SMALL_SIDE are trained at their own size (digits, CIFAR-like
# data, small crops; the median shorter side when they differ): enlarging them adds no detail and
# costs (224/32)^2 = 49 times the compute. Anything larger at LARGE_SIZE, the ImageNet models'
# input. SIZE_SAMPLE images are looked at (headers only) to decide.
SMALL_SIDE = 128
LARGE_SIZE = 224
SIZE_SAMPLE = 64
GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F", "P;L"}


def _look_at(images: ImageFileSampleSet) -> tuple[list[tuple[int, int]], set[str]]:
    """The sizes and modes of up to SIZE_SAMPLE images spread over the dataset (headers only)."""
    from PIL import Image

    ids = images.ids
    sizes, modes, failure = [], set(), None
    for index in np.linspace(0, len(ids) - 1, min(SIZE_SAMPLE, len(ids))).round().astype(int):
        try:
            with Image.open(images.source(int(index))) as image:
                sizes.append(image.size)
                modes.add(image.mode)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            failure = failure or f"{ids[index]}: {exc}"  # else training names it when it reads it
    if not sizes:
        raise NoisyctlError(f"imagefolder: none of the {min(SIZE_SAMPLE, len(ids))} images looked at decodes "
                            f"(first: {failure})")
    return sizes, modes


def load_imagefolder(root=None, size: int | str | None = None, channels: int | str | None = None,
                     normalize: bool = True, image_list: str | None = None, image_column: str | None = None,
                     label_column: str | None = None, aggregate: str | None = None) -> DatasetData:
    """One folder per class, or train/ and val/ subsets of them; or images anywhere under the folder
    with a list of their classes. Images are resized to size x size.

    A list is ``image_list`` (a CSV or other records file), else the folder's records files (and its
    split folders' metadata.csv) that name its images and their labels: a train* one, or the one
    that is not test*, with a labeled test* one as the test subset. Its columns are
    ``image_column`` (default: the first whose cells name images) and ``label_column`` (default: the
    first of ``LABEL_COLUMNS``, else the only other column). A Hub image dataset's train* and test*
    Parquet or Arrow files hold the images themselves (``_hub_images``).

    By default the data decides: small images (at most 128 px a side) keep their size (the median
    shorter side when sizes differ), others are resized to 224 px; grayscale images keep one
    channel; 16-bit grayscale is scaled to 8 bits; photos are turned as their EXIF orientation
    says. ``size`` and ``channels`` say otherwise.

    A Label Studio export with overlap as the list keeps each annotator's own labels, and each
    task's label is their vote; ``aggregate=dawid-skene`` makes the training labels the class Dawid
    and Skene's model of them makes most probable instead."""
    root = require_root(root, "imagefolder", "a folder with one subfolder per class, or train/ and val/ "
                                             "subfolders of such folders")
    if not root.is_dir() and record_suffix(root) not in ARROW_SUFFIXES:  # one Hub file of images may be given
        raise NoisyctlError(f"imagefolder: {root} is not a folder")
    notes: list[str] = []
    found = _layout(root, image_list, column_name(image_column), column_name(label_column), notes)
    found.labels = aggregated_labels(found.annotations, found.labels, aggregate, len(found.classes), "imagefolder",
                                     notes)

    def subset(ids, labels, encoded, size=1, channels=3):
        if encoded is not None:
            return ImageBytesSampleSet(ids, labels, root, encoded, int(size), int(channels), bool(normalize))
        return ImageFileSampleSet(ids, labels, root, int(size), int(channels), bool(normalize))

    if size is None or channels is None:
        seen_sizes, seen_modes = _look_at(subset(found.ids, found.labels, found.encoded))
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

    test = None if found.test_ids is None else subset(found.test_ids, found.test_labels, found.test_encoded, size,
                                                       channels)
    return DatasetData(train=subset(found.ids, found.labels, found.encoded, size, channels), test=test,
                       relabeled_copy=found.relabeled_copy, annotations=found.annotations,
                       class_names=found.classes,
                       input_shape=(channels, size, size),
                       default_augment="resized-crop" if size >= 64 else "flip-crop", notes=notes)
