"""The review in Label Studio, for a team that judges samples there: ``correct --export FILE.json``
writes the samples as Label Studio tasks (FILE.json) and the labeling interface that judges them
(FILE.xml); ``import-review`` reads the project's export back (JSON, JSON-MIN or CSV).

A task's data are the review CSV's own cells (``noisyctl.review.review_table``, the sample's id as
``sample_id``: Label Studio's exports name the task's own id ``id``), with its image as a data URI or
its text. Each choice of the interface carries what a reviewed_label cell would hold for it
(``review_decision``) as its alias, which is what the export then holds, so the one reader of
reviews (``noisyctl.review.read_review``) reads what Label Studio writes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import numpy as np

from noisyctl.api import Correction
from noisyctl.errors import NoisyctlError
from noisyctl.fileio import atomic_output, csv_value
from noisyctl.label_studio import annotation_choices, annotator, answered_annotations, is_label_studio_export
from noisyctl.review import (ANNOTATORS_COLUMN, AUDIT_COLUMN, FLAGGED_ROWS, RANDOM, REMOVE, SAMPLE_ID, ReviewEntry,
                             review_decision)
from noisyctl.store import Labels, RunFile

# The Choices control the reviewer answers with: the key of a decision in Label Studio's exports.
CONTROL = "reviewed_label"
REMOVE_CHOICE = "Remove this sample"
# A picture no longer than this shows its pixels as they are: Label Studio would blur an 8x8 digit
# stretched to the page's width.
SMALL_PICTURE = 64


def write_label_studio_tasks(path: Path, run: RunFile, columns: list[str], cells: list[list[str]], labels: Labels,
                             proposal: Correction, rows: np.ndarray, texts: list[str] | None, notes: list[str],
                             strata: list[str] | None = None) -> Path:
    """Write the review table (``columns``, ``cells``: ``noisyctl.review.review_table`` of the samples
    ``rows``, most suspect first) as Label Studio tasks to ``path``, and the labeling interface that
    judges them beside it (returned: ``path`` as .xml), atomically. Each task shows the sample's image
    (``sample_pictures``; ``notes`` gets why where there is none) or its ``texts`` entry, its given
    and proposed labels, and the proposal pre-selected (a prediction scored by its confidence),
    except on an audit's samples drawn at random (``strata``), which a person judges unprompted."""
    from noisyctl.report.review_page import picture_side, sample_pictures

    ids = [labels.ids[i] for i in rows]
    shown = "text" if texts is not None else "image"
    # As small as on the review page: thousands of photos stay a file of tens of MB to upload.
    pictures = None if texts is not None else sample_pictures(run, ids, notes, [picture_side(len(ids))] * len(ids),
                                                              "no images in the Label Studio tasks")
    names = labels.class_names
    flagged_rows = None if strata is None else len(strata) - strata.count(RANDOM)
    tasks = []
    for k, (i, row) in enumerate(zip(rows, cells)):
        data: dict[str, Any] = {shown: texts[k] if texts is not None else pictures[k] or ""}
        for column, cell in zip(columns, row):
            if column not in ("reviewed_label", "text"):
                data[SAMPLE_ID if column == "id" else column] = csv_value(cell)
        data.update(rank=k + 1, confidence=float(proposal.confidence[i]), score=float(data["score"]))
        given, proposed = names[labels.given_labels[i]], names[proposal.labels[i]]
        drawn = strata is not None and strata[k] == RANDOM
        said = data.get(ANNOTATORS_COLUMN)  # as the review table wrote it
        data["question"] = (f"given: {given} (drawn at random)" if drawn else
                            f"given: {given}{f' (annotators: {said})' if said else ''}, proposed: {proposed} "
                            f"({proposal.confidence[i]:.0%} sure)")
        if flagged_rows is not None:
            data[FLAGGED_ROWS] = flagged_rows
        task: dict[str, Any] = {"data": data}
        if not drawn:
            choice = review_decision(proposed, int(proposal.labels[i]))
            task["predictions"] = [{"model_version": "noisyctl", "score": float(proposal.confidence[i]),
                                    "result": [{"id": f"proposed-{k + 1}", "from_name": CONTROL, "to_name": shown,
                                                "type": "choices", "value": {"choices": [choice]}}]}]
        tasks.append(task)
    config = Path(path).with_suffix(".xml")
    with atomic_output(config) as tmp:
        Path(tmp).write_text(labeling_interface(names, shown, _small(pictures)), encoding="utf-8")
    with atomic_output(path) as tmp:
        Path(tmp).write_text(json.dumps(tasks, ensure_ascii=False), encoding="utf-8")
    return config


def labeling_interface(class_names: list[str], shown: str, small_pictures: bool = False) -> str:
    """The labeling interface (Label Studio's XML) of a review: the sample (``shown``: "image" or
    "text"), a line with its given and proposed labels, and one choice a class plus one that removes
    the sample, each with its ``review_decision`` as the alias the export holds."""
    choices = [f"    <Choice value={quoteattr(name)} alias={quoteattr(review_decision(name, c))}/>"
               for c, name in enumerate(class_names)]
    choices.append(f"    <Choice value={quoteattr(REMOVE_CHOICE)} alias={quoteattr(REMOVE)}/>")
    if shown == "image":
        sample = '  <Image name="image" value="$image"' + (' smoothing="false" maxWidth="384px"/>'
                                                             if small_pictures else "/>")
    else:
        sample = '  <Text name="text" value="$text"/>'
    return "\n".join(["<View>", '  <Header value="$question" size="5"/>', sample,
                      f'  <Choices name="{CONTROL}" toName="{shown}" choice="single" showInLine="true">',
                      *choices, "  </Choices>", "</View>", ""])


def _small(pictures: list[str | None] | None) -> bool:
    """Whether the pictures (data URIs) are small enough to show unblurred (the first one found)."""
    import base64
    import io

    from PIL import Image

    for picture in pictures or []:
        if picture:
            with Image.open(io.BytesIO(base64.b64decode(picture.split(",", 1)[1]))) as image:
                return max(image.size) <= SMALL_PICTURE
    return False


def label_studio_entries(path: Path) -> tuple[list[ReviewEntry], int | None]:
    """The decisions in a Label Studio JSON export of our tasks: the full JSON (each task with its
    answers, ``answered_annotations``: a ground-truth one settles the others) or JSON-MIN (one
    record an annotation, its data flattened); one entry per person's decision, and one with none
    for a task nobody judged. Also the number of flagged rows an audit's tasks held
    (``FLAGGED_ROWS``), None for a review that is not an audit."""
    try:
        tasks = json.loads(Path(path).read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NoisyctlError(f"{path} is not a readable JSON file ({exc})") from None
    if not isinstance(tasks, list) or not all(isinstance(task, dict) for task in tasks):
        raise NoisyctlError(f"{path} is not a Label Studio export: a JSON list of tasks")
    full = is_label_studio_export(tasks)
    if not full and any(isinstance(task.get("data"), dict) for task in tasks):
        raise NoisyctlError(f"{path} holds tasks without their annotations: give import-review the project's "
                            f"export (Label Studio: Export, JSON)")
    entries, flagged_rows = [], None
    # Answers that all name another control than CONTROL come from another labeling interface than
    # the one correct --export wrote: they would read as a review that decided nothing.
    answered = ours = False
    for k, task in enumerate(tasks):
        where = f"task {task.get('id', k + 1)}"
        data = task["data"] if full else task
        if SAMPLE_ID not in data:
            raise NoisyctlError(f"{path}: {where} has no {SAMPLE_ID}: import-review reads the export of the tasks "
                                f"`noisyctl correct RUN --export FILE.json` wrote")
        if isinstance(data.get(FLAGGED_ROWS), int):
            flagged_rows = data[FLAGGED_ROWS]
        if full:
            answers = [(annotation_choices(a), annotator(a)) for a in answered_annotations(task)]
            answered |= any(choices for choices, _ in answers)
            ours |= any(CONTROL in choices for choices, _ in answers)
            said = [(choices.get(CONTROL, ""), who) for choices, who in answers]
        else:  # JSON-MIN: a record an annotation, its answers flattened among the task's data
            answered |= "annotation_id" in task
            ours |= CONTROL in task
            said = [(_min_choice(task.get(CONTROL)), annotator({"completed_by": task.get("annotator")}))]
        for decision, reviewer in said or [("", None)]:
            several = isinstance(decision, list)
            entries.append(ReviewEntry(where, str(data[SAMPLE_ID]), "" if several else decision.strip(),
                                       data.get(AUDIT_COLUMN), f"{where}: {len(decision)} labels chosen"
                                       if several and decision else "", reviewer))
    if answered and not ours:
        raise NoisyctlError(f"{path}: none of its answers is a '{CONTROL}' choice: judge the tasks with the labeling "
                            f"interface `correct --export` wrote beside them (FILE.xml)")
    return entries, flagged_rows


def _min_choice(value) -> str | list[str]:
    """A JSON-MIN record's CONTROL: the choice itself, ``{"choices": [...]}`` where there are several,
    absent ('') where the annotation was skipped."""
    if value is None:
        return ""
    if isinstance(value, dict):
        choices = [str(c) for c in value.get("choices") or []]
        return choices[0] if len(choices) == 1 else choices
    return str(value)
