"""Label Studio's export format, read in one place: by the dataset loaders (a project's labels as a
dataset) and by ``import-review`` (a project's review of our suspects).

A task of its JSON export is ``{"id", "data": {...}, "annotations": [{"result": [{"type": "choices",
"from_name": "sentiment", "value": {"choices": ["Positive"]}}], "was_cancelled": false,
"ground_truth": false}, ...]}``. Its JSON-MIN and CSV exports are flat: a record an annotation
(a task nobody answered, one with no ``annotation_id``), the task's data and each control's
answer side by side, with the task's ``id`` and the annotation's ``annotator``, ``annotation_id``,
``created_at``, ``updated_at`` and ``lead_time``.
"""

from __future__ import annotations


def is_label_studio_export(rows: list) -> bool:
    """Whether JSON ``rows`` are tasks of a Label Studio JSON export (each with data and annotations)."""
    return bool(rows) and all(isinstance(row, dict) and isinstance(row.get("data"), dict)
                              and isinstance(row.get("annotations"), list) for row in rows)


def answered_annotations(task: dict) -> list[dict]:
    """A task's answers: its ground-truth annotation alone where someone marked one (it settles the
    others), else every annotation not cancelled, oldest first."""
    answered = [a for a in task.get("annotations") or [] if isinstance(a, dict) and not a.get("was_cancelled")]
    truth = [a for a in answered if a.get("ground_truth")]
    return truth[-1:] or answered


def annotation_choices(annotation: dict) -> dict[str, str | list[str]]:
    """One annotation's choices by the name of their control (``sentiment``): the choice, or a list
    where several were chosen."""
    chosen: dict[str, str | list[str]] = {}
    for region in annotation.get("result") or []:
        if isinstance(region, dict) and region.get("type") == "choices":
            choices = [str(c) for c in (region.get("value") or {}).get("choices") or []]
            chosen[str(region.get("from_name", "choice"))] = choices[0] if len(choices) == 1 else choices
    return chosen


def annotator(annotation: dict) -> str | None:
    """Who made an annotation, as the export names them: a user id, or a user's record (its email)."""
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        who = who.get("email") or who.get("id")
    return None if who is None else str(who)


# The columns of a flat export (JSON-MIN, CSV) that describe the annotation, not the task or its answers.
ANNOTATION_COLUMNS = ("annotator", "annotation_id", "created_at", "updated_at", "lead_time")


def is_label_studio_flat_export(rows: list) -> bool:
    """Whether ``rows`` are the records of a Label Studio JSON-MIN or CSV export: each with the
    task's ``id``, and annotations named by ``annotation_id`` and ``annotator``."""
    # every CSV and JSON file of records asks: a table without an id column is told at its first row
    return bool(rows) and isinstance(rows[0], dict) and "id" in rows[0] and any(
        isinstance(row, dict) and "annotation_id" in row and "annotator" in row for row in rows) and all(
        isinstance(row, dict) and "id" in row for row in rows)
