"""Several people's answers to the same items, read in one place: the answer most of them gave (a
Label Studio dataset's label), and how often each answered as the others did (a review's reviewers,
a dataset's annotators)."""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable


def _hashable(answer):
    return tuple(answer) if isinstance(answer, list) else answer


def majority(answers: list) -> Any:
    """The answer most of ``answers`` (oldest first) gave; of a tie, the latest."""
    votes = Counter(map(_hashable, answers))
    most = max(votes.values())
    return next(answer for answer in reversed(answers) if votes[_hashable(answer)] == most)


def agreement_by_person(items: Iterable[list[tuple[str | None, Any]]]) -> list[dict[str, Any]]:
    """How each person answered beside the others (``items``: each item's answers, as (who, answer)):
    the items they ``judged``, those someone else judged too (``shared``), and of those, how many
    they answered as the others most often did (``agreed``). Answers of no one named count for the
    others only. Empty unless two people or more are named."""
    stats: dict[str, dict[str, Any]] = {}
    for answers in items:
        for k, (who, answer) in enumerate(answers):
            if who is None:
                continue
            mine = stats.setdefault(who, {"reviewer": who, "judged": 0, "shared": 0, "agreed": 0})
            mine["judged"] += 1
            others = Counter(_hashable(other) for j, (_, other) in enumerate(answers) if j != k)
            if others:
                mine["shared"] += 1
                mine["agreed"] += int(others[_hashable(answer)] == max(others.values()))
    return sorted(stats.values(), key=lambda s: s["reviewer"]) if len(stats) > 1 else []
