"""The noise-rate estimate on runs made the way most users make theirs: fine-tuning in their own loop.

Every other set trains from scratch with `noisyctl train`. Most users fine-tune a model that already
knows their kind of data for a few epochs, in their own loop, and record it with `noisyctl.Recorder`.
Here a model is first trained on other samples of the same kind with clean labels (half of
scikit-learn's digits, or 2,000 generated support tickets as bags of words and word pairs), then
fine-tuned on the user's samples (the other half of digits, or 2,000 other tickets) with 0-5% of
their labels flipped uniformly, recorded with the Recorder's `update`, `evaluate` and `end_epoch`.

Nine batches of runs:
- the thirteenth pass's 35 (an MLP of 256 hidden units, pretrained with SGD for 3-20 epochs,
  fine-tuned with SGD for 2-5);
- 28 made in the fourteenth pass to check the estimate on loops it was not changed for: Adam and
  AdamW with a cosine schedule, label smoothing in the loss, 5-20 epochs of fine-tuning (long
  enough to memorise wrong labels), a deeper MLP and a small CNN on digits' 8x8 images;
- 20 made in the fifteenth pass, after its change, with the same loops and other seeds;
- 36 made in the sixteenth pass, after its change (20 after its first form, 16 after its final
  one): most of them pretrained only 3-5 epochs;
- 24 made in the eighteenth pass after its floor of labels refused at first sight, with every loop
  and other seeds, and 12 after its second change (the refusals count where the losses cannot
  tell too), pretrained 2-5 epochs;
- 24 made in the nineteenth pass with the user's samples from another domain than the pretraining
  ones (``shifted_away``: digits moved a pixel under pixel noise, tickets with a third of their
  words dropped), as most users' own data is, and 20 more (short pretraining, and shifted), which
  checked a change it left out; 18 after its floor of labels under chance at the end (short
  pretraining).

Prints, per run, the true rate, `detect`'s estimate and 90% interval (the default detectors'
reading, `estimate_noise`), the `--fail-above 0.03` gate's verdict and the `loss` detector's mAP,
then a summary: clean runs at 1% or less, noisy runs within max(0.5 points, 25% of the true rate),
the truth inside the interval. Runs are kept in --cache:

    .venv/bin/python benchmarks/fine_tuning.py --cache runs/fine-tuning   # ~5 minutes on 2 cores, 1 after
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calibration import GATE, reading
from noisyctl.detection import default_detectors, estimate_noise, gate_verdict, run_detector, suggested_labels
from noisyctl.metrics import detection_metrics
from noisyctl.store import RunFile


@dataclass(frozen=True)
class Loop:
    """How a user's loop pretrains and fine-tunes: the model, each stage's optimizer, learning rate
    and batch size, the fine-tuning schedule and label smoothing."""

    model: str = "mlp"  # "mlp": 256 hidden units; "mlp2": two layers of 128; "cnn": two 3x3 convolutions (digits)
    pretrain: str = "sgd"  # sgd (lr 0.05, momentum 0.9) or adam (lr 0.001)
    pretrain_batch: int = 64
    optimizer: str = "sgd"  # sgd (momentum 0.9), adam or adamw (weight decay 0.05)
    lr: float = 0.01
    batch: int = 32
    cosine: bool = False
    smoothing: float = 0.0


@dataclass(frozen=True)
class FineTuned:
    """One run: the data kind, the share of labels flipped, the fine-tuning epochs, the seed (of the
    user's tickets, the model and the flips), the pretraining epochs and the loop."""

    kind: str
    rate: float
    epochs: int
    seed: int
    pretrain_epochs: int = 20
    loop: Loop = Loop()
    shifted: bool = False  # the user's samples from another domain than the pretraining ones

    @property
    def name(self) -> str:
        extras = [self.loop.model, self.loop.optimizer] + (["cosine"] if self.loop.cosine else []) + (
            [f"ls{self.loop.smoothing:g}"] if self.loop.smoothing else []) + (["shifted"] if self.shifted else [])
        return f"{self.kind}-{'-'.join(extras)}-pre{self.pretrain_epochs}-e{self.epochs}-{self.rate:g}-s{self.seed}"


SGD = Loop()
ADAM = Loop(optimizer="adam", lr=0.001, cosine=True)
ADAM_SMOOTHED = Loop(optimizer="adam", lr=0.001, cosine=True, smoothing=0.1)
SMOOTHED = Loop(smoothing=0.1)
ADAMW = Loop(model="mlp2", pretrain="adam", optimizer="adamw", lr=5e-4, batch=64, cosine=True)
ADAMW_SMOOTHED = Loop(model="mlp2", pretrain="adam", optimizer="adamw", lr=5e-4, batch=64, cosine=True,
                      smoothing=0.1)
SGD_COSINE = Loop(model="mlp2", pretrain="adam", optimizer="sgd", lr=0.02, batch=64, cosine=True)
SGD_COSINE_SMOOTHED = Loop(model="mlp2", pretrain="adam", optimizer="sgd", lr=0.02, batch=64, cosine=True,
                           smoothing=0.1)
CNN_ADAMW = Loop(model="cnn", pretrain="adam", optimizer="adamw", lr=5e-4, batch=64, cosine=True)
CNN_SGD = Loop(model="cnn", pretrain="adam", optimizer="sgd", lr=0.02, batch=64, cosine=True)

THIRTEENTH = (
    *(FineTuned(kind, rate, epochs, {"digits": 1, "tickets": 61}[kind] + epochs)
      for kind in ("digits", "tickets") for epochs in (3, 5) for rate in (0.0, 0.03)),
    *(FineTuned(kind, rate, epochs, seed, pre) for kind, epochs, rate, seed, pre in (
        ("digits", 2, 0.0, 31, 20), ("digits", 2, 0.05, 32, 20), ("digits", 4, 0.01, 33, 20), ("digits", 4, 0.0, 34, 5),
        ("digits", 3, 0.05, 35, 5), ("tickets", 2, 0.01, 71, 20), ("tickets", 4, 0.05, 72, 20),
        ("tickets", 4, 0.0, 73, 20), ("tickets", 3, 0.02, 74, 3), ("tickets", 3, 0.0, 75, 3),
        ("digits", 3, 0.03, 40, 20), ("digits", 5, 0.05, 41, 10), ("digits", 4, 0.02, 42, 5), ("digits", 3, 0.0, 43, 10),
        ("digits", 5, 0.0, 44, 20), ("tickets", 3, 0.05, 76, 10), ("tickets", 5, 0.03, 77, 5), ("tickets", 4, 0.0, 78, 5),
        ("tickets", 2, 0.03, 79, 20), ("tickets", 3, 0.03, 80, 20), ("tickets", 2, 0.05, 81, 5),
        ("tickets", 4, 0.02, 82, 10), ("tickets", 3, 0.0, 83, 20), ("tickets", 5, 0.01, 84, 20),
        ("digits", 3, 0.02, 45, 10), ("digits", 4, 0.05, 46, 20), ("digits", 2, 0.0, 47, 5))),
)
FOURTEENTH = (
    FineTuned("digits", 0.0, 10, 101, 20, ADAM), FineTuned("digits", 0.02, 10, 102, 20, ADAM),
    FineTuned("digits", 0.03, 20, 103, 10, SGD), FineTuned("digits", 0.0, 20, 104, 10, SGD),
    FineTuned("digits", 0.02, 5, 105, 20, SMOOTHED), FineTuned("digits", 0.0, 5, 106, 20, SMOOTHED),
    FineTuned("tickets", 0.0, 10, 111, 20, ADAM), FineTuned("tickets", 0.02, 10, 112, 20, ADAM),
    FineTuned("tickets", 0.03, 20, 113, 10, SGD), FineTuned("tickets", 0.0, 20, 114, 10, SGD),
    FineTuned("tickets", 0.02, 5, 115, 20, SMOOTHED), FineTuned("tickets", 0.0, 5, 116, 20, SMOOTHED),
    FineTuned("tickets", 0.05, 8, 117, 5, ADAM_SMOOTHED), FineTuned("digits", 0.05, 8, 107, 5, ADAM_SMOOTHED),
    FineTuned("tickets", 0.0, 8, 201, 10, ADAMW), FineTuned("tickets", 0.01, 8, 202, 10, ADAMW),
    FineTuned("tickets", 0.02, 15, 203, 10, ADAMW), FineTuned("tickets", 0.0, 15, 204, 10, ADAMW),
    FineTuned("tickets", 0.03, 6, 205, 5, SGD_COSINE), FineTuned("tickets", 0.05, 12, 206, 10, ADAMW_SMOOTHED),
    FineTuned("digits", 0.0, 8, 211, 15, CNN_ADAMW), FineTuned("digits", 0.02, 8, 212, 15, CNN_ADAMW),
    FineTuned("digits", 0.03, 15, 213, 15, CNN_ADAMW), FineTuned("digits", 0.0, 15, 214, 15, CNN_SGD),
    FineTuned("digits", 0.01, 10, 215, 20, ADAMW), FineTuned("digits", 0.05, 10, 216, 20, SGD_COSINE_SMOOTHED),
    FineTuned("tickets", 0.01, 4, 207, 20, ADAMW), FineTuned("digits", 0.02, 5, 217, 30, CNN_SGD),
)
# Made after the fifteenth pass chose its floor of refused labels, to check it on runs it never saw.
FIFTEENTH = (
    FineTuned("digits", 0.0, 3, 301, 20), FineTuned("digits", 0.01, 3, 302, 20),
    FineTuned("digits", 0.02, 6, 303, 10, ADAM), FineTuned("digits", 0.0, 6, 304, 10, ADAM),
    FineTuned("digits", 0.01, 12, 305, 15, CNN_SGD), FineTuned("digits", 0.0, 12, 306, 15, CNN_SGD),
    FineTuned("digits", 0.03, 4, 307, 5, SMOOTHED), FineTuned("digits", 0.0, 4, 308, 5, SMOOTHED),
    FineTuned("digits", 0.05, 25, 309, 10, ADAMW), FineTuned("digits", 0.0, 25, 310, 10, ADAMW),
    FineTuned("tickets", 0.0, 3, 311, 20), FineTuned("tickets", 0.01, 3, 312, 20),
    FineTuned("tickets", 0.02, 6, 313, 10, ADAM), FineTuned("tickets", 0.0, 6, 314, 10, ADAM),
    FineTuned("tickets", 0.01, 10, 315, 15, SGD_COSINE), FineTuned("tickets", 0.0, 10, 316, 15, SGD_COSINE),
    FineTuned("tickets", 0.03, 2, 317, 5), FineTuned("tickets", 0.0, 2, 318, 5),
    FineTuned("tickets", 0.05, 20, 319, 10, ADAMW_SMOOTHED), FineTuned("tickets", 0.0, 20, 320, 10, ADAMW_SMOOTHED),
)
# Made after the sixteenth pass chose its ceiling of never-believed labels (its first form, where the
# model held its wrong labels to the end): short pretraining, where the hard clean shoulder lies
# below chance's loss, and other loops.
SIXTEENTH = (
    FineTuned("tickets", 0.02, 3, 321, 3), FineTuned("tickets", 0.0, 3, 322, 3),
    FineTuned("tickets", 0.03, 4, 323, 5), FineTuned("tickets", 0.0, 4, 324, 5),
    FineTuned("tickets", 0.05, 2, 325, 3), FineTuned("tickets", 0.01, 5, 326, 5),
    FineTuned("tickets", 0.02, 8, 327, 5, ADAM), FineTuned("tickets", 0.0, 8, 328, 5, ADAM),
    FineTuned("tickets", 0.03, 6, 329, 3, SMOOTHED), FineTuned("tickets", 0.0, 2, 330, 3),
    FineTuned("digits", 0.02, 3, 331, 3), FineTuned("digits", 0.0, 3, 332, 3),
    FineTuned("digits", 0.03, 5, 333, 5), FineTuned("digits", 0.05, 2, 334, 3),
    FineTuned("digits", 0.01, 4, 335, 5), FineTuned("digits", 0.02, 10, 336, 10, CNN_ADAMW),
    FineTuned("digits", 0.0, 10, 337, 10, CNN_ADAMW), FineTuned("digits", 0.03, 8, 338, 5, ADAMW),
    FineTuned("tickets", 0.05, 10, 339, 10, SGD_COSINE), FineTuned("tickets", 0.02, 20, 340, 20),
    # made after its final form (it also holds where the model knew the data from its first epoch)
    FineTuned("tickets", 0.0, 2, 341, 3), FineTuned("tickets", 0.02, 2, 342, 3),
    FineTuned("tickets", 0.0, 3, 343, 4), FineTuned("tickets", 0.03, 3, 344, 4),
    FineTuned("tickets", 0.0, 5, 345, 3, ADAM), FineTuned("tickets", 0.01, 4, 346, 3, SMOOTHED),
    FineTuned("tickets", 0.0, 6, 347, 5, SGD_COSINE), FineTuned("tickets", 0.05, 3, 348, 5, SGD_COSINE),
    FineTuned("digits", 0.0, 2, 349, 3), FineTuned("digits", 0.02, 2, 350, 3),
    FineTuned("digits", 0.0, 4, 351, 5, ADAM), FineTuned("digits", 0.03, 4, 352, 5, ADAM),
    FineTuned("digits", 0.0, 6, 353, 5, CNN_SGD), FineTuned("digits", 0.01, 6, 354, 5, CNN_SGD),
    FineTuned("digits", 0.0, 3, 355, 5, SMOOTHED), FineTuned("digits", 0.05, 3, 356, 5, SMOOTHED),
)
# Made after the eighteenth pass chose its floor of labels refused at first sight and never believed.
EIGHTEENTH = (
    FineTuned("digits", 0.0, 3, 401, 10), FineTuned("digits", 0.02, 3, 402, 10),
    FineTuned("digits", 0.01, 5, 403, 3), FineTuned("digits", 0.0, 5, 404, 3),
    FineTuned("digits", 0.03, 6, 405, 5, ADAM), FineTuned("digits", 0.0, 6, 406, 5, ADAM),
    FineTuned("digits", 0.02, 8, 407, 10, CNN_ADAMW), FineTuned("digits", 0.0, 8, 408, 10, CNN_ADAMW),
    FineTuned("digits", 0.05, 4, 409, 20, SMOOTHED), FineTuned("digits", 0.01, 10, 410, 10, ADAMW),
    FineTuned("digits", 0.02, 6, 411, 5, CNN_SGD), FineTuned("digits", 0.0, 12, 412, 20, SGD_COSINE),
    FineTuned("tickets", 0.0, 3, 421, 10), FineTuned("tickets", 0.02, 3, 422, 10),
    FineTuned("tickets", 0.01, 5, 423, 3), FineTuned("tickets", 0.0, 5, 424, 3),
    FineTuned("tickets", 0.03, 6, 425, 5, ADAM), FineTuned("tickets", 0.0, 6, 426, 5, ADAM),
    FineTuned("tickets", 0.02, 10, 427, 10, ADAMW), FineTuned("tickets", 0.0, 10, 428, 10, ADAMW),
    FineTuned("tickets", 0.05, 4, 429, 20, SMOOTHED), FineTuned("tickets", 0.01, 8, 430, 5, SGD_COSINE_SMOOTHED),
    FineTuned("tickets", 0.02, 2, 431, 20), FineTuned("tickets", 0.0, 15, 432, 10, ADAMW_SMOOTHED),
)
# Made after the refusals counted where the losses cannot tell too (the eighteenth pass's second change):
# short pretraining, which leaves many clean samples unfitted.
EIGHTEENTH_LATER = (
    FineTuned("digits", 0.0, 3, 601, 3), FineTuned("digits", 0.01, 3, 602, 3),
    FineTuned("digits", 0.02, 4, 603, 4), FineTuned("digits", 0.03, 2, 604, 3),
    FineTuned("digits", 0.0, 5, 605, 4, CNN_SGD), FineTuned("digits", 0.02, 5, 606, 4, CNN_SGD),
    FineTuned("digits", 0.01, 6, 607, 5, CNN_SGD), FineTuned("digits", 0.0, 4, 608, 3, SMOOTHED),
    FineTuned("digits", 0.02, 4, 609, 3, SMOOTHED), FineTuned("tickets", 0.02, 2, 611, 2),
    FineTuned("tickets", 0.0, 2, 612, 2), FineTuned("tickets", 0.01, 3, 613, 2),
)
# The user's samples from another domain than the pretraining ones (``shifted_away``), as most
# users' own data is: made in the nineteenth pass.
SHIFTED = tuple(FineTuned(kind, rate, epochs, seed, pre, loop, shifted=True) for kind, rate, epochs, seed, pre, loop in (
    ("digits", 0.0, 3, 501, 10, SGD), ("digits", 0.02, 3, 502, 10, SGD),
    ("digits", 0.0, 6, 503, 5, ADAM), ("digits", 0.03, 6, 504, 5, ADAM),
    ("digits", 0.0, 8, 505, 15, CNN_ADAMW), ("digits", 0.02, 8, 506, 15, CNN_ADAMW),
    ("digits", 0.0, 10, 507, 10, CNN_SGD), ("digits", 0.01, 10, 508, 10, CNN_SGD),
    ("digits", 0.0, 12, 509, 15, CNN_ADAMW), ("digits", 0.05, 12, 510, 15, CNN_ADAMW),
    ("digits", 0.0, 15, 521, 20, ADAMW), ("digits", 0.02, 15, 522, 20, ADAMW),
    ("digits", 0.0, 10, 523, 20, SGD), ("digits", 0.03, 10, 524, 20, SGD),
    ("digits", 0.0, 6, 525, 10, CNN_SGD), ("digits", 0.02, 6, 526, 10, CNN_SGD),
    ("tickets", 0.0, 3, 511, 10, SGD), ("tickets", 0.02, 3, 512, 10, SGD),
    ("tickets", 0.0, 6, 513, 5, ADAM), ("tickets", 0.03, 6, 514, 5, ADAM),
    ("tickets", 0.0, 10, 515, 10, ADAMW), ("tickets", 0.01, 10, 516, 10, ADAMW),
    ("tickets", 0.0, 5, 517, 20, SMOOTHED), ("tickets", 0.05, 5, 518, 20, SMOOTHED)))
# Made in the nineteenth pass to check a change it then left out (the labels refused at first sight left
# out where the losses cannot tell: it took two readings here further from the truth and mended none):
# short pretraining, and more of the user's samples from another domain.
NINETEENTH = (
    FineTuned("digits", 0.0, 3, 701, 3), FineTuned("digits", 0.02, 3, 702, 3),
    FineTuned("digits", 0.01, 4, 703, 4), FineTuned("digits", 0.03, 3, 704, 4),
    FineTuned("digits", 0.0, 4, 705, 4, SMOOTHED), FineTuned("digits", 0.02, 5, 706, 3, SMOOTHED),
    FineTuned("tickets", 0.0, 2, 711, 2), FineTuned("tickets", 0.02, 3, 712, 2),
    FineTuned("digits", 0.0, 8, 721, 20, CNN_ADAMW, shifted=True),
    FineTuned("digits", 0.02, 8, 722, 20, CNN_ADAMW, shifted=True),
    FineTuned("digits", 0.0, 10, 723, 30, CNN_SGD, shifted=True),
    FineTuned("digits", 0.03, 10, 724, 30, CNN_SGD, shifted=True),
    FineTuned("digits", 0.0, 6, 725, 15, CNN_ADAMW, shifted=True),
    FineTuned("digits", 0.01, 6, 726, 15, CNN_ADAMW, shifted=True),
    FineTuned("digits", 0.0, 5, 727, 3, SGD, shifted=True), FineTuned("digits", 0.02, 5, 728, 3, SGD, shifted=True),
    FineTuned("tickets", 0.0, 4, 731, 3, SGD, shifted=True), FineTuned("tickets", 0.02, 4, 732, 3, SGD, shifted=True),
    FineTuned("tickets", 0.0, 8, 733, 10, ADAM, shifted=True),
    FineTuned("tickets", 0.03, 8, 734, 10, ADAM, shifted=True),
)
# Made after the nineteenth pass chose its floor of labels under chance at the end where the losses cannot tell:
# short pretraining (a model that knew the data at its first epoch, which leaves many clean samples unfitted).
NINETEENTH_LATER = (
    FineTuned("digits", 0.0, 2, 801, 3), FineTuned("digits", 0.02, 2, 802, 3),
    FineTuned("digits", 0.03, 3, 803, 3), FineTuned("digits", 0.0, 4, 804, 3),
    FineTuned("digits", 0.01, 3, 805, 4), FineTuned("digits", 0.05, 4, 806, 4),
    FineTuned("digits", 0.0, 3, 807, 4, SMOOTHED), FineTuned("digits", 0.03, 3, 808, 3, SMOOTHED),
    FineTuned("digits", 0.0, 4, 809, 3, ADAM), FineTuned("digits", 0.02, 4, 810, 3, ADAM),
    FineTuned("digits", 0.0, 4, 811, 4, CNN_SGD), FineTuned("digits", 0.02, 4, 812, 4, CNN_SGD),
    FineTuned("tickets", 0.0, 2, 821, 2), FineTuned("tickets", 0.03, 2, 822, 2),
    FineTuned("tickets", 0.0, 3, 823, 3, SMOOTHED), FineTuned("tickets", 0.01, 3, 824, 3, SMOOTHED),
    FineTuned("digits", 0.0, 4, 831, 3, SGD, shifted=True), FineTuned("digits", 0.02, 4, 832, 3, SGD, shifted=True),
)
BATCHES = {"thirteenth": THIRTEENTH, "fourteenth": FOURTEENTH, "fifteenth": FIFTEENTH, "sixteenth": SIXTEENTH,
           "eighteenth": EIGHTEENTH, "eighteenth-later": EIGHTEENTH_LATER, "shifted": SHIFTED,
           "nineteenth": NINETEENTH, "nineteenth-later": NINETEENTH_LATER}
BATCHES["all"] = tuple(run for batch in BATCHES.values() for run in batch)


def known_and_own(kind: str, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Samples the model learns first (clean) and the user's own samples, as inputs and labels, and
    the class names: half of digits each, or two sets of generated tickets as bags of words and pairs."""
    if kind == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        order = np.random.default_rng(100).permutation(len(digits.target))
        known, own = order[: len(order) // 2], order[len(order) // 2:]
        inputs = (digits.data / 16.0).astype(np.float32)
        return inputs[known], digits.target[known], inputs[own], digits.target[own], [str(i) for i in range(10)]
    from sklearn.feature_extraction.text import CountVectorizer

    from noisyctl.data import load_dataset

    known_set, own_set = (load_dataset({"name": "tickets", "root": None,
                                        "options": {"samples": 2000, "seed": s, "test_fraction": 0.0}})
                          for s in (99, seed))
    known, own = known_set.train, own_set.train
    words = CountVectorizer(ngram_range=(1, 2), min_df=2, binary=True).fit(known.texts)
    return (words.transform(known.texts).toarray().astype(np.float32), np.asarray(known.labels),
            words.transform(own.texts).toarray().astype(np.float32), np.asarray(own.labels),
            list(known_set.class_names))


def shifted_away(kind: str, own_x: np.ndarray, seed: int) -> np.ndarray:
    """The user's samples from another domain than the ones the model learned first, as a user's
    own data usually is: digits moved a pixel to the right under pixel noise (sd 0.15), tickets with
    a third of their words and word pairs dropped."""
    rng = np.random.default_rng(seed + 1000)
    if kind == "digits":
        images = np.roll(own_x.reshape(-1, 8, 8), 1, axis=2)
        images = np.clip(images + rng.normal(0, 0.15, images.shape), 0, 1)
        return images.reshape(len(own_x), 64).astype(np.float32)
    return (own_x * (rng.random(own_x.shape) > 0.33)).astype(np.float32)


def make_model(loop: Loop, inputs: int, classes: int):
    import torch.nn as nn

    if loop.model == "cnn":  # digits' 8x8 images
        return nn.Sequential(nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
                             nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(32 * 16, 64), nn.ReLU(), nn.Linear(64, classes))
    if loop.model == "mlp2":
        return nn.Sequential(nn.Linear(inputs, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, classes))
    return nn.Sequential(nn.Linear(inputs, 256), nn.ReLU(), nn.Linear(256, classes))


def fine_tune(run: FineTuned, path: Path, evaluate: bool = True) -> Path:
    """Pretrain on the known samples, flip ``run.rate`` of the user's labels, fine-tune on them
    recording with the Recorder, as a user's loop would. ``evaluate``: also record an eval pass each
    epoch (``Recorder.evaluate``), as these runs do; the tests' runs record training losses alone
    (the eval loader's draw from torch's generator changes the next epoch's order, so the two
    differ from the second epoch on)."""
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, TensorDataset

    import noisyctl

    loop = run.loop
    known_x, known_y, own_x, true_labels, names = known_and_own(run.kind, run.seed)
    if run.shifted:
        own_x = shifted_away(run.kind, own_x, run.seed)
    classes = len(names)
    torch.manual_seed(run.seed)
    model = make_model(loop, known_x.shape[1], classes)
    optimizer = (torch.optim.Adam(model.parameters(), lr=1e-3) if loop.pretrain == "adam" else
                 torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9))
    known = TensorDataset(torch.tensor(known_x), torch.as_tensor(known_y))
    for _ in range(run.pretrain_epochs):
        for x, y in DataLoader(known, batch_size=loop.pretrain_batch, shuffle=True):
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    rng = np.random.default_rng(run.seed)
    labels = true_labels.copy()
    flip = rng.choice(len(labels), int(round(run.rate * len(labels))), replace=False)
    labels[flip] = (labels[flip] + rng.integers(1, classes, len(flip))) % classes
    own = TensorDataset(torch.tensor(own_x), torch.as_tensor(labels), torch.arange(len(labels)))
    loader = DataLoader(own, batch_size=loop.batch, shuffle=True)
    optimizer = (torch.optim.AdamW(model.parameters(), lr=loop.lr, weight_decay=0.05) if loop.optimizer == "adamw" else
                 torch.optim.Adam(model.parameters(), lr=loop.lr) if loop.optimizer == "adam" else
                 torch.optim.SGD(model.parameters(), lr=loop.lr, momentum=0.9))
    schedule = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, run.epochs * len(loader)) if loop.cosine
                else None)
    partial = path.with_suffix(".partial.h5")
    recorder = noisyctl.Recorder(partial, labels, epochs=run.epochs, true_labels=true_labels, class_names=names,
                                 dataset=f"{run.kind} fine-tune")
    for _ in range(run.epochs):
        model.train()
        for x, y, index in loader:
            logits = model(x)
            recorder.update(index, logits, y)
            loss = F.cross_entropy(logits, y, label_smoothing=loop.smoothing)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if schedule is not None:
                schedule.step()
        if evaluate:
            recorder.evaluate(model, DataLoader(own, batch_size=512))
        recorder.end_epoch()
    recorder.close()
    partial.replace(path)
    return path


def score(path: Path) -> dict:
    """detect's estimate with the default detectors, the 3% gate's verdict and the loss detector's mAP."""
    with RunFile(path) as run:
        names, _ = default_detectors(run)
        outcomes = {name: run_detector(run, name) for name in names}
        estimate = estimate_noise(run, list(outcomes.values()), suggested_labels(run))
        truth = run.labels.is_noisy
        loss = (outcomes.get("loss") or run_detector(run, "loss")).result.scores
    gate = gate_verdict(estimate, outcomes[names[0]].result.scores, fail_above=GATE)
    true = float(truth.mean())
    return {"true": true, **reading(estimate, true), "evidence": estimate["evidence"],
            "gate": ("pass, warns" if gate["warning"] else "pass") if gate["passed"] else "fail",
            "loss_map": detection_metrics(truth, loss)["map"] if truth.any() else None}


def main() -> None:
    from rich.console import Console
    from rich.table import Table

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=Path("runs/fine-tuning"), help="where runs are kept")
    parser.add_argument("--batch", choices=tuple(BATCHES), default="all")
    parser.add_argument("--json", type=Path, help="also write every row to this JSON file")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    runs = BATCHES[args.batch]
    console = Console(width=150)
    table = Table(title="the estimate on fine-tuned runs (red: outside the tolerance; -: the truth outside the interval)")
    for column in ("run", "true", "estimate", "90% interval", "evidence", "gate 3%", "loss mAP"):
        table.add_column(column, justify="left" if column == "run" else "right")
    rows = []
    for run in runs:
        path = args.cache / f"{run.name}.h5"
        if not path.exists():
            fine_tune(run, path)
        row = {"run": run.name, **score(path)}
        rows.append(row)
        table.add_row(run.name, f"{row['true']:.1%}", ("" if row["within"] else "[red]") + f"{row['rate']:.2%}",
                      f"{row['low']:.2%}-{row['high']:.2%}" + ("" if row["inside"] else " -"), row["evidence"],
                      row["gate"], "-" if row["loss_map"] is None else f"{row['loss_map']:.3f}")
    console.print(table)
    clean = [r for r in rows if r["true"] == 0]
    noisy = [r for r in rows if r["true"] > 0]
    console.print(f"clean runs at 1% or less, gate passing: {sum(r['within'] and r['gate'] != 'fail' for r in clean)} "
                  f"of {len(clean)}; noisy runs within the tolerance: {sum(r['within'] for r in noisy)} of {len(noisy)}, "
                  f"the truth inside the interval: {sum(r['inside'] for r in noisy)} of {len(noisy)}", highlight=False)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
