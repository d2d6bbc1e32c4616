"""Training options and every check on them, so ``train --dry-run`` refuses what ``train`` would."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from noisyctl.augment import check_preset
from noisyctl.errors import NoisyctlError
from noisyctl.estimate import FEW_CLASSES
from noisyctl.training.recorder import PROBS_AUTO_MAX_CLASSES

OPTIMIZERS = ("sgd", "adamw", "adam")
SCHEDULES = ("cosine", "constant", "step")
FEATURES_AUTO_MAX_BYTES = 1 << 30  # above this, penultimate features are recorded only when asked
# Unless --folds says otherwise, a small training set also trains FOLDS_AUTO held-out models, for the
# noise count that does not rest on its losses alone. A small set's losses read least reliably: a
# few optimizer steps per epoch leave hard clean samples unfitted, and a mixture is fitted on a few
# hundred losses (iris, 150 samples with 5% noise, read 11.3% from them; held out, 4.7%). Its
# held-out models cost about twice the training of a run that takes seconds. On the 40 runs of
# 150-569 samples made to check this (benchmarks/calibration.py --small), 29 of the 32 noisy ones
# came within the tolerance with them and 27 without, none worse; the 8 clean ones read 1% or
# less either way. With fewer than FOLDS_AUTO_MIN_SAMPLES, a fold has too little to learn from.
# Built-in models have bounds of their own (FOLDS_AUTO_MAX_BY_MODEL). The light ones (the MLP train
# picks for feature vectors, and LeNet) train in seconds, so their held-out models stay cheap on
# larger sets: the MLP (about 2 ms a sample for 30 epochs on 2 CPU cores; 20,000 blobs trained in 31
# s alone, 93 s with them) up to 30,000 samples, the largest measured, LeNet up to 10,000. They are
# also the models whose losses leave a clean tail heavier than its quartiles say: scikit-learn's
# clean digits as 0-1 feature vectors (1,797) read 1.7% from an MLP's losses, 0.5% held out; an MLP
# on clean digits' pixels 2.2% and 0.6%; LeNet on digits with 5% pair-flip noise 7.2% and 4.6%. On
# larger sets an MLP, trained more steps, half memorises some wrong labels, which the losses'
# mixture leaves out and the held-out anchors count: of 8 noisy blobs runs of 12,000-30,000 samples,
# 3 within the tolerance from the losses alone and 6 with them (20,000 with 2% uniform noise: 1.46%
# to 1.87%), the 5 clean ones at 0.17% or less either way (thirty-third pass in docs/benchmarks-history.md).
# Tasks of two or three classes (FEW_CLASSES) get them up to FOLDS_AUTO_MAX_FEW_CLASSES samples with
# any model: there the losses undercount (a wrong label near the boundary looks like a hard clean
# one) and the held-out anchors count the rest (small-cnn on two classes of generated shapes with
# 2-5% noise: 0.2-3.2% alone, 2.1-4.4% with them), at three more trainings of the model. small-cnn,
# the model train picks for images, gets them up to 5,000 samples, about the MLP's budget (5,000
# generated shapes train in about a minute on 2 CPU cores, three with them). What they buy there is
# the ranking where noise is little, which the held-out models' loss refines (learned's
# little_noise_order): on the calibration set's 24 digits and shapes settings at 0.5-5% `learned` is
# at or above the best hand-crafted detector in 21 with them and 15 without, on the fresh runs in 7
# of 8 and 5. The count is about even (over the 85 noisy small-cnn runs of 1,001-5,000 samples in
# five sets, 4 more within the tolerance and 3 fewer; fifty-second pass in docs/benchmarks-history.md), and
# the 23 clean ones read 0.2% or less with them (0.65% at most without). text-bag, as fast a sample
# as small-cnn, is left at FOLDS_AUTO_MAX_SAMPLES: its losses alone already count text well (25 runs
# of 1,500-4,000 generated tickets: 15 of 18 noisy ones within the tolerance with or without them),
# and their loss in learned's order ranked it lower (at or above the best hand-crafted detector in 7
# of 16 runs at 0.5-5%, 11 without; fifty-third pass).
FOLDS_AUTO = 3
FOLDS_AUTO_MIN_SAMPLES = 100
FOLDS_AUTO_MAX_SAMPLES = 1_000
FOLDS_AUTO_MAX_BY_MODEL = {"mlp": 30_000, "lenet": 10_000, "small-cnn": 5_000}
FOLDS_AUTO_MAX_FEW_CLASSES = 10_000


def held_out_default_words() -> str:
    """``decided_folds``' rule in words, from the limits above, for ``train --help`` and the benchmarks:
    "3 on 100-1,000 samples (100-30,000 for mlp, 100-10,000 for lenet and with two or three classes,
    100-5,000 for small-cnn)"."""
    groups: dict[int, list[str]] = {}
    for model, largest in FOLDS_AUTO_MAX_BY_MODEL.items():
        groups.setdefault(largest, []).append(f"for {model}")
    groups.setdefault(FOLDS_AUTO_MAX_FEW_CLASSES, []).append("with two or three classes")
    wider = ", ".join(f"{FOLDS_AUTO_MIN_SAMPLES}-{largest:,} {' and '.join(who)}"
                      for largest, who in sorted(groups.items(), reverse=True))
    return f"{FOLDS_AUTO} on {FOLDS_AUTO_MIN_SAMPLES}-{FOLDS_AUTO_MAX_SAMPLES:,} samples ({wider})"


# --model auto: the built-in model that reads the dataset's kind of input (DatasetData.kind)
MODEL_FOR_INPUTS = {"image": "small-cnn", "features": "mlp", "text": "text-bag"}


@dataclass
class TrainOptions:
    model: str = "auto"  # a model plugin; auto: MODEL_FOR_INPUTS, by the data's kind of input
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
    folds: int | None = None  # K > 1: also train K models for out-of-fold probabilities; None: decided_folds
    aum_threshold_set: int = 0  # 1 or 2: relabel N/(C+1) samples to a fake class (AUM threshold samples)
    record_features: bool | None = None  # penultimate features after training; None: when they fit in 1 GiB
    true_labels: bool = False  # train on the truth (synthesized noise only): the reference cleaning aims for
    strategy: str = "standard"  # a training-strategy plugin
    strategy_options: dict[str, Any] = field(default_factory=dict)
    trusted: str | None = None  # labels file of trusted samples (its reviewed ones), for strategies that use them

    def check(self) -> None:
        """The checks that need nothing but the options."""
        if self.epochs < 1:
            raise NoisyctlError(f"epochs must be at least 1, not {self.epochs}")
        if self.batch_size < 1 or self.eval_batch_size < 1:
            raise NoisyctlError("batch sizes must be at least 1")
        if self.optimizer not in OPTIMIZERS:
            raise NoisyctlError(f"unknown optimizer '{self.optimizer}'; available: {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise NoisyctlError(f"unknown schedule '{self.schedule}'; available: {', '.join(SCHEDULES)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise NoisyctlError(f"learning rate must be a positive number, not {self.lr}")
        if not (0 <= self.momentum < 1):
            raise NoisyctlError(f"momentum must lie in [0, 1), not {self.momentum}")
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            raise NoisyctlError(f"weight decay cannot be negative, not {self.weight_decay}")
        if not 0 <= self.seed < 2 ** 63:
            raise NoisyctlError(f"seed must lie in 0..2^63-1, not {self.seed}")
        if self.workers < 0:
            raise NoisyctlError("workers cannot be negative")
        if self.aum_threshold_set not in (0, 1, 2):
            raise NoisyctlError(f"aum threshold set must be 0 (none), 1 or 2, not {self.aum_threshold_set}")
        if self.folds is not None and (self.folds == 1 or self.folds < 0):
            raise NoisyctlError(f"folds must be 0 (none) or at least 2, not {self.folds}")
        if self.aum_threshold_set and self.strategy != "standard":
            raise NoisyctlError("AUM threshold samples (--aum-threshold-set) train with the standard strategy only")
        check_preset(self.augment)

    def check_plan(self, *, head_features: int | None, strategy, processes: int, has_trusted: bool) -> None:
        """The checks that need the model, the strategy and the number of processes too."""
        self.check()
        if processes > 1 and (self.strategy != "standard" or self.folds):
            raise NoisyctlError("under torchrun, train runs the standard strategy without --folds; run "
                                "those in one process")
        if self.record_features and head_features is None:
            raise NoisyctlError(f"model '{self.model}' has no linear last layer to take features from")
        if strategy.needs_trusted and not has_trusted:
            raise NoisyctlError(f"strategy '{self.strategy}' needs trusted samples: give --trusted FILE "
                                f"(a labels file whose reviewed samples are trusted)")

    def decided_model(self, input_kind: str) -> "TrainOptions":
        """These options with ``model`` decided: as given, or (auto) the built-in model for
        ``input_kind`` (``MODEL_FOR_INPUTS``: image, features or text)."""
        if self.model != "auto":
            return self
        return replace(self, model=MODEL_FOR_INPUTS.get(input_kind, MODEL_FOR_INPUTS["image"]))

    def decided_folds(self, samples: int, num_classes: int, processes: int = 1) -> "TrainOptions":
        """These options (their model decided) with ``folds`` decided: as given, or (None)
        ``FOLDS_AUTO`` for a training set of ``FOLDS_AUTO_MIN_SAMPLES`` to ``FOLDS_AUTO_MAX_SAMPLES``
        samples (to the built-in models' own bounds, ``FOLDS_AUTO_MAX_BY_MODEL``, and for any model
        with ``FEW_CLASSES`` classes or fewer to ``FOLDS_AUTO_MAX_FEW_CLASSES`` at least) trained in
        one process, else 0."""
        if self.folds is not None:
            return self
        largest = FOLDS_AUTO_MAX_BY_MODEL.get(self.model, FOLDS_AUTO_MAX_SAMPLES)
        if num_classes <= FEW_CLASSES:
            largest = max(largest, FOLDS_AUTO_MAX_FEW_CLASSES)
        cheap = FOLDS_AUTO_MIN_SAMPLES <= samples <= largest
        return replace(self, folds=FOLDS_AUTO if cheap and processes == 1 else 0)

    def held_out_reason(self, samples: int, num_classes: int, processes: int = 1) -> str:
        """Why ``decided_folds`` fits held-out models these options (their model decided) did not ask
        for, where the few classes alone decide it, else "": a binary task trains four times over, and
        says why (an MLP or a small set gets them whatever the classes)."""
        fitted = self.decided_folds(samples, num_classes, processes).folds
        fitted_anyway = self.decided_folds(samples, FEW_CLASSES + 1, processes).folds
        return "two or three classes, whose losses alone miscount" if fitted and not fitted_anyway else ""

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


def options_digest(options: TrainOptions) -> "hashlib._Hash":
    """A running hash of every option: what a checkpoint made with them must match to be resumed."""
    return hashlib.sha256(json.dumps(asdict(options), sort_keys=True, default=str).encode())


def for_predicting(options: TrainOptions) -> TrainOptions:
    """The options of a model trained only to predict (fold models, a relabeling model): the same
    model, schedule and seed, nothing recorded, the standard strategy on the labels as given."""
    return replace(options, record_eval=False, record_probs=False, record_features=False, folds=0,
                   aum_threshold_set=0, true_labels=False, strategy="standard", strategy_options={}, trusted=None)


def options_from_run(run) -> TrainOptions:
    """The training options a run file records (to retrain the same way); unknown keys are ignored."""
    if run.recorded_by:
        raise NoisyctlError(f"{run.path} was recorded by {run.recorded_by}, not trained by `noisyctl train`, so "
                            f"noisyctl cannot retrain it: train in your own loop on the samples the labels file "
                            f"keeps (samples/removed marks the others)")
    known = {f.name for f in fields(TrainOptions)}
    return TrainOptions(**{k: v for k, v in run.training.items() if k in known})


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
