"""Tabular data (``table``): a CSV, TSV, JSONL, JSON, Parquet, Arrow or Feather file with a row a
sample, feature columns and a label column, as spreadsheets, databases and pandas leave it.

Numeric columns are features as they are (missing cells filled with the training rows' median);
other columns are categories, one-hot encoded by the values of the training rows; a category column
with more than ``max_categories`` values (free text, ids) is refused with the option that leaves it
out. The features are then scaled as array datasets' are (``standardize``). Each record's cells
also come as text (``TableRows.text``), which the suspects, the review CSV and the report show.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from noisyctl.api import DatasetData, NoisyctlError
from .common import (CSV_SUFFIXES, LABEL_COLUMNS, ONE_HOT_LABEL, RECORD_FILES, ArraySampleSet, class_indices,
                     class_names_of, column_name, column_values, feature_stats, find_column, fraction_option,
                     header_is_record, hub_class_names, label_strings, labeled_test_records, named_by_class_list,
                     one_hot_note, positive_int, read_headerless, read_one_hot_label, read_record_files, record_files,
                     record_suffix, records_source, relabeled_copy, require_root, split_off, standardize_features,
                     unique_ids)

# What a spreadsheet, pandas (NaN, <NA>), R (NA) or the UCI repository ("?") leave in an empty cell,
# in the spellings they use (matched as written: lower-casing every cell cost a second a million).
MISSING = frozenset({"", "NA", "na", "N/A", "n/a", "NaN", "nan", "NAN", "<NA>", "null", "NULL", "Null", "None",
                     "none", "?"})
# What pandas names the index it writes by default: to_csv as an unnamed first column (left out when
# it counts 0..N-1 or 1..N: a first column without a name may still be data), to_parquet as this
# column, whatever it holds (a range index goes into the file's metadata instead).
INDEX_COLUMNS = ("", "Unnamed: 0")
PARQUET_INDEX = "__index_level_0__"
COLUMN_OPTIONS = "name the label column with -D label_column=..."
# How much of one cell a row's text shows: a reviewer reads the row, not a page of free text.
SHOWN_CELL = 60


class TableRows(ArraySampleSet):
    """A table's records: their features encoded to train on (float32 [N, D]), and each record's
    cells as text for whoever reviews it (``text``)."""

    def __init__(self, ids, labels, inputs: np.ndarray, texts: list[str]) -> None:
        super().__init__(ids, labels, inputs)
        self.texts = texts

    def text(self, index: int) -> str:
        return self.texts[index]


def _row_texts(rows: list[dict], columns: list[str]) -> list[str]:
    """Each record as a reviewer reads it: ``name=value; ...`` for each of ``columns`` with a value
    (a column dropped as a feature included: a passenger's name tells who it is), a list of numbers
    as its length, a cell cut at ``SHOWN_CELL`` characters (100,000 records of 30 columns take a
    second)."""
    def shown(name: str, value) -> str:
        if isinstance(value, (list, tuple)):
            return f"{name}=[{len(value)} numbers]"
        text = _cell(value)
        if text in MISSING:
            return ""
        return f"{name}={text if len(text) <= SHOWN_CELL else text[:SHOWN_CELL - 1] + '…'}"

    return ["; ".join(filter(None, (shown(name, row.get(name)) for name in columns))) for row in rows]


@dataclass
class _Column:
    """How a feature column becomes numbers: a number (``fill``: the training median, for missing
    cells), one-hot ``categories``, or a vector of numbers a cell (``vector_fill``: the training
    mean of each, for missing cells; a Parquet or JSON column of embeddings)."""

    name: str
    fill: float | None = None
    categories: tuple[str, ...] = ()
    vector_fill: tuple[float, ...] = ()

    @property
    def width(self) -> int:
        return 1 if self.fill is not None else len(self.vector_fill) or len(self.categories)


def _vectors(rows: list[dict], name: str, path: Path, size: int | None = None) -> np.ndarray | None:
    """A column of lists of numbers (embeddings) as float64 [N, size] (NaN rows: missing); None
    when its cells are not lists."""
    values = [row.get(name) for row in rows]
    present = next((value for value in values if value is not None), None)
    if not isinstance(present, (list, tuple)):
        return None
    size = len(present) if size is None else size
    matrix = np.full((len(values), size), np.nan)
    for i, value in enumerate(values):
        if value is None:
            continue
        try:
            if len(value) != size:
                raise ValueError
            matrix[i] = value
        except (TypeError, ValueError):
            raise NoisyctlError(f"{path}: column '{name}' holds lists of {size} numbers, but record {i + 1} holds "
                                f"{str(value)[:40]}") from None
    return matrix


def _encode_vectors(column: _Column, matrix: np.ndarray) -> tuple[np.ndarray, int]:
    """A vector column as float32 [N, size], its missing rows filled; how many rows were."""
    gaps = np.isnan(matrix).any(axis=1)
    matrix[gaps] = column.vector_fill
    return matrix.astype(np.float32), int(gaps.sum())


def _cell(value) -> str:
    """A cell as text (JSON numbers and booleans included), stripped; None (absent) as empty."""
    return "" if value is None else str(value).strip()


def _number(text: str) -> float | None:
    """The cell as a finite number; None when it is missing or not a number."""
    if text in MISSING:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _cells(rows: list[dict], name: str) -> tuple[np.ndarray, np.ndarray]:
    """A column's cells as text (``_cell``), and which of them are missing (``MISSING``)."""
    cells = np.array([_cell(row.get(name)) for row in rows], dtype=str)
    return cells, np.isin(cells, list(MISSING))


def _numbers(cells: np.ndarray, missing: np.ndarray) -> np.ndarray | None:
    """The column as float64 (NaN where missing or not finite); None when a present cell is not a
    number (parsed in C: a table of 100,000 rows and 30 columns loads in seconds)."""
    try:
        values = np.where(missing, "nan", cells).astype(np.float64)
    except ValueError:
        return None
    values[~np.isfinite(values)] = np.nan
    return values


def _not_a_number(cells: np.ndarray, missing: np.ndarray) -> str:
    """The first present cell that is not a number, as a message shows it."""
    return next(text for text in cells[~missing] if _number(text) is None)[:40]


def _fit_column(name: str, cells: np.ndarray, missing: np.ndarray, max_categories: int, path: Path) -> _Column:
    """A numeric column where every present cell is a number, else a category column (``cells`` and
    ``missing`` from ``_cells``, some present)."""
    numbers = _numbers(cells, missing)
    if numbers is not None and not np.isnan(numbers).all():
        return _Column(name, fill=float(np.nanmedian(numbers)))
    categories = sorted(set(np.where(missing, "", cells).tolist()))
    if len(categories) > max_categories:
        raise _Unusable(name, f"has {len(categories):,} values that are not all numbers (such as "
                              f"'{_not_a_number(cells, missing)}'): free text or ids?", len(categories))
    return _Column(name, categories=tuple(categories))


class _Unusable(NoisyctlError):
    """A training column that cannot be a feature as it stands: ``column``, ``why``, and the
    ``categories`` it would take to one-hot encode it (0: none would do)."""

    def __init__(self, column: str, why: str, categories: int = 0) -> None:
        super().__init__(why)
        self.column, self.why, self.categories = column, why, categories


def _refuse_unusable(unusable: list[_Unusable], path: Path) -> None:
    """One message for every column that cannot be a feature (a Titanic-like table has three: a
    name, a ticket number and a cabin), with the -D drop=... that leaves them all out."""
    if not unusable:
        return
    names = ",".join(u.column for u in unusable)
    most = max(u.categories for u in unusable)
    raise_categories = f", or raise -D max_categories={most} to one-hot encode " if most else ""
    if len(unusable) == 1:
        it = unusable[0]
        raise NoisyctlError(f"{path}: column '{it.column}' {it.why} Leave it out with -D drop={names}"
                            + (raise_categories + "it" if most else ""))
    raise NoisyctlError(f"{path}: {len(unusable)} columns cannot be features: "
                        + "; ".join(f"'{u.column}' {u.why.rstrip('?:')}" for u in unusable)
                        + f". Leave them out with -D drop={names}" + (raise_categories + "them" if most else ""))


def _encode_column(column: _Column, cells: np.ndarray, missing: np.ndarray, path: Path) -> tuple[np.ndarray, int]:
    """One column's cells as float32 [N, width], and how many numbers were missing (filled)."""
    if column.fill is not None:
        numbers = _numbers(cells, missing)
        if numbers is None:
            raise NoisyctlError(f"{path}: column '{column.name}' holds '{_not_a_number(cells, missing)}', where the "
                                f"training records hold numbers")
        gaps = np.isnan(numbers)
        return np.where(gaps, column.fill, numbers).astype(np.float32)[:, None], int(gaps.sum())
    position = {category: k for k, category in enumerate(column.categories)}
    codes = np.array([position.get(text, -1) for text in np.where(missing, "", cells).tolist()], dtype=np.int64)
    block = np.zeros((len(cells), column.width), dtype=np.float32)
    known = codes >= 0  # a value the training rows lack sets no column
    block[np.flatnonzero(known), codes[known]] = 1.0
    return block, 0


def _parse(rows: list[dict], name: str, path: Path, column: _Column | None = None):
    """A column as read: its vectors (float64 [N, size], ``_vectors``), or its cells and which are
    missing (``_cells``); read as the training records' ``column`` where given."""
    if column is None or column.vector_fill:
        vectors = _vectors(rows, name, path, len(column.vector_fill) if column is not None else None)
        if vectors is not None:
            return vectors
        if column is not None:
            raise NoisyctlError(f"{path}: column '{name}' holds no lists of numbers, where the training records "
                                f"hold them")
    return _cells(rows, name)


def _fit(name: str, parsed, max_categories: int, path: Path) -> _Column:
    """How a column the training records hold (``_parse``) becomes numbers."""
    if np.all(np.isnan(parsed)) if isinstance(parsed, np.ndarray) else parsed[1].all():
        raise _Unusable(name, "is empty in every record.")
    if isinstance(parsed, np.ndarray):
        return _Column(name, vector_fill=tuple(np.nanmean(parsed, axis=0).tolist()))
    return _fit_column(name, *parsed, max_categories, path)


def _encode_parsed(column: _Column, parsed, path: Path) -> tuple[np.ndarray, int]:
    """A parsed column (``_parse``) as float32 [N, width], and how many values were missing (filled)."""
    return _encode_vectors(column, parsed) if column.vector_fill else _encode_column(column, *parsed, path)


def _fit_and_encode(rows: list[dict], features: list[str], max_categories: int,
                    path: Path) -> tuple[list[_Column], np.ndarray, int]:
    """Each feature column typed by the training ``rows`` (``_fit``), and those rows encoded as
    float32 [N, D], a column at a time (a table's cells as text take ten times its numbers'
    memory); how many values were missing (filled)."""
    columns, blocks, filled, unusable = [], [], 0, []
    for name in features:
        parsed = _parse(rows, name, path)
        try:
            columns.append(_fit(name, parsed, max_categories, path))
        except _Unusable as column:
            unusable.append(column)
            continue
        block, gaps = _encode_parsed(columns[-1], parsed, path)
        blocks.append(block)
        filled += gaps
    _refuse_unusable(unusable, path)
    return columns, np.concatenate(blocks, axis=1), filled


def _encode(rows: list[dict], columns: list[_Column], path: Path) -> np.ndarray:
    """Records (a test file's, or the held-out share) encoded as the training rows were: float32 [N, D]."""
    return np.concatenate([_encode_parsed(column, _parse(rows, column.name, path, column), path)[0]
                           for column in columns], axis=1)


def _label_cells(rows: list[dict], label_column: str, path: Path) -> list[str]:
    return label_strings(column_values(rows, label_column, path, COLUMN_OPTIONS), label_column, path, MISSING)


def _row_ids(rows: list[dict], features: list[str], first_row: int) -> list[str]:
    """``row<N>-<hash>``: the row a spreadsheet shows the record on, and a hash of its feature cells,
    so a reordered or edited file is caught as other data rather than read with the wrong labels
    (the label is left out of the hash: correcting it in the file keeps the id)."""
    ids = []
    for i, row in enumerate(rows):
        cells = (row.get(name) for name in features)
        digest = hashlib.sha1("\x1f".join("" if cell is None else str(cell) for cell in cells).encode("utf-8"))
        ids.append(f"row{i + first_row}-{digest.hexdigest()[:8]}")
    return ids


def _index_column(rows: list[dict], columns: list[str]) -> str | None:
    """pandas' index written as a column (``INDEX_COLUMNS``, ``PARQUET_INDEX``): not a feature."""
    if PARQUET_INDEX in columns:
        return PARQUET_INDEX
    name = columns[0] if columns and columns[0] in INDEX_COLUMNS else None
    if name is None:
        return None
    values = [_number(_cell(row.get(name))) for row in rows]
    start = values[0] if values else None
    return name if start in (0, 1) and values == [start + i for i in range(len(values))] else None


# customer_id, user id, PassengerId, CustomerID, ID; not paid, valid or RAPID
ID_NAME = re.compile(r"(^|[_\-\s.])[iI][dD]$|[a-z0-9](Id|ID)$")


def _named_id_column(rows: list[dict], columns: list[str], label_column: str) -> str | None:
    """The first column named as an id (PassengerId, customer_id, ID) whose cells are present and
    unique in every record: the samples' ids, not a feature a model could learn from."""
    for name in columns:
        if name != label_column and ID_NAME.search(name):
            cells = [_cell(row.get(name)) for row in rows]
            if "" not in cells and len(set(cells)) == len(cells):
                return name
    return None


# Where no column has a label's usual name, a table's last column is its label if it holds a few
# values, as the UCI repository and Kaggle's first tables lay them out (iris' species, the Pima
# diabetes set's Outcome, wine quality's quality, adult's income).
LAST_LABEL_VALUES = 50


def _last_column_as_label(rows: list[dict], columns: list[str]) -> str | None:
    """The last column, where its cells take 2 to ``LAST_LABEL_VALUES`` values, each in two records
    or more on average; else None."""
    last = columns[-1] if columns else None
    if last is None or last in INDEX_COLUMNS:
        return None
    values = {_cell(row.get(last)) for row in rows} - {""}
    return last if 2 <= len(values) <= min(LAST_LABEL_VALUES, len(rows) / 2) else None


def _read(rows: list[dict], path: Path, label_column: str | None, id_column: str | None, drop: list[str]):
    """The label, id, index and feature columns the records of ``path`` hold, the columns a reviewer
    is shown (all but the label, id and index), and the columns that one-hot encode the label where
    it is so (``read_one_hot_label`` has then given each record its label)."""
    columns, one_hot = [str(name) for name in rows[0]], []
    try:
        label_column = find_column(columns, label_column, LABEL_COLUMNS, "label", path, COLUMN_OPTIONS)
    except NoisyctlError:
        one_hot = read_one_hot_label(rows, columns, path, several_refused=False)
        label_column = ONE_HOT_LABEL if one_hot else _last_column_as_label(rows, columns)
        if label_column is None:
            raise
    unknown = next((name for name in [*drop, *([id_column] if id_column else [])] if name not in columns), None)
    if unknown is not None:
        raise NoisyctlError(f"{path} has no column '{unknown}'; it has {', '.join(columns)}")
    if id_column is None:
        id_column = "id" if "id" in columns else _named_id_column(rows, columns, label_column)
    index = _index_column(rows, columns)
    left_out = {label_column, id_column, index, *one_hot, *drop}
    features = [name for name in columns if name not in left_out]
    shown = [name for name in columns if name not in (label_column, id_column, index, *one_hot)]
    return label_column, id_column, index, features, shown, one_hot


def _ids(rows: list[dict], id_column: str | None, features: list[str], path: Path, header: bool,
         prefix: str = "") -> list[str]:
    first_row = 2 if header and record_suffix(path) in CSV_SUFFIXES else 1  # a CSV's header is row 1
    return unique_ids([_cell(v) for v in column_values(rows, id_column, path, COLUMN_OPTIONS)] if id_column
                      else [prefix + sample_id for sample_id in _row_ids(rows, features, first_row)], id_column, path)


def load_table(root=None, label_column: str | None = None, id_column: str | None = None, drop: str = "",
               test: str | None = None, test_fraction: float | str = 0.0, seed: int | str = 0,
               standardize: bool | str = "auto", max_categories: int | str = 50) -> DatasetData:
    """Tabular data from a CSV, TSV, JSONL, JSON, Excel, Parquet, Arrow or Feather file: feature
    columns and a label column.

    The label column is ``label_column``, else the first of ``LABEL_COLUMNS`` (label, labels, target,
    class, category, sentiment, intent, y, choice; case aside), else the columns at the end that
    one-hot encode it (``read_one_hot_label``), else the last column where it holds a few values; ids come
    from ``id_column`` (or a column named ``id``, or one named as an id whose values are unique),
    else ``row<N>-<hash>``: the row a spreadsheet shows the record on and a hash of its features.
    ``drop`` (comma-separated) leaves columns out; an unnamed first column counting 0..N-1 (pandas'
    index) is left out too. The test subset is the file ``test`` (same columns) or a seeded
    ``test_fraction`` of the rows. A folder (a dataset cloned from the Hugging Face Hub) is read as
    its train* files, with its test* (else validation*) files as the test subset."""
    path = require_root(root, "table", f"a {RECORD_FILES} file with a row a sample, feature columns and a "
                                       f"label column (or a folder of train* and test* files)")
    fraction = fraction_option(test_fraction, "table")
    max_categories = positive_int(max_categories, "max_categories", "table")
    drop_names = [name.strip() for name in str(drop or "").split(",") if name.strip()]
    label_column, id_column = column_name(label_column), column_name(id_column)
    train_files, test_files = record_files(path, "table", test)
    rows, path, notes = read_record_files(train_files, "table"), records_source(train_files), []
    header = not header_is_record(rows, train_files, [name for name in (label_column, id_column, *drop_names) if name],
                                  LABEL_COLUMNS)
    if not header:
        if label_column is None:  # UCI's files put it first (wine.data) or last (iris.data)
            first = ", ".join(str(cell) for cell in rows[0])
            raise NoisyctlError(f"{path} has no header row (its first record: {first[:80]}): name the label column "
                                f"by its position, -D label_column=N (columns count from 1)")
        rows = read_headerless(train_files, "table", notes)
    given_label, given_id = label_column, id_column
    label_column, id_column, index, features, shown, one_hot = _read(rows, path, label_column, id_column, drop_names)
    if one_hot:
        notes.append(one_hot_note(one_hot))
    elif given_label is None and label_column != "label":
        last = "" if label_column.lower() in LABEL_COLUMNS else ", the last"
        notes.append(f"labels from column '{label_column}'{last} (-D label_column=NAME for another)")
    if given_id is None and id_column not in (None, "id"):
        notes.append(f"ids from column '{id_column}', unique in every record: not a feature")
    if not features:
        raise NoisyctlError(f"{path}: no feature columns left besides the label '{label_column}'")
    labels, hub_names = hub_class_names(train_files[0], label_column, _label_cells(rows, label_column, path))
    ids = _ids(rows, id_column, features, train_files[0], header)
    test_labels = test_ids = None
    test_rows = labeled_test_records(test_files, "table", label_column, test is not None, notes, header, one_hot)
    if test_rows is None:
        test_files = []
    else:
        test_path = records_source(test_files)
        lacking = next((name for name in features if name not in test_rows[0]), None)
        if lacking is not None:
            raise NoisyctlError(f"table: the test file {test_path} has no column '{lacking}'")
        test_labels, _ = hub_class_names(test_files[0], label_column, _label_cells(test_rows, label_column, test_path))
        test_ids = _ids(test_rows, id_column, features, test_files[0], header, prefix="test-")
    if hub_names is None:
        labels, test_labels, hub_names = named_by_class_list(train_files[0].parent, labels, test_labels, notes)
    names = hub_names or one_hot or class_names_of(labels)  # one-hot classes in their columns' order
    classes, test_classes = class_indices(names, labels, test_labels, path, "table")
    copy = relabeled_copy(train_files, "table", header, ids, label_column, one_hot, labels)
    if fraction and not test_files:
        kept, held = split_off(len(rows), fraction, seed)
        test_rows, test_classes, test_ids = [rows[i] for i in held], classes[held], [ids[i] for i in held]
        rows, classes, ids = [rows[i] for i in kept], classes[kept], [ids[i] for i in kept]
    # Columns are typed, filled and one-hot encoded by the training rows alone, as a model would be.
    columns, x, missing = _fit_and_encode(rows, features, max_categories, path)
    train = TableRows(ids, classes, x, _row_texts(rows, shown))
    test_set = None
    if test_rows:
        test_x = _encode(test_rows, columns, test_path if test_files else path)
        test_set = TableRows(test_ids, test_classes, test_x, _row_texts(test_rows, shown))
    notes += _table_notes(columns, missing, index, len(rows))
    notes += standardize_features((train, test_set), lambda: feature_stats(x, len(x)), standardize, path)
    return DatasetData(train=train, test=test_set, class_names=names, input_shape=(x.shape[1],),
                       default_augment="none", input_kind="features", notes=notes, relabeled_copy=copy)


def _table_notes(columns: list[_Column], missing: int, index: str | None, count: int) -> list[str]:
    """What the loader chose: the category columns it one-hot encoded, the vector columns it spread
    into features, the missing cells it filled, and pandas' index it left out."""
    notes = []
    categorical = [column for column in columns if column.categories]
    if categorical:
        shown = ", ".join(f"{column.name} ({len(column.categories)})" for column in categorical[:6])
        notes.append(f"{len(categorical)} of {len(columns)} columns "
                     f"{'is a category' if len(categorical) == 1 else 'are categories'}, one-hot encoded: {shown}"
                     f"{' ...' if len(categorical) > 6 else ''} (-D drop=NAME leaves one out)")
    for column in (column for column in columns if column.vector_fill):
        notes.append(f"column '{column.name}' holds {column.width:,} numbers a record (an embedding?): "
                     f"{column.width:,} features")
    if missing:
        notes.append(f"{missing:,} missing values in {count:,} records filled from the training records (a "
                     f"number's median, a vector's mean)")
    if index is not None:
        where = "the unnamed first column" if index in INDEX_COLUMNS else f"column '{index}'"
        notes.append(f"{where} is a saved pandas index: left out")
    return notes
