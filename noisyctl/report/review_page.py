"""The review page (``correct --export FILE.html``): the samples a person should judge, each with its
image or text, its given and proposed labels, and buttons to decide; one self-contained HTML file
that needs no server and writes the review CSV ``import-review`` reads.

The page holds the CSV's own cells (``noisyctl.review.review_table``) and only fills in reviewed_label,
so what it writes is what ``--export FILE.csv`` would have written with the same decisions.
"""

from __future__ import annotations

import base64
import io
import json
import secrets
import shlex
from importlib import resources
from pathlib import Path

import numpy as np

from noisyctl.api import Correction
from noisyctl.fileio import atomic_output, csv_value
from noisyctl.report import image_samples
from noisyctl.review import ANNOTATORS_COLUMN, RANDOM, review_decision_cell, sample_path
from noisyctl.store import Labels, RunFile

# The longer side of a picture on the page, in pixels: enough to judge a label, small enough that a
# page of a few hundred photos stays a few megabytes.
PICTURE_SIDE = 256
# Past this many samples a page shows them at half that side, about a third of the bytes a photo: a
# page of 10,000 photos (20% of 50,000 flagged) then holds some 60 MB instead of 180.
MANY_PICTURES = 1000
# Beside each label, its class's typical images (``noisyctl.review.typical_samples``) this small, or
# the start of its typical texts.
EXAMPLE_SIDE, EXAMPLE_CHARACTERS = 96, 160
DATA_MARK = "__REVIEW_DATA__"


def write_review_page(path: Path, run: RunFile, columns: list[str], cells: list[list[str]], labels: Labels,
                      proposal: Correction, rows: np.ndarray, texts: list[str] | None,
                      typical: list[tuple[int, int]], typical_texts: list[str] | None, applies_to: Path,
                      notes: list[str], strata: list[str] | None = None) -> None:
    """Write the review page of the review table (``columns``, ``cells``: ``noisyctl.review.review_table``
    of the samples ``rows``, most suspect first) to ``path``, atomically; it tells the reviewer to
    import the CSV into the labels file ``applies_to``. ``texts`` (one per row, for text data) are
    shown as they are; images from their files, else from the dataset as loaded here (``notes`` gets
    why they are not, where they are not). Each label stands beside the ``typical`` samples of its
    class (``noisyctl.review.typical_samples``: (class, sample index); their ``typical_texts`` for
    text data). ``strata`` (an audit's, one per row) mark the samples drawn at random."""
    ids = [labels.ids[i] for i in rows]
    said = _annotators_cells(columns, cells)
    if texts is None:  # the rows' images and the typical ones, from one load of the data at most
        found = sample_pictures(run, ids + [labels.ids[i] for _, i in typical], notes,
                                [picture_side(len(ids))] * len(ids) + [EXAMPLE_SIDE] * len(typical))
        pictures, shown = found[:len(ids)], found[len(ids):]
    else:
        pictures = [None] * len(ids)
        shown = [None if t is None else t[:EXAMPLE_CHARACTERS] + ("…" if len(t) > EXAMPLE_CHARACTERS else "")
                 for t in typical_texts or [None] * len(typical)]
    examples: dict[str, list[str]] = {}
    for (c, _), example in zip(typical, shown):
        if example is not None:
            examples.setdefault(str(c), []).append(example)
    data = {
        "title": _title(len(ids), 0 if strata is None else strata.count(RANDOM), labels.dataset.get("name")),
        "command": f"noisyctl import-review {path.with_suffix('.csv').name} --labels {shlex.quote(str(applies_to))} "
                   f"-o {shlex.quote(str(applies_to.with_name(applies_to.stem + '.reviewed.h5')))}",
        "csv_name": path.with_suffix(".csv").name,
        "token": secrets.token_hex(8),  # the browser keeps each page's decisions apart
        "columns": columns,
        "rows": cells,
        "classes": [{"name": name, "cell": review_decision_cell(name, c)} for c, name in enumerate(labels.class_names)],
        "given": [int(labels.given_labels[i]) for i in rows],
        "proposed": [int(proposal.labels[i]) for i in rows],
        "random": 0 if strata is None else strata.count(RANDOM),
        "examples": examples,
        "examples_are_text": texts is not None,
        "samples": [{"id": sample_id, "text": None if texts is None else texts[k], "picture": pictures[k],
                     "confidence": f"{proposal.confidence[i]:.0%}",
                     "random": strata is not None and strata[k] == RANDOM,
                     # like the proposal, not shown on an audit's random samples: those are judged unprompted
                     "annotators": None if strata is not None and strata[k] == RANDOM else said[k] or None}
                    for k, (sample_id, i) in enumerate(zip(ids, rows))],
        "notes": list(notes),  # why images are missing, on the page as on the terminal
    }
    page = template().replace(DATA_MARK, _script_json(data))
    with atomic_output(path) as tmp:
        Path(tmp).write_text(page, encoding="utf-8")


def picture_side(count: int) -> int:
    """The longer side of each of ``count`` samples' pictures in a review: PICTURE_SIDE, half that
    past MANY_PICTURES."""
    return PICTURE_SIDE if count <= MANY_PICTURES else PICTURE_SIDE // 2


def _annotators_cells(columns: list[str], cells: list[list[str]]) -> list[str]:
    """What each annotator said of each row, as the review table wrote it; "" where it has no such column."""
    if ANNOTATORS_COLUMN not in columns:
        return [""] * len(cells)
    at = columns.index(ANNOTATORS_COLUMN)
    return [csv_value(row[at]) for row in cells]


def _title(rows: int, drawn: int, dataset: str | None) -> str:
    """The page's heading: a review of ``rows`` samples, or an audit where ``drawn`` of them are random."""
    of = f"of {dataset or 'the dataset'}"
    if not drawn:
        return f"Review: {rows:,} samples {of}, most suspect first"
    return f"Audit: {rows - drawn:,} flagged samples {of}, most suspect first, then {drawn:,} drawn at random"


def template() -> str:
    """The page's HTML, with ``DATA_MARK`` where its data goes."""
    return resources.files("noisyctl.report").joinpath("review_page.html").read_text(encoding="utf-8")


def _script_json(data: dict) -> str:
    """JSON safe inside a <script> element: ids and texts come from files and may hold '</script>'."""
    return json.dumps(data, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e").replace(
        "&", "\\u0026").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def sample_pictures(run: RunFile, ids: list[str], notes: list[str], sides: list[int],
                    missing_what: str = "no images on the review page") -> list[str | None]:
    """Each sample's image as a data URI, at most ``sides`` (one per id) pixels: its file where the
    dataset root holds one (no need to load the dataset), else what the dataset shows
    (``SampleSet.picture``: a Hub dataset's encoded bytes), else the input it loads (CIFAR, MNIST,
    arrays, the built-ins); None where none is to be had (``notes`` gets why, after ``missing_what``)."""
    dataset = run.labels.dataset
    pictures = [_file_picture(sample_path(dataset, sample_id), side) for sample_id, side in zip(ids, sides)]
    missing = [k for k, picture in enumerate(pictures) if picture is None]
    found = image_samples(run, [ids[k] for k in missing], notes, missing_what) if missing else None
    if found is not None:
        from noisyctl.report.figures import image_array

        samples, positions = found
        for k, index in zip(missing, positions):
            pictures[k] = _file_picture(samples.picture(index), sides[k])
            image = None if pictures[k] is not None else image_array(samples.load(index))
            if image is not None:
                pictures[k] = _data_uri(np.round(image * 255).astype(np.uint8))
    return pictures


def _file_picture(path, side: int = PICTURE_SIDE) -> str | None:
    """The image file at ``path`` (or a binary file object; upright, as its EXIF says), shrunk to
    ``side`` pixels, as a data URI; None where there is none or it is not an image PIL reads."""
    if path is None or path == "":
        return None
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            image.thumbnail((side, side))
            return _data_uri(image)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        return None


def _data_uri(image) -> str:
    """An image (PIL, or a uint8 HxW or HxWx3 array) as a data URI: JPEG for photographs, PNG for the
    rest (small or few-coloured images, which JPEG would blur)."""
    from PIL import Image

    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16-bit and float scans: stretched to 8 bits
        values = np.asarray(image, dtype=np.float64)
        low, high = values.min(), values.max()
        image = Image.fromarray(np.round((values - low) / ((high - low) or 1.0) * 255).astype(np.uint8))
    buffer = io.BytesIO()
    if min(image.size) >= 64 and image.getcolors(256) is None:  # many colours: a photograph
        image.convert("RGB").save(buffer, format="JPEG", quality=85)
        kind = "jpeg"
    else:
        image.convert("RGBA" if image.mode in ("RGBA", "LA", "PA", "P") else "L" if image.mode in ("L", "1")
                      else "RGB").save(buffer, format="PNG")
        kind = "png"
    return f"data:image/{kind};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"
