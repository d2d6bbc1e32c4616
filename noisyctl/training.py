"""The training loop that records per-sample dynamics.

Every presentation's training-mode loss and margin come from the training
forward pass itself (no extra compute); after each epoch an optional eval-mode
pass over the training set records loss, probability, margin and prediction.

Crash safety: each finished epoch is written as one shard (``epoch_NNNNN.npz``)
and then a checkpoint (``state.pt``) into ``OUT.ckpt/``, both atomically. The
run file is assembled from the shards at the end and moved into place, so no
epoch is ever half-visible, and ``--resume`` continues a killed run from its
last checkpoint with the same result as an uninterrupted run (epoch order,
augmentation and dropout are seeded per epoch, not carried as RNG state).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from noisyctl import distributed, plugins
from noisyctl.api import Batch, DatasetData, ModelSpec, SampleSet
from noisyctl.augment import augment_batch, check_preset
from noisyctl.errors import NoisyctlError
from noisyctl.fileio import atomic_output
from noisyctl.weights import load_local_weights
from noisyctl.store import CHUNK_EPOCHS, RUN, Labels, create_field, new_file, write_field

OPTIMIZERS = ("sgd", "adamw", "adam")
SCHEDULES = ("cosine", "constant", "step")
PROBS_AUTO_MAX_CLASSES = 100  # above this, the [N x C] probabilities are recorded only when asked
FEATURES_AUTO_MAX_BYTES = 1 << 30  # above this, penultimate features are recorded only when asked
EPOCH_FIGURES = ("train_loss", "train_accuracy", "eval_accuracy", "eval_true_accuracy", "test_accuracy",
                 "learning_rate", "seconds")


@dataclass
class TrainOptions:
    model: str = "small-cnn"
    model_options: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None
    epochs: int = 30
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # mixed precision, CUDA only
    deterministic: bool = False  # deterministic CUDA kernels (CPU ones are always): same seed, same dynamics
    augment: str = "auto"  # a preset of noisyctl.augment; auto = the dataset's own suggestion
    workers: int = 0
    record_eval: bool = True
    eval_batch_size: int = 512
    record_probs: bool | None = None  # late-epoch mean class probabilities; None: when classes <= 100
    folds: int = 0  # K > 1: also train K models for out-of-fold probabilities (confident learning)
    aum_threshold_set: int = 0  # 1 or 2: relabel N/(C+1) samples to a fake class (AUM threshold samples)
    record_features: bool | None = None  # penultimate features after training; None: when they fit in 1 GiB
    true_labels: bool = False  # train on the truth (synthesized noise only): the reference cleaning aims for
    strategy: str = "standard"  # a training-strategy plugin
    strategy_options: dict[str, Any] = field(default_factory=dict)
    trusted: str | None = None  # labels file of trusted samples (its reviewed ones), for strategies that use them

    def check(self) -> None:
        if self.epochs < 1:
            raise NoisyctlError(f"epochs must be at least 1, not {self.epochs}")
        if self.batch_size < 1 or self.eval_batch_size < 1:
            raise NoisyctlError("batch sizes must be at least 1")
        if self.optimizer not in OPTIMIZERS:
            raise NoisyctlError(f"unknown optimizer '{self.optimizer}'; available: {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise NoisyctlError(f"unknown schedule '{self.schedule}'; available: {', '.join(SCHEDULES)}")
        if not self.lr > 0:
            raise NoisyctlError(f"learning rate must be positive, not {self.lr}")
        if self.workers < 0:
            raise NoisyctlError("workers cannot be negative")
        if self.aum_threshold_set not in (0, 1, 2):
            raise NoisyctlError(f"aum threshold set must be 0 (none), 1 or 2, not {self.aum_threshold_set}")
        if self.folds == 1 or self.folds < 0:
            raise NoisyctlError(f"folds must be 0 (none) or at least 2, not {self.folds}")
        check_preset(self.augment)

    def records_probs(self, num_classes: int) -> bool:
        """Whether the late-epoch class probabilities [N x C] are recorded."""
        wanted = self.record_probs
        return self.record_eval and (num_classes <= PROBS_AUTO_MAX_CLASSES if wanted is None else wanted)

    def records_features(self, samples: int, feature_dim: int | None) -> bool:
        """Whether the penultimate features [N x D] are recorded (never without a linear last layer)."""
        wanted = self.record_features
        fits = feature_dim is not None and samples * feature_dim * 2 <= FEATURES_AUTO_MAX_BYTES
        return self.record_eval and feature_dim is not None and (fits if wanted is None else wanted)

    def learning_rate(self, epoch: int) -> float:
        if self.schedule == "cosine":
            return self.lr * 0.5 * (1.0 + math.cos(math.pi * epoch / self.epochs))
        if self.schedule == "step":  # /10 at 50% and 75% of training
            return self.lr * (0.1 ** sum(epoch >= m * self.epochs for m in (0.5, 0.75)))
        return self.lr


def resolve_device(name: str):
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise NoisyctlError("--device cuda was asked for but no CUDA device is available")
    try:
        return torch.device(name)
    except RuntimeError:
        raise NoisyctlError(f"unknown device '{name}'; use auto, cpu or cuda") from None


def threshold_samples(n: int, num_classes: int, set_number: int) -> np.ndarray:
    """AUM threshold samples (Pleiss et al. 2020): N/(C+1) samples, set 1 or 2, disjoint by construction.

    The draw depends on N and C only, never on the run's seed, so two runs with sets 1 and 2 are
    disjoint and between them cover every sample.
    """
    mask = np.zeros(n, dtype=bool)
    if set_number:
        size = n // (num_classes + 1)
        order = np.random.default_rng([n, num_classes, 2020]).permutation(n)
        mask[order[(set_number - 1) * size: set_number * size]] = True
    return mask


def build_model(options: TrainOptions, data: DatasetData, extra_classes: int = 0):
    registration = plugins.get("model", options.model)
    spec = ModelSpec(name=options.model, num_classes=data.num_classes + extra_classes,
                     input_shape=tuple(data.input_shape),
                     weights=Path(options.weights) if options.weights else None, options=dict(options.model_options))
    try:
        model = registration.obj(spec)
    except TypeError as exc:
        raise NoisyctlError(f"model '{options.model}': {exc}") from None
    if spec.weights is not None:
        load_local_weights(model, spec.weights)
    return model, registration


def penultimate_layer(model):
    """The model's last linear layer, whose input is the penultimate-layer feature vector (torchvision's
    fc, timm's head.fc, the built-ins' classifier), or None when it has none."""
    from torch import nn

    last = None
    for module in model.modules():
        if isinstance(module, nn.Linear):
            last = module
    return last


def build_strategy(options: TrainOptions):
    registration = plugins.get("strategy", options.strategy)
    return registration.create(**options.strategy_options), registration


def margins(logits, labels):
    """z_y - max_{k != y} z_k per row (AUM's margin), from the top two logits."""
    import torch

    if logits.shape[1] < 2:
        return torch.zeros(logits.shape[0], device=logits.device, dtype=logits.dtype)
    top = logits.topk(2, dim=1)
    assigned = logits.gather(1, labels[:, None]).squeeze(1)
    best_other = torch.where(top.indices[:, 0] == labels, top.values[:, 1], top.values[:, 0])
    return assigned - best_other


def training_batches(order: np.ndarray, batch_size: int) -> list[list[int]]:
    """Split an epoch's order into batches; a last batch of one joins the previous one
    (batch norm cannot train on a single sample)."""
    batches = [order[i:i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches[-2].extend(batches.pop())
    return batches


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def _fingerprint(options: TrainOptions, labels: Labels, world: int = 1) -> str:
    """What a checkpoint must match to be resumed: options, labels and (under torchrun) the number of
    processes, which decides each epoch's order."""
    digest = hashlib.sha256(json.dumps(asdict(options), sort_keys=True, default=str).encode())
    if world > 1:
        digest.update(f"world={world}".encode())
    digest.update(np.ascontiguousarray(labels.given_labels).tobytes())
    return digest.hexdigest()


class Checkpoints:
    """The ``OUT.ckpt/`` folder of an unfinished run: per-epoch shards and the latest state."""

    def __init__(self, out: Path) -> None:
        self.folder = out.with_name(out.name + ".ckpt")
        self.state_path = self.folder / "state.pt"

    def shard(self, epoch: int) -> Path:
        return self.folder / f"epoch_{epoch:05d}.npz"

    def exists(self) -> bool:
        return self.state_path.exists()

    def load_state(self) -> dict[str, Any]:
        import torch

        try:
            return torch.load(self.state_path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise NoisyctlError(f"checkpoint {self.state_path} is unreadable ({type(exc).__name__}); "
                                f"start again with --restart") from None

    def save_state(self, state: dict[str, Any]) -> None:
        import torch

        with atomic_output(self.state_path) as tmp:
            torch.save(state, tmp)

    def save_shard(self, epoch: int, arrays: dict[str, np.ndarray]) -> None:
        with atomic_output(self.shard(epoch)) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, **arrays)

    def array_path(self, name: str) -> Path:
        return self.folder / f"{name}.npy"

    def save_array(self, name: str, values: np.ndarray) -> None:
        with atomic_output(self.array_path(name)) as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, values)

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


class Trainer:
    """Trains one model on one labelling and records its dynamics; the host a strategy talks to."""

    def __init__(self, labels: Labels, data: DatasetData, options: TrainOptions,
                 trusted: tuple[SampleSet, np.ndarray] | None = None) -> None:
        import torch

        options.check()
        self.labels, self.data, self.options = labels, data, options
        self.num_classes, self.num_samples, self.epochs = data.num_classes, len(labels.ids), options.epochs
        self.trusted_set = trusted
        self._trusted_tensors = None
        self.current_lr = options.lr
        self.device = resolve_device(options.device)
        self.dist = distributed.from_environment(self.device.type)
        if self.dist.active:
            if self.device.type == "cuda":
                self.device = torch.device("cuda", self.dist.local_rank)
            if options.strategy != "standard" or options.folds:
                raise NoisyctlError("under torchrun, train runs the standard strategy without --folds; run "
                                    "those in one process")
        self.use_amp = options.amp and self.device.type == "cuda"
        self.amp_dtype = torch.bfloat16 if self.use_amp and torch.cuda.is_bf16_supported() else torch.float16
        deterministic = self.device.type == "cpu" or options.deterministic
        if deterministic:
            # cuBLAS reads this when it starts; a process that already ran CUDA matmuls keeps its setting.
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(deterministic, warn_only=True)
        torch.backends.cudnn.benchmark = not deterministic
        torch.manual_seed(options.seed)
        self.augment = data.default_augment if options.augment == "auto" else options.augment
        # Threshold samples train on a fake extra class C; their dynamics refer to it.
        self.threshold = threshold_samples(len(labels.ids), data.num_classes, options.aum_threshold_set)
        self.model, self.model_registration = build_model(options, data, extra_classes=int(self.threshold.any()))
        self.model.to(self.device)
        # The wrapped model trains (DDP averages gradients across ranks); the plain one evaluates and is saved.
        self.train_model = self.model
        if self.dist.active:
            from torch.nn.parallel import DistributedDataParallel

            self.train_model = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.optimizer = self._optimizer()
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp and self.amp_dtype == torch.float16)
        self.given = torch.as_tensor(np.where(self.threshold, data.num_classes, labels.given_labels), dtype=torch.long)
        self.true = None if labels.true_labels is None else torch.as_tensor(labels.true_labels, dtype=torch.long)
        self.step = 0
        self.record_probs = options.records_probs(data.num_classes)
        # Class probabilities are averaged over the last quarter of training (at least one epoch).
        self.late_start = options.epochs - max(1, options.epochs // 4)
        self.late_sum = None
        self.late_count = 0
        self.final_features = None
        head = penultimate_layer(self.model)
        self.record_features = options.records_features(self.num_samples, head.in_features if head else None)
        if options.record_features and head is None:
            raise NoisyctlError(f"model '{options.model}' has no linear last layer to take features from")
        self.strategy, self.strategy_registration = build_strategy(options)
        if self.threshold.any() and options.strategy != "standard":
            raise NoisyctlError("AUM threshold samples (--aum-threshold-set) train with the standard strategy only")
        if self.strategy.needs_trusted and trusted is None:
            raise NoisyctlError(f"strategy '{options.strategy}' needs trusted samples: give --trusted FILE "
                                f"(a labels file whose reviewed samples are trusted)")
        self.strategy.setup(self)

    def learning_rate(self) -> float:
        return self.current_lr

    def given_labels(self):
        """The labels the model trains on, on the device."""
        return self.given.to(self.device)

    def features(self):
        """Eval-mode penultimate features of every training sample [N x D], on the device."""
        return self._predict(self.data.train, with_features=True)[1]

    def trusted(self):
        """The trusted samples as ``(inputs, labels)`` on the device, loaded once (they are few)."""
        import torch

        if self.trusted_set is None:
            return None
        if self._trusted_tensors is None:
            sample_set, labels = self.trusted_set
            inputs = torch.stack([sample_set.load(i) for i in range(len(sample_set))]).to(self.device)
            self._trusted_tensors = (inputs, torch.as_tensor(labels, dtype=torch.long, device=self.device))
        return self._trusted_tensors

    def _optimizer(self):
        import torch

        o = self.options
        params = self.model.parameters()
        if o.optimizer == "sgd":
            return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay, nesterov=o.momentum > 0)
        if o.optimizer == "adamw":
            return torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)
        return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)

    def _loader(self, sample_set, batches: list[list[int]]):
        import torch

        return torch.utils.data.DataLoader(sample_set, batch_sampler=batches, num_workers=self.options.workers,
                                           pin_memory=self.device.type == "cuda")

    def _batches(self, data_loader):
        """Iterate a loader, turning a dataset error raised in a worker back into its one line."""
        try:
            yield from data_loader
        except NoisyctlError as exc:
            # torch re-raises a worker's exception with its traceback in the message; keep the last line.
            lines = [line for line in str(exc).splitlines() if line.strip()]
            last = lines[-1] if lines else str(exc)
            raise NoisyctlError(last.split("NoisyctlError: ", 1)[-1]) from None

    def _autocast(self):
        import torch

        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.use_amp)

    def train_epoch(self, epoch: int, on_batch=None, record: bool = True) -> dict[str, Any]:
        """One pass over the training set in a per-epoch seeded order; records loss and margin per sample.

        ``record=False`` skips the recording, for measuring what it costs.
        """
        import torch
        import torch.nn.functional as F

        n = len(self.labels.ids)
        seed = _epoch_seed(self.options.seed, epoch)
        torch.manual_seed(seed)  # augmentation and dropout draw from here: same epoch, same draws
        if self.dist.active:
            order = self.dist.epoch_order(n, self.options.seed, epoch)
        else:
            order = np.random.default_rng(seed).permutation(n)
        lr = self.options.learning_rate(epoch)
        self.current_lr = lr
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.strategy.begin_epoch(epoch)
        # Loss and margin per sample stay on the device until the epoch ends: no sync per batch.
        # Presentation steps and accuracy need nothing per batch: they follow from the batches
        # and the margins (a sample is classified right exactly when its margin is positive).
        records = torch.full((n, 2), float("nan"), device=self.device)
        extra = {name: torch.full((n,), float(fill), device=self.device)
                 for name, fill in self.strategy.records.items()} if record else {}
        given = self.given.to(self.device)
        self.model.train()
        batches = training_batches(order, self.options.batch_size)
        first_step = self.step
        for inputs, index in self._batches(self._loader(self.data.train, batches)):
            inputs = augment_batch(inputs.to(self.device, non_blocking=True), self.augment)
            index = index.to(self.device, non_blocking=True)
            targets = given[index]
            with self._autocast():
                logits = self.train_model(inputs)
            logits = logits.float()
            losses = F.cross_entropy(logits, targets, reduction="none")
            objective, values = self.strategy.objective(Batch(inputs, index, targets, logits, losses))
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(objective).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if record:
                with torch.no_grad():
                    records[index] = torch.stack((losses.detach(), margins(logits.detach(), targets)), dim=1)
                    for name, value in values.items():
                        extra[name][index] = value.detach().float()
            self.step += 1
            if on_batch is not None:
                on_batch(len(index))
        steps = np.full(n, -1, dtype=np.int32)
        for number, batch in enumerate(batches):
            steps[batch] = first_step + number
        if self.dist.active:
            records, steps = self._gather_records(records, steps)
        loss, margin = records.cpu().numpy().T
        return {
            "train_loss": np.ascontiguousarray(loss),
            "train_margin": np.ascontiguousarray(margin),
            "train_step": steps,
            **{name: values.cpu().numpy() for name, values in extra.items()},
            "figures": {"train_loss": float(np.mean(loss)), "train_accuracy": float(np.mean(margin > 0)),
                        "learning_rate": lr},
        }

    def _gather_records(self, records, steps: np.ndarray):
        """Every rank's records of the epoch, merged: each sample has them from the rank that saw it
        (averaged over the few the sampler repeats to even out the shares)."""
        import torch

        seen = ~torch.isnan(records[:, 0])
        values, counts = torch.nan_to_num(records), seen.float()
        self.dist.sum_(values)
        self.dist.sum_(counts)
        step_tensor = torch.as_tensor(steps, dtype=torch.float64, device=self.device)
        self.dist.max_(step_tensor)
        return values / counts[:, None], step_tensor.cpu().numpy().astype(np.int32)

    def _predict(self, sample_set, with_features: bool = False):
        """Eval-mode logits of a whole subset, in sample order; with the penultimate features too
        (the input of the last linear layer, caught by a hook) when ``with_features``."""
        import torch

        self.model.eval()
        chunks, features = [], []
        hook = None
        if with_features:
            hook = penultimate_layer(self.model).register_forward_hook(
                lambda module, args, output: features.append(args[0].detach().flatten(1).float()))
        size = self.options.eval_batch_size
        batches = [list(range(i, min(i + size, len(sample_set)))) for i in range(0, len(sample_set), size)]
        try:
            with torch.no_grad():
                for inputs, _ in self._batches(self._loader(sample_set, batches)):
                    with self._autocast():
                        chunks.append(self.model(inputs.to(self.device, non_blocking=True)).float())
        finally:
            if hook is not None:
                hook.remove()
        logits = torch.cat(chunks)
        return (logits, torch.cat(features)) if with_features else logits

    def record_eval(self, epoch: int) -> dict[str, Any]:
        import torch
        import torch.nn.functional as F

        last = epoch == self.options.epochs - 1
        if last and self.record_features:
            logits, features = self._predict(self.data.train, with_features=True)
            self.final_features = features.half().cpu().numpy()
        else:
            logits = self._predict(self.data.train)
        if self.record_probs and epoch >= self.late_start:
            probs = torch.softmax(logits[:, :self.data.num_classes], 1).double().cpu()  # real classes only
            self.late_sum = probs if self.late_sum is None else self.late_sum + probs
            self.late_count += 1
        given = self.given.to(self.device)
        pred = logits.argmax(1)
        records = {
            "eval_loss": F.cross_entropy(logits, given, reduction="none"),
            "eval_prob": torch.softmax(logits, 1).gather(1, given[:, None]).squeeze(1),
            "eval_margin": margins(logits, given),
            "eval_pred": pred.to(torch.int32),
        }
        figures = {"eval_accuracy": float((pred == given).float().mean().item())}
        if self.true is not None:
            figures["eval_true_accuracy"] = float((pred == self.true.to(self.device)).float().mean().item())
        out = {name: value.cpu().numpy() for name, value in records.items()}
        out["figures"] = figures
        return out

    def test_accuracy(self) -> float | None:
        if self.data.test is None or len(self.data.test) == 0:
            return None
        import torch

        logits = self._predict(self.data.test)[:, :self.data.num_classes]  # never the fake threshold class
        truth = torch.as_tensor(self.data.test.labels, device=self.device)
        return float((logits.argmax(1) == truth).float().mean().item())

    def state(self, epochs_done: int, fingerprint: str) -> dict[str, Any]:
        return {"epochs_done": epochs_done, "step": self.step, "fingerprint": fingerprint,
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(), "late_sum": self.late_sum, "late_count": self.late_count,
                "strategy": self.strategy.state_dict()}

    def load(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.late_sum, self.late_count = state.get("late_sum"), int(state.get("late_count", 0))
        self.strategy.load_state_dict(state.get("strategy") or {})

    def late_mean_probabilities(self) -> np.ndarray | None:
        return None if self.late_sum is None else (self.late_sum / self.late_count).numpy()


def assemble_run(out: Path, labels: Labels, checkpoints: Checkpoints, num_epochs: int,
                 attrs: dict[str, Any], extra: dict[str, np.ndarray] | None = None) -> None:
    """Build the run file from the epoch shards, streaming CHUNK_EPOCHS epochs at a time, and move it into place."""
    shards = [np.load(checkpoints.shard(e)) for e in range(num_epochs)]
    try:
        n = len(labels.ids)
        with atomic_output(out) as tmp:
            with h5py.File(tmp, "w") as h5:
                new_file(h5, RUN, num_epochs=num_epochs, **attrs)
                labels.write(h5)
                channels = [k for k in shards[0].files if not k.startswith("figure_")]
                for channel in channels:
                    dataset = create_field(h5, f"dynamics/{channel}", (n, num_epochs))
                    for start in range(0, num_epochs, CHUNK_EPOCHS):
                        stop = min(num_epochs, start + CHUNK_EPOCHS)
                        dataset[:, start:stop] = np.stack([shards[e][channel] for e in range(start, stop)], axis=1)
                for name in EPOCH_FIGURES:
                    key = f"figure_{name}"
                    if key in shards[0].files:
                        write_field(h5, f"epochs/{name}", [float(s[key]) for s in shards])
                for path, values in (extra or {}).items():
                    write_field(h5, path, values)
    finally:
        for shard in shards:
            shard.close()


def train(labels: Labels, data: DatasetData, options: TrainOptions, out: Path, *, resume: bool = False,
          restart: bool = False, show_progress: bool = True, recipe: dict | None = None) -> dict[str, Any]:
    """Train on ``labels``, record dynamics, and write the run file ``out``.

    A second process training into the same ``out`` is refused (a lock in the checkpoint folder);
    under torchrun, rank 0 holds it for all ranks."""
    from noisyctl.fileio import exclusive

    if distributed.launched_rank() != 0:
        return _train(labels, data, options, out, resume=resume, restart=restart, show_progress=show_progress,
                      recipe=recipe)
    checkpoints = Checkpoints(Path(out))
    try:
        with exclusive(checkpoints.folder / "lock", f"training into {out}"):
            return _train(labels, data, options, out, resume=resume, restart=restart, show_progress=show_progress,
                          recipe=recipe)
    finally:
        # A run that failed before its first checkpoint leaves nothing to resume: no folder either.
        if checkpoints.folder.is_dir() and not any(p.name != "lock" for p in checkpoints.folder.iterdir()):
            shutil.rmtree(checkpoints.folder, ignore_errors=True)


def _train(labels: Labels, data: DatasetData, options: TrainOptions, out: Path, *, resume: bool = False,
           restart: bool = False, show_progress: bool = True, recipe: dict | None = None) -> dict[str, Any]:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

    out = Path(out)
    checkpoints = Checkpoints(out)
    trusted = load_trusted(options.trusted, data) if options.trusted else None
    labels, data = training_labels(labels, data, options)
    trainer = Trainer(labels, data, options, trusted)
    main = trainer.dist.is_main  # under torchrun only rank 0 writes files; every rank reads the checkpoint
    fingerprint = _fingerprint(options, labels, trainer.dist.world)
    start_epoch = 0
    if checkpoints.exists():
        if restart:
            trainer.dist.barrier()  # every rank has looked before rank 0 deletes
            if main:
                checkpoints.discard()
        elif resume:
            state = checkpoints.load_state()
            if state.get("fingerprint") != fingerprint:
                raise NoisyctlError(f"{checkpoints.folder} belongs to a run with other options or labels; "
                                    f"resume with the same ones, or pass --restart to discard it")
            trainer.load(state)
            start_epoch = int(state["epochs_done"])
        else:
            state = checkpoints.load_state()
            raise NoisyctlError(f"{checkpoints.folder} holds an interrupted run ({state['epochs_done']}/"
                                f"{options.epochs} epochs): pass --resume to continue it or --restart to discard it")
    elif resume:
        raise NoisyctlError(f"nothing to resume: {checkpoints.folder} does not exist")

    n = len(labels.ids)
    console = Console(stderr=True)
    started = time.perf_counter()
    trained_samples = 0
    columns = [TextColumn("[bold]epoch {task.fields[epoch]}/{task.fields[epochs]}"), BarColumn(),
               TaskProgressColumn(), TextColumn("{task.fields[status]}"), TimeRemainingColumn()]
    with Progress(*columns, console=console, disable=not (show_progress and main), transient=False) as progress:
        task = progress.add_task("train", total=options.epochs * n, completed=start_epoch * n,
                                 epoch=start_epoch, epochs=options.epochs, status="")
        for epoch in range(start_epoch, options.epochs):
            epoch_started = time.perf_counter()
            progress.update(task, epoch=epoch + 1)
            record = trainer.train_epoch(epoch, on_batch=lambda k: progress.advance(task, k))
            trained_samples += n
            figures = record.pop("figures")
            if not np.isfinite(figures["train_loss"]):
                if main:
                    _keep_finished(out, labels, checkpoints, epoch, _attrs(labels, options, trainer, recipe))
                raise NoisyctlError(f"training loss became {figures['train_loss']} in epoch {epoch + 1}: lower the "
                                    f"learning rate (--lr); the {epoch} finished epoch(s) are kept in {out}"
                                    if epoch else f"training loss became {figures['train_loss']} in epoch 1: "
                                    f"lower the learning rate (--lr)")
            if not main:
                continue  # the eval pass, test accuracy and checkpoint are rank 0's
            if options.record_eval:
                evaluation = trainer.record_eval(epoch)
                figures.update(evaluation.pop("figures"))
                record.update(evaluation)
            test = trainer.test_accuracy()
            if test is not None:
                figures["test_accuracy"] = test
            figures["seconds"] = time.perf_counter() - epoch_started
            record.update({f"figure_{k}": np.float64(v) for k, v in figures.items()})
            checkpoints.save_shard(epoch, record)
            if trainer.final_features is not None:
                checkpoints.save_array("features", trainer.final_features)
            checkpoints.save_state(trainer.state(epoch + 1, fingerprint))
            status = f"loss {figures['train_loss']:.3f}  acc {figures['train_accuracy']:.1%}"
            if test is not None:
                status += f"  test {test:.1%}"
            elapsed = time.perf_counter() - started
            status += f"  {trained_samples / max(elapsed, 1e-9):,.0f} samples/s"
            progress.update(task, status=status)

    trainer.dist.barrier()  # the last checkpoint is written before any rank leaves
    if not main:
        distributed.shutdown()
        return {"out": str(out), "epochs": options.epochs, "samples": n, "device": str(trainer.device),
                "rank": trainer.dist.rank, "resumed_from_epoch": start_epoch,
                "seconds": round(time.perf_counter() - started, 3), "last_epoch": {}}
    extra = {}
    if trainer.threshold.any():
        extra["samples/threshold"] = trainer.threshold
    if trainer.late_mean_probabilities() is not None:
        extra["probs/late_mean"] = trainer.late_mean_probabilities()
    if trainer.record_features and checkpoints.array_path("features").exists():
        extra["features/penultimate"] = np.load(checkpoints.array_path("features"))
    if options.folds:
        extra["probs/out_of_fold"] = out_of_fold_probabilities(labels, data, options, checkpoints,
                                                               console if show_progress else None)
    assemble_run(out, labels, checkpoints, options.epochs, _attrs(labels, options, trainer, recipe), extra)
    checkpoints.discard()
    if trainer.dist.active:
        distributed.shutdown()
    with h5py.File(out, "r") as h5:
        last = {name: float(ds[-1]) for name, ds in h5["epochs"].items()}
    return {"out": str(out), "epochs": options.epochs, "samples": n, "device": str(trainer.device),
            "resumed_from_epoch": start_epoch, "seconds": round(time.perf_counter() - started, 3), "last_epoch": last}


def projected_size(n: int, num_classes: int, options: TrainOptions, feature_dim: int | None,
                   strategy_records: tuple[str, ...] = ()) -> list[tuple[str, int]]:
    """Bytes of each field the run file would hold (uncompressed), for the options' record set."""
    e = options.epochs
    channels = ["train_loss", "train_margin", "train_step", *strategy_records]
    if options.record_eval:
        channels += ["eval_loss", "eval_prob", "eval_margin", "eval_pred"]
    sizes = [(f"dynamics/{name}", n * e * 4) for name in channels]
    if options.records_probs(num_classes):
        sizes.append(("probs/late_mean", n * num_classes * 2))
    if options.folds:
        sizes.append(("probs/out_of_fold", n * num_classes * 2))
    if options.records_features(n, feature_dim):
        sizes.append(("features/penultimate", n * feature_dim * 2))
    sizes.append(("samples and epochs (ids, labels, per-epoch figures)", n * 40 + e * 7 * 4))
    return sizes


def dry_run(labels: Labels, data: DatasetData, options: TrainOptions) -> dict[str, Any]:
    """What ``train`` would write, without training: the projected size of each field."""
    options.check()
    labels, data = training_labels(labels, data, options)
    model, _ = build_model(options, data)
    head = penultimate_layer(model)
    strategy, _ = build_strategy(options)
    sizes = projected_size(len(labels.ids), data.num_classes, options, head.in_features if head else None,
                           tuple(strategy.records))
    return {"samples": len(labels.ids), "classes": data.num_classes, "epochs": options.epochs,
            "fields": dict(sizes), "total_bytes": sum(size for _, size in sizes)}


def options_from_run(run) -> TrainOptions:
    """The training options a run file records (to retrain the same way); unknown keys are ignored."""
    known = {f.name for f in fields(TrainOptions)}
    return TrainOptions(**{k: v for k, v in run.training.items() if k in known})


def training_labels(labels: Labels, data: DatasetData, options: TrainOptions) -> tuple[Labels, DatasetData]:
    """The labelling and samples a run trains on: the truth with ``true_labels``, and without the
    samples ``prune`` removed (the run file then holds the kept samples only)."""
    if options.true_labels:
        if labels.true_labels is None:
            raise NoisyctlError("--true-labels needs a labels file from synth: these labels have no known truth")
        labels = replace(labels, given_labels=labels.true_labels.copy(), noise=None, corrected=None)
    if labels.removed is not None:
        kept = np.flatnonzero(~labels.removed)
        if len(kept) == 0:
            raise NoisyctlError("every sample of these labels was pruned: nothing is left to train on")
        labels = replace(labels.subset(kept), removed=None, removal_score=None, removal_rank=None)
        data = replace(data, train=SubsetSampleSet(data.train, kept))
    return labels, data


def load_trusted(path: str, data: DatasetData) -> tuple[SampleSet, np.ndarray]:
    """The trusted samples of a labels file: its reviewed ones (all of them when it marks none), found
    in the dataset by id, with the file's labels."""
    from noisyctl.store import read_labels

    trusted = read_labels(path)
    if list(trusted.class_names) != list(data.class_names):
        raise NoisyctlError(f"trusted labels {path} name other classes than the dataset")
    chosen = np.flatnonzero(trusted.reviewed) if trusted.reviewed is not None else np.arange(len(trusted.ids))
    if len(chosen) == 0:
        raise NoisyctlError(f"trusted labels {path} mark no sample as reviewed")
    position = {sample_id: i for i, sample_id in enumerate(data.train.ids)}
    missing = [trusted.ids[i] for i in chosen if trusted.ids[i] not in position]
    if missing:
        raise NoisyctlError(f"trusted labels {path}: sample '{missing[0]}' is not in the dataset "
                            f"({len(missing)} such)")
    indices = np.array([position[trusted.ids[i]] for i in chosen])
    return SubsetSampleSet(data.train, indices), trusted.given_labels[chosen]


class SubsetSampleSet(SampleSet):
    """Some samples of another sample set, renumbered from 0."""

    def __init__(self, base: SampleSet, indices: np.ndarray) -> None:
        super().__init__([base.ids[i] for i in indices], base.labels[indices])
        self.base, self.indices = base, np.asarray(indices)

    def load(self, index: int):
        return self.base.load(int(self.indices[index]))


def out_of_fold_probabilities(labels: Labels, data: DatasetData, options: TrainOptions, checkpoints: Checkpoints,
                              console=None) -> np.ndarray:
    """Class probabilities of every sample from a model that never trained on it (K stratified folds).

    Each fold's result is checkpointed, so an interrupted run resumes after the last finished fold.
    """
    import torch
    from sklearn.model_selection import StratifiedKFold

    n, k = len(labels.ids), options.folds
    smallest = int(np.bincount(labels.given_labels).min()) if n else 0
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=options.seed) if smallest >= k else None
    if splitter is None:
        from sklearn.model_selection import KFold

        splitter = KFold(n_splits=k, shuffle=True, random_state=options.seed)
    probabilities = np.zeros((n, data.num_classes), dtype=np.float32)
    # Fold models only predict: plain training, nothing recorded.
    fold_options = replace(options, record_eval=False, record_probs=False, record_features=False, folds=0,
                           aum_threshold_set=0, strategy="standard", strategy_options={}, trusted=None)
    for fold, (fit, held) in enumerate(splitter.split(np.zeros(n), labels.given_labels)):
        saved = checkpoints.array_path(f"fold_{fold:02d}")
        if saved.exists():
            probabilities[held] = np.load(saved)
            continue
        if console is not None:
            console.print(f"fold {fold + 1}/{k}: training on {len(fit):,} samples, predicting {len(held):,}")
        fold_labels = Labels(ids=[labels.ids[i] for i in fit], given_labels=labels.given_labels[fit],
                             class_names=labels.class_names, dataset=labels.dataset)
        fold_data = replace(data, train=SubsetSampleSet(data.train, fit), test=None)
        trainer = Trainer(fold_labels, fold_data, replace(fold_options, seed=options.seed + 1 + fold))
        for epoch in range(options.epochs):
            trainer.train_epoch(epoch, record=False)
        held_probs = torch.softmax(trainer._predict(SubsetSampleSet(data.train, held)), 1).cpu().numpy()
        checkpoints.save_array(f"fold_{fold:02d}", held_probs)
        probabilities[held] = held_probs
    return probabilities


def _attrs(labels: Labels, options: TrainOptions, trainer: Trainer, recipe: dict | None) -> dict[str, Any]:
    registration = trainer.model_registration
    used = dict(labels.plugins or {})
    used[f"model:{options.model}"] = registration.origin
    used[f"strategy:{options.strategy}"] = trainer.strategy_registration.origin
    return {"dataset": labels.dataset, "noise": labels.noise, "plugins": used, "recipe": recipe,
            "pruning": labels.pruning, "correction": labels.correction,
            "training": {**asdict(options), "device_used": str(trainer.device), "processes": trainer.dist.world}}


def _keep_finished(out: Path, labels: Labels, checkpoints: Checkpoints, finished: int, attrs: dict) -> None:
    """On a diverged run, keep what the finished epochs recorded."""
    if finished > 0:
        assemble_run(out, labels, checkpoints, finished, attrs)
