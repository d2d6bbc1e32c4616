"""Adapting a learned detector's ranking to the run it scores, without the truth."""

from __future__ import annotations

import numpy as np

from noisyctl.api import presented_mean, read_run_evidence

# Adapting fits a logistic regression on the features at these shares of the run (their steps), on
# at most ADAPT_FIT_SAMPLES samples, if the networks flag at least ADAPT_MIN_CLASS samples and
# leave as many unflagged.
ADAPT_AT = (0.25, 0.5, 0.75, 1.0)
ADAPT_FIT_SAMPLES = 200_000
ADAPT_MIN_CLASS = 10
ADAPT_C = 0.1
RUNNING_MARGIN = "mean_train_margin_so_far_rank"  # the AUM so far, whose best step joins the adaptation
# With little noise, where the run has held-out models, their loss of each given label joins the
# mean training loss at a quarter of its weight in log terms: it moves near-ties of the training
# loss, and overrules it only where the held-out models are far surer. Chosen on half of 150 cached
# runs at 0.5-5% noise (weights 0.1-1), checked on the other half (docs/benchmarks-history.md, 24th pass).
HELD_OUT_WEIGHT = 0.25
# With little noise the mean training loss shares its weight with the mean loss against the
# strongest rival class alone (``mean_rival_loss``): a wrong label has one rival, the sample's true
# class, while a hard clean sample's doubt is spread over several. Their geometric mean ranked 179
# of 362 cached runs at 0.2-5% noise without held-out models better than the loss alone and 74
# worse (mean mAP 0.861 to 0.865; by more than 0.01: 56 and 7), 22 and 12 of the 61 with them,
# and 82 and 14 of 109 at 5-50% (docs/benchmarks-history.md, fifty-ninth pass).
RIVAL_WEIGHT = 0.5
# float16's step just under 1 (2**-11): run files keep probabilities in float16, so held-out losses
# under it all read 0; the training loss is floored alike, so both logs stay finite.
LOSS_FLOOR = 2.0 ** -11


def reordered(probability: np.ndarray, order_by: np.ndarray) -> np.ndarray:
    """The probabilities of the samples ``order_by`` ranks, handed out in its order (highest to the
    highest); a sample it cannot rank (NaN: never presented) is not judged (NaN)."""
    out = np.full_like(probability, np.nan)
    ranked = np.flatnonzero(~np.isnan(order_by))
    out[ranked[np.argsort(order_by[ranked], kind="stable")]] = np.sort(probability[ranked])
    return out


def little_noise_order(mean_loss: np.ndarray, held_out_probability: np.ndarray | None = None,
                       rival_loss: np.ndarray | None = None) -> np.ndarray:
    """What a run with little noise is ranked by: its samples' mean training loss (N,), with their
    mean loss against the strongest rival class (N,, ``mean_rival_loss``) where given, and where
    the run has held-out models, their probability of each given label (N,) too.

    With little noise the mislabeled samples are the few with extreme losses; of two samples with
    the same loss, the one whose doubt falls on a single rival class is the likelier wrong label
    (RIVAL_WEIGHT). A model that trained on a wrong label may still fit it (instance-dependent
    noise, which flips the samples that look most like another class); models that never trained
    on it contradict it. The score is ``(1 - RIVAL_WEIGHT) * log(mean_loss) + RIVAL_WEIGHT *
    log(rival_loss) + HELD_OUT_WEIGHT * log(held_out_loss)``, each loss floored at LOSS_FLOOR: the
    logs make it independent of any loss's scale. NaN (a sample never presented) stays NaN.
    """
    if held_out_probability is None and rival_loss is None:
        return mean_loss
    # np.maximum keeps a NaN (a sample never presented) NaN
    score = np.log(np.maximum(mean_loss, LOSS_FLOOR))
    if rival_loss is not None:
        score = (1 - RIVAL_WEIGHT) * score + RIVAL_WEIGHT * np.log(np.maximum(rival_loss, LOSS_FLOOR))
    if held_out_probability is not None:
        held_out_loss = -np.log(np.clip(np.asarray(held_out_probability, dtype=np.float64), 1e-12, 1.0))
        score = score + HELD_OUT_WEIGHT * np.log(np.maximum(held_out_loss, LOSS_FLOOR))
    return score


def mean_rival_loss(dynamics) -> np.ndarray | None:
    """Each sample's mean loss of its given label against the strongest other class alone (N,):
    ``log(1 + exp(-margin))`` of its training-mode logit margin, averaged over the epochs the
    run's mean loss reads (``read_run_evidence``). None where the run recorded no margins, or its
    mean loss is read from another channel than the training loss (mixed batches, whose training
    margins mix two labels)."""
    evidence = read_run_evidence(dynamics)  # read once per opened run
    if evidence is None or evidence.channel != "train_loss" or not dynamics.has_channel("train_margin"):
        return None
    return np.concatenate([presented_mean(np.logaddexp(0.0, -block["train_margin"][:, evidence.learning_from:]
                                                       .astype(np.float64)))
                           for _, block in dynamics.iter_blocks(("train_margin",))])


def most_agreeing_step(scores: np.ndarray, decisions: np.ndarray) -> int:
    """The step of ``[N, steps]`` scores whose ranking agrees best with the decisions (average precision)."""
    from sklearn.metrics import average_precision_score

    return max(range(scores.shape[1]), key=lambda t: average_precision_score(decisions, scores[:, t]))


def adapt_to_run(inputs: np.ndarray, probability: np.ndarray, judged: np.ndarray | None = None,
                 running_margin: int | None = None) -> np.ndarray:
    """The detector's probabilities reordered by what this run's own features say.

    The networks carry what their training runs looked like; a run may separate its mislabeled
    samples along other features, or with other weights. A logistic regression on this run's
    features at a few steps learns the network's decisions (P > 0.5) from them. With
    ``running_margin`` (the column of the running mean margin's rank, the AUM so far) a third
    voter joins: the run's AUM as it stood at the step whose ranking agrees best with those
    decisions (average precision), an AUM stopped early where this run's model had not yet fitted
    its noise, chosen without the truth. The samples are ranked by the sum of their ranks under
    the voters. The returned scores are the network's own probabilities, handed out in that
    order: the same values, the same number above 0.5, a better ranking. On held-out folds of the
    recipe's 44 runs this raised the mean mAP from 0.822 to 0.828 (``benchmarks/transfer.py``).
    ``judged`` (a mask) leaves samples out of the fit, such as AUM threshold samples, which were
    trained on a fake class; they are still scored.
    """
    import warnings

    from scipy.stats import rankdata
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    if not np.isfinite(probability).all():
        return probability  # samples the networks could not read: a NaN would make every rank NaN
    decided = probability > 0.5
    fit = np.arange(len(inputs)) if judged is None else np.flatnonzero(judged)
    if min(decided[fit].sum(), (~decided[fit]).sum()) < ADAPT_MIN_CLASS:
        return probability  # too few decisions on one side to learn from
    steps = inputs.shape[1]
    at = [round(share * steps) - 1 for share in ADAPT_AT]

    def columns(rows: np.ndarray) -> np.ndarray:
        return rows[:, at].reshape(len(rows), -1).astype(np.float32)

    if len(fit) > ADAPT_FIT_SAMPLES:
        fit = np.sort(np.random.default_rng(0).choice(fit, ADAPT_FIT_SAMPLES, replace=False))  # the same every time
    sample = columns(inputs[fit])
    mean, spread = sample.mean(axis=0), sample.std(axis=0) + 1e-6
    with warnings.catch_warnings():  # a fit short of full convergence still ranks; say nothing to the user
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = LogisticRegression(C=ADAPT_C, max_iter=1000).fit((sample - mean) / spread, decided[fit])
    chunk = 65536  # samples at a time, so the columns never exist for all of a large run at once
    regression = np.concatenate([model.decision_function((columns(inputs[start:start + chunk]) - mean) / spread)
                                 for start in range(0, len(inputs), chunk)])
    votes = rankdata(probability) + rankdata(regression)
    if running_margin is not None:
        # minus the margin rank: a low AUM says mislabeled
        step = most_agreeing_step(-inputs[fit, :, running_margin], decided[fit])
        votes += rankdata(-inputs[:, step, running_margin])
    return reordered(probability, votes)
