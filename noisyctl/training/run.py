"""``train``: a Trainer and a Recorder, epoch by epoch, into a run file; and ``--dry-run``'s plan."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

import h5py

from noisyctl import distributed
from noisyctl.api import DatasetData
from noisyctl.errors import NoisyctlError
from noisyctl.store import Labels
from noisyctl.training.folds import out_of_fold_probabilities
from noisyctl.training.loop import Trainer, build_model, build_strategy, load_trusted, penultimate_layer, training_labels
from noisyctl.training.options import TrainOptions, options_digest, projected_size
from noisyctl.training.recorder import NonFiniteLoss


class TrainingProgress(Protocol):
    """What ``train`` tells whoever shows its progress (the CLI's progress bar)."""

    def start(self, epochs: int, samples: int, epochs_done: int) -> None: ...

    def batch(self, samples: int) -> None: ...

    def epoch_done(self, epoch: int, figures: dict[str, float], samples_per_second: float) -> None: ...

    def note(self, text: str) -> None: ...


def train(labels: Labels, data: DatasetData, options: TrainOptions, out: Path, *, resume: bool = False,
          restart: bool = False, progress: TrainingProgress | None = None,
          recipe: dict | None = None) -> dict[str, Any]:
    """Train on ``labels``, record dynamics, and write the run file ``out``.

    A second process training into the same ``out`` is refused (the Recorder's lock); under
    torchrun, rank 0 holds it for all ranks."""
    out = Path(out)
    trusted = load_trusted(options.trusted, data) if options.trusted else None
    labels, data = training_labels(labels, data, options)
    options = _decided(options, labels, data)
    trainer = Trainer(labels, data, options, trusted)
    main = trainer.dist.is_main  # under torchrun only rank 0 writes files; every rank reads the checkpoint
    if not main:
        progress = None
    recorder = trainer.recorder(out, resume=True if resume else (None if restart else False), restart=restart,
                                fingerprint=_fingerprint(options, trainer.dist.world),
                                info=_info(labels, options, trainer, recipe))
    start_epoch = recorder.epochs_done
    n = len(labels.ids)
    started = time.perf_counter()
    with recorder:
        if progress is not None:
            progress.start(options.epochs, n, start_epoch)
        for epoch in range(start_epoch, options.epochs):
            trainer.train_epoch(epoch, recorder, on_batch=progress.batch if progress else None)
            figures = {"learning_rate": trainer.current_lr}
            if main:  # the eval pass and the test accuracy are rank 0's
                if options.record_eval:
                    trainer.record_eval(epoch, recorder)
                test = trainer.test_accuracy()
                if test is not None:
                    figures["test_accuracy"] = test
            try:
                figures = recorder.end_epoch(figures, state=trainer.state())
            except NonFiniteLoss as exc:
                _keep_finished(recorder, out, epoch, str(exc))
            if progress is not None:
                done = (epoch + 1 - start_epoch) * n
                progress.epoch_done(epoch, figures, done / max(time.perf_counter() - started, 1e-9))
        held_out = (out_of_fold_probabilities(labels, data, options, recorder.checkpoints, progress)
                    if options.folds else None)
        recorder.close(out_of_fold=held_out)
    summary = {"out": str(out), "model": options.model, "epochs": options.epochs, "samples": n,
               "folds": options.folds, "device": str(trainer.device), "resumed_from_epoch": start_epoch,
               "seconds": round(time.perf_counter() - started, 3)}
    if trainer.dist.active:
        distributed.shutdown()
    if not main:
        return {**summary, "rank": trainer.dist.rank, "last_epoch": {}}
    with h5py.File(out, "r") as h5:
        summary["last_epoch"] = {name: float(ds[-1]) for name, ds in h5["epochs"].items()}
    return summary


def _task(labels: Labels, data: DatasetData) -> tuple[int, int, int]:
    """What decides the held-out models: the samples, the classes and the processes training."""
    return len(labels.ids), data.num_classes, distributed.launched_world()


def _decided(options: TrainOptions, labels: Labels, data: DatasetData) -> TrainOptions:
    """The options with what they leave to the data decided: the model (auto) and the held-out
    models (folds), as train records them and --dry-run shows them."""
    return options.decided_model(data.kind).decided_folds(*_task(labels, data))


def held_out_reason(options: TrainOptions, labels: Labels, data: DatasetData) -> str:
    """Why train fits held-out models the options did not ask for, where the task's few classes
    alone decide it (``TrainOptions.held_out_reason``), else ""."""
    return options.decided_model(data.kind).held_out_reason(*_task(labels, data))


def _keep_finished(recorder, out: Path, epoch: int, reason: str) -> None:
    """On a diverged run, keep what the finished epochs recorded (and the checkpoint), then stop."""
    loss = "nan" if "NaN" in reason else "inf"
    if epoch:
        recorder.close(keep_checkpoints=True)
        raise NoisyctlError(f"training loss became {loss} in epoch {epoch + 1}: lower the learning rate (--lr); "
                            f"the {epoch} finished epoch(s) are kept in {out}")
    raise NoisyctlError(f"training loss became {loss} in epoch 1: lower the learning rate (--lr), or look for NaN "
                        f"or infinite values in the inputs")


def _fingerprint(options: TrainOptions, world: int = 1) -> str:
    """What a checkpoint must match to be resumed besides the labels: the options and (under
    torchrun) the number of processes, which decides each epoch's order."""
    digest = options_digest(options)
    if world > 1:
        digest.update(f"world={world}".encode())
    return digest.hexdigest()


def _info(labels: Labels, options: TrainOptions, trainer: Trainer, recipe: dict | None) -> dict[str, Any]:
    used = dict(labels.plugins or {})
    used[f"model:{options.model}"] = trainer.model_registration.origin
    used[f"strategy:{options.strategy}"] = trainer.strategy_registration.origin
    return {"plugins": used, "recipe": recipe,
            "training": {**asdict(options), "device_used": str(trainer.device)}}


def dry_run(labels: Labels, data: DatasetData, options: TrainOptions) -> dict[str, Any]:
    """What ``train`` would write, without training: the projected size of each field, after the
    same checks ``train`` makes."""
    options.check()
    labels, data = training_labels(labels, data, options)
    options = _decided(options, labels, data)
    model, _ = build_model(options, data)
    head = penultimate_layer(model)
    strategy, _ = build_strategy(options)
    options.check_plan(head_features=head.in_features if head else None, strategy=strategy,
                       processes=distributed.launched_world(), has_trusted=bool(options.trusted))
    trusted = load_trusted(options.trusted, data) if options.trusted else None
    sizes = projected_size(len(labels.ids), data.num_classes, options, head.in_features if head else None,
                           tuple(strategy.records))
    per_epoch, timed = seconds_per_epoch(labels, data, options, trusted)
    return {"samples": len(labels.ids), "classes": data.num_classes, "epochs": options.epochs,
            "input_shape": list(data.input_shape), "input_kind": data.kind, "notes": list(data.notes),
            "model": options.model, "folds": options.folds,
            "seconds_per_epoch": per_epoch, "estimated_seconds": per_epoch * options.epochs * (options.folds + 1),
            "timed_batches": timed, "fields": dict(sizes), "total_bytes": sum(size for _, size in sizes)}


class _Timed(Exception):
    pass


TIMED_BATCHES = 8
EVAL_SHARE = 0.35  # the eval recording pass, forward only over every sample, against a training pass


def seconds_per_epoch(labels: Labels, data: DatasetData, options: TrainOptions, trusted=None) -> tuple[float, int]:
    """An epoch's wall time here, from a few real training steps on this data (loading, augmenting,
    forward, backward): the epoch's start and first step once, the later steps' mean for the rest.
    Returns (seconds, steps timed)."""
    import math

    trainer = Trainer(labels, data, options, trusted)
    stamps = [time.perf_counter()]

    def on_batch(samples: int) -> None:
        stamps.append(time.perf_counter())
        if len(stamps) > TIMED_BATCHES + 1:
            raise _Timed()

    try:
        trainer.train_epoch(0, on_batch=on_batch)
    except _Timed:
        pass
    timed = len(stamps) - 1
    first = stamps[1] - stamps[0]  # the epoch's start (shuffling, loader) and its first step
    per_batch = (stamps[-1] - stamps[1]) / (timed - 1) if timed > 1 else first
    batches = math.ceil(len(labels.ids) / options.batch_size)
    epoch = first + per_batch * (batches - 1)
    return epoch * (1 + (EVAL_SHARE if options.record_eval else 0.0)), timed

