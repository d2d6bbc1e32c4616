"""``noisyctl import-otx``, ``import-dynamics`` and ``export``: dynamics in from other tools; arrays,
suspects and labels out."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from noisyctl.cli.common import JSON_OPTION, RECIPE_OPTION, emit, note, require, require_not_negative, with_recipe
from noisyctl.errors import NoisyctlError
from noisyctl.interop import (DYNAMICS_FORMATS, export_annotators, export_cleanlab, export_data_copy, export_labels,
                              export_suspects, import_dynamics, import_otx)
from noisyctl.store import RunFile

app = typer.Typer()


@app.command("import-otx")
def import_otx_command(
    ctx: typer.Context,
    otx_export: Optional[Path] = typer.Argument(None, metavar="EXPORT", help="Folder OTX exported loss dynamics to "
                                                "(Datumaro format: annotations/*.json), or one such .json file.",
                                                show_default=False),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run file to write."),
    recipe: Optional[Path] = RECIPE_OPTION,
    json_output: bool = JSON_OPTION,
):
    """Import the loss dynamics OpenVINO Training Extensions exports, as a run file `detect` scores."""
    p = with_recipe(ctx)
    result = import_otx(Path(require(p["otx_export"], "EXPORT folder")), Path(require(p["out"], "--out")))

    def render(console):
        console.print(f"{result['samples']:,} samples, up to {result['epochs']} presentations each, "
                      f"{result['classes']} classes -> {result['out']}")
        if result["presentations_padded"]:
            note(console, f"samples presented fewer than {result['epochs']} times keep their own presentations "
                          f"({result['presentations_padded']:,} missing ones are NaN, as Datumaro keeps them)")

    return emit(ctx, result, render, p["json_output"])


@app.command("import-dynamics")
def import_dynamics_command(
    ctx: typer.Context,
    source: Optional[Path] = typer.Argument(None, help="training_dynamics.npz (Learning from Training Dynamics), "
                                            "full_aum_records.csv (the aum package), or a .npy/.npz of "
                                            "per-epoch losses [N, E] or logits/probs [N, E, C].",
                                            show_default=False),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run file to write."),
    format: str = typer.Option("auto", "--format", help=f"{', '.join(DYNAMICS_FORMATS)} (auto: by the file's "
                               "name and contents)."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Given labels [N] as .npy, for arrays that "
                                          "come without them."),
    true_labels: Optional[Path] = typer.Option(None, "--true-labels", help="True labels [N] as .npy, when known "
                                               "(detect then reports how well it found the wrong ones)."),
    class_name: List[str] = typer.Option([], "--class-name", help="Class names in label order (repeat); "
                                         "default 0, 1, ..."),
    recorded_in: str = typer.Option("train", "--recorded-in", help="Arrays only: train (the training forward "
                                    "pass) or eval (an eval pass after each epoch)."),
    recipe: Optional[Path] = RECIPE_OPTION,
    json_output: bool = JSON_OPTION,
):
    """Import dynamics other tools recorded, as a run file `detect` scores with the detectors they allow."""
    p = with_recipe(ctx)
    result = import_dynamics(Path(require(p["source"], "SOURCE file")), Path(require(p["out"], "--out")),
                             format=p["format"], labels=p["labels"], true_labels=p["true_labels"],
                             class_names=p["class_name"] or None, recorded_in=p["recorded_in"])

    def render(console):
        console.print(f"{result['samples']:,} samples, {result['epochs']} epochs, {result['classes']} classes "
                      f"({result['imported_from']}: {', '.join(result['channels'])}) -> {result['out']}")
        if result.get("presentations_dropped"):
            note(console, f"{result['presentations_dropped']:,} measurements beyond the "
                          f"{result['epochs']} every sample has were left out")

    return emit(ctx, result, render, p["json_output"])


@app.command("export")
def export_command(
    ctx: typer.Context,
    run: Optional[Path] = typer.Argument(None, help="Run file from `train` (or import-otx); for --labels-csv "
                                         "and --data-copy also a labels file (synth, prune, correct --apply, "
                                         "import-review).", show_default=False),
    cleanlab: Optional[Path] = typer.Option(None, "--cleanlab", help="Write labels and pred_probs (out-of-fold "
                                            "with train --folds K) as an .npz for cleanlab."),
    suspects: Optional[Path] = typer.Option(None, "--suspects", help="Write the ranked suspects as .csv or .json."),
    annotators: Optional[Path] = typer.Option(None, "--annotators", help="Write each annotator's figures (samples "
                                              "labeled, agreement with the given labels, estimated accuracy and its "
                                              "90% interval, the mistake they make most), the surely careless first "
                                              "(by their intervals' upper ends), as .csv or .json: runs that keep "
                                              "several annotators' own labels."),
    labels_csv: Optional[Path] = typer.Option(None, "--labels-csv", help="Write every sample's label as it "
                                              "stands (id, label, removed, corrected, reviewed) as a .csv for "
                                              "a training pipeline outside noisyctl."),
    data_copy: Optional[Path] = typer.Option(None, "--data-copy", help="Write a copy of the dataset's own file (a "
                                             "table, texts, an image list: .csv, .tsv, .jsonl, .json or .parquet; "
                                             "an .npz or .h5; a Datumaro annotation file), or of its folder (class "
                                             "folders, CIFAR batches, MNIST idx files: a new folder), with every "
                                             "label as it stands and the removed samples left out."),
    detector: Optional[str] = typer.Option(None, "--detector", "-d", help="Stored detector that ranks the "
                                           "suspects (default: the one that ranked the latest detect)."),
    top: Optional[int] = typer.Option(None, "--top", "-k", help="How many suspects to write (default: those the "
                                      "detector flags, as detect flags them, and at least 100).",
                                      show_default=False),
    recipe: Optional[Path] = RECIPE_OPTION,
    json_output: bool = JSON_OPTION,
):
    """Export for other tools: cleanlab's arrays, the suspects as CSV or JSON, the labels as CSV, the
    cleaned data as a copy of its own file."""
    p = with_recipe(ctx)
    run_path = Path(require(p["run"], "RUN file"))
    if p["top"] is not None:
        require_not_negative(p["top"], "--top")
    if all(p[name] is None for name in ("cleanlab", "suspects", "annotators", "labels_csv", "data_copy")):
        raise NoisyctlError("say what to export: --cleanlab FILE.npz, --suspects FILE.csv|.json, --annotators "
                            "FILE.csv|.json, --labels-csv FILE.csv and/or --data-copy FILE.csv")
    result = {"run": str(run_path)}
    if any(p[name] is not None for name in ("cleanlab", "suspects", "annotators")):
        with RunFile(run_path) as run_file:
            if p["annotators"] is not None:
                result["annotators"] = export_annotators(run_file, Path(p["annotators"]))
            if p["cleanlab"] is not None:
                result["cleanlab"] = export_cleanlab(run_file, Path(p["cleanlab"]))
            if p["suspects"] is not None:
                result["suspects"] = export_suspects(run_file, Path(p["suspects"]), p["detector"], p["top"])
    if p["labels_csv"] is not None:
        result["labels"] = export_labels(run_path, Path(p["labels_csv"]))
    if p["data_copy"] is not None:
        result["data_copy"] = export_data_copy(run_path, Path(p["data_copy"]))

    def render(console):
        if "cleanlab" in result:
            c = result["cleanlab"]
            console.print(f"cleanlab arrays ({c['pred_probs']} probabilities) -> {c['out']}")
            if c["in_sample"]:
                note(console, "in-sample probabilities; cleanlab wants out-of-sample ones "
                              "(train --folds K)")
        if "suspects" in result:
            s = result["suspects"]
            flagged = "" if s["flagged"] is None else f" ({s['flagged']:,} of the run's samples flagged)"
            console.print(f"{s['rows']:,} suspects by {s['detector']}{flagged} -> {s['out']}")
        if "annotators" in result:
            a = result["annotators"]
            prior = ", with the held-out models' probabilities as prior" if a["held_out_prior"] else ""
            console.print(f"{a['rows']:,} annotators, the surely careless first (Dawid-Skene{prior}) -> {a['out']}")
        if "labels" in result:
            c = result["labels"]
            console.print(f"{c['rows']:,} labels ({c['corrected']:,} corrected, {c['removed']:,} removed, "
                          f"{c['reviewed']:,} reviewed) -> {c['out']}")
        if "data_copy" in result:
            c = result["data_copy"]
            console.print(f"{c['rows']:,} samples ({c['relabeled']:,} relabeled, {c['removed']:,} removed) -> "
                          f"{c['out']}")

    return emit(ctx, result, render, p["json_output"])
