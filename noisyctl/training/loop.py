"""The step loop: one model on one labelling, epoch by epoch, feeding a :class:`Recorder`.

Every presentation's loss and margin come from the training forward pass itself (no extra
compute); after each epoch an optional eval-mode pass over the training set records loss,
probability, margin and prediction. Epoch order, augmentation and dropout are seeded per epoch,
not carried as RNG state, so a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from noisyctl import distributed, plugins
from noisyctl.api import Batch, DatasetData, ModelSpec, SampleSet
from noisyctl.augment import augment_batch
from noisyctl.errors import NoisyctlError
from noisyctl.store import Labels
from noisyctl.training.options import TrainOptions
from noisyctl.training.recorder import Recorder, penultimate_layer
from noisyctl.weights import load_local_weights


def resolve_device(name: str):
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise NoisyctlError(f"unknown device '{name}'; use auto, cpu or cuda") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise NoisyctlError(f"--device {name} was asked for but no CUDA device is available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise NoisyctlError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                                f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    if device.type != "cpu":
        try:  # mps, xla, ...: whether this build and machine have it shows when a tensor goes there
            torch.empty(0, device=device)
        except (RuntimeError, AssertionError):
            raise NoisyctlError(f"--device {name} cannot be used here: this machine or PyTorch build has no "
                                f"{device.type} device (auto picks what there is)") from None
    return device


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
    options = options.decided_model(data.kind)
    registration = plugins.get("model", options.model)
    spec = ModelSpec(name=options.model, num_classes=data.num_classes + extra_classes,
                     input_shape=tuple(data.input_shape), input_kind=data.kind,
                     weights=Path(options.weights) if options.weights else None)
    model = registration.call(spec, options=options.model_options)
    if spec.weights is not None:
        load_local_weights(model, spec.weights)
    _check_reads(model, registration, data, spec)
    return model, registration


def _check_reads(model, registration, data: DatasetData, spec: ModelSpec) -> None:
    """One forward pass on two of the dataset's own samples, so that a model that cannot take them
    (a ViT built for 224 px given 8 px digits) or gives other outputs says so before training, not
    as a failure inside the first batch."""
    import torch

    sample = data.train.load(0)
    shown = " x ".join(map(str, sample.shape))
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits = model(torch.stack([sample, sample]))
    except Exception as exc:  # noqa: what a model raises on inputs it cannot take varies
        raise NoisyctlError(f"model '{spec.name}' cannot take this dataset's inputs ({shown}): "
                            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} (-D size=N "
                            f"resizes images; timm's fixed-size models take -M img_size=N)") from None
    finally:
        model.train(training)
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (2, spec.num_classes):
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise NoisyctlError(f"model '{spec.name}' from {registration.provenance()} gives {got} for 2 samples; "
                            f"expected logits of shape (2, {spec.num_classes})")


def build_strategy(options: TrainOptions):
    registration = plugins.get("strategy", options.strategy)
    return registration.call(options=options.strategy_options), registration


def training_batches(order: np.ndarray, batch_size: int) -> list[list[int]]:
    """Split an epoch's order into batches; a last batch of one joins the previous one
    (batch norm cannot train on a single sample)."""
    batches = [order[i:i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches[-2].extend(batches.pop())
    return batches


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


class Trainer:
    """Trains one model on one labelling; the host a strategy talks to. What it records goes
    through a :class:`Recorder` handed to :meth:`train_epoch` and :meth:`record_eval`."""

    def __init__(self, labels: Labels, data: DatasetData, options: TrainOptions,
                 trusted: tuple[SampleSet, np.ndarray] | None = None) -> None:
        import torch

        options.check()
        if options.folds is not None and options.folds > len(labels.ids):
            raise NoisyctlError(f"--folds {options.folds} is more folds than the {len(labels.ids):,} samples")
        self.labels, self.data, self.options = labels, data, options
        self.num_classes, self.num_samples, self.epochs = data.num_classes, len(labels.ids), options.epochs
        self.trusted_set = trusted
        self._trusted_tensors = None
        self.current_lr = options.lr
        self.device = resolve_device(options.device)
        self.dist = distributed.from_environment(self.device.type)
        if self.dist.active and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
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
        self.strategy, self.strategy_registration = build_strategy(options)
        head = penultimate_layer(self.model)
        options.check_plan(head_features=head.in_features if head else None, strategy=self.strategy,
                           processes=self.dist.world, has_trusted=trusted is not None)
        self.record_features = options.records_features(self.num_samples, head.in_features if head else None)
        # The wrapped model trains (DDP averages gradients across ranks); the plain one evaluates and is saved.
        self.train_model = self.model
        if self.dist.active:
            from torch.nn.parallel import DistributedDataParallel

            self.train_model = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.optimizer = self._optimizer()
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp and self.amp_dtype == torch.float16)
        self.trained_labels = np.where(self.threshold, data.num_classes, labels.given_labels)
        self.given = torch.as_tensor(self.trained_labels, dtype=torch.long)
        self.strategy.setup(self)

    # --- what a strategy reads (noisyctl.api.TrainingHost) ------------------------------------------

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

    # --- recording ----------------------------------------------------------------------------------

    def recorder(self, out: Path, *, resume: bool | None, restart: bool, fingerprint: str,
                 info: dict[str, Any]) -> Recorder:
        """The Recorder for this training (resumed when asked), with the model and optimizer restored."""
        recorder = Recorder(out, self.labels, epochs=self.options.epochs, resume=resume, restart=restart,
                            record_probs=self.options.records_probs(self.num_classes),
                            trained_labels=self.trained_labels, num_outputs=self.num_classes + int(self.threshold.any()),
                            channels=dict(self.strategy.records), info=info, fingerprint=fingerprint)
        if recorder.resumed_state is not None:
            try:
                self.load(recorder.resumed_state)
            except BaseException:
                recorder.abandon()
                raise
        return recorder

    def state(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(), "strategy": self.strategy.state_dict()}

    def load(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.strategy.load_state_dict(state.get("strategy") or {})

    # --- the loop -----------------------------------------------------------------------------------

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

    def train_epoch(self, epoch: int, recorder: Recorder | None = None, on_batch=None) -> None:
        """One pass over the training set in a per-epoch seeded order (this rank's share under
        torchrun), each batch's logits handed to ``recorder``."""
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
        given = self.given.to(self.device)
        self.model.train()
        for inputs, index in self._batches(self._loader(self.data.train, training_batches(order, self.options.batch_size))):
            inputs = augment_batch(inputs.to(self.device, non_blocking=True), self.augment)
            targets = given[index.to(self.device, non_blocking=True)]
            with self._autocast():
                logits = self.train_model(inputs)
            logits = logits.float()
            losses = F.cross_entropy(logits, targets, reduction="none")
            objective, values = self.strategy.objective(Batch(inputs, index.to(self.device), targets, logits, losses))
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(objective).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if recorder is not None:
                recorder.update(index, logits, targets, **values)
            if on_batch is not None:
                on_batch(len(index))

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

    def record_eval(self, epoch: int, recorder: Recorder) -> None:
        """The eval-mode pass over the training set; the penultimate features after the last epoch."""
        import torch

        if epoch == self.options.epochs - 1 and self.record_features:
            logits, features = self._predict(self.data.train, with_features=True)
        else:
            logits, features = self._predict(self.data.train), None
        recorder.record_eval(torch.arange(len(logits)), logits, features)

    def test_accuracy(self) -> float | None:
        if self.data.test is None or len(self.data.test) == 0:
            return None
        import torch

        logits = self._predict(self.data.test)[:, :self.data.num_classes]  # never the fake threshold class
        truth = torch.as_tensor(self.data.test.labels, device=self.device)
        return float((logits.argmax(1) == truth).float().mean().item())


class SubsetSampleSet(SampleSet):
    """Some samples of another sample set, renumbered from 0."""

    def __init__(self, base: SampleSet, indices: np.ndarray) -> None:
        super().__init__([base.ids[i] for i in indices], base.labels[indices])
        self.base, self.indices = base, np.asarray(indices)

    def load(self, index: int):
        return self.base.load(int(self.indices[index]))


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
