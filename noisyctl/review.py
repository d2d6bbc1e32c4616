"""The human review: the samples a person should judge, as the review CSV, a page that writes it or
Label Studio tasks (``correct --export``), and the review read back (``import-review``), with the
noise rate an audit's review measures (``correct --audit``)."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from noisyctl.agreement import NOT_LABELED, agreement_by_person
from noisyctl.api import Correction
from noisyctl.detection import annotators_table, suspect_texts
from noisyctl.errors import NoisyctlError
from noisyctl.estimate import run_noise_rate
from noisyctl.fileio import atomic_output, csv_cell, csv_value
from noisyctl.metrics import ranking
from noisyctl.store import RUN, Labels, RunFile, get_attr, open_checked

REVIEW_COLUMNS = ("rank", "id", "path", "given_label", "proposed_label", "confidence", "score", "reviewed_label")
REMOVE = "remove"  # a reviewed_label that removes the sample, as prune does
# An audit's review (correct --audit N) says in this column which rows a detector flagged and which
# were drawn at random from the rest.
AUDIT_COLUMN, FLAGGED, RANDOM = "sample", "flagged", "random"
ANNOTATORS_COLUMN = "annotators"  # what each annotator said, where the labels keep their own
# The review page shows this many typical samples of each label's class beside it.
TYPICAL = 3
# --export to one of these writes the review page instead of the CSV.
REVIEW_PAGE_SUFFIXES = (".html", ".htm")
# --export to this writes Label Studio tasks (``noisyctl.report.review_label_studio``); import-review
# reads the project's export.
LABEL_STUDIO_SUFFIX = ".json"
# In Label Studio's exports of those tasks, the sample's id (their ``id`` is the task's) and, in an
# audit's, how many rows were flagged: Label Studio exports only the tasks someone judged, and the
# audited rate needs the number flagged, judged or not.
SAMPLE_ID, FLAGGED_ROWS = "sample_id", "flagged_rows"


def sample_path(dataset: dict[str, Any], sample_id: str) -> str:
    """Where a sample's file is, when its id is a path under the dataset root (image folders)."""
    root = dataset.get("root")
    if root:
        path = Path(root) / sample_id
        # The id comes from a file that may have been sent from elsewhere: never point outside the root.
        if path.resolve().is_relative_to(Path(root).resolve()) and path.is_file():
            return str(path)
    return ""


def export_review(path: Path, run: RunFile, labels: Labels, scores: np.ndarray, proposal: Correction,
                  chosen: np.ndarray, applies_to: Path, audit: int = 0) -> dict[str, Any]:
    """The ``chosen`` samples (a mask), most suspect first, for a person to judge: a review page where
    ``path`` ends in .html (``noisyctl.report.review_page``: the samples' images or texts, and a
    button that writes the review CSV), Label Studio tasks where it ends in .json (for a team:
    ``noisyctl.report.review_label_studio``), else the review CSV itself; ``import-review`` reads the
    CSV, or Label Studio's export, into the labels file ``applies_to``. With ``audit``, that many
    samples drawn at random from the rest follow them (``audit_sample``), and a ``sample`` column
    says which rows are which: the review then measures the noise rate (``Review.audit``)."""
    rows = ranking(np.where(chosen, scores, -np.inf))[:int(chosen.sum())]
    drawn = audit_sample(labels, scores, chosen, audit) if audit else np.array([], dtype=np.int64)
    strata = [FLAGGED] * len(rows) + [RANDOM] * len(drawn) if audit else None
    rows = np.concatenate([rows, drawn]).astype(np.int64)
    suffix = Path(path).suffix.lower()
    page = suffix in REVIEW_PAGE_SUFFIXES
    shown = sorted(set(labels.given_labels[rows].tolist()) | set(proposal.labels[rows].tolist()))
    typical = typical_samples(labels, scores, rows, shown) if page else []
    # The rows' texts and the typical samples' in one read: a text dataset may take seconds to load.
    found = suspect_texts(run, [labels.ids[i] for i in rows] + [labels.ids[i] for _, i in typical])
    texts, typical_texts = (None, None) if found is None else (found[:len(rows)], found[len(rows):])
    columns, cells = review_table(labels, scores, proposal, rows, texts, strata, annotator_accuracy(run))
    result: dict[str, Any] = {"out": str(path), "rows": len(rows), "page": page, "label_studio": None, "notes": []}
    if audit:
        result["audit"] = {"flagged": int(len(rows) - len(drawn)), "random": int(len(drawn))}
    if page:
        from noisyctl.report.review_page import write_review_page

        write_review_page(Path(path), run, columns, cells, labels, proposal, rows, texts, typical, typical_texts,
                          applies_to, result["notes"], strata)
    elif suffix == LABEL_STUDIO_SUFFIX:
        from noisyctl.report.review_label_studio import write_label_studio_tasks

        config = write_label_studio_tasks(Path(path), run, columns, cells, labels, proposal, rows, texts,
                                          result["notes"], strata)
        result["label_studio"] = {"tasks": str(path), "labeling_interface": str(config)}
    else:
        write_review_csv(Path(path), columns, cells)
    return result


def typical_samples(labels: Labels, scores: np.ndarray, rows: np.ndarray, classes: list[int]) -> list[tuple[int, int]]:
    """For each of ``classes``, its TYPICAL most typical samples, as (class, sample index): given that
    label, the lowest detector ``scores``, none of those under review (``rows``). The review page
    shows them beside each label, to compare a sample with what its class looks like."""
    under_review = np.zeros(len(scores), dtype=bool)
    under_review[rows] = True
    chosen = []
    for c in classes:
        members = np.flatnonzero((labels.given_labels == c) & np.isfinite(scores) & ~under_review)
        chosen += [(c, int(i)) for i in members[np.argsort(scores[members], kind="stable")[:TYPICAL]]]
    return chosen


def audit_sample(labels: Labels, scores: np.ndarray, chosen: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """``size`` samples (or all there are) drawn at random, in random order, from those a detector
    judged (a finite score), not ``chosen`` for review and not removed: what a person checks to
    measure the noise no detector flagged. The same run gives the same draw."""
    removed = labels.mark("removed")
    candidates = np.flatnonzero(~chosen & np.isfinite(scores) & ~removed)
    rng = np.random.default_rng(seed)
    return rng.permutation(candidates)[:size]


def review_table(labels: Labels, scores: np.ndarray, proposal: Correction, rows: np.ndarray,
                 texts: list[str] | None = None, strata: list[str] | None = None,
                 accuracy: dict[str, float] | None = None) -> tuple[list[str], list[list[str]]]:
    """The review CSV's header and, for the samples ``rows`` (most suspect first), their cells, with
    ``reviewed_label`` last and empty for the reviewer; with ``texts`` (one per row, for text data) a
    ``text`` column after the id shows what to judge, and with ``strata`` (one per row: FLAGGED or
    RANDOM, an audit) a ``sample`` column after the rank says which rows a detector flagged. Where
    the labels keep several annotators' own, an ``annotators`` column after the given label says
    what each one said (``annotators_said``, with each one's ``accuracy`` where given). Cells are
    ``csv_cell``s (safe in a spreadsheet)."""
    names = labels.class_names
    columns = list(REVIEW_COLUMNS)
    if texts is not None:
        columns.insert(columns.index("path"), "text")
    if strata is not None:
        columns.insert(columns.index("id"), AUDIT_COLUMN)
    if labels.annotations is not None:
        columns.insert(columns.index("proposed_label"), ANNOTATORS_COLUMN)
    cells = []
    for rank, i in enumerate(rows, start=1):
        text = [] if texts is None else [csv_cell(texts[rank - 1])]
        stratum = [] if strata is None else [strata[rank - 1]]
        said = [] if labels.annotations is None else [csv_cell(annotators_said(labels, i, accuracy))]
        cells.append([str(rank), *stratum, csv_cell(labels.ids[i]), *text,
                      csv_cell(sample_path(labels.dataset, labels.ids[i])), csv_cell(names[labels.given_labels[i]]),
                      *said, csv_cell(names[proposal.labels[i]]), f"{proposal.confidence[i]:.4f}",
                      f"{scores[i]:.6g}", ""])
    return columns, cells


def annotators_said(labels: Labels, index: int, accuracy: dict[str, float] | None = None) -> str:
    """What each annotator said of sample ``index`` ("ann: cat; ben: dog"), those who gave it a
    label, where ``labels`` keep their own (else ""); with each one's estimated ``accuracy``
    (``annotator_accuracy``), "ann (92%): cat", so a reviewer weighs a careful annotator's word
    above a careless one's."""
    if labels.annotations is None:
        return ""
    accuracy = accuracy or {}
    said = zip(labels.annotations.names, labels.annotations.labels[index])
    return "; ".join(f"{name}{f' ({accuracy[name]:.0%})' if name in accuracy else ''}: {labels.class_names[label]}"
                     for name, label in said if label != NOT_LABELED)


def annotator_accuracy(run: RunFile | None) -> dict[str, float] | None:
    """Each annotator's estimated accuracy (Dawid-Skene, as ``detect`` reads it), where there is a
    run and it keeps several annotators' own labels; None elsewhere."""
    table = None if run is None else annotators_table(run)
    return None if table is None else {row["annotator"]: row["accuracy"] for row in table["rows"]}


def write_review_csv(path: Path, columns: list[str], cells: list[list[str]]) -> None:
    """The review table (``review_table``) as a CSV file, written atomically."""
    with atomic_output(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(cells)


def review_decision(name: str, index: int) -> str:
    """What a review holds to set class ``name`` (index ``index``): its name, or its index where
    ``read_review`` would read the name otherwise (spaces at its ends, which it strips, or the word
    that removes the sample)."""
    return str(index) if name != name.strip() or name.lower() == REMOVE else name


def review_decision_cell(name: str, index: int) -> str:
    """``review_decision`` as a reviewed_label cell of the review CSV."""
    return csv_cell(review_decision(name, index))


@dataclass
class Review:
    """A review (``read_review``: its files' ``paths``), read and checked against the labels it applies
    to: each ``decision`` is a sample's index and its class, or REMOVE; ``disagreed`` maps each
    sample whose reviewers decided differently, left alone, to what each said (reviewer, decision).
    An audit's review also holds each row's ``strata`` (FLAGGED or RANDOM, by sample index, decided
    or not) and, from Label Studio, which exports only the tasks someone judged, the number of
    ``flagged_rows`` the review held; where several people judged the samples, how each decided
    beside the others (``noisyctl.agreement.agreement_by_person``)."""

    paths: list[Path]
    labels: Labels
    decisions: list[tuple[int, int | str]]
    strata: dict[int, str] | None = None
    disagreed: dict[int, list[tuple[str | None, int | str]]] = field(default_factory=dict)
    flagged_rows: int | None = None
    reviewers: list[dict[str, Any]] = field(default_factory=list)

    def applied(self) -> Labels:
        """The labels with the review applied: a class sets and confirms a label, REMOVE removes the
        sample, a row left empty leaves it alone."""
        labels = self.labels
        given = labels.given_labels.copy()
        reviewed, removed = labels.mark("reviewed"), labels.mark("removed")
        for i, decision in self.decisions:
            if decision == REMOVE:
                removed[i] = True
            else:
                given[i], reviewed[i], removed[i] = decision, True, False
        changed = given != labels.given_labels
        pruning = labels.pruning
        source = ", ".join(map(str, self.paths))
        if removed.any() and pruning is None:
            pruning = {"detector": None, "rule": "review", "removed": int(removed.sum()), "from": source}
        corrected = labels.mark("corrected") | changed
        # A review that brings every removed sample back leaves none removed (not the removals it undid).
        return replace(labels, given_labels=given, reviewed=reviewed, corrected=corrected,
                       removed=removed if removed.any() or labels.removed is not None else None, pruning=pruning,
                       correction={"by": "review:" + "+".join(path.name for path in self.paths),
                                   "changed": int(changed.sum()), "from": source})

    def audit(self, run_path: Path | None = None) -> dict[str, Any] | None:
        """The noise rate an audit's review measured (``audited_noise_rate``) over the samples the
        labels hold (removed ones aside): the flagged rows stand for themselves, the random ones for
        every other sample. A label set to another class or removed was wrong. None for a review
        that is not an audit; where a stratum has no decided row, what is missing (``unmeasured``).
        Where ``run_path`` is a run file, ``run_estimate`` beside it is what ``detect`` reads from
        the run, and ``above_the_run`` says the audit's interval lies above that one's: noise the
        models learned as the task."""
        if self.strata is None:
            return None
        from noisyctl.estimate.audit import AuditStratum, audited_noise_rate

        decided = dict(self.decisions)
        given = self.labels.given_labels
        strata = []
        for name in (FLAGGED, RANDOM):
            rows = [i for i, stratum in self.strata.items() if stratum == name]
            judged = [i for i in rows if i in decided]
            wrong = sum(decided[i] == REMOVE or decided[i] != given[i] for i in judged)
            strata.append(AuditStratum(name, len(rows), len(judged), int(wrong)))
        if self.flagged_rows is not None:
            strata[0] = replace(strata[0], population=max(self.flagged_rows, strata[0].population))
        kept = int((~self.labels.mark("removed")).sum())
        strata[1] = replace(strata[1], population=max(0, kept - strata[0].population))
        words = {"reviewed": {s.name: s.reviewed for s in strata}, "wrong": {s.name: s.wrong for s in strata},
                 "samples": kept}
        empty = [s.name for s in strata if s.population and not s.reviewed]
        if empty:
            return {**words, "unmeasured": f"no {' or '.join(empty)} row was decided"}
        estimate = audited_noise_rate(strata)
        audit = {**words, "rate": estimate.rate, "low": estimate.low, "high": estimate.high,
                 "confidence": estimate.confidence}
        read = None if run_path is None else estimate_of_run(run_path)
        if read is not None:
            audit["run_estimate"] = {"rate": read.rate, "low": read.low, "high": read.high}
            audit["above_the_run"] = bool(estimate.low > read.high)
        return audit


def estimate_of_run(path: Path):
    """The noise-rate estimate ``detect`` read from the run file at ``path`` (``run_noise_rate`` over
    the samples its latest detect judged, as ``detect`` counts); None where ``path`` is a labels
    file, or the run recorded no loss."""
    with open_checked(path) as h5:
        if get_attr(h5.attrs, "file_kind") != RUN:
            return None
    with RunFile(path) as run:
        scores = run.scores()
        return run_noise_rate(run, ~np.isnan(next(iter(scores.values()))) if scores else None)


def read_review(paths: Path | list[Path], labels: Labels) -> Review:
    """Read a review against ``labels``, from one file or several (``paths``: one a reviewer, as when
    people review copies of one page): the CSV ``correct --export`` wrote, ``reviewed_label`` filled
    in (a class name or index, or ``remove``; an empty one leaves the sample alone), or a Label
    Studio export (JSON, JSON-MIN or CSV) of the tasks ``correct --export FILE.json`` wrote
    (``noisyctl.report.review_label_studio``). Where several people judged a sample, their decision
    is taken where they agree, else the sample is left alone and counted in ``disagreed``; each file
    of ours is one reviewer, named by what its file name does not share with the others'
    (``_reviewer_names``).

    The whole review is refused (nothing is written), naming the file, line or task, when a row names
    an id or a label that does not exist, a CSV of ours names an id a second time, or a row has more
    or fewer cells than the header; a file whose quoting is broken is refused too.
    """
    paths = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    twice = next((path for k, path in enumerate(paths) if path.resolve() in {p.resolve() for p in paths[:k]}), None)
    if twice is not None:
        raise NoisyctlError(f"review file {twice} is given twice")
    named = _reviewer_names(paths)
    # Where a file is named in an error: by its name, or its path where two share one.
    shown = {path: str(path) if named[path] == str(path) else path.name for path in paths}
    entries: list[ReviewEntry] = []
    flagged_rows = None
    for path in paths:
        if not path.is_file():
            raise NoisyctlError(f"review file {path} does not exist")
        if path.suffix.lower() == LABEL_STUDIO_SUFFIX:
            from noisyctl.report.review_label_studio import label_studio_entries

            found, flagged = label_studio_entries(path)
            once_each = False  # people who share a task each decide it
        else:
            found, from_label_studio, flagged = _csv_entries(path)
            once_each = not from_label_studio
        if len(paths) > 1:
            for entry in found:
                entry.where = f"{shown[path]}, {entry.where}"
                entry.problem = entry.problem and f"{shown[path]}, {entry.problem}"
                entry.reviewer = entry.reviewer or named[path]
        if once_each:
            _refuse_repeats(found)
        entries += found
        flagged_rows = flagged if flagged is not None else flagged_rows
    return _review(paths, labels, entries, flagged_rows)


def _reviewer_names(paths: list[Path]) -> dict[Path, str]:
    """Each review file's reviewer: the part of its name the files do not share (the page saves
    review.ann.csv and review.ben.csv: ann and ben; alice.csv, bob.csv: alice, bob), or its path
    where two files share a name (each reviewer's review.csv in a folder of their own)."""
    names = [path.name for path in paths]
    if len(paths) == 1:
        return {paths[0]: names[0]}
    if len(set(names)) < len(names):
        return {path: str(path) for path in paths}
    parts = [name.split(".") for name in names]
    lead = trail = 0  # common parts (between dots) stripped from the end, then the start; one kept
    while all(len(p) > lead + trail + 1 for p in parts) and len({p[-1 - trail] for p in parts}) == 1:
        trail += 1
    while all(len(p) > lead + trail + 1 for p in parts) and len({p[lead] for p in parts}) == 1:
        lead += 1
    return {path: ".".join(p[lead:len(p) - trail]) for path, p in zip(paths, parts)}


def _refuse_repeats(entries: list[ReviewEntry]) -> None:
    """A review CSV of ours decides each sample once: a second decision on one is a problem."""
    seen: dict[str, str] = {}
    for entry in entries:
        if entry.decision and not entry.problem:
            if entry.sample_id in seen:
                entry.problem = f"{entry.where}: id '{entry.sample_id}' was already reviewed on {seen[entry.sample_id]}"
            seen.setdefault(entry.sample_id, entry.where)


@dataclass
class ReviewEntry:
    """One decision on one sample as a review file holds it: ``where`` it is (for errors: "line 3",
    "task 12"), the sample's id, the reviewed label as written ('' where the reviewer left or skipped
    it) and, in an audit, the sample's ``stratum``; ``problem`` where the row itself is unreadable;
    who decided (``reviewer``) where the file says (Label Studio's annotator)."""

    where: str
    sample_id: str
    decision: str
    stratum: str | None = None
    problem: str = ""
    reviewer: str | None = None


def _csv_entries(path: Path) -> tuple[list[ReviewEntry], bool, int | None]:
    """The rows of a review CSV: ours (cells as ``csv_cell`` wrote them), or Label Studio's CSV export
    of our tasks (raw values; its ``id`` is the task's, the sample's is ``sample_id``). Also whether it
    is Label Studio's, and the number of flagged rows its audit exported."""
    entries = []
    limit = csv.field_size_limit(2**31 - 1)  # Label Studio's CSV holds each task's image in a cell
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            # Spreadsheets set to a comma-decimal locale save with ';' (or a tab): read what the header uses.
            header = handle.readline()
            handle.seek(0)
            reader = csv.DictReader(handle, strict=True, delimiter=max(",;\t", key=header.count))
            fields = reader.fieldnames or []
            label_studio = SAMPLE_ID in fields and "annotation_id" in fields
            id_column, value = (SAMPLE_ID, str) if label_studio else ("id", csv_value)
            missing = {id_column, "reviewed_label"} - set(fields)
            if missing and label_studio:
                raise NoisyctlError(f"{path}: none of its answers is a 'reviewed_label' choice: judge the tasks with "
                                    f"the labeling interface `correct --export` wrote beside them (FILE.xml)")
            if missing:
                raise NoisyctlError(f"{path} lacks the column(s) {', '.join(sorted(missing))} "
                                    f"(export one with `noisyctl correct RUN --export FILE`)")
            flagged_rows = None
            for row in reader:
                where = f"line {reader.line_num}"
                if None in row or None in row.values():
                    entries.append(ReviewEntry(where, "", "", problem=f"{where} has "
                                               f"{'more' if None in row else 'fewer'} cells than the header"))
                    continue
                stratum = row[AUDIT_COLUMN].strip() if AUDIT_COLUMN in row else None
                if label_studio and (row.get(FLAGGED_ROWS) or "").strip().isdigit():
                    flagged_rows = int(row[FLAGGED_ROWS])
                entries.append(ReviewEntry(where, value(row[id_column].strip()), value(row["reviewed_label"].strip()),
                                           stratum, reviewer=row.get("annotator") if label_studio else None))
    except UnicodeDecodeError:
        raise NoisyctlError(f"{path} is not a UTF-8 CSV file (a spreadsheet saves one as 'CSV UTF-8')") from None
    except csv.Error as exc:
        raise NoisyctlError(f"{path} is not a readable CSV file ({exc})") from None
    finally:
        csv.field_size_limit(limit)
    return entries, label_studio, flagged_rows


def _review(paths: list[Path], labels: Labels, entries: list[ReviewEntry], flagged_rows: int | None) -> Review:
    """The ``entries`` of a review's files checked against ``labels`` (``read_review``)."""
    position = {sample_id: i for i, sample_id in enumerate(labels.ids)}
    classes = {name: c for c, name in enumerate(labels.class_names)}
    said: dict[int, list[tuple[str | None, int | str]]] = {}
    strata: dict[int, str] = {}
    bad: list[str] = []
    for entry in entries:
        if entry.problem:
            bad.append(entry.problem)
            continue
        if entry.stratum in (FLAGGED, RANDOM) and entry.sample_id in position:
            strata[position[entry.sample_id]] = entry.stratum
        decision = entry.decision
        if not decision:
            continue
        if entry.sample_id not in position:
            bad.append(f"{entry.where}: id '{entry.sample_id}' is not in the labels")
            continue
        if decision.lower() == REMOVE:
            said.setdefault(position[entry.sample_id], []).append((entry.reviewer, REMOVE))
        elif decision in classes or (decision.isdigit() and int(decision) < len(classes)):
            said.setdefault(position[entry.sample_id], []).append(
                (entry.reviewer, classes[decision] if decision in classes else int(decision)))
        else:
            bad.append(f"{entry.where}: label '{decision}' is not a class")
    if bad:
        named = paths[0] if len(paths) == 1 else "the review"
        raise NoisyctlError(f"{named}: {len(bad)} row(s) refused, nothing written; first: {bad[0]}")
    decided = {i: {choice for _, choice in choices} for i, choices in said.items()}
    decisions = [(i, next(iter(choices))) for i, choices in decided.items() if len(choices) == 1]
    disagreed = {i: said[i] for i, choices in decided.items() if len(choices) > 1}
    return Review(paths, labels, decisions, strata or None, disagreed, flagged_rows, agreement_by_person(said.values()))


def write_disagreements(path: Path, review: Review) -> None:
    """The samples whose reviewers disagreed (``review.disagreed``) as a review CSV for someone to
    settle: ``id``, ``given_label``, what each reviewer decided (a column each, ``by NAME``) and an
    empty ``reviewed_label``, which ``import-review`` reads as any review."""
    labels = review.labels
    names = labels.class_names
    reviewers = list(dict.fromkeys(who or "reviewer" for said in review.disagreed.values() for who, _ in said))
    cells = []
    for i, said in sorted(review.disagreed.items()):
        by = {}
        for who, decision in said:
            by.setdefault(who or "reviewer", []).append(REMOVE if decision == REMOVE else names[decision])
        cells.append([csv_cell(labels.ids[i]), csv_cell(names[labels.given_labels[i]]),
                      *[csv_cell(" / ".join(by.get(who, []))) for who in reviewers], ""])
    write_review_csv(path, ["id", "given_label", *[csv_cell(f"by {who}") for who in reviewers], "reviewed_label"],
                     cells)
