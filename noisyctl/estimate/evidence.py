"""What a run's losses say of each sample (``read_run_evidence``): its mean loss from where the model
began to learn, whether it was learned steadily, refused to the end, refused at first sight or
left under chance, and whether the model ever believed it."""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

from noisyctl.estimate.mixture import STEADY_BY, UNFITTED_LOSS

# Where the losses cannot tell, the interval's upper end also reaches the samples whose label the
# model contradicted after the first EARLY_LEARNING share of training: a wrong label the model fitted
# only by memorising it was contradicted before (the model predicted the true class first), so
# none of them can be ruled out. The first epochs are left out: there the model has not yet fitted
# even the clean samples (it contradicted 23-99% of every clean calibration run somewhere in them).
EARLY_LEARNING = 0.25
# A model that starts on a plateau (LeNet on digits sat at chance for three epochs) has not begun
# learning while the median sample's loss stays within this share of its first epoch's; those
# epochs say nothing of the labels, and their chance-level losses are left out of the estimate.
PLATEAU = 0.97
# A label the model still gave under REFUSED_PROBABILITY (and under a tenth of chance, 1/C) in each
# of its last REFUSED_EPOCHS epochs, after training on it all run, was refused: the model fits a
# clean sample, or at least draws it toward its label, and memorises a wrong one in time. A model
# that already knows the data and is fine-tuned for a few epochs does not: its wrong labels stay
# near 1e-4 while its clean losses spread so wide that the tail's normal reaches past them (1-2%
# noise read 0.0-0.2%). The refused share is a floor under the estimate. On the 437 cached runs of
# every set and probe (fine-tuned or trained from scratch, 0-45% noise), no clean run refused more
# than 0.22%; it moved 16 noisy readings (8 into the tolerance, none out), and 93-100% of what
# those runs refused were wrong labels (LeNet refuses a few hard clean digits too, 50-77% wrong,
# under its own count). A model that memorises refuses nothing, so the floor leaves such runs
# alone. Of 32 runs made after it (fine-tuned, and short runs from scratch), it moved two with
# 1% noise from 0.0% to 0.9% and four clean ones from 0.00% to 0.11% (one sample: no clear sign).
REFUSED = "refused"
REFUSED_PROBABILITY = 0.01
REFUSED_EPOCHS = 2
# A model that knew the data from its first recorded epoch (KNEW_AT_START: fine-tuned) read each
# sample's label in that epoch's training batches before it had trained on it: a held-out reading
# from the run itself. A label it never believed and gave under REFUSED_PROBABILITY at first sight
# counts in the floor as held-out models' refusals do. Fine-tuned, a model begins to learn some of
# its wrong labels, so the labels it still refused at its end undercount them (digits with 2% noise:
# 12 of 18 refused, 17 of 18 at first sight and never believed); on the 119 fine-tuned runs of
# benchmarks/fine_tuning.py, 0-5 clean labels of 899-2,000 were refused at first sight and never
# believed (0.0-0.25%); of what noisy runs counted so a median of 98% were wrong (71% at least).
# Its lower end rises only on clear evidence, as the held-out refusals' does. Training-loss
# channels only: an eval pass reads a sample after the model trained on it.
FIRST_SIGHT_REFUSED = "refused at first sight"
FIRST_SIGHT_CHANNELS = ("train_loss",)
# Where the losses cannot tell because a model that knew the data from its first epoch was
# fine-tuned briefly (pretrained 3-5 epochs, it leaves a tenth or more of its clean samples
# unfitted), a label it still gave under chance's probability (loss above log C) in each of its last
# REFUSED_EPOCHS epochs counts in the floor too: it knew the data and trained on that label every
# epoch, yet leans to another class; its unfitted clean samples mostly lie between log 2 and log C.
# On the 15 such runs of benchmarks/fine_tuning.py (digits: 7 clean, 8 with 1-3% noise), 3-7 clean
# labels of 899 were (0.3-0.8%; 12, 1.3%, on a CNN fine-tuned on digits from another domain); of
# what the noisy runs counted so, a median of 73% were wrong (52% at least), and the refusals alone
# undercount there (digits with 2% noise: 9-13 of 18 wrong labels refused at first sight and never
# believed, 16-17 under chance at the end). Its lower end rises only on clear evidence, as the
# first-sight refusals' does. Left out where the losses can tell: there it brought two fine-tuned
# readings into the tolerance and took two out of it (a clean run to 1.1%).
UNDER_CHANCE_AT_END = "under chance at the end"
# A ceiling from the same losses. A label the model never believed has a mean loss above log(C),
# a geometric-mean probability under chance. A model that knew the data from its first recorded
# epoch (the median sample's loss under a tenth of chance's: fine-tuned, or easy data learned
# within an epoch) met its wrong labels far above chance and had to memorise them from there, so a
# label it believed on average is not one; nor is it where the model still refuses a quarter or
# more of its never-believed labels at its end (it holds its wrong labels rather than memorising
# them). There the count is at most the never-believed share. Fine-tuned after a short
# pretraining, a model keeps a shoulder of hard clean samples below chance's loss, which the
# mixture took in with the wrong labels (tickets with 2-5% noise read 7.2-7.7%; a clean run 4.0%).
# A model that meets its labels near chance (its first epoch's median at 0.37 of chance's loss or
# more on the runs trained from scratch here) fits some wrong ones below it, and where it refuses
# few of those it never believed (shapes with 5-10% instance noise: 6-7%) the share would
# undercount: left alone.
NEVER_BELIEVED = "never believed"
# Whether the model had believed a label by halfway through its run (from where it began to learn):
# the mean loss over the first BELIEVED_BY share of those epochs above log C says it had not. A
# model that trains long enough memorises its wrong labels in the second half, and their mean over
# the whole run falls under log C; halfway it had not yet (see ``ANCHORS_AGREE`` in ``run``).
BELIEVED_BY = 0.5
KNEW_AT_START = 0.1
HELD_NOT_MEMORISED = 0.25
# A model trained from scratch with few optimizer steps for its samples (the run's steps over its
# samples, about epochs / batch size: 30 epochs in batches of 512 is 0.06) is still in its early
# learning when it stops: it fits what the samples share, and a wrong label only by memorising it,
# which it has not begun. Its losses' tail then holds clean samples learned late, not wrong labels:
# a user's loop on clean digits (a small CNN, 5, 8 and 12 epochs in batches of 64, 30 in batches of
# 128-512; 22 runs) read 1.3-9.3% from the tail, while the labels it never believed were 0.1-1.3%;
# 10,000 shapes in batches of 128 and resnet32 on shapes in batches of 256 never believed 1.9-2.0%
# for 2% of wrong labels and 4.5-4.7% for 5%. Below this share, where the losses read little or no
# noise (the tail), the count is at most the never-believed share (``run._at_most_never_believed``;
# not where they read a mode of noise: a model that meets plausible wrong labels, instance noise or
# heavy pair-flip, believes them as the task, digits with 20% instance noise in 10 epochs never
# believed 3.8%). `train`'s defaults, 30 epochs in batches of 64, are 0.47 or more, where small-cnn
# memorises (digits with 1-5% noise never believed 0.0-1.9%). On 903 cached runs the ceiling moved
# 37, none out of the tolerance, 27 into it (20 of 22 of those clean digits to 1.3% or less).
FEW_UPDATES = 1 / 3
# A model trained from scratch with this many optimizer steps per sample or more has had time to
# memorise its wrong labels, and a wrong label it fitted has a clean label's mean loss: where the
# losses then read no clear sign, or weak evidence, that says little. Of the cached runs trained so
# without held-out models that read so (tables an MLP trained 100 epochs in batches of 32, 3.2 steps
# a sample; blobs 90 epochs and digits 100 in batches of 64, 1.4-1.6), all 19 with noise (3-5%) had
# it above the interval's upper end (0.2-2.8%), beside 15 clean ones (none of them weak); under a
# step a sample, 35 of the 44 noisy runs of no clear sign held the truth inside. `detect` says so,
# and the gate warns (``may_have_memorised``); held-out models count what it memorised (a like
# table read 3.5%).
MEMORISING_UPDATES = 1.0


def _left_plateau(median_losses: np.ndarray) -> int | None:
    """The first epoch whose median sample's loss fell below ``PLATEAU`` of the first epoch's; None
    when none did (or the first epoch has none: an imported run)."""
    median_losses = np.asarray(median_losses, dtype=np.float64)
    below = np.flatnonzero(median_losses < PLATEAU * median_losses[0]) if len(median_losses) else []
    return int(below[0]) if len(below) else None


def learning_start(median_losses: np.ndarray) -> int:
    """The epoch a run that started on a plateau (the median sample's loss, per epoch, within
    ``PLATEAU`` of its first for two epochs or more) began to learn in; 0 when the model learned from
    its first epoch, or never."""
    left = _left_plateau(median_losses)
    return left if left is not None and left >= 2 else 0


def never_learned(median_losses: np.ndarray) -> bool:
    """Whether the median sample's loss stayed within ``PLATEAU`` of its first epoch's through the
    last (two epochs or more), above the fitted line (log 2): a model that never began to learn,
    whose losses say nothing of the labels. LeNet on digits with 30% noise sat at chance for all of
    its 6 epochs, and a mixture found a clearly separated 2.9% in the chance-level losses' jitter,
    passing a 3% gate. A model recorded only after it had learned (a recorder added to a fine-tuned
    model's last epochs) stays level too, but below the line."""
    median_losses = np.asarray(median_losses, dtype=np.float64)
    return (len(median_losses) >= 2 and bool(np.isfinite(median_losses[0])) and _left_plateau(median_losses) is None
            and bool(median_losses[-1] > PLATEAU * UNFITTED_LOSS))


def presented_mean(values: np.ndarray) -> np.ndarray:
    """Each row's mean over the presentations it has: an imported run pads samples presented fewer
    times with NaN (as Datumaro keeps every sample's own series); a row with none is NaN (not judged)."""
    if not np.isnan(values).any():
        return values.mean(axis=1, dtype=np.float64)
    seen = ~np.isnan(values)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(seen, values, 0.0).sum(axis=1, dtype=np.float64) / seen.sum(axis=1)


def loss_evidence(losses: np.ndarray, num_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each sample's mean loss and whether the model learned it steadily (its loss fell
    ``STEADY_BY`` from its first epoch to its last, never rising ``STEADY_BY`` above the first,
    and, given ``num_classes``, ended below chance's log(num_classes)), from ``[N, epochs]`` losses
    of the given labels: the two inputs of ``estimate_noise_rate``, computed a block of samples at
    a time."""
    losses = np.asarray(losses, dtype=np.float64)
    mean = presented_mean(losses)
    seen = ~np.isnan(losses)
    with np.errstate(invalid="ignore"):
        if losses.shape[1] < 2:
            return mean, np.zeros(len(losses), dtype=bool)
        first = losses[:, 0]
        last_seen = losses.shape[1] - 1 - np.argmax(seen[:, ::-1], axis=1)
        last = losses[np.arange(len(losses)), last_seen]
        highest = np.where(seen[:, 1:], losses[:, 1:], -np.inf).max(axis=1, initial=-np.inf)
        learned = last < (np.inf if num_classes is None else np.log(num_classes))
        return mean, (last < first - STEADY_BY) & (highest <= first + STEADY_BY) & learned


def refused_labels(losses: np.ndarray, num_classes: int) -> np.ndarray:
    """Whether the model refused each sample's given label: its loss above -log(REFUSED_PROBABILITY)
    and log(10 * num_classes) in each of the last ``REFUSED_EPOCHS`` of ``[N, epochs]`` losses it was
    presented in (NaN: not presented; a sample presented in none of them is not refused)."""
    return _above_at_the_end(losses, _refused_loss(num_classes))


def under_chance_at_end(losses: np.ndarray, num_classes: int) -> np.ndarray:
    """Whether the model still gave each sample's given label less than chance's probability: its
    loss above log(num_classes) in each of the last ``REFUSED_EPOCHS`` of ``[N, epochs]`` losses it
    was presented in (as ``refused_labels``, at chance's bar)."""
    return _above_at_the_end(losses, float(np.log(num_classes)))


def _above_at_the_end(losses: np.ndarray, bar: float) -> np.ndarray:
    """Whether each row of ``[N, epochs]`` losses is above ``bar`` in each of its last
    ``REFUSED_EPOCHS`` epochs it was presented in (NaN: not presented)."""
    last = np.asarray(losses, dtype=np.float64)[:, -REFUSED_EPOCHS:]
    seen = ~np.isnan(last)
    return seen.any(axis=1) & ((last > bar) | ~seen).all(axis=1)


def _refused_loss(num_classes: int) -> float:
    """The loss above which a label is refused: -log(REFUSED_PROBABILITY), or log(10 * C) where that
    is higher (a tenth of chance)."""
    return float(np.log(max(1 / REFUSED_PROBABILITY, 10 * num_classes)))


def late_contradictions(predictions: np.ndarray, given_labels: np.ndarray) -> np.ndarray:
    """Whether each sample's predicted class differed from its given label in any epoch after the
    first ``EARLY_LEARNING`` share, from ``[N, epochs]`` eval-pass predictions (-1: none that epoch)."""
    later = predictions[:, int(EARLY_LEARNING * predictions.shape[1]):]
    return ((later != given_labels[:, None]) & (later >= 0)).any(axis=1)


# What the estimate reads, in order of preference: runs imported with eval passes only have no
# training loss, and their eval-mode loss is read the same way.
LOSS_CHANNELS = {"train_loss": "training loss", "eval_loss": "eval-mode loss"}
# A training batch of mixed inputs (mixup, cutmix) gives each label only its share of the mix: the
# training-mode loss of a label the model fits is above log 2 whenever the partner's share was the
# larger, at random, so the training losses say little of which labels are wrong (clean digits read
# 4.7-8.8% from them). Late in training, of the presentations whose eval pass gave the label 90% or
# more, 44-50% had such a training loss in digits runs with mixup (alpha 0.2 and 1), at most 5.3% in
# 816 runs without (cluttered shapes the most); above this share the eval-mode loss is read instead.
MIXED_BATCHES_ABOVE = 0.2


@dataclass
class RunEvidence:
    """What the estimate reads from a run's losses, per sample (``read_run_evidence``).

    ``mean_loss`` (N,): the mean loss of the given label from where the model began to learn (NaN:
    never presented); ``learned_steadily`` (N,): ``loss_evidence``'s flags; ``contradicted`` (N,):
    ``late_contradictions`` from the eval passes, read by ``run_noise_rate`` only where the losses
    cannot tell (None until then); ``learned``: False when the model never began to learn
    (``never_learned``); ``refused`` (N,): ``refused_labels``' flags; ``knew_at_start``: the median
    sample's loss in the first recorded epoch was under ``KNEW_AT_START`` of chance's, log(C) (a
    fine-tuned model, or easy data learned within an epoch); ``refused_at_first_sight`` (N,): where
    it knew the data then and the channel is a training loss (``FIRST_SIGHT_CHANNELS``), whether the
    first recorded epoch's loss was above the refused labels' bar (``refused_labels``), else None;
    ``under_chance_at_end`` (N,): where it knew the data then, ``under_chance_at_end``'s flags, else None;
    ``halfway_mean_loss`` (N,): the mean loss over the first ``BELIEVED_BY`` share of the epochs
    from where the model began to learn (None where not read); ``unfitted_at_end`` (N,): the loss
    still above log 2 (``UNFITTED_LOSS``) in each of the last ``REFUSED_EPOCHS`` (None where not read);
    ``channel``: the loss read (``LOSS_CHANNELS``); ``mixed_batches``: where the training batches
    were mixed and the eval-mode loss was read for that reason, ``mixed_batch_share``, else None;
    ``updates_per_sample``: the run's optimizer steps over the samples presented (``train_step``),
    None where the run does not know its steps (imported runs number each epoch's presentations
    alike); ``learning_from``: the first epoch the mean loss reads (``learning_start``), where a
    reading of another channel over the same epochs begins."""

    mean_loss: np.ndarray
    learned_steadily: np.ndarray
    refused: np.ndarray
    knew_at_start: bool
    contradicted: np.ndarray | None = None
    learned: bool = True
    refused_at_first_sight: np.ndarray | None = None
    under_chance_at_end: np.ndarray | None = None
    halfway_mean_loss: np.ndarray | None = None
    unfitted_at_end: np.ndarray | None = None
    channel: str = "train_loss"
    mixed_batches: float | None = None
    updates_per_sample: float | None = None
    learning_from: int = 0

    @property
    def updates_from_scratch(self) -> float | None:
        """The optimizer steps per sample of a model trained from scratch; None for one that knew
        the data from its first epoch, or a run that does not know its steps."""
        return None if self.knew_at_start else self.updates_per_sample

    @property
    def few_updates(self) -> bool:
        """A model trained from scratch with under ``FEW_UPDATES`` optimizer steps per sample: one
        that has not begun to memorise."""
        return self.updates_from_scratch is not None and self.updates_from_scratch < FEW_UPDATES

    @property
    def memorising(self) -> bool:
        """A model trained from scratch with ``MEMORISING_UPDATES`` optimizer steps per sample or
        more: one that had time to memorise its wrong labels."""
        return self.updates_from_scratch is not None and self.updates_from_scratch >= MEMORISING_UPDATES

    def never_believed(self, num_classes: int, halfway: bool = False) -> np.ndarray:
        """Whether the model never believed each label (N,): a mean loss above log C, a geometric-mean
        probability under chance (False for a sample never presented). ``halfway``: or had not
        believed it by halfway through the run (``halfway_mean_loss`` above log C)."""
        with np.errstate(invalid="ignore"):  # NaN: never presented
            never = self.mean_loss > np.log(num_classes)
            if halfway and self.halfway_mean_loss is not None:
                never |= self.halfway_mean_loss > np.log(num_classes)
            return never


# detect's estimate and the learned detector both read the same opened run: once is enough.
_evidence_read: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def read_run_evidence(dynamics) -> RunEvidence | None:
    """A run's ``RunEvidence``: its samples' losses of the first of ``LOSS_CHANNELS`` it recorded,
    read from where it began to learn (``learning_start``), a block of samples at a time, once per
    opened run; None when the run recorded no loss. ``dynamics`` is a ``noisyctl.api.Dynamics``
    (a ``RunFile``, or what a detector is handed)."""
    try:
        return _evidence_read[dynamics]
    except (KeyError, TypeError):  # TypeError: an object that cannot be weakly referenced
        pass
    channel = next((name for name in LOSS_CHANNELS if dynamics.has_channel(name)), None)
    if channel is None:
        return None
    mixed = mixed_batch_share(dynamics)
    mixed = mixed if mixed is not None and mixed > MIXED_BATCHES_ABOVE else None
    if mixed is not None:
        channel = "eval_loss"
    medians = _plateau_medians(dynamics, channel)
    start = learning_start(medians)
    knew_at_start = bool(medians[0] < KNEW_AT_START * np.log(dynamics.num_classes))  # NaN (none presented): False
    read_first_sight = knew_at_start and channel in FIRST_SIGHT_CHANNELS
    means, steady, refused, first_sight, under_chance, halfway, unfitted = [], [], [], [], [], [], []
    steps = StepCount() if dynamics.has_channel("train_step") else None
    for _, block in dynamics.iter_blocks((channel,) if steps is None else (channel, "train_step")):
        if steps is not None:
            steps.add(block["train_step"])
        learning = block[channel][:, start:]
        mean, learned = loss_evidence(learning, dynamics.num_classes)
        means.append(mean)
        halfway.append(presented_mean(learning[:, :max(1, int(BELIEVED_BY * learning.shape[1]))]))
        steady.append(learned)
        refused.append(refused_labels(block[channel], dynamics.num_classes))
        unfitted.append(_above_at_the_end(block[channel], UNFITTED_LOSS))
        if read_first_sight:  # the refused labels' bar, read on the first epoch alone
            first_sight.append(refused_labels(block[channel][:, :1], dynamics.num_classes))
        if knew_at_start:
            under_chance.append(under_chance_at_end(block[channel], dynamics.num_classes))
    evidence = RunEvidence(np.concatenate(means), np.concatenate(steady), np.concatenate(refused), knew_at_start,
                           learned=not never_learned(medians),
                           refused_at_first_sight=np.concatenate(first_sight) if read_first_sight else None,
                           under_chance_at_end=np.concatenate(under_chance) if knew_at_start else None,
                           halfway_mean_loss=np.concatenate(halfway), unfitted_at_end=np.concatenate(unfitted),
                           channel=channel, mixed_batches=mixed,
                           updates_per_sample=None if steps is None else steps.per_sample(), learning_from=start)
    try:
        _evidence_read[dynamics] = evidence
    except TypeError:
        pass
    return evidence


class StepCount:
    """The optimizer steps of a run and the samples presented, read a block of samples at a time
    from ``train_step`` (-1: not presented that epoch)."""

    def __init__(self) -> None:
        self.last, self.presented = -1, 0
        self.last_epoch_low, self.last_epoch_high = np.inf, -np.inf

    def add(self, steps: np.ndarray) -> None:
        presented = steps >= 0
        self.presented += int(presented.any(axis=1).sum())
        self.last = max(self.last, int(steps.max(initial=-1)))
        final = steps[:, -1][presented[:, -1]]
        if len(final):
            self.last_epoch_low = min(self.last_epoch_low, int(final.min()))
            self.last_epoch_high = max(self.last_epoch_high, int(final.max()))

    def per_sample(self) -> float | None:
        """Steps over samples presented; None where the last epoch's presentations share one step
        (an imported run that numbered its epochs, or none presented)."""
        if not self.presented or not self.last_epoch_high > self.last_epoch_low:
            return None
        return (self.last + 1) / self.presented


def mixed_batch_share(dynamics) -> float | None:
    """Of the presentations in the last quarter of the epochs whose eval pass gave the label 90% or
    more, the share whose training-mode loss was above log 2 (``MIXED_BATCHES_ABOVE``), read on the
    first block of samples (a share needs no more); None without both losses, any such
    presentation, or an epoch after the first (in which a model that starts from scratch fits after
    the batch what it had not fitted in it: 9% of clean digits in the second of two epochs)."""
    if not (dynamics.has_channel("train_loss") and dynamics.has_channel("eval_loss")):
        return None
    _, block = next(iter(dynamics.iter_blocks(("train_loss", "eval_loss"))))
    epochs = block["train_loss"].shape[1]
    late = slice(max(1, epochs - max(1, epochs // 4)), epochs)
    with np.errstate(invalid="ignore"):  # NaN: not presented, or no eval pass that epoch
        fit = block["eval_loss"][:, late] < -np.log(0.9)
        fitted = int(fit.sum())
        unfitted = int((fit & (block["train_loss"][:, late] > UNFITTED_LOSS)).sum())
    return unfitted / fitted if fitted else None


def _plateau_medians(dynamics, channel: str) -> np.ndarray:
    """The median sample's loss per epoch, read until it falls below the plateau (usually within
    the first chunk of epochs): what ``learning_start`` needs."""
    import warnings

    medians: list[float] = []
    for _, block in dynamics.iter_epoch_blocks((channel,)):
        with warnings.catch_warnings():  # an epoch no sample was presented in (imported runs) is NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            medians.extend(np.nanmedian(block[channel], axis=0))
        if np.nanmin(medians) < PLATEAU * medians[0]:
            break  # the plateau, if any, has ended within what was read
    return np.array(medians)
