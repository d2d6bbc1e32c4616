"""How much noise there is and where.

The noise-rate estimate reads a run in layers, a module each, each importing only those above it:

- ``mixture``: the distribution of log mean training losses: a two- or three-Gaussian mixture
  where the noise stands apart from the clean losses, else the excess above their right tail.
- ``rate``: ``estimate_noise_rate``, that reading with a bootstrap interval, as a
  ``NoiseRateEstimate`` (what ``detect`` prints and ``--json`` writes).
- ``evidence``: what a run's losses say of each sample (``read_run_evidence``): its mean loss,
  whether it was learned steadily, refused, or never believed.
- ``held_out``: what models that never trained on a sample say of its label (``train --folds``).
- ``annotators``: what several annotators' own labels, where a run keeps them, say of its given
  labels (Dawid-Skene): a second reading beside the estimate, and a floor of it where the given
  labels are their majority.
- ``run``: ``run_noise_rate``, what ``detect`` reports: the losses' reading held within the floors
  and ceilings the run's other evidence gives.

``decisions`` is apart: which samples a detector's scores call mislabeled, and the class pairs
they confuse. So is ``audit``: the rate a person's review of flagged and random samples measures
(``correct --audit``). Each constant's comment says what it was measured on.
"""

from noisyctl.estimate.annotators import (AGGREGATES, ANNOTATORS, UNSETTLED, aggregate_labels, annotators_noise_rate,
                                          dawid_skene, run_annotators_count, run_annotators_floor,
                                          run_annotators_posterior, surely_least_right_first)
from noisyctl.estimate.decisions import confused_pairs, decided_noisy, gmm_noisy_posterior
from noisyctl.estimate.evidence import (FIRST_SIGHT_REFUSED, LOSS_CHANNELS, NEVER_BELIEVED, PLATEAU, REFUSED,
                                        REFUSED_EPOCHS, REFUSED_PROBABILITY, UNDER_CHANCE_AT_END, RunEvidence,
                                        late_contradictions, learning_start, loss_evidence, never_learned,
                                        presented_mean, read_run_evidence, refused_labels, under_chance_at_end)
from noisyctl.estimate.held_out import (ANCHOR_MIN_COUNT, FEW_CLASSES, HELD_OUT_ANCHORS, held_out_anchors,
                                        held_out_noise_rate, run_held_out_anchors,
                                        run_held_out_contradicted_anchors, run_held_out_count,
                                        run_held_out_label_probability, run_held_out_probabilities,
                                        run_held_out_refused)
from noisyctl.estimate.mixture import STEADY_MOST, noise_share, tail_excess_share
from noisyctl.estimate.rate import (NOT_LEARNED, UNSURE_ABOVE, WEAK_EVIDENCE, NoiseRateEstimate, cannot_tell,
                                    estimate_noise_rate)
from noisyctl.estimate.run import HELD_OUT_REFUSED, OVERLAP_ANCHORS, run_noise_rate

__all__ = [
    "AGGREGATES", "ANNOTATORS", "aggregate_labels", "annotators_noise_rate", "dawid_skene", "run_annotators_count",
    "run_annotators_floor", "surely_least_right_first", "UNSETTLED",
    "run_annotators_posterior",
    "run_held_out_probabilities",
    "ANCHOR_MIN_COUNT", "FEW_CLASSES", "FIRST_SIGHT_REFUSED", "HELD_OUT_ANCHORS", "HELD_OUT_REFUSED", "LOSS_CHANNELS",
    "NEVER_BELIEVED", "NOT_LEARNED", "OVERLAP_ANCHORS", "PLATEAU", "REFUSED", "REFUSED_EPOCHS", "REFUSED_PROBABILITY",
    "STEADY_MOST",
    "UNDER_CHANCE_AT_END", "UNSURE_ABOVE", "WEAK_EVIDENCE", "NoiseRateEstimate", "RunEvidence", "cannot_tell",
    "confused_pairs", "decided_noisy", "estimate_noise_rate", "gmm_noisy_posterior", "held_out_anchors",
    "held_out_noise_rate", "late_contradictions", "learning_start", "loss_evidence", "never_learned", "noise_share",
    "presented_mean", "read_run_evidence", "refused_labels", "run_held_out_anchors",
    "run_held_out_contradicted_anchors", "run_held_out_count",
    "run_held_out_label_probability", "run_held_out_refused", "run_noise_rate", "tail_excess_share",
    "under_chance_at_end",
]
