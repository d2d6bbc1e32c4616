"""Several people's answers to the same items, read in one place: the answer most of them gave (a
Label Studio dataset's label), how often each answered as the others did (a review's reviewers,
a dataset's annotators), and the annotators' own labels a labels or run file keeps
(``Annotations``)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from noisyctl.errors import NoisyctlError


def _hashable(answer):
    """An answer as a key: a list as a tuple, a mapping (a flat export's several choices) as its sorted items."""
    if isinstance(answer, list):
        return tuple(map(_hashable, answer))
    if isinstance(answer, dict):
        return tuple(sorted((str(key), _hashable(value)) for key, value in answer.items()))
    return answer


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


NOT_LABELED = -1  # an annotator's cell for a sample they gave no label


@dataclass
class Annotations:
    """Each annotator's own label of each sample, kept beside the one label training uses (their
    majority, an aggregate such as CIFAR-10N's ``aggre_label``, or a ground truth).

    Parameters
    ----------
    names : list[str], length A
        The annotators, each once.
    labels : np.ndarray of int, shape (N, A)
        ``labels[i, a]``: annotator ``a``'s class index for sample ``i``, or ``NOT_LABELED`` (-1)
        where they gave none.
    """

    names: list[str]
    labels: np.ndarray

    @classmethod
    def from_rows(cls, samples: int, sample: np.ndarray, annotator: Iterable[str], label: np.ndarray,
                  names: list[str] | None = None) -> "Annotations":
        """Annotations from a table of one row a label, as crowdsourcing tools export them (or a
        DataFrame's item, worker and label columns).

        Parameters
        ----------
        samples : int
            N, the samples.
        sample : np.ndarray of int, shape (L,)
            Each label's sample, an index below N.
        annotator : iterable of str, length L
            Who gave each label.
        label : np.ndarray of int, shape (L,)
            Each label's class index.
        names : list[str], optional
            The annotators, in the order their columns take (each of ``annotator`` among them);
            else in the order they first appear.

        Of an annotator's two labels of a sample, the later row's counts.
        """
        sample, label = np.asarray(sample, dtype=np.int64), np.asarray(label)
        who = [str(name) for name in annotator]
        names = list(dict.fromkeys(who)) if names is None else [str(name) for name in names]
        column = {name: a for a, name in enumerate(names)}
        columns = np.array([column[name] for name in who], dtype=np.int64)
        # the last row of each (sample, annotator): numpy's fancy assignment does not promise which wins
        _, last_reversed = np.unique((sample * len(names) + columns)[::-1], return_index=True)
        last = len(sample) - 1 - last_reversed
        votes = np.full((samples, len(names)), NOT_LABELED, dtype=np.int32)
        votes[sample[last], columns[last]] = label[last]
        return cls(names, votes)

    def checked(self, samples: int, classes: int, where: str) -> "Annotations":
        """The annotations as int32, or one line saying what is wrong with them (``where`` names
        their source)."""
        labels = np.asarray(self.labels)
        names = [str(name) for name in self.names]
        if labels.ndim != 2 or labels.shape != (samples, len(names)):
            raise NoisyctlError(f"{where}: annotators' labels of shape {labels.shape}; expected {samples:,} samples "
                                f"x {len(names)} annotators")
        if len(set(names)) != len(names) or not all(names):
            raise NoisyctlError(f"{where}: annotators need distinct, non-empty names, not {', '.join(names)}")
        if not np.issubdtype(labels.dtype, np.integer):
            raise NoisyctlError(f"{where}: annotators' labels should be class indices, not {labels.dtype}")
        outside = (labels < NOT_LABELED) | (labels >= classes)
        if outside.any():
            raise NoisyctlError(f"{where}: an annotator's label is {int(labels[outside][0])}; the classes are 0 to "
                                f"{classes - 1} ({NOT_LABELED}: not labeled)")
        return Annotations(names, labels.astype(np.int32))

    def subset(self, indices: np.ndarray) -> "Annotations":
        """The same annotators' labels of some samples only."""
        return Annotations(list(self.names), self.labels[np.asarray(indices)])

    def per_sample(self) -> np.ndarray:
        """(N,): how many annotators labeled each sample."""
        return (np.asarray(self.labels) != NOT_LABELED).sum(axis=1)

    def voted_most(self, labels: np.ndarray) -> np.ndarray:
        """(N,) bool: whether each of ``labels`` (N,) is a class most of the sample's annotators gave
        (one of the tied ones, however a tie was broken), or nobody labeled the sample."""
        counts = self._votes_by_class(max(int(np.max(labels, initial=0)), int(self.labels.max(initial=0))) + 1)
        return (counts[np.arange(len(counts)), np.asarray(labels)] == counts.max(axis=1)) | (counts.sum(axis=1) == 0)

    def _votes_by_class(self, classes: int) -> np.ndarray:
        """(N, classes): how many annotators gave each sample each class."""
        votes = np.asarray(self.labels)
        rows, people = np.nonzero(votes != NOT_LABELED)
        counts = np.zeros((len(votes), classes), dtype=np.int64)
        np.add.at(counts, (rows, votes[rows, people]), 1)
        return counts

    def majority(self) -> np.ndarray:
        """Each sample's label as most of its annotators gave it (of a tie, the latest annotator's
        among the tied classes), (N,); ``NOT_LABELED`` where nobody labeled it."""
        votes = np.asarray(self.labels)
        rows = np.arange(len(votes))
        counts = self._votes_by_class(int(votes.max(initial=0)) + 1)
        most = counts == counts.max(axis=1, keepdims=True)
        chosen = np.full(len(votes), NOT_LABELED, dtype=np.int64)
        for column in votes.T[::-1]:  # the latest annotator first, as majority() breaks ties
            take = (chosen == NOT_LABELED) & (column != NOT_LABELED)
            take[take] = most[rows[take], column[take]]
            chosen[take] = column[take]
        return chosen
