"""What a learned detector reads: each sample's dynamics as a ``[steps, features]`` sequence.

Two feature sets, one per detector: ``ProbabilitySeries`` (``lstm``, the paper's input) and
``DynamicsFeatures`` (``learned``). Both resample the run to ``STEPS`` evenly spaced points, since a
detector trained on runs of one length transferred poorly to runs of another, and stream the run a
block of epochs at a time, computing only the epochs the resampling needs.
"""

from __future__ import annotations

import numpy as np

STEPS = 32


def _ranks(values: np.ndarray, labels: np.ndarray | None = None):
    """Percentile ranks in (0, 1] of one epoch's column, and with ``labels`` also the ranks among
    samples of the same label, both from one sort of the values (the label sort is a radix sort)."""
    n = len(values)
    order = np.argsort(values)
    ranks = np.empty(n, dtype=np.float32)
    ranks[order] = np.arange(1, n + 1, dtype=np.float32) / n
    if labels is None:
        return ranks
    order = order[np.argsort(labels[order], kind="stable")]  # by label, by value within a label
    sorted_labels = labels[order]
    starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
    sizes = np.diff(np.r_[starts, n])
    in_label = np.empty(n, dtype=np.float32)
    in_label[order] = (np.arange(n) - np.repeat(starts, sizes) + 1) / np.repeat(sizes, sizes).astype(np.float32)
    return ranks, in_label


def _interpolation(epochs: int, steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each of ``steps`` evenly spaced points over ``epochs``: the epochs around it and the weight
    of the later one. Longer runs take the nearest epoch (half the epochs to compute); shorter ones
    are interpolated linearly. The first and last epoch are always kept."""
    position = np.linspace(0, epochs - 1, steps)
    if epochs >= steps:
        nearest = np.rint(position).astype(int)
        return nearest, nearest, np.zeros(steps, dtype=np.float32)
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, epochs - 1)
    return low, high, (position - low).astype(np.float32)


def _carry_forward(block: dict[str, np.ndarray], last: dict[str, np.ndarray]) -> None:
    """Fill, in place, the records an epoch lacks (NaN; -1 for a prediction): a sample it did not
    present (a partial epoch, or one resumed mid-way), or every sample of an epoch without an eval
    pass (a loop that evaluates every few epochs). Each takes the sample's record of the epoch
    before; before a channel's first record, that first record (the median where it lacks the
    sample too). A NaN would otherwise stay in the running sums for the rest of the run, or leave
    every sample unscored. ``last`` carries each channel's latest column from block to block."""
    for name, values in block.items():
        floating = np.issubdtype(values.dtype, np.floating)
        if not (np.isnan(values).any() if floating else (values < 0).any()):
            last[name] = values[:, -1].copy()  # the common case, a block with every record: one pass
            continue
        if not floating:
            values = block[name] = values.astype(np.float32)  # a prediction of -1: missing
            values[values < 0] = np.nan
        if name not in last:
            recorded = [e for e in range(values.shape[1]) if not np.isnan(values[:, e]).all()]
            if not recorded:
                continue  # no record of this channel yet: its epochs stay unread
            first = values[:, recorded[0]].copy()
            first[np.isnan(first)] = np.nanmedian(first)
            last[name] = first
        for e in range(values.shape[1]):
            column = values[:, e]
            missing = np.isnan(column)
            if missing.any():
                column[missing] = last[name][missing]
            last[name] = column.copy()  # not a view: it would keep the whole block alive
        if not floating:
            block[name] = np.nan_to_num(values, nan=-1).astype(np.int32)


class FeatureSet:
    """A detector's input: ``channels`` read from the run, ``names`` of the feature columns, the first
    ``per_epoch`` of them computed epoch by epoch (``epoch``), the rest from the resampled sequence
    (``finish``)."""

    channels: tuple[str, ...] = ()
    names: list[str] = []
    per_epoch = 0
    running: tuple[str, ...] = ()  # channels whose running sums ``epoch`` gets

    def epoch(self, block: dict[str, np.ndarray], e: int, given: np.ndarray, running: dict[str, np.ndarray],
              seen: int) -> np.ndarray:
        """The ``[N, per_epoch]`` values of epoch ``e`` (column ``e`` of the block); ``running`` holds
        the sums of the ``running`` channels over the ``seen`` epochs up to and including it."""
        raise NotImplementedError

    def finish(self, out: np.ndarray) -> None:
        """Fill the columns after ``per_epoch`` of the resampled ``[N, steps, features]`` array."""

    def compute(self, dynamics) -> np.ndarray:
        """The ``[N, STEPS, features]`` input (float16: every feature lies in [0, 1]) of every sample."""
        low, high, weight = _interpolation(dynamics.num_epochs, STEPS)
        given = dynamics.given_labels
        out = np.zeros((dynamics.num_samples, STEPS, len(self.names)), dtype=np.float16)
        running = {name: np.zeros(dynamics.num_samples) for name in self.running}
        last: dict[str, np.ndarray] = {}
        for where, block in dynamics.iter_epoch_blocks(self.channels):
            _carry_forward(block, last)
            for e in range(where.start, where.stop):
                for name, total in running.items():
                    total += block[name][:, e - where.start]
                uses_low, uses_high = np.flatnonzero(low == e), np.flatnonzero(high == e)
                if not len(uses_low) and not len(uses_high):
                    continue
                values = self.epoch(block, e - where.start, given, running, e + 1)
                for t in uses_low:
                    out[:, t, :self.per_epoch] += (1 - weight[t]) * values
                for t in uses_high:
                    if weight[t]:
                        out[:, t, :self.per_epoch] += weight[t] * values
        self.finish(out)
        return out


class ProbabilitySeries(FeatureSet):
    """``lstm`` (Jia et al. 2022): the eval-mode probability of the given label, epoch by epoch."""

    channels = ("eval_prob",)
    names = ["eval_prob"]
    per_epoch = 1

    def epoch(self, block, e, given, running, seen):
        return block["eval_prob"][:, e, None].astype(np.float32)


class DynamicsFeatures(FeatureSet):
    """``learned``: several channels per epoch (probability, agreement of the prediction with the
    label, and the ranks of loss and margin among all samples and among the samples of the same
    label, which make runs of different models, datasets and lengths comparable). Two rank the
    running means of the raw training loss and margin (the ``loss`` and ``aum`` scores as they stand
    at that epoch): a mean of per-epoch ranks weighs the late epochs, where every sample is fitted
    and ranks are noise, as much as the telling ones. One more is the run's own agreement at each
    step (its training accuracy on the given labels), which says how far the model has come, so a
    sample's ranks can be read against it. The ranks' ends are also given stretched."""

    channels = ("eval_prob", "eval_pred", "eval_margin", "train_loss", "train_margin")
    per_epoch = 9
    running = ("train_loss", "train_margin")
    BASE = ["eval_prob", "agrees", "loss_rank", "loss_rank_in_label", "margin_rank", "margin_rank_in_label",
            "train_margin_rank", "mean_loss_so_far_rank", "mean_train_margin_so_far_rank", "mean_agrees_so_far",
            "run_agreement"]
    # Rank features whose end the mislabeled samples hold (loss ranks the top, margin ranks the
    # bottom), given once more with that end stretched: log(distance to the end + floor) / log(floor).
    RANK_TAILS = {"loss_rank": "top", "loss_rank_in_label": "top", "mean_loss_so_far_rank": "top",
                  "margin_rank": "bottom", "margin_rank_in_label": "bottom", "train_margin_rank": "bottom",
                  "mean_train_margin_so_far_rank": "bottom"}
    TAIL_FLOOR = 1e-3
    names = [*BASE, *(f"{name}_{end}" for name, end in RANK_TAILS.items())]

    def epoch(self, block, e, given, running, seen):
        out = np.empty((len(given), self.per_epoch), dtype=np.float32)
        out[:, 0] = block["eval_prob"][:, e]
        out[:, 1] = block["eval_pred"][:, e] == given
        out[:, 2], out[:, 3] = _ranks(block["train_loss"][:, e], given)
        out[:, 4], out[:, 5] = _ranks(block["eval_margin"][:, e], given)
        out[:, 6] = _ranks(block["train_margin"][:, e])
        out[:, 7] = _ranks(running["train_loss"] / seen)
        out[:, 8] = _ranks(running["train_margin"] / seen)
        return out

    def finish(self, out: np.ndarray) -> None:
        # The running mean of agreement: the whole history at every step, which a recurrent network
        # otherwise has to integrate itself (and did poorly at high noise rates).
        index_of = self.BASE.index
        agrees = out[:, :, index_of("agrees")]
        so_far = np.arange(1, out.shape[1] + 1, dtype=np.float32)[None, :]
        out[:, :, index_of("mean_agrees_so_far")] = np.cumsum(agrees, axis=1, dtype=np.float32) / so_far
        out[:, :, index_of("run_agreement")] = agrees.mean(axis=0, dtype=np.float32)
        # The ends of the rank scale, stretched: at 5% noise the mislabeled samples share the top 5%
        # of loss ranks, which a network reading plain ranks hardly told apart (mAP 0.95 where plain
        # loss had 0.99); -log(distance from the end) spreads them out again.
        for column, (name, end) in enumerate(self.RANK_TAILS.items(), start=len(self.BASE)):
            ranks = out[:, :, index_of(name)].astype(np.float32)
            distance = 1 - ranks if end == "top" else ranks
            out[:, :, column] = np.clip(np.log(distance + self.TAIL_FLOOR) / np.log(self.TAIL_FLOOR), 0, 1)


FEATURE_SETS: dict[str, FeatureSet] = {"lstm": ProbabilitySeries(), "learned": DynamicsFeatures()}
