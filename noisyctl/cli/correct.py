"""``noisyctl correct`` (propose labels, apply them, export suspects for review) and
``noisyctl import-review`` (a reviewed CSV back into a labels file)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import numpy as np
import typer
from rich.table import Table

from noisyctl.cli.common import (JSON_OPTION, RECIPE_KEY, RECIPE_OPTION, duration_words, emit, require,
                                 require_not_negative, with_recipe)
from noisyctl.cli.progress import step_progress
from noisyctl.correction import (apply_correction, corrector_hint, decide, default_corrector, flagged_samples,
                                 noise_shown, proposal_quality, run_corrector)
from noisyctl.data import parse_options
from noisyctl.errors import NoisyctlError
from noisyctl.pruning import stored_detector, whole_dataset_labels
from noisyctl.relabel import training_progress
from noisyctl.review import export_review, read_review, write_disagreements
from noisyctl.store import RunFile, read_labels, write_labels_file

app = typer.Typer()
UNSURE = ("remove", "keep")


def _share(value) -> str:
    return "-" if value is None else f"{value:.1%}"


@app.command()
def correct(
    ctx: typer.Context,
    run: Optional[Path] = typer.Argument(None, help="Run file from `train` (scored by `detect`).", show_default=False),
    corrector: Optional[str] = typer.Option(None, "--corrector", "-c", help="Corrector plugin: suggested (the "
                                            "label detect suggests), annotators (what several annotators' own "
                                            "labels make most probable), retrained, prototypes, consensus, knn, "
                                            "... (default: annotators where the run keeps several annotators' "
                                            "labels, else suggested).", show_default=False),
    corrector_option: List[str] = typer.Option([], "--corrector-option", "-C", help="Corrector option KEY=VALUE."),
    detector: Optional[str] = typer.Option(None, "--detector", "-d", help="Stored detector that picks the flagged "
                                           "samples (default: the one that ranked the latest detect)."),
    top: Optional[int] = typer.Option(None, "--top", "-k", help="Flag the K highest-scored samples instead of "
                                      "the detector's own decision.", show_default=False),
    min_confidence: Optional[float] = typer.Option(None, "--min-confidence", help="Proposals below this "
                                                   "confidence are 'not sure' and left for review (default: the "
                                                   "corrector's own: 0.9 for retrained, 0.5 for suggested, "
                                                   "annotators and consensus, 0 for the others).",
                                                   show_default=False),
    apply: bool = typer.Option(False, "--apply", help="Write a labels file with the flagged samples relabeled "
                               "where the corrector is sure."),
    unsure: str = typer.Option("remove", "--unsure", help="With --apply: remove the samples the corrector is not "
                               "sure of from training (as prune does; import-review brings them back), or keep "
                               "their given labels."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Labels file --apply writes."),
    export: Optional[Path] = typer.Option(None, "--export", help="Write the samples to review, most suspect first: "
                                          "with --apply the ones it was not sure of, else every flagged one. "
                                          "FILE.html: a page that shows each sample's image or text with buttons "
                                          "to decide, and writes the CSV; FILE.json: Label Studio tasks, with "
                                          "the labeling interface that judges them as FILE.xml; else the CSV "
                                          "itself (fill in reviewed_label). import-review reads the CSV or "
                                          "Label Studio's export."),
    audit: int = typer.Option(0, "--audit", help="With --export: add N samples drawn at random from those not "
                              "flagged, so that the review measures the noise rate, what no model sees included "
                              "(import-review prints it). Not with --apply.", show_default=False),
    recipe: Optional[Path] = RECIPE_OPTION,
    json_output: bool = JSON_OPTION,
):
    """Propose a label for every sample; judge the proposals when the truth is known; apply or export them."""
    p = with_recipe(ctx)
    run_path = Path(require(p["run"], "RUN file"))
    if p["apply"] and p["out"] is None:
        raise NoisyctlError("--apply writes a labels file: give --out FILE")
    require_not_negative(p["top"], "--top")
    require_not_negative(p["audit"], "--audit")
    if p["audit"] and (p["apply"] or not p["export"]):
        raise NoisyctlError("--audit adds random samples to the review --export writes, of the labels as they are: "
                            "give --export FILE, without --apply")
    if p["unsure"] not in UNSURE:
        raise NoisyctlError(f"--unsure is one of {', '.join(UNSURE)}, not '{p['unsure']}'")
    with RunFile(run_path) as run_file:
        corrector_name = p["corrector"] or default_corrector(run_file)
        labels = whole_dataset_labels(run_file) if (p["apply"] or p["export"]) else run_file.labels
        name, scores, flags = stored_detector(run_file, p["detector"])
        flagged, flagged_by = flagged_samples(run_file, name, scores, flags, p["top"])
        with step_progress(not p["json_output"]) as progress:
            hearing = training_progress.set(lambda epoch, epochs: progress(
                f"training a model without the {int(flagged.sum()):,} flagged samples: epoch {epoch}/{epochs}",
                epoch, epochs))
            try:
                outcome = run_corrector(run_file, corrector_name, parse_options(p["corrector_option"], "corrector"),
                                        flagged)
            finally:
                training_progress.reset(hearing)
        # The run stays open to the end: the review CSV reads the texts it recorded.
        proposal = outcome.correction
        bar = outcome.min_confidence if p["min_confidence"] is None else p["min_confidence"]
        shown = noise_shown(run_file, scores)
        groups = decide(labels, proposal, flagged, bar, shown)
        quality = proposal_quality(labels, proposal, flagged, bar, shown)
        result = {"run": str(run_path), "corrector": corrector_name, "detector": name, "flagged_by": flagged_by,
                  "seconds": outcome.seconds, "info": proposal.info, **quality, "min_confidence": bar,
                  "noise_shown": shown,
                  "decided": {k: int(v.sum()) for k, v in groups.items()}, "applied": None, "exported": None,
                  "corrector_hint": corrector_hint(run_file, corrector_name, groups, shown)}
        if p["apply"]:
            corrected = apply_correction(labels, proposal.labels, groups["relabeled"], f"corrector:{corrector_name}",
                                         str(run_path), remove=groups["review"] if p["unsure"] == "remove" else None)
            write_labels_file(Path(p["out"]), corrected, recipe=ctx.meta.get(RECIPE_KEY))
            result["applied"] = {"out": str(p["out"]), "changed": corrected.correction["changed"],
                                 "removed": int(groups["review"].sum()) if p["unsure"] == "remove" else 0}
            if labels.true_labels is not None:
                result["applied"]["noisy_before"] = int(labels.is_noisy.sum())
                kept = ~groups["review"] if p["unsure"] == "remove" else np.ones(len(labels.ids), dtype=bool)
                result["applied"]["noisy_after"] = int(corrected.is_noisy[kept].sum())
        if p["export"]:
            result["exported"] = export_review(Path(p["export"]), run_file, labels, scores, proposal,
                                               groups["review"] if p["apply"] else flagged,
                                               applies_to=Path(p["out"]) if p["apply"] else run_path,
                                               audit=p["audit"])

    def render(console):
        table = Table(title=f"{result['corrector']} proposals for {run_path}", show_header=False)
        table.add_row("flagged", f"{quality['flagged']:,} ({flagged_by} of {name})")
        in_all = (f"{quality['changes_all_sure']:,} in all at confidence {bar:g} or more "
                  f"({quality['changes_all']:,} at any)" if bar > 0 else f"{quality['changes_all']:,} in all")
        table.add_row("proposals that change a label", f"{quality['changes_flagged']:,} flagged, {in_all}")
        if "right_all" in quality:
            table.add_row("proposals right, flagged samples", _share(quality["right_flagged"]) +
                          f" (given labels right: {_share(quality['given_right_flagged'])})")
            table.add_row("wrong labels fixed / right ones broken",
                          f"{quality['fixed']:,} / {quality['broken']:,} (among flagged, at any confidence)")
            sure = quality["relabeling_sure"]
            table.add_row("relabeling the sure ones", f"wrong labels {sure['wrong_before']:,} -> {sure['wrong_after']:,}: "
                                                      f"{sure['fixed']:,} fixed, {sure['broken']:,} right "
                                                      f"{'one' if sure['broken'] == 1 else 'ones'} broken")
        d = result["decided"]
        why = f"confidence under {bar:g}" if shown else "no clear sign of label noise in the run"
        table.add_row("decided (flagged)", f"{d['relabeled']:,} relabeled, {d['review']:,} not sure ({why}: for "
                                           f"review), {d['left']:,} left as given")
        if result["applied"]:
            a = result["applied"]
            line = f"{a['changed']:,} labels changed" + (f", {a['removed']:,} unsure removed" if a["removed"] else "") \
                + f" -> {a['out']}"
            if "noisy_after" in a:
                line += f" (wrong labels {a['noisy_before']:,} -> {a['noisy_after']:,})"
            table.add_row("applied", line)
        exported = result["exported"]
        if exported:
            rows = f"{exported['rows']:,}"
            if "audit" in exported:
                rows += f" ({exported['audit']['flagged']:,} flagged, {exported['audit']['random']:,} drawn at random)"
        if exported and exported["page"]:
            table.add_row("review page", f"{rows} samples -> {exported['out']} (open it in a browser: it writes "
                                         f"{Path(exported['out']).with_suffix('.csv').name} for import-review)")
        elif exported and exported["label_studio"]:
            studio = exported["label_studio"]
            table.add_row("Label Studio tasks", f"{rows} samples -> {studio['tasks']}, labeling interface -> "
                                                f"{studio['labeling_interface']} (a project with that interface "
                                                f"imports the tasks; export the annotations as JSON for "
                                                f"import-review)")
        elif exported:
            table.add_row("review file", f"{rows} rows -> {exported['out']}")
        console.print(table)
        hint = result["corrector_hint"]
        if hint:
            if hint["corrector"] == "consensus":
                other = ("-c consensus asks the models that never trained on them, which this run holds (train "
                         "--folds): no training more")
            else:
                took = "" if hint["seconds"] is None else f", about {duration_words(hint['seconds'])} as the run took"
                other = f"-c retrained asks a model that never learned them (one training more{took})"
            console.print(f"{result['corrector']} is unsure of {hint['unsure']:,} of the {hint['flagged']:,} flagged "
                          f"samples: it reads the model that trained on their labels. {other}.", highlight=False)
        if d["review"] and not exported:
            # the samples it was not sure of, without the way to show them to a person
            console.print(f"{d['review']:,} flagged samples are for a person to judge: add --export review.html (a "
                          "page that shows them and writes the review CSV)", highlight=False)
        for note in exported["notes"] if exported else []:
            console.print(f"note: {note}", highlight=False, markup=False)

    return emit(ctx, result, render, p["json_output"])


@app.command("import-review")
def import_review(
    ctx: typer.Context,
    review: Optional[List[Path]] = typer.Argument(None, help="Reviewed CSV (from correct --export, "
                                                  "reviewed_label filled in: a class, or 'remove'), or Label "
                                                  "Studio's export (JSON, JSON-MIN or CSV) of the tasks correct "
                                                  "--export FILE.json wrote; several files: one a reviewer, "
                                                  "their decisions taken where they agree.", show_default=False),
    labels: Optional[Path] = typer.Option(None, "--labels", "-l", help="Labels (or run) file the review applies to."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Labels file to write."),
    disagreed: Optional[Path] = typer.Option(None, "--disagreed", help="Also write the samples whose reviewers "
                                             "disagreed, with what each decided, as a review CSV for someone "
                                             "to settle (fill in reviewed_label, then import-review it into "
                                             "--out).", show_default=False),
    recipe: Optional[Path] = RECIPE_OPTION,
    json_output: bool = JSON_OPTION,
):
    """Apply a review (a reviewed CSV, or Label Studio's export) to a labels file: labels set and trusted."""
    p = with_recipe(ctx)
    given = require(p["review"] or None, "REVIEW file")
    review_paths = [Path(given)] if isinstance(given, (str, Path)) else [Path(path) for path in given]
    stores = [path for path in review_paths if path.suffix.lower() in (".h5", ".hdf5")]
    if stores:  # `import-review reviewed.csv labels.h5`, as correct and detect take their file
        raise NoisyctlError(f"{stores[0]} is not a review (a CSV or JSON): give the labels file it applies to "
                            f"as --labels {stores[0]}, and the file to write as --out")
    labels_path = Path(require(p["labels"], "--labels"))
    out_path = Path(require(p["out"], "--out"))
    base = read_labels(labels_path)
    if base.pruning and base.removed is None:
        raise NoisyctlError(f"{labels_path} holds only the samples kept by pruning; apply the review to the "
                            f"labels of all samples")
    review = read_review(review_paths, base)
    reviewed = review.applied()
    write_labels_file(out_path, reviewed, recipe=ctx.meta.get(RECIPE_KEY))
    result = {"review": ", ".join(map(str, review_paths)), "labels": str(labels_path), "out": str(out_path),
              "reviewed": int(reviewed.reviewed.sum()), "changed": reviewed.correction["changed"],
              "removed": int(reviewed.removed.sum()) if reviewed.removed is not None else 0,
              "disagreed": len(review.disagreed), "disagreed_ids": [base.ids[i] for i in sorted(review.disagreed)],
              "reviewers": review.reviewers, "audit": review.audit(labels_path), "disagreed_file": None}
    if p["disagreed"] is not None and review.disagreed:
        write_disagreements(Path(p["disagreed"]), review)
        result["disagreed_file"] = str(p["disagreed"])

    def render(console):
        console.print(f"{result['reviewed']:,} labels reviewed ({result['changed']:,} changed), "
                      f"{result['removed']:,} samples removed -> {out_path}")
        if result["disagreed"]:
            one, ids = result["disagreed"] == 1, result["disagreed_ids"]
            named = ", ".join(ids[:5]) + (f" and {len(ids) - 5:,} more" if len(ids) > 5 else "")
            console.print(f"{result['disagreed']:,} {'sample' if one else 'samples'} whose reviewers disagreed "
                          f"{'was left as it was' if one else 'were left as they were'}: {named}", highlight=False,
                          markup=False)
            if result["disagreed_file"]:
                console.print(f"-> {result['disagreed_file']}, with what each decided: fill in reviewed_label and "
                              f"import-review it into {out_path}", highlight=False, markup=False)
            else:
                console.print("(--disagreed FILE.csv writes them, with what each decided, for someone to settle)",
                              highlight=False, markup=False)
        shared = [r for r in result["reviewers"] if r["shared"]]
        if shared:
            console.print("decided as the others did, of the samples they shared: " + ", ".join(
                f"reviewer {r['reviewer']} on {r['agreed']:,} of {r['shared']:,}" for r in shared), highlight=False,
                markup=False)
        audit = result["audit"]
        if audit:
            wrong, decided = audit["wrong"], audit["reviewed"]
            flagged = f"{wrong['flagged']:,} of {decided['flagged']:,} flagged and " if decided["flagged"] else ""
            checked = f"{flagged}{wrong['random']:,} of {decided['random']:,} random samples had a wrong label"
            if "unmeasured" in audit:
                console.print(f"audit: {checked}; no noise rate: {audit['unmeasured']}", highlight=False)
            else:
                console.print(f"audit: {checked}: about {audit['rate']:.1%} of the {audit['samples']:,} labels are "
                              f"wrong ({audit['confidence']:.0%} interval {audit['low']:.1%}-{audit['high']:.1%})",
                              highlight=False)
            if "run_estimate" in audit:
                read = audit["run_estimate"]
                beyond = ("; the audit finds more: noise that every model learned as the task, which the run "
                          "cannot show" if audit["above_the_run"] else "")
                console.print(f"detect's reading of {labels_path}: {read['rate']:.1%} ({read['low']:.1%}-"
                              f"{read['high']:.1%}){beyond}", highlight=False, markup=False)

    return emit(ctx, result, render, p["json_output"])
