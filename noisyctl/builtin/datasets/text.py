"""Text classification data: CSV, JSONL, Parquet or Arrow files (``text``), and generated support tickets (``tickets``).

A text sample's input is its UTF-8 bytes, zero-padded to ``max_bytes`` (``noisyctl.api.encode_text``);
text models decode them (``decode_texts``) and tokenize as they need, so any text model reads any
text dataset.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import numpy as np

from noisyctl.api import Annotations, DatasetData, NoisyctlError, SampleSet, encode_text
from .common import (LABEL_COLUMNS, ONE_HOT_LABEL, RECORD_FILES, TEST_SPLITS, TEXT_COLUMNS, TRAIN_SPLITS,
                     aggregated_labels, class_indices, class_names_of, column_name, column_values, find_column,
                     find_test_file, fraction_option, generated_total, header_is_record, hub_class_names, is_number,
                     label_strings, labeled_test_records, named_by_class_list, one_hot_note, positive_int,
                     read_headerless, read_one_hot_label, read_record_files, reads_no_root, record_annotations,
                     record_files, records_source, relabeled_copy, require_root, split_name, split_off, unique_ids)


class TextSampleSet(SampleSet):
    """Texts held in memory; each loads as its UTF-8 bytes [max_bytes]."""

    def __init__(self, ids: list[str], labels, texts: list[str], max_bytes: int) -> None:
        super().__init__(ids, labels)
        self.texts, self.max_bytes = list(texts), max_bytes

    def load(self, index: int):
        return encode_text(self.texts[index], self.max_bytes)

    def text(self, index: int) -> str:
        return self.texts[index]


def _stable_ids(texts: list[str]) -> list[str]:
    """Ids from the texts themselves (a short hash), so they survive reordering and added rows;
    repeated texts get -2, -3, ..."""
    seen: dict[str, int] = {}
    ids = []
    for text in texts:
        key = hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]
        seen[key] = seen.get(key, 0) + 1
        ids.append(key if seen[key] == 1 else f"{key}-{seen[key]}")
    return ids


COLUMN_OPTIONS = "name the columns with -D text_column=... -D label_column=..."


def _read_texts(rows: list[dict], files: list[Path], text_column: str, label_column: str, id_column: str | None):
    path = records_source(files)
    # Several text columns (a title and a body: -D text_column=title,description) are one text, a
    # line each; JSON null: no text.
    parts = [["" if t is None else str(t) for t in column_values(rows, name.strip(), path, COLUMN_OPTIONS)]
             for name in text_column.split(",")]
    texts = ["\n".join(part for part in record if part) for record in zip(*parts)]
    labels = label_strings(column_values(rows, label_column, path, COLUMN_OPTIONS), label_column, path)
    if id_column is None and "id" in rows[0]:
        id_column = "id"
    ids = [str(v) for v in column_values(rows, id_column, path, COLUMN_OPTIONS)] if id_column else _stable_ids(texts)
    unique_ids(ids, id_column, path)
    labels, hub_names = hub_class_names(files[0], label_column, labels)
    return ids, texts, labels, hub_names


def load_text(root=None, text_column: str | None = None, label_column: str | None = None,
              id_column: str | None = None, test: str | None = None, test_fraction: float | str = 0.0,
              max_bytes: int | str = "auto", seed: int | str = 0, aggregate: str | None = None) -> DatasetData:
    """Text classification from a CSV, TSV, JSONL, JSON, Excel, Parquet or Arrow file (--data-root):
    a text and a label column; or from a folder with a subfolder of text files per class.

    The columns are ``text_column`` and ``label_column``, else the first of ``TEXT_COLUMNS`` (text,
    sentence, review, content, ...) and of ``LABEL_COLUMNS`` (label, labels, target, class, category,
    sentiment, ...) the records have, case aside. Ids come from ``id_column`` (or a column named
    ``id``), else from a hash of each text. The test subset is the file ``test`` (same columns) or a
    seeded ``test_fraction`` of the rows. A folder (a dataset cloned from the Hugging Face Hub, or
    saved with ``datasets``' save_to_disk) is read as its train* files, with its test* (else
    validation*) files as the test subset; integer labels of files the ``datasets`` library wrote
    take the class names their metadata gives them. A folder of class folders of text files (the
    IMDb reviews, 20 Newsgroups) is read as scikit-learn's ``load_files`` reads one, with its
    train* and test* folders as the subsets where it has them.

    A Label Studio export with overlap keeps each annotator's own labels, and each task's label is
    their vote; ``aggregate=dawid-skene`` makes the training labels the class Dawid and Skene's
    model of them makes most probable instead (the test subset's stay the vote)."""
    path = require_root(root, "text", f"a {RECORD_FILES} file with a text and a label column (or a folder of "
                                      f"train* and test* files, or of a folder of text files per class)")
    max_bytes = None if max_bytes == "auto" else positive_int(max_bytes, "max_bytes", "text")
    fraction = fraction_option(test_fraction, "text")
    text_column, label_column, id_column = map(column_name, (text_column, label_column, id_column))
    notes: list[str] = []
    folders = _text_folders(path) if path.is_dir() else None
    if folders is not None:
        given = next((f"{name}={value}" for name, value in (("text_column", text_column),
                                                            ("label_column", label_column), ("id_column", id_column))
                      if value is not None), None)
        if given is not None:
            raise NoisyctlError(f"text: {path} holds a folder of text files per class, which has no columns ({given})")
        train, tested, names = _folder_texts(path, *folders, test, notes)
        text_column, copy, annotations = "file", None, None
    else:
        train, tested, names, text_column, copy, annotations = _record_texts(path, text_column, label_column,
                                                                             id_column, test, notes)
    ids, texts, labels = train
    max_bytes = max_bytes or _read_whole(texts)
    index, test_index = class_indices(names, labels, None if tested is None else tested[2], path, "text")
    test_set = None if test_index is None else TextSampleSet(tested[0], test_index, tested[1], max_bytes)
    order = np.arange(len(ids))
    if fraction and tested is None:
        order, held = split_off(len(ids), fraction, seed)
        test_set = TextSampleSet([ids[i] for i in held], index[held], [texts[i] for i in held], max_bytes)
    annotations = None if annotations is None else annotations.subset(order)
    train_labels = aggregated_labels(annotations, index[order], aggregate, len(names), "text", notes)
    train_set = TextSampleSet([ids[i] for i in order], train_labels, [texts[i] for i in order], max_bytes)
    return DatasetData(train=train_set, test=test_set, class_names=names, input_shape=(max_bytes,),
                       default_augment="none", input_kind="text", relabeled_copy=copy,
                       notes=notes + _text_notes(texts, text_column, max_bytes), annotations=annotations)


Texts = tuple[list[str], list[str], list[str]]  # ids, texts and labels (as the data names them)


def _record_texts(path: Path, text_column: str | None, label_column: str | None, id_column: str | None,
                  test: str | None, notes: list[str]
                  ) -> tuple[Texts, Texts | None, list[str], str, Callable, Annotations | None]:
    """The training and test texts of a file of records, or a folder of such files, the class names,
    the text column, the data's ``relabeled_copy`` and each annotator's own labels of the training
    records, where a Label Studio export keeps them (``record_annotations``)."""
    train_files, test_files = record_files(path, "text", test)
    rows, source = read_record_files(train_files, "text"), records_source(train_files)
    notes += rows.notes
    named = [name.strip() for name in (text_column or "").split(",")] + [label_column or "", id_column or ""]
    header = not header_is_record(rows, train_files, [name for name in named if name],
                                  TEXT_COLUMNS + TEXT_LABEL_COLUMNS)
    if not header:
        rows = read_headerless(train_files, "text", notes)
        text_column, label_column = _positional_columns(rows, text_column, label_column, id_column, notes)
    columns = list(rows[0])
    try:
        found_label = find_column(columns, label_column, TEXT_LABEL_COLUMNS, "label", source, COLUMN_OPTIONS)
        one_hot = []
    except NoisyctlError:
        one_hot = read_one_hot_label(rows, [name for name in columns if name != id_column], source,
                                     several_refused=True)
        if one_hot:
            found_label = label_column = ONE_HOT_LABEL
            notes.append(one_hot_note(one_hot))
        else:
            found_label = _the_other_column(rows, columns, text_column, id_column)
            if found_label is None:
                raise
    try:
        found = (find_column(columns, text_column, TEXT_COLUMNS, "text", source, COLUMN_OPTIONS), found_label)
        longest = ""
    except NoisyctlError:
        found, longest = (_longest_column(rows, [found_label, id_column]), found_label), ", the longest"
        if found[0] is None:
            raise
    if one_hot:
        if found[0] not in (text_column, "text"):
            notes.append(f"texts from column '{found[0]}'{longest} (-D text_column=NAME for another)")
    elif (text_column, label_column) != found and found != ("text", "label"):
        notes.append(f"texts from column '{found[0]}'{longest}, labels from '{found[1]}' (-D text_column=NAME "
                     f"-D label_column=NAME for others)")
    text_column, label_column = found
    ids, texts, labels, hub_names = _read_texts(rows, train_files, text_column, label_column, id_column)
    tested = None
    test_rows = labeled_test_records(test_files, "text", label_column, test is not None, notes, header, one_hot)
    if test_rows is not None:
        tested = _read_texts(test_rows, test_files, text_column, label_column, id_column)[:3]
    if hub_names is None:
        labels, test_labels, hub_names = named_by_class_list(train_files[0].parent, labels,
                                                             None if tested is None else tested[2], notes)
        tested = None if tested is None else (tested[0], tested[1], test_labels)
    copy = relabeled_copy(train_files, "text", header, ids, label_column, one_hot, labels)
    names = hub_names or one_hot or class_names_of(labels)
    return (ids, texts, labels), tested, names, text_column, copy, record_annotations(rows, label_column, names)


# Reviews name their labels as ratings: Yelp's stars, Amazon's rating, score or overall.
TEXT_LABEL_COLUMNS = LABEL_COLUMNS + ("rating", "stars", "score", "overall")
# Where no column has a text's usual name (Review Text, headline, comment_text, v2), the text is the
# column of the longest cells, if they are this long on average: a sentence, not a category.
SHORTEST_TEXT = 20


def _the_other_column(rows: list[dict], columns: list, text_column: str | None, id_column: str | None) -> str | None:
    """The label column of records with a text and one other column under a name of its own
    (``message,team``; a Label Studio export's one choices control, ``topic``), where that column repeats its values as classes do (fewer than half the
    records' count, two or more); an ``id`` column is the ids, as ``_read_texts`` reads it; else None."""
    if id_column is None and "id" in columns:
        id_column = "id"
    try:
        text = find_column(columns, text_column, TEXT_COLUMNS, "text", Path(), "")
    except NoisyctlError:
        text = _longest_column(rows, [id_column])
    others = [name for name in columns if name not in (text, id_column)]
    if text is None or len(others) != 1:
        return None
    values = {str(row.get(others[0])) for row in rows}
    return others[0] if 2 <= len(values) < len(rows) / 2 else None


def _longest_column(rows: list[dict], other: list[str | None]) -> str | None:
    """The column (not one of ``other``) whose cells are longest on average in the first records,
    where that is at least ``SHORTEST_TEXT`` characters and they are not numbers; else None."""
    looked_at = rows[:1000]
    lengths = {}
    for name in rows[0]:
        cells = [row.get(name) for row in looked_at]
        if name in other or not all(cell is None or isinstance(cell, str) for cell in cells) \
                or all(is_number(str(cell)) for cell in cells):
            continue
        lengths[name] = sum(len(cell or "") for cell in cells) / len(cells)
    name = max(lengths, key=lengths.get, default=None)
    return name if name is not None and lengths[name] >= SHORTEST_TEXT else None


# A folder of texts as scikit-learn's load_files reads one, a file a text in a folder per class:
# the IMDb reviews (aclImdb/train/pos/0_9.txt), 20 Newsgroups (20news-bydate-train/sci.space/60822,
# files without a suffix), BBC News (bbc/sport/001.txt). aclImdb/train/unsup holds reviews without
# a label: no class.
TEXT_FILE_SUFFIXES = ("", ".txt")
UNLABELED_FOLDERS = ("unsup", "unlabeled", "unlabelled")


def _class_folders(folder: Path) -> dict[str, list[Path]]:
    """The subfolders of ``folder`` that hold text files (``TEXT_FILE_SUFFIXES``, at any depth),
    each with its files, in name order."""
    found = {}
    for sub in sorted(item for item in folder.iterdir() if item.is_dir() and not item.name.startswith(".")):
        files = sorted(file for file in sub.rglob("*") if file.suffix.lower() in TEXT_FILE_SUFFIXES
                       and not any(part.startswith(".") for part in file.relative_to(sub).parts) and file.is_file())
        if files:
            found[sub.name] = files
    return found


def _text_folders(root: Path) -> tuple[Path, dict[str, list[Path]], Path | None] | None:
    """Where a folder of class folders keeps its training classes (its train* subfolder, or itself),
    those classes with their files (``_class_folders``), and its test* (else validation*) subfolder;
    None where it holds fewer than two class folders."""
    children = sorted(item for item in root.iterdir() if item.is_dir() and not item.name.startswith("."))
    train = next((item for item in children if split_name(item.name) in TRAIN_SPLITS), None)
    test = next((item for names in TEST_SPLITS for item in children if split_name(item.name) in names), None)
    classes = _class_folders(train or root)
    labeled = [name for name in classes if name.lower() not in UNLABELED_FOLDERS]
    return (train or root, classes, test if train else None) if len(labeled) >= 2 else None


def _folder_texts(root: Path, train_folder: Path, classes: dict[str, list[Path]], test_folder: Path | None,
                  test: str | None, notes: list[str]) -> tuple[Texts, Texts | None, list[str]]:
    """The texts of a folder of class folders (the training ``classes`` found in ``train_folder``),
    ids their paths under ``root``; the test folder is ``test`` where given."""
    if test is not None:
        test_folder = require_root(find_test_file(root, test), "text", "the test folder of class folders")
    train = _read_class_folders(root, train_folder, classes, notes)
    names = sorted(set(train[2]))
    tested = None if test_folder is None else _read_class_folders(root, test_folder, _class_folders(test_folder),
                                                                  notes)
    unknown = next((label for label in tested[2] if label not in names), None) if tested else None
    if unknown is not None:
        raise NoisyctlError(f"text: {test_folder / unknown} is a class the training folder {train_folder} lacks")
    return train, tested, names


def _read_class_folders(root: Path, folder: Path, classes: dict[str, list[Path]], notes: list[str]) -> Texts:
    """Every text file of ``folder``'s class folders (``classes``, with their files): UTF-8, else
    Latin-1 (20 Newsgroups' posts are)."""
    skipped = [name for name in classes if name.lower() in UNLABELED_FOLDERS]
    if skipped:
        notes.append(f"{folder.name}/{skipped[0]}: {len(classes[skipped[0]]):,} texts without a label, left out")
    ids, texts, labels, latin = [], [], [], 0
    inside = root.resolve()
    for name, files in classes.items():
        if name in skipped:
            continue
        for file in files:
            if not file.resolve().is_relative_to(inside):  # never read (and show) a file outside the dataset
                raise NoisyctlError(f"text: {file} links to {file.resolve()}, outside the dataset root {root}")
            data = file.read_bytes()
            try:
                text = data.decode("utf-8-sig")
            except UnicodeDecodeError:
                text, latin = data.decode("latin-1"), latin + 1
            ids.append(file.relative_to(root).as_posix())
            texts.append(text.strip())
            labels.append(name)
    if not ids:
        raise NoisyctlError(f"text: {folder} has no class folders of text files")
    if latin:
        notes.append(f"{latin:,} files in {folder.name} are not UTF-8: read as Latin-1")
    return ids, texts, labels


def _positional_columns(rows: list[dict], text_column: str | None, label_column: str | None,
                        id_column: str | None, notes: list[str]) -> tuple[str | None, str]:
    """The columns of records without a header row (named by position), where none are given: the
    label first, as AG News, DBpedia, Yelp and Amazon reviews put it, or last, as UCI's labelled
    sentences do (the one of the two with fewer values), and the text every other column that is
    not all numbers (a title and a description, a line each)."""
    looked_at = rows[:1000]
    if label_column is None:
        ends = dict.fromkeys((list(rows[0])[0], list(rows[0])[-1]))
        label_column = min(ends, key=lambda name: len({str(row.get(name)) for row in looked_at}))
    if text_column is None:
        texts = [name for name in rows[0] if name not in (label_column, id_column)
                 and not all(is_number(str(row.get(name))) for row in looked_at)]
        text_column = ",".join(texts) or None
        if texts:
            notes.append(f"labels from column {label_column}, texts from column{'s' if len(texts) > 1 else ''} "
                         f"{' and '.join(texts)}{', a line each' if len(texts) > 1 else ''} "
                         f"(-D label_column=N -D text_column=N,M for others)")
    return text_column, label_column


# By default a model reads the whole of 95% of the texts, in a power of two of bytes from 512 (a
# tweet, a ticket, a title and a line) to 4,096: on reviews of 800-2,000 bytes whose words of
# sentiment lie anywhere in them, reading the first 512 left text-bag at 77% test accuracy and the
# noise unseen (mAP 0.51); read whole, 99.9% and mAP 1.0. Past 4,096 bytes the longest documents
# would set every batch's width.
READ_WHOLE = 0.95
MAX_BYTES_RANGE = (512, 4096)


def _read_whole(texts: list[str]) -> int:
    """The bytes a model reads of each text, by default (``READ_WHOLE``, ``MAX_BYTES_RANGE``)."""
    lengths = np.sort([len(text.encode("utf-8")) for text in texts])
    covered = int(lengths[min(len(lengths) - 1, int(np.ceil(READ_WHOLE * len(lengths))) - 1)]) if len(lengths) else 0
    low, high = MAX_BYTES_RANGE
    return int(min(high, max(low, 1 << max(0, covered - 1).bit_length())))


def _text_notes(texts: list[str], text_column: str, max_bytes: int) -> list[str]:
    """What a model will not see of the texts: empty ones (whose labels nothing can check) and the
    part of long ones past ``max_bytes``."""
    notes = []
    empty = sum(not text.strip() for text in texts)
    if empty:
        notes.append(f"{empty:,} of {len(texts):,} records {'has' if empty == 1 else 'have'} an empty "
                     f"'{text_column}': a model learns nothing from them, so nothing can check their labels")
    cut = sum(len(text.encode("utf-8")) > max_bytes for text in texts)
    if cut:
        notes.append(f"{cut:,} of {len(texts):,} texts {'is' if cut == 1 else 'are'} longer than {max_bytes:,} "
                     f"bytes; models read the first {max_bytes:,} (-D max_bytes=N reads more)")
    return notes


# Generated support tickets: each class has its own phrases; one ticket in ten also mentions another
# class's topic in passing, and all share openers, order numbers and sign-offs, so the classes
# overlap as real tickets do.
ASIDE = 0.1
TICKET_TOPICS = {
    "billing": ["I was charged twice for the same order", "my invoice shows the wrong amount",
                "the card payment failed at checkout", "why is there an extra fee on my bill",
                "please update the billing address on my invoices", "the subscription price went up without notice",
                "the VAT on my invoice is wrong", "my payment method was declined",
                "I need a copy of the receipt for my records", "there is a double charge on my bank statement",
                "the direct debit was taken on the wrong day", "the invoice is in the wrong currency",
                "I was billed for a plan I never chose", "can I pay the bill in instalments"],
    "delivery": ["my parcel has not arrived yet", "the tracking number does not work",
                 "the courier left the package at the wrong address", "the delivery is a week late",
                 "can I change the delivery date", "do you ship to another country",
                 "the order is stuck in transit", "one item is missing from the box",
                 "it says delivered but I never received it", "I need a different delivery slot",
                 "the express shipping took five days", "the driver never rang the bell",
                 "the parcel was sent to my old address", "how long does standard shipping take"],
    "account": ["I cannot log in to my account", "please reset my password",
                "I want to change the email on my account", "the two-factor code never arrives",
                "please delete my account and my data", "my account was locked after three attempts",
                "how do I update my profile name", "someone else signed in to my account",
                "can you merge my two accounts", "the username I want is already taken",
                "I no longer have access to the phone number on my account", "the verification link has expired",
                "I want to add a second user to my account", "my login keeps timing out"],
    "technical": ["the app crashes as soon as I open it", "I get error 500 on the checkout page",
                  "the website is extremely slow today", "push notifications stopped working",
                  "the page does not load on my phone", "sync fails between my laptop and tablet",
                  "the save button does nothing", "the latest update broke the app",
                  "videos will not play in the browser", "exporting to PDF fails with an error",
                  "the search returns no results at all", "the screen goes blank after login",
                  "the app drains my battery", "dark mode makes the text unreadable"],
    "refund": ["I want my money back for this order", "how long does a refund take",
               "I would like to return the item I bought", "my refund has not appeared on my card",
               "please cancel my order and refund me", "I need a return label",
               "can I exchange it for a different size", "refund it to my original payment card",
               "I want to make a warranty claim", "I expect a partial refund for the damaged item",
               "the returned item was received but no refund yet", "the product is not as described and I want a refund",
               "can I return an item bought on sale", "you refunded the wrong amount"],
}
OPENERS = ["Hi,", "Hello team,", "Good morning,", "Hey there,", "Dear support,", "", "Hi there,", "Hello,"]
CLOSERS = ["Thanks.", "Please help.", "Regards, Anna", "Thank you!", "Kind regards, Tom", "Cheers, Sam", "",
           "Any update would be appreciated.", "Best, Maria", "Thanks in advance."]
JOINERS = ["Also,", "And", "On top of that,", "Besides,", "By the way,"]


def _ticket(rng: np.random.Generator, topic: str) -> str:
    phrases = TICKET_TOPICS[topic]
    parts = [OPENERS[rng.integers(len(OPENERS))]]
    chosen = rng.choice(len(phrases), size=1 + int(rng.random() < 0.5), replace=False)
    parts += [phrases[i][0].upper() + phrases[i][1:] + "." for i in chosen]
    if rng.random() < 0.5:
        parts.append(f"Order #{rng.integers(10000, 99999)}.")
    if rng.random() < ASIDE:
        other = [t for t in TICKET_TOPICS if t != topic][rng.integers(len(TICKET_TOPICS) - 1)]
        aside = TICKET_TOPICS[other][rng.integers(len(TICKET_TOPICS[other]))]
        parts.append(f"{JOINERS[rng.integers(len(JOINERS))]} {aside}.")
    parts.append(CLOSERS[rng.integers(len(CLOSERS))])
    text = " ".join(p for p in parts if p)
    return text.lower() if rng.random() < 0.2 else text


def load_tickets(root=None, samples: int | str = 2000, seed: int | str = 0, test_fraction: float | str = 0.2,
                 max_bytes: int | str = 256) -> DatasetData:
    """Generated customer-support tickets in five classes (billing, delivery, account, technical,
    refund), reproducible by seed: text data that needs no download."""
    reads_no_root(root, "tickets")
    samples = positive_int(samples, "samples", "tickets")
    max_bytes = positive_int(max_bytes, "max_bytes", "tickets")
    fraction = fraction_option(test_fraction, "tickets")
    total = generated_total(samples, fraction)
    rng = np.random.default_rng(int(seed))
    names = list(TICKET_TOPICS)
    labels = rng.integers(len(names), size=total)
    texts = [_ticket(rng, names[c]) for c in labels]
    ids = [f"tickets/{i:05d}" for i in range(total)]
    train = TextSampleSet(ids[:samples], labels[:samples], texts[:samples], max_bytes)
    test = TextSampleSet(ids[samples:], labels[samples:], texts[samples:], max_bytes) if total > samples else None
    return DatasetData(train=train, test=test, class_names=names, input_shape=(max_bytes,), default_augment="none",
                       input_kind="text")
