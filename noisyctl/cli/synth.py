"""``noisyctl synth``: inject known label noise; writes a labels file, never touches the data."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import numpy as np
import typer
from rich.table import Table

from noisyctl.cli.common import JSON_OPTION, RECIPE_KEY, RECIPE_OPTION, emit, note, require, with_recipe
from noisyctl.data import dataset_of_root, dataset_spec, parse_options
from noisyctl.store import write_labels_file
from noisyctl.synth import synthesize

app = typer.Typer()


@app.command()
def synth(
    ctx: typer.Context,
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="Dataset plugin name (see `noisyctl "
                                          "plugins`); default: digits, or with --data-root what its files plainly "
                                          "are (a folder of images: imagefolder).", show_default=False),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Where the dataset lives on disk."),
    dataset_option: List[str] = typer.Option([], "--dataset-option", "-D", help="Dataset option KEY=VALUE."),
    noise: str = typer.Option("uniform", "--noise", "-n", help="Noise plugin name."),
    rate: Optional[float] = typer.Option(None, "--rate", "-r", help="Share of samples whose label flips, in "
                                         "[0, 1) (uniform, pairflip, instance: 0.2 when not given; transition "
                                         "takes its rates from the matrix, from-file its labels from the file).",
                                         show_default=False),
    noise_option: List[str] = typer.Option([], "--noise-option", "-N", help="Noise option KEY=VALUE."),
    seed: int = typer.Option(0, "--seed", help="Seed of the noise draw; the same seed gives the same labels."),
    reviewed_per_class: int = typer.Option(0, "--reviewed-per-class", help="Also mark this many samples per "
                                           "class as reviewed (a trusted set for train --strategy reweight), "
                                           "drawn among those the noise left alone so the rate stays exact."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Labels file to write (.h5)."),
    recipe: Optional[Path] = RECIPE_OPTION,
    json_output: bool = JSON_OPTION,
):
    """Inject known label noise into a dataset's labels and write a labels file for `train`."""
    p = with_recipe(ctx)
    out_path = Path(require(p["out"], "--out"))
    name = p["dataset"] or (dataset_of_root(p["data_root"]) if p["data_root"] is not None else "digits")
    spec = dataset_spec(name, p["data_root"], parse_options(p["dataset_option"], "dataset"))
    notes: list[str] = []
    labels = synthesize(spec, p["noise"], p["rate"], p["seed"], parse_options(p["noise_option"], "noise"),
                        reviewed_per_class=p["reviewed_per_class"], notes=notes)
    write_labels_file(out_path, labels, recipe=ctx.meta.get(RECIPE_KEY))
    flipped = labels.is_noisy
    per_class = np.bincount(labels.true_labels[flipped], minlength=labels.num_classes)
    result = {
        "out": str(out_path), "dataset": spec, "noise": labels.noise, "samples": len(labels.ids),
        "flipped": int(flipped.sum()), "rate_actual": float(flipped.mean()),
        "flipped_per_class": {labels.class_names[c]: int(k) for c, k in enumerate(per_class)},
        "reviewed": 0 if labels.reviewed is None else int(labels.reviewed.sum()), "notes": notes,
        "annotators": None if labels.annotations is None else {
            "count": len(labels.annotations.names),
            "labels_per_sample": float(labels.annotations.per_sample().mean())},
    }

    def render(console):
        table = Table(title=f"{p['noise']} noise on {name}", show_header=False)
        table.add_row("samples", f"{result['samples']:,}")
        asked = "" if p["rate"] is None else f", asked {p['rate']:.2%}"
        table.add_row("flipped", f"{result['flipped']:,} ({result['rate_actual']:.2%}{asked})")
        if result["reviewed"]:
            table.add_row("reviewed (trusted)", f"{result['reviewed']:,}")
        if result["annotators"]:
            table.add_row("annotators' own labels kept", f"{result['annotators']['count']:,} annotators, "
                                                         f"{result['annotators']['labels_per_sample']:.1f} a sample")
        table.add_row("labels file", str(out_path))
        for text in notes:
            note(console, text)
        console.print(table)

    return emit(ctx, result, render, p["json_output"])
