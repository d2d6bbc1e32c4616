"""The typed interfaces plugins implement and use.

A plugin imports from here (and ``noisyctl.hookspecs.hookimpl``), never from
another plugin: datasets hand the core a :class:`DatasetData`, models are built
from a :class:`ModelSpec`, noise generators map label arrays to label arrays,
and detectors read a :class:`Dynamics` view of a run file.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

import numpy as np

from noisyctl import __version__ as NOISYCTL_VERSION
from noisyctl.agreement import NOT_LABELED, Annotations, agreement_by_person, majority
from noisyctl.augment import augment_batch
from noisyctl.errors import NoisyctlError, check_share
from noisyctl.estimate import (AGGREGATES, NoiseRateEstimate, aggregate_labels, dawid_skene, estimate_noise_rate,
                               gmm_noisy_posterior, held_out_noise_rate, loss_evidence, presented_mean,
                               read_run_evidence, run_annotators_posterior, run_held_out_contradicted_anchors,
                               run_held_out_label_probability, run_noise_rate)
from noisyctl.fileio import atomic_folder, atomic_output
from noisyctl.hookspecs import hookimpl
from noisyctl.label_studio import (ANNOTATION_COLUMNS, annotation_choices, annotator, answered_annotations,
                                   is_label_studio_export, is_label_studio_flat_export)
from noisyctl.prototypes import prototype_labels
from noisyctl.recipe import read_yaml_file

__all__ = [
    "hookimpl", "NoisyctlError", "SampleSet", "TensorSampleSet", "DatasetData", "ModelSpec", "encode_text",
    "decode_texts", "NoiseContext",
    "Dynamics", "open_run", "Detector", "BlockDetector", "TrainableDetector", "DetectorResult", "choose_exact",
    "check_rate", "check_share", "gmm_noisy_posterior", "estimate_noise_rate", "run_noise_rate", "read_run_evidence",
    "run_held_out_label_probability", "run_held_out_contradicted_anchors",
    "held_out_noise_rate", "loss_evidence", "presented_mean", "NoiseRateEstimate",
    "Corrector", "Correction", "suggestions", "held_out_probabilities", "TrainingStrategy", "TrainingHost", "Batch", "augment_batch",
    "prototype_labels", "atomic_output", "atomic_folder", "read_yaml_file", "NOISYCTL_VERSION",
    "is_label_studio_export", "is_label_studio_flat_export", "ANNOTATION_COLUMNS", "answered_annotations",
    "annotation_choices", "annotator", "majority",
    "agreement_by_person", "Annotations", "NOT_LABELED", "dawid_skene", "run_annotators_posterior",
    "AGGREGATES", "aggregate_labels",
]


# --- datasets ---------------------------------------------------------------

class SampleSet(ABC):
    """One subset of a dataset: stable ids, labels, and inputs loaded lazily by index.

    Indexing yields ``(input_tensor, index)`` with the plain (recording) transform
    applied; the trainer owns the labels, so noisy labels never have to be written
    back into the dataset, and it applies training augmentation to whole batches.
    Instances are handed to DataLoader worker processes, so keep them picklable
    (paths, not open files).
    """

    def __init__(self, ids: list[str], labels: np.ndarray) -> None:
        if len(ids) != len(labels):
            raise NoisyctlError(f"dataset has {len(ids)} ids but {len(labels)} labels")
        self.ids = list(ids)
        self.labels = np.asarray(labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int):
        return self.load(int(index)), int(index)

    @abstractmethod
    def load(self, index: int):
        """Return the input tensor of sample ``index`` (a float tensor of the dataset's input shape;
        for text, its UTF-8 bytes as a zero-padded uint8 tensor, see :func:`decode_texts`)."""

    def text(self, index: int) -> str | None:
        """The sample as a person reads it: a text dataset's text, a table row's cells (the suspects,
        the review CSV and the report show it); None for samples that are not text (images)."""
        return None

    def picture(self, index: int):
        """The sample's image as a person looks at it, before it was resized for the model: a path or
        a binary file object PIL opens (its file, its encoded bytes). The review page shows it; None
        (the default) shows the loaded input instead."""
        return None


class TensorSampleSet(SampleSet):
    """Inputs held in memory as one tensor (small datasets, feature vectors)."""

    def __init__(self, ids, labels, inputs) -> None:
        super().__init__(ids, labels)
        self.inputs = inputs

    def load(self, index: int):
        return self.inputs[index]


@dataclass
class DatasetData:
    """What a dataset plugin returns.

    ``default_augment`` names the augmentation preset that suits the data when
    ``train --augment auto`` (``none``, ``crop``, ``flip-crop``, ``resized-crop``);
    ``class_groups`` lists superclasses as lists of class indices when the data has
    them (CIFAR-100), for noise that flips within a group. ``input_kind`` says what the
    inputs are (``image`` [C, H, W], ``features`` [D] or ``text`` [max_bytes] of UTF-8
    bytes), so a model can refuse inputs it cannot read; None: from the shape. ``notes`` are
    one-line choices the loader made that the user should see (the input size it picked).
    ``relabeled_copy(labels, out)``, where the data was read from files of its own (a table, texts,
    an image list, a Datumaro annotation file, arrays, CIFAR batches, MNIST idx files, class
    folders), writes them to ``out`` (a file in the format its suffix names, or a new folder laid out
    as the dataset's) with each training sample's label set to the class ``labels``
    maps its id to (``None``: the record is left out; an id it lacks: the record is written as it
    is) and returns the records written; ``export --data-copy`` calls it. ``annotations``, where the
    data holds several annotators' labels of its training samples, keeps each one's (the labels
    are then their majority, or the label the data chose): ``synth`` writes them beside the
    labels, and ``detect`` counts the noise from them too.
    """

    train: SampleSet
    class_names: list[str]
    input_shape: tuple[int, ...]
    test: SampleSet | None = None
    default_augment: str = "none"
    class_groups: list[list[int]] | None = None
    input_kind: str | None = None
    notes: list[str] = field(default_factory=list)  # what the loader chose for the user (shown by train)
    relabeled_copy: Callable[[dict[str, str | None], Path], int] | None = None
    annotations: Annotations | None = None

    @property
    def kind(self) -> str:
        return self.input_kind or ("image" if len(self.input_shape) == 3 else "features")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


# --- models -----------------------------------------------------------------

@dataclass(frozen=True)
class ModelSpec:
    """What a model factory is asked to build: ``factory(spec, **options)``, with the user's
    ``-M KEY=VALUE`` options as keyword arguments."""

    name: str  # as the user wrote it, e.g. "timm:resnet18"
    num_classes: int
    input_shape: tuple[int, ...]  # (channels, height, width), (features,) or (max_bytes,) of text
    weights: Path | None = None  # pretrained weights from a local file, never a hub
    input_kind: str = "image"  # image, features or text (DatasetData.kind)

    @property
    def variant(self) -> str | None:
        return self.name.split(":", 1)[1] if ":" in self.name else None


def encode_text(text: str, max_bytes: int):
    """A text as the uint8 tensor [max_bytes] a text dataset yields: UTF-8, cut at a character
    boundary, zero-padded."""
    import torch

    data = text.encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore").encode("utf-8")
    out = torch.zeros(max_bytes, dtype=torch.uint8)
    out[:len(data)] = torch.frombuffer(bytearray(data), dtype=torch.uint8) if data else out[:0]
    return out


def decode_texts(batch) -> list[str]:
    """The texts of a batch of text inputs ([B, max_bytes] uint8, any device), for text models."""
    import torch

    rows = batch.detach().to("cpu", dtype=torch.uint8).numpy()
    return [bytes(row).rstrip(b"\0").decode("utf-8", errors="replace") for row in rows]


# --- noise ------------------------------------------------------------------

def check_rate(rate: float) -> float:
    """A noise rate, refused outside [0, 1)."""
    return check_share(rate, "noise rate")


@dataclass
class NoiseContext:
    """What a noise generator sees: the clean labels and where they come from. A noise whose labels
    come from several annotators (``from-file -N annotators=KEYS``) keeps each one's in
    ``annotations``; it starts as the dataset's own, where it has them."""

    labels: np.ndarray
    class_names: list[str]
    rng: np.random.Generator
    dataset: DatasetData | None = None
    annotations: Annotations | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def class_index(self, name_or_index: str | int) -> int:
        """A class given by name or by index, checked."""
        key = str(name_or_index).strip()
        if key in self.class_names:
            return self.class_names.index(key)
        if key.isdigit() and int(key) < self.num_classes:
            return int(key)
        raise NoisyctlError(f"unknown class '{key}'; classes: {', '.join(self.class_names)}")


def choose_exact(n: int, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Indices of exactly ``round(rate * n)`` distinct samples, chosen at random."""
    count = int(round(check_rate(rate) * n))
    return np.sort(rng.choice(n, size=count, replace=False))


# --- dynamics and detectors -------------------------------------------------

class Dynamics(Protocol):
    """Read access to a run file's recorded dynamics (see docs/schema.md).

    Channels are ``[samples, epochs]`` arrays named as in the schema, e.g.
    ``train_loss``, ``train_margin``, ``eval_loss``, ``eval_prob``,
    ``eval_margin``, ``eval_pred``.
    """

    num_samples: int
    num_classes: int
    num_epochs: int
    given_labels: np.ndarray
    threshold_samples: np.ndarray | None  # AUM threshold samples (trained on a fake class), if any
    # The run's labels: ``ids``, ``class_names``, ``is_noisy`` (the truth, for synthesized noise; else
    # None), ``dataset`` and ``noise`` (the specs they came from).
    labels: Any

    def has_channel(self, name: str) -> bool: ...

    def has(self, item: str) -> bool:
        """Whether the run holds ``item`` of a plugin's ``reads`` (a channel, ``probabilities``, ``features``)."""
        ...

    def probabilities(self, name: str) -> np.ndarray | None:
        """``late_mean`` (in-sample) or ``out_of_fold`` class probabilities [N x C], when recorded."""
        ...

    def best_probabilities(self) -> tuple[np.ndarray, str] | None:
        """Class probabilities [N x C] (float64, clipped away from 0, rows summing to 1) and their
        source, ``out_of_fold`` when recorded, else ``late_mean``; None when neither was."""
        ...

    def features(self, name: str = "penultimate") -> np.ndarray | None:
        """Per-sample features [N x D] from the model's penultimate layer after training, when recorded."""
        ...

    def channel(self, name: str) -> np.ndarray: ...

    def iter_blocks(self, channels: tuple[str, ...]) -> Iterator[tuple[slice, dict[str, np.ndarray]]]:
        """Yield ``(sample_slice, block)`` covering every sample in order.

        ``block`` maps each asked channel to its ``[block, epochs]`` array, and
        ``"given_label"`` to the block's given labels.
        """
        ...

    def iter_epoch_blocks(self, channels: tuple[str, ...]) -> Iterator[tuple[slice, dict[str, np.ndarray]]]:
        """Yield ``(epoch_slice, {channel: [samples, block] array})`` covering every epoch in order:
        for features that compare samples within an epoch (ranks)."""
        ...


def open_run(path: str | Path) -> Dynamics:
    """Open another run file (a context manager), e.g. the paired run of AUM's two threshold sets or
    the runs a detector learns from; its fields are checked against the schema as ``detect``'s are."""
    from noisyctl.store import RunFile

    return RunFile(path)


@dataclass
class DetectorResult:
    """Scores follow one convention: higher means more likely mislabeled; NaN means "not judged"
    (the core also leaves a run's AUM threshold samples unjudged, unless ``info["judges_threshold_samples"]``)."""

    scores: np.ndarray
    flagged: np.ndarray | None = None  # the detector's own decision, when it has one
    info: dict[str, Any] = field(default_factory=dict)


class Detector(ABC):
    """A noise detector. ``reads`` names what it reads of a run: dynamics channels (``train_loss``,
    ``eval_prob``, ...), ``probabilities`` or ``features``; the core checks a run has them first."""

    description: str = ""
    reads: tuple[str, ...] = ()

    @abstractmethod
    def score(self, dynamics: Dynamics) -> DetectorResult:
        ...


class BlockDetector(Detector):
    """A detector whose score of a sample depends on that sample alone. Its ``reads`` are dynamics
    channels only.

    The core streams the file in blocks of samples, so memory stays flat.
    """

    @abstractmethod
    def score_block(self, block: dict[str, np.ndarray]) -> np.ndarray:
        ...

    def score(self, dynamics: Dynamics) -> DetectorResult:
        scores = np.empty(dynamics.num_samples, dtype=np.float64)
        for where, block in dynamics.iter_blocks(self.reads):
            scores[where] = self.score_block(block)
        return DetectorResult(scores)


class TrainableDetector(Detector):
    """A detector that learns from runs whose noise is known: ``noisyctl train-detector --kind NAME``
    lists and trains every registered detector of this kind."""

    @classmethod
    @abstractmethod
    def train(cls, runs: list[Path], out: Path, *, epochs: int, batch_size: int, lr: float, seed: int,
              progress: Callable[..., None] | None = None, **settings: Any) -> dict[str, Any]:
        """Learn from ``runs`` (run files with ``samples/is_noisy``) and write the weights to ``out``
        atomically. ``settings`` are the command's other options (``members``, ``hidden``, ``crop``,
        ``fine_tune``); ``progress(text, done, total)`` says what it is doing as it goes (the command
        shows it as a progress bar; a text ending in a figure is also printed as a line). Returns a summary: ``out``, ``kind``, ``samples``, ``members``, ``runs`` (a dict per
        run: ``dataset``, ``noise``) and ``holdout`` (``map``, ``auc``, ``epoch``)."""


# --- correctors -------------------------------------------------------------

@dataclass
class Correction:
    """A corrector's proposal for every sample: a label (the given one when it proposes no change)
    and a confidence in [0, 1]."""

    labels: np.ndarray
    confidence: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)


class Corrector(ABC):
    """Proposes labels from a run file. ``reads`` names what it reads, as a detector's does:
    ``features`` (penultimate-layer features), ``probabilities`` (late-epoch or out-of-fold class
    probabilities) or dynamics channels.

    ``propose(run)`` returns a label and a confidence for every sample. A corrector that needs to
    know which samples the correction will apply to (the detector's decision) declares a second
    parameter, ``propose(run, flagged)``, and gets them as a bool array [N]. Proposals under
    ``min_confidence`` are "not sure": ``correct --apply`` leaves them for a person to review.
    """

    description: str = ""
    reads: tuple[str, ...] = ()
    min_confidence: float = 0.0

    @abstractmethod
    def propose(self, run: Dynamics) -> Correction:
        ...


def suggestions(run: Dynamics) -> tuple[np.ndarray, np.ndarray] | None:
    """``(labels, share)``, both [N]: the class the model most often predicted instead of each
    sample's given label in the run's eval passes (the given label when it always agreed, as
    ``detect``'s "suggested" column shows), and the share of the passes that predicted it. None
    when the run has no eval passes."""
    from noisyctl.detection import suggestions as compute

    return compute(run)


def held_out_probabilities(run: Dynamics, held: np.ndarray) -> np.ndarray:
    """Class probabilities [held.sum() x C] of the ``held`` samples from a model trained as the run
    was (its dataset, options and seed) on all the other samples: a model that never learned the
    held-out labels. Costs one training."""
    from noisyctl.relabel import held_out_probabilities as compute

    return compute(run, held)


# --- training strategies ----------------------------------------------------

@dataclass
class Batch:
    """One training step as a strategy sees it; tensors live on the training device."""

    inputs: Any  # the augmented inputs
    index: Any  # which samples (rows of the run)
    targets: Any  # their given labels
    logits: Any  # training-mode logits of ``inputs`` (float32, in the autograd graph)
    losses: Any  # per-sample cross-entropy of the given labels (in the graph)


class TrainingHost(Protocol):
    """What the trainer offers a strategy."""

    model: Any  # the torch.nn.Module being trained
    device: Any
    num_classes: int
    num_samples: int
    epochs: int
    augment: str  # the augmentation preset of this run

    def learning_rate(self) -> float:
        """The learning rate of the current epoch."""
        ...

    def given_labels(self) -> Any:
        """The labels the model trains on [N], on the device."""
        ...

    def features(self) -> Any:
        """Eval-mode penultimate-layer features of every training sample [N x D] (leaves the model in
        eval mode; the trainer switches back to training mode before the epoch's steps)."""
        ...

    def trusted(self) -> tuple[Any, Any] | None:
        """The trusted samples (``train --trusted``) as ``(inputs, labels)`` tensors on the device, or None."""
        ...


class TrainingStrategy(ABC):
    """How ``train`` turns a batch into the loss it minimises.

    ``records`` names the dynamics channels the strategy records per presentation (see the schema)
    with the value a sample gets when it has none. ``objective`` returns the loss to minimise and a
    dict of per-sample values of those channels for the batch. State that must survive a resume goes
    through ``state_dict`` (tensors and plain values only: checkpoints load with weights_only).
    """

    description: str = ""
    records: dict[str, float] = {}
    needs_trusted: bool = False

    def setup(self, host: TrainingHost) -> None:
        self.host = host

    def begin_epoch(self, epoch: int) -> None:
        """Called before each epoch's steps."""

    @abstractmethod
    def objective(self, batch: Batch) -> tuple[Any, dict[str, Any]]:
        ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
