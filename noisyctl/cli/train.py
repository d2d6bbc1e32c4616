"""``noisyctl train``: train a model and record every sample's dynamics to a run file."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table
from rich.text import Text

from noisyctl.cli.common import (JSON_OPTION, RECIPE_KEY, RECIPE_OPTION, duration_words, emit, note, require, stdout,
                                 with_recipe)
from noisyctl.cli.progress import training_progress
from noisyctl.data import (dataset_of_root, dataset_spec, labels_from_dataset, load_dataset, load_labels_dataset,
                           parse_options)
from noisyctl.errors import NoisyctlError
from noisyctl.store import read_labels
from noisyctl.training import TrainOptions, dry_run as dry_run_plan, held_out_reason, train as train_run
from noisyctl.training.options import held_out_default_words

app = typer.Typer()
DEFAULTS = TrainOptions()


def _held_out_why(options: TrainOptions, labels, data) -> str:
    """The reason for held-out models train was not asked for, as the start of their parenthesis."""
    reason = held_out_reason(options, labels, data)
    return f"{reason}; " if reason else ""


def render_dry_run(console, plan: dict, why: str) -> None:
    shape = " x ".join(map(str, plan["input_shape"]))
    held_out = f", {plan['folds']} held-out models ({why}--folds) included" if plan["folds"] else ""
    console.print(f"inputs: {plan['input_kind']}, {shape}, for {plan['model']}; about "
                  f"{duration_words(plan['estimated_seconds'])} to train"
                  f"{held_out}; {duration_words(plan['seconds_per_epoch'])} an epoch, timed on {plan['timed_batches']} "
                  f"batches here")
    table = Table(title=f"projected run file: {plan['samples']:,} samples x {plan['epochs']} epochs, "
                        f"{plan['classes']} classes")
    table.add_column("field")
    table.add_column("size", justify="right")
    for name, size in plan["fields"].items():
        table.add_row(name, _bytes(size))
    table.add_row(Text("total (before compression)", style="bold"), Text(_bytes(plan["total_bytes"]), style="bold"))
    console.print(table)


def _bytes(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024


@app.command()
def train(
    ctx: typer.Context,
    labels: Optional[Path] = typer.Option(None, "--labels", "-l", help="Labels file from `synth` (its dataset is "
                                          "loaded from the file's record)."),
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="Train on a dataset's own labels instead "
                                          "(with --data-root alone: what its files plainly are, a folder of images: "
                                          "imagefolder)."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Where the dataset lives (with --labels: "
                                             "where it lives now, if it moved since synth)."),
    dataset_option: List[str] = typer.Option([], "--dataset-option", "-D", help="Dataset option KEY=VALUE (with "
                                             "--labels: over the file's, where they keep its samples: max_bytes, "
                                             "size)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run file to write (.h5)."),
    model: str = typer.Option(DEFAULTS.model, "--model", "-m", help="Model plugin: auto (small-cnn for images, mlp for "
                                "feature vectors, text-bag for text), lenet, resnet32, timm:<name>, hf:<folder>, ..."),
    model_option: List[str] = typer.Option([], "--model-option", "-M", help="Model option KEY=VALUE."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="Pretrained weights from a local file "
                                           "(.safetensors or a torch state dict); never downloaded."),
    epochs: int = typer.Option(DEFAULTS.epochs, "--epochs", "-e", help="Passes over the training set."),
    batch_size: int = typer.Option(DEFAULTS.batch_size, "--batch-size", "-b", help="Samples per training step."),
    optimizer: str = typer.Option(DEFAULTS.optimizer, "--optimizer", help="sgd, adamw or adam."),
    lr: float = typer.Option(DEFAULTS.lr, "--lr", help="Peak learning rate."),
    momentum: float = typer.Option(DEFAULTS.momentum, "--momentum", help="SGD momentum (Nesterov when > 0)."),
    weight_decay: float = typer.Option(DEFAULTS.weight_decay, "--weight-decay", help="L2 penalty (decoupled "
                                       "for adamw)."),
    schedule: str = typer.Option(DEFAULTS.schedule, "--schedule", help="cosine, step (/10 at 50% and 75%) or constant."),
    seed: int = typer.Option(DEFAULTS.seed, "--seed", help="Seed of initialisation, order and augmentation."),
    device: str = typer.Option(DEFAULTS.device, "--device", help="auto, cpu, cuda or cuda:N."),
    amp: bool = typer.Option(DEFAULTS.amp, "--amp/--no-amp", help="Mixed precision (CUDA only)."),
    deterministic: bool = typer.Option(DEFAULTS.deterministic, "--deterministic", help="Deterministic GPU kernels "
                                       "(slower): the same seed gives the same dynamics, and a resumed run the "
                                       "same as an uninterrupted one, on GPU as on CPU."),
    augment: str = typer.Option(DEFAULTS.augment, "--augment", help="Training augmentation: auto (what suits "
                                "the dataset), none, crop, flip-crop or resized-crop."),
    workers: int = typer.Option(DEFAULTS.workers, "--workers", help="DataLoader worker processes."),
    record_eval: bool = typer.Option(DEFAULTS.record_eval, "--record-eval/--no-record-eval",
                                     help="After each epoch, record eval-mode loss, probability, margin and "
                                          "prediction of every training sample (one extra forward pass)."),
    eval_batch_size: int = typer.Option(DEFAULTS.eval_batch_size, "--eval-batch-size",
                                        help="Samples per forward pass of the recording (eval) pass."),
    record_probs: Optional[bool] = typer.Option(None, "--record-probs/--no-record-probs", show_default=False,
                                                help="Record the late-epoch mean class probabilities [N x C] "
                                                     "(default: when there are at most 100 classes)."),
    aum_threshold_set: int = typer.Option(DEFAULTS.aum_threshold_set, "--aum-threshold-set",
                                          help="1 or 2: train N/(C+1) threshold samples on a fake class, so "
                                               "the aum detector can count mislabeled samples (Pleiss et al. "
                                               "2020); sets 1 and 2 are disjoint. 0 = none."),
    record_features: Optional[bool] = typer.Option(None, "--record-features/--no-record-features",
                                                   show_default=False,
                                                   help="Record every sample's penultimate-layer features after "
                                                        "the last epoch, for the prototypes and knn correctors "
                                                        "(default: when they take at most 1 GiB)."),
    true_labels: bool = typer.Option(False, "--true-labels", help="Train on the true labels of a synth labels "
                                     "file: the reference that pruning and correction aim for."),
    strategy: str = typer.Option(DEFAULTS.strategy, "--strategy", help="Training strategy: standard, reweight "
                                 "(needs --trusted), self-learning, ..."),
    strategy_option: List[str] = typer.Option([], "--strategy-option", "-S", help="Strategy option KEY=VALUE, "
                                              "e.g. alpha=0.5 or start_epoch=5."),
    trusted: Optional[Path] = typer.Option(None, "--trusted", help="Labels file of trusted samples (its reviewed "
                                           "ones: import-review or synth --reviewed-per-class), for reweight."),
    folds: Optional[int] = typer.Option(DEFAULTS.folds, "--folds", show_default=False,
                                        help="Also train K models on K-1 folds each for out-of-fold probabilities "
                                        "(a held-out noise count, and what the cleanlab detector wants); 0 = none. "
                                        f"Default: {held_out_default_words()}, else none."),
    resume: bool = typer.Option(False, "--resume", help="Continue the interrupted run checkpointed in OUT.ckpt/."),
    restart: bool = typer.Option(False, "--restart", help="Discard OUT.ckpt/ of an interrupted run and start over."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the projected size of the run file for these "
                                 "options and the data, and train nothing."),
    recipe: Optional[Path] = RECIPE_OPTION,
    json_output: bool = JSON_OPTION,
):
    """Train a model on (possibly noisy) labels and record every sample's training dynamics."""
    p = with_recipe(ctx)
    if p["labels"] is not None and p["dataset"] is not None:
        raise NoisyctlError("give --labels or --dataset, not both (a labels file names its dataset)")
    if p["labels"] is not None:
        sample_labels, data = load_labels_dataset(read_labels(p["labels"]), str(p["labels"]), p["data_root"],
                                                  parse_options(p["dataset_option"], "dataset"))
    elif p["dataset"] is not None or p["data_root"] is not None:
        name = p["dataset"] or dataset_of_root(p["data_root"])
        spec = dataset_spec(name, p["data_root"], parse_options(p["dataset_option"], "dataset"))
        data = load_dataset(spec)
        sample_labels = labels_from_dataset(spec, data)
    else:
        raise NoisyctlError("give --labels FILE (from synth), --dataset NAME or --data-root PATH")
    if not p["json_output"]:
        for text in data.notes:
            note(stdout(), text)
    options = TrainOptions(
        model=p["model"], model_options=parse_options(p["model_option"], "model"),
        weights=str(p["weights"]) if p["weights"] else None, epochs=p["epochs"], batch_size=p["batch_size"],
        optimizer=p["optimizer"], lr=p["lr"], momentum=p["momentum"], weight_decay=p["weight_decay"],
        schedule=p["schedule"], seed=p["seed"], device=p["device"], amp=p["amp"], deterministic=p["deterministic"],
        augment=p["augment"], workers=p["workers"],
        record_eval=p["record_eval"], eval_batch_size=p["eval_batch_size"], record_probs=p["record_probs"],
        folds=p["folds"], aum_threshold_set=p["aum_threshold_set"], record_features=p["record_features"],
        true_labels=p["true_labels"], strategy=p["strategy"],
        strategy_options=parse_options(p["strategy_option"], "strategy"),
        trusted=str(p["trusted"]) if p["trusted"] else None)
    why = _held_out_why(options, sample_labels, data)
    if p["dry_run"]:
        plan = dry_run_plan(sample_labels, data, options)
        return emit(ctx, plan, lambda console: render_dry_run(console, plan, why), p["json_output"])
    out_path = Path(require(p["out"], "--out"))
    with training_progress(not (p["quiet"] or p["json_output"])) as progress:
        result = train_run(sample_labels, data, options, out_path, resume=p["resume"], restart=p["restart"],
                           progress=progress, recipe=ctx.meta.get(RECIPE_KEY))
    if result.get("rank"):  # under torchrun, rank 0 reports for all
        return result

    def render(console):
        last = result["last_epoch"]
        how = "" if options.strategy == "standard" else f" ({options.strategy})"
        epochs = f"{options.epochs} epoch{'s' if options.epochs != 1 else ''}"
        table = Table(title=f"trained {result['model']}{how} for {epochs} on {result['device']}",
                      show_header=False)
        table.add_row("train accuracy (given labels)", f"{last['train_accuracy']:.1%}")
        if "eval_accuracy" in last:
            table.add_row("eval accuracy (given labels)", f"{last['eval_accuracy']:.1%}")
        if "eval_true_accuracy" in last:
            table.add_row("eval accuracy (true labels)", f"{last['eval_true_accuracy']:.1%}")
        if "test_accuracy" in last:
            table.add_row("test accuracy", f"{last['test_accuracy']:.1%}")
        if result["folds"]:
            table.add_row("held-out models", f"{result['folds']} ({why}--folds 0 skips them)")
        table.add_row("wall time", f"{result['seconds']:.1f} s")
        table.add_row("run file", result["out"])
        console.print(table)

    return emit(ctx, result, render, p["json_output"])
