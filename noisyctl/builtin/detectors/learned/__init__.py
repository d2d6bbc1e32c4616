"""Learned detectors: a recurrent network reads each sample's training dynamics and says whether its
label is wrong. Trained on runs whose noise was synthesized (so the truth is known), applied to any
other run without retraining.

- ``lstm`` follows "Learning from Training Dynamics" (Jia et al. 2022): the per-epoch eval-mode
  probability of the assigned label, a 2-layer LSTM with 64 hidden units, orthogonal init, a linear
  layer on the last step. One change: the series is resampled to a fixed number of steps, since
  a detector trained on runs of one length transferred poorly to runs of another.
- ``learned`` goes further: several channels per epoch (probability, agreement of the prediction
  with the label, and the ranks of loss and margin among all samples and among the samples of the
  same label, which make runs of different models, datasets and lengths comparable), resampled to
  a fixed number of steps. Two of them rank the running means of the raw training loss and margin
  (the `loss` and `aum` scores as they stand at that epoch): a mean of per-epoch ranks weighs the
  late epochs, where every sample is fitted and ranks are noise, as much as the telling ones. One
  more is the run's own agreement at each step (its training accuracy on the given labels), which
  says how far the model has come, so a sample's ranks can be read against it. The ranks' ends are
  also given stretched (-log of the distance to the end), where the mislabeled samples of a run
  with little noise all sit. Its ranking is then adapted to the run (see ``adapt_to_run``).

The package: :mod:`.features` (the two feature sets), :mod:`.network` (the classifier and its
weights files), :mod:`.adaptation` (reranking to the run), :mod:`.training` (``train-detector``);
here, the two detectors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from noisyctl.api import (DetectorResult, NoisyctlError, TrainableDetector, read_run_evidence,
                          run_held_out_contradicted_anchors, run_held_out_label_probability, run_noise_rate)

from .adaptation import RUNNING_MARGIN, adapt_to_run, little_noise_order, mean_rival_loss, reordered
from .features import FEATURE_SETS
from .network import load_weights, predict
from .training import train_detector

WEIGHTS_DIR = Path(__file__).parent.parent / "weights"
# learned: a run whose noise-rate estimate is under LOW_NOISE_RATE, its interval's upper end under
# LOW_NOISE_HIGH or its losses telling (not ``unsure``), is ranked by its samples' mean training loss
# (with their loss against the strongest rival class, and its held-out models' loss where it has
# them: ``little_noise_order``). With little noise the mislabeled samples are the few with extreme
# losses, which the loss ranks best (best or tied in 25 of 36 settings at 0.5-5% in
# benchmarks/calibration.py, the networks in 2: their features, learned at 10-45% noise, blur the
# very top). At 10-45% the rule also chose well: 20 of 27 settings at the best hand-crafted mAP or
# above, against 18 for the networks alone. An upper end at 15% or more, where the losses see
# noise, is most often a model that left many samples unfitted (63 of 82 such cached runs took few
# optimizer steps, most of them fine-tuned or in large batches): of the 82 the low-noise order
# ranked 60 better than the networks and 19 worse (mean mAP 0.800 to 0.841). Where the losses
# cannot tell, the networks stay (40 runs: 22 better with them, 14 of the 16 whose truth was 15-50%),
# unless held-out models' anchors read little noise: under LOW_NOISE_HIGH of the labels of their
# surest samples contradicted. Of 19 cached runs with held-out models whose losses could not tell
# (most of them tables of 6 and 8 overlapping classes), the 13 so read had 1-20% noise and the
# low-noise order ranked 11 better and 2 worse (mean mAP 0.511 to 0.546); of the 6 others, 30-45%
# (22-53% contradicted) ranked better by the networks, and 3% (16%) would have by the losses.
LOW_NOISE_RATE = 0.10
LOW_NOISE_HIGH = 0.15


class LearnedDetector(TrainableDetector):
    """Multi-channel learned detector (probability, agreement, loss and margin ranks per epoch), adapted to the run; flags as many as the noise-rate estimate counts."""

    kind = "learned"
    adapts = True  # by default; lstm reproduces the paper, which has no such step

    def __init__(self, weights: str | None = None, adapt: bool | None = None) -> None:
        self.weights = Path(weights) if weights else WEIGHTS_DIR / f"{self.kind}.safetensors"
        self.features = FEATURE_SETS[self.kind]
        self.reads = self.features.channels
        if adapt is not None and not isinstance(adapt, bool):
            raise NoisyctlError(f"{self.kind}: adapt is true or false, not '{adapt}'")
        self.adapt = self.adapts if adapt is None else adapt

    @classmethod
    def train(cls, runs, out, **settings):
        return train_detector(runs, cls.kind, out, **settings)

    def score(self, dynamics) -> DetectorResult:
        members, meta = load_weights(self.weights, self.kind)
        inputs = self.features.compute(dynamics)
        probability = predict(members, inputs)
        info = {"weights": str(self.weights), "trained_on": meta.get("trained_on"), "adapted_to_run": self.adapt}
        threshold = getattr(dynamics, "threshold_samples", None)
        judged = np.ones(len(probability), dtype=bool) if threshold is None else ~threshold
        if "train_loss" not in self.reads:  # lstm reads no losses: no estimate, P > 0.5 flags
            if self.adapt:
                probability = adapt_to_run(inputs, probability, judged=judged)
            return DetectorResult(probability, flagged=probability > 0.5, info=info)
        mean_loss = read_run_evidence(dynamics).mean_loss  # what detect's estimate reads, read once
        unpresented = np.isnan(mean_loss)  # never trained on: no dynamics to judge it by, as for `loss`
        judged &= ~unpresented
        estimate = run_noise_rate(dynamics, judged)
        info["estimated_noise"] = {"rate": estimate.rate, "low": estimate.low, "high": estimate.high}
        little_noise = estimate.rate < LOW_NOISE_RATE and (estimate.high < LOW_NOISE_HIGH or not estimate.unsure
                                                           or _anchors_read_little_noise(dynamics, judged))
        if self.adapt and little_noise:
            held_out = run_held_out_label_probability(dynamics)  # read once, with the estimate's reading
            rival = mean_rival_loss(dynamics)
            probability = reordered(probability, little_noise_order(mean_loss, held_out, rival))
            read = "mean training loss" + ("" if rival is None else " and its loss against the strongest rival class")
            read += "" if held_out is None else ", and the held-out models' loss"
            info["ranked_by"] = f"{read} (little noise)"
        elif self.adapt:
            names = meta["features"]
            probability = adapt_to_run(inputs, probability, judged=judged,
                                       running_margin=names.index(RUNNING_MARGIN) if RUNNING_MARGIN in names else None)
        probability = np.where(unpresented, np.nan, probability)
        if estimate.model_never_learned:  # the run's model stayed at chance: nothing to flag
            info["flags"] = "none: the model did not learn"
            return DetectorResult(probability, flagged=np.zeros(len(probability), dtype=bool), info=info)
        # As many flags as the estimate counts, the most probable first: the networks' P > 0.5
        # carries the 10-45% noise of their training runs (it flagged 10% of clean digits). So too
        # where the losses cannot tell, most often a model that left many clean samples unfitted:
        # there P > 0.5 flagged a median of 22% of the 16 clean cached runs (digits after 3 epochs:
        # 383 of 1,797), and 19% of its flags were right at 2-8% noise. The count flags what the
        # run's evidence holds (the floors under the estimate); `prune --ratio` sets a share.
        return DetectorResult(probability, flagged=estimate.top_flags(probability, dynamics.given_labels, judged),
                              info=info)


def _anchors_read_little_noise(dynamics, judged: np.ndarray) -> bool:
    """Whether held-out models contradict under LOW_NOISE_HIGH of the labels of the samples they are
    surest of (``run_held_out_contradicted_anchors``); False where the run has none."""
    anchors = run_held_out_contradicted_anchors(dynamics, judged)
    return anchors is not None and anchors[0] < LOW_NOISE_HIGH * anchors[1]


class LstmDetector(LearnedDetector):
    """The LSTM of "Learning from Training Dynamics" (Jia et al. 2022) on the assigned-label probability; flags p > 0.5."""

    kind = "lstm"
    adapts = False
