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

Either kind may hold several members: networks trained with different seeds, whose probabilities
are averaged. A single network's scores moved by 0.02-0.05 mAP between seeds; the average does not.

Weights are safetensors files: tensors plus a metadata header, never pickled code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from noisyctl.api import (NOISYCTL_VERSION, DetectorResult, NoisyctlError, TrainableDetector, atomic_output,
                          estimate_noise_rate, open_run)

WEIGHTS_DIR = Path(__file__).parent / "weights"
RESAMPLED_STEPS = 32
PER_EPOCH_FEATURES = 9  # learned: features computed per epoch; the last is a running mean of agreement
LEARNED_BASE_FEATURES = ["eval_prob", "agrees", "loss_rank", "loss_rank_in_label", "margin_rank",
                         "margin_rank_in_label", "train_margin_rank", "mean_loss_so_far_rank",
                         "mean_train_margin_so_far_rank", "mean_agrees_so_far", "run_agreement"]
# learned: rank features whose end the mislabeled samples hold (loss ranks the top, margin ranks the
# bottom), given once more with that end stretched: log(distance to the end + floor) / log(floor).
RANK_TAILS = {"loss_rank": "top", "loss_rank_in_label": "top", "mean_loss_so_far_rank": "top",
              "margin_rank": "bottom", "margin_rank_in_label": "bottom", "train_margin_rank": "bottom",
              "mean_train_margin_so_far_rank": "bottom"}
TAIL_FLOOR = 1e-3
# learned: adapting to the run fits a logistic regression on the features at these shares of the
# run (their steps), on at most ADAPT_FIT_SAMPLES samples, if it flags at least ADAPT_MIN_CLASS
# samples and leaves as many unflagged.
ADAPT_AT = (0.25, 0.5, 0.75, 1.0)
ADAPT_FIT_SAMPLES = 200_000
ADAPT_MIN_CLASS = 10
ADAPT_C = 0.1
RUNNING_MARGIN = "mean_train_margin_so_far_rank"  # the AUM so far, whose best step joins the adaptation
# learned: a run whose noise-rate estimate is under LOW_NOISE_RATE, its interval's upper end under
# LOW_NOISE_HIGH, is ranked by its samples' mean training loss. With little noise the mislabeled
# samples are the few with extreme losses, which the loss ranks best (best or tied in 25 of 36
# settings at 0.5-5% in benchmarks/calibration.py, the networks in 2: their features, learned at
# 10-45% noise, blur the very top). At 10-45% the rule also chose well: 20 of 27 settings at the best
# hand-crafted mAP or above, against 18 for the networks alone.
LOW_NOISE_RATE = 0.10
LOW_NOISE_HIGH = 0.15

KINDS: dict[str, dict[str, Any]] = {
    "lstm": {"channels": ("eval_prob",), "features": ["eval_prob"], "steps": RESAMPLED_STEPS},
    "learned": {
        "channels": ("eval_prob", "eval_pred", "eval_margin", "train_loss", "train_margin"),
        "features": [*LEARNED_BASE_FEATURES, *(f"{name}_{end}" for name, end in RANK_TAILS.items())],
        "steps": RESAMPLED_STEPS,
    },
}


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


def _epoch_features(kind: str, block: dict[str, np.ndarray], e: int, given: np.ndarray,
                    running: dict[str, np.ndarray], seen: int) -> np.ndarray:
    """The ``[N, features]`` values of epoch ``e`` (column ``e`` of the block); ``running`` holds the
    sums of the raw training loss and margin over the ``seen`` epochs up to and including it."""
    if kind == "lstm":
        return block["eval_prob"][:, e, None].astype(np.float32)
    out = np.empty((len(given), PER_EPOCH_FEATURES), dtype=np.float32)
    out[:, 0] = block["eval_prob"][:, e]
    out[:, 1] = block["eval_pred"][:, e] == given
    out[:, 2], out[:, 3] = _ranks(block["train_loss"][:, e], given)
    out[:, 4], out[:, 5] = _ranks(block["eval_margin"][:, e], given)
    out[:, 6] = _ranks(block["train_margin"][:, e])
    out[:, 7] = _ranks(running["train_loss"] / seen)
    out[:, 8] = _ranks(running["train_margin"] / seen)
    return out


def features(dynamics, kind: str) -> np.ndarray:
    """The ``[N, steps, features]`` input of a learned detector, for every sample of a run.

    Streams the run a block of epochs at a time and computes only the epochs the resampling needs,
    so memory holds the output and one block, not every channel whole.
    """
    spec = KINDS[kind]
    steps = spec["steps"]
    low, high, weight = _interpolation(dynamics.num_epochs, steps)
    given = dynamics.given_labels
    per_epoch = 1 if kind == "lstm" else PER_EPOCH_FEATURES
    # float16 halves the memory of N x steps x features; every feature lies in [0, 1].
    out = np.zeros((dynamics.num_samples, steps, len(spec["features"])), dtype=np.float16)
    # learned: sums of the raw training loss and margin over the epochs so far
    sums = ("train_loss", "train_margin") if kind == "learned" else ()
    running = {name: np.zeros(dynamics.num_samples) for name in sums}
    for where, block in dynamics.iter_epoch_blocks(spec["channels"]):
        for e in range(where.start, where.stop):
            for name, total in running.items():
                total += block[name][:, e - where.start]
            uses_low, uses_high = np.flatnonzero(low == e), np.flatnonzero(high == e)
            if not len(uses_low) and not len(uses_high):
                continue
            values = _epoch_features(kind, block, e - where.start, given, running, e + 1)
            for t in uses_low:
                out[:, t, :per_epoch] += (1 - weight[t]) * values
            for t in uses_high:
                if weight[t]:
                    out[:, t, :per_epoch] += weight[t] * values
    if kind == "learned":
        # The running mean of agreement: the whole history at every step, which a recurrent network
        # otherwise has to integrate itself (and did poorly at high noise rates).
        index_of = LEARNED_BASE_FEATURES.index
        agrees = out[:, :, index_of("agrees")]
        so_far = np.arange(1, steps + 1, dtype=np.float32)[None, :]
        out[:, :, index_of("mean_agrees_so_far")] = np.cumsum(agrees, axis=1, dtype=np.float32) / so_far
        out[:, :, index_of("run_agreement")] = agrees.mean(axis=0, dtype=np.float32)
        # The ends of the rank scale, stretched: at 5% noise the mislabeled samples share the top 5%
        # of loss ranks, which a network reading plain ranks hardly told apart (mAP 0.95 where plain
        # loss had 0.99); -log(distance from the end) spreads them out again.
        for column, (name, end) in enumerate(RANK_TAILS.items(), start=len(LEARNED_BASE_FEATURES)):
            ranks = out[:, :, index_of(name)].astype(np.float32)
            distance = 1 - ranks if end == "top" else ranks
            out[:, :, column] = np.clip(np.log(distance + TAIL_FLOOR) / np.log(TAIL_FLOOR), 0, 1)
    return out


def _network(inputs: int, hidden: int = 64, layers: int = 2):
    import torch
    from torch import nn

    class SequenceClassifier(nn.Module):
        """A stacked LSTM over the dynamics; two logits (clean, mislabeled) from the last step."""

        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(inputs, hidden, num_layers=layers, batch_first=True)
            self.head = nn.Linear(hidden, 2)
            for name, weight in self.lstm.named_parameters():
                if name.startswith("weight"):
                    nn.init.orthogonal_(weight)
                else:
                    nn.init.zeros_(weight)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            output, _ = self.lstm(x)
            return self.head(output[:, -1])

    return SequenceClassifier()


def save_weights(path: Path, members: list, meta: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    tensors = {f"member{i}.{k}": v.detach().contiguous().cpu()
               for i, network in enumerate(members) for k, v in network.state_dict().items()}
    with atomic_output(path) as tmp:
        save_file(tensors, str(tmp), metadata={k: json.dumps(v) for k, v in {**meta, "members": len(members)}.items()})


def load_weights(path: Path):
    """The member networks and the metadata of a safetensors file, refusing anything else."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise NoisyctlError(f"detector weights {path} do not exist")
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = {k: json.loads(v) for k, v in (handle.metadata() or {}).items()}
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    except Exception as exc:
        raise NoisyctlError(f"{path} is not a safetensors file of detector weights ({type(exc).__name__})") from None
    if meta.get("kind") not in KINDS:
        raise NoisyctlError(f"{path} holds no noisyctl detector (its metadata names no known kind)")
    # Files from before members were stored under their own prefix hold one network, unprefixed.
    count = int(meta.get("members", 0))
    groups = [{k[len(f"member{i}."):]: v for k, v in tensors.items() if k.startswith(f"member{i}.")}
              for i in range(count)] if count else [tensors]
    members = []
    for state in groups:
        network = _network(len(meta["features"]), meta.get("hidden", 64), meta.get("layers", 2))
        try:
            network.load_state_dict(state)
        except RuntimeError:
            raise NoisyctlError(f"{path}: its tensors do not fit a {meta['kind']} detector") from None
        members.append(network.eval())
    return members, meta


def predict(members: list, inputs: np.ndarray, batch_size: int = 8192) -> np.ndarray:
    """The mean over the member networks of the probability that each sample is mislabeled."""
    import torch

    out = np.empty(len(inputs), dtype=np.float64)
    with torch.inference_mode():
        for start in range(0, len(inputs), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(inputs[start:start + batch_size], dtype=np.float32))
            probability = sum(torch.softmax(network(batch), dim=1)[:, 1] for network in members) / len(members)
            out[start:start + batch_size] = probability.double().numpy()
    return out


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


def _columns(inputs: np.ndarray, kind: str, meta: dict[str, Any], weights: Path) -> np.ndarray:
    """The feature columns a weights file was trained on, by name: files trained before features
    were added keep working."""
    names = KINDS[kind]["features"]
    if meta["features"] == names:
        return inputs
    unknown = [f for f in meta["features"] if f not in names]
    if unknown:
        raise NoisyctlError(f"{weights} reads a feature this noisyctl does not compute: '{unknown[0]}'")
    return inputs[:, :, [names.index(f) for f in meta["features"]]]


class LearnedDetector(TrainableDetector):
    """Multi-channel learned detector (probability, agreement, loss and margin ranks per epoch), adapted to the run; flags as many as the noise-rate estimate counts."""

    kind = "learned"
    adapts = True  # by default; lstm reproduces the paper, which has no such step

    def __init__(self, weights: str | None = None, adapt: bool | None = None) -> None:
        self.weights = Path(weights) if weights else WEIGHTS_DIR / f"{self.kind}.safetensors"
        self.reads = KINDS[self.kind]["channels"]
        if adapt is not None and not isinstance(adapt, bool):
            raise NoisyctlError(f"{self.kind}: adapt is true or false, not '{adapt}'")
        self.adapt = self.adapts if adapt is None else adapt

    @classmethod
    def train(cls, runs, out, **settings):
        return train_detector(runs, cls.kind, out, **settings)

    def score(self, dynamics) -> DetectorResult:
        members, meta = load_weights(self.weights)
        if meta["kind"] != self.kind:
            raise NoisyctlError(f"{self.weights} holds a '{meta['kind']}' detector, not '{self.kind}'")
        inputs = _columns(features(dynamics, self.kind), self.kind, meta, self.weights)
        probability = predict(members, inputs)
        info = {"weights": str(self.weights), "trained_on": meta.get("trained_on"), "adapted_to_run": self.adapt}
        threshold = getattr(dynamics, "threshold_samples", None)
        judged = np.ones(len(probability), dtype=bool) if threshold is None else ~threshold
        if "train_loss" not in self.reads:  # lstm reads no losses: no estimate, P > 0.5 flags
            if self.adapt:
                probability = adapt_to_run(inputs, probability, judged=judged)
            return DetectorResult(probability, flagged=probability > 0.5, info=info)
        mean_loss = np.concatenate([block["train_loss"].mean(axis=1, dtype=np.float64)
                                    for _, block in dynamics.iter_blocks(("train_loss",))])
        estimate = estimate_noise_rate(mean_loss[judged])
        info["estimated_noise"] = {"rate": estimate.rate, "low": estimate.low, "high": estimate.high}
        if self.adapt and estimate.rate < LOW_NOISE_RATE and estimate.high < LOW_NOISE_HIGH:
            probability = reordered(probability, mean_loss)
            info["ranked_by"] = "mean training loss (little noise)"
        elif self.adapt:
            names = meta["features"]
            probability = adapt_to_run(inputs, probability, judged=judged,
                                       running_margin=names.index(RUNNING_MARGIN) if RUNNING_MARGIN in names else None)
        if estimate.unsure:
            # The losses cannot tell (a run too short, or 30-45% pair-flip noise, where the estimate
            # said 0% and prune --auto removed nothing): the networks' own decision stands.
            info["flags"] = "networks' decision: the losses cannot tell"
            return DetectorResult(probability, flagged=(probability > 0.5) & judged, info=info)
        # As many flags as the estimate counts, the most probable first: the networks' P > 0.5
        # carries the 10-45% noise of their training runs (it flagged 10% of clean digits).
        candidates = np.flatnonzero(judged)
        flagged = np.zeros(len(probability), dtype=bool)
        flagged[candidates[np.argsort(-probability[candidates], kind="stable")[:estimate.count]]] = True
        return DetectorResult(probability, flagged=flagged, info=info)


def reordered(probability: np.ndarray, order_by: np.ndarray) -> np.ndarray:
    """The same probabilities handed out in the order of ``order_by`` (highest to the highest)."""
    out = np.empty_like(probability)
    out[np.argsort(order_by, kind="stable")] = np.sort(probability)
    return out


class LstmDetector(LearnedDetector):
    """The LSTM of "Learning from Training Dynamics" (Jia et al. 2022) on the assigned-label probability; flags p > 0.5."""

    kind = "lstm"
    adapts = False


def train_detector(runs: list[Path], kind: str, out: Path, *, epochs: int = 10, batch_size: int = 64,
                   lr: float = 1e-3, seed: int = 0, holdout: float = 0.1, members: int = 1, hidden: int = 64,
                   crop: float = 1.0, fine_tune: Path | None = None, progress=None) -> dict[str, Any]:
    """Train a detector on runs whose truth is known: ``members`` networks, member ``i`` with seed
    ``seed + i`` (initialisation, hold-out split, order), each kept at its epoch of best hold-out mAP.

    ``crop`` below 1 cuts each training sequence to a random first share in [crop, 1] of its run,
    resampled back to the full steps: the detector then also sees runs stopped early, before the
    model fits the noise, which made it transfer better to runs unlike its training runs."""
    if kind not in KINDS:
        raise NoisyctlError(f"unknown detector kind '{kind}'; available: {', '.join(KINDS)}")
    if members < 1 or hidden < 1:
        raise NoisyctlError("a detector needs at least one member and one hidden unit")
    if not 0 < crop <= 1:
        raise NoisyctlError(f"crop is the shortest share of a run to train on, in (0, 1]; got {crop}")
    inputs, targets, sources = [], [], []
    for path in runs:
        with open_run(path) as run:
            truth = run.labels.is_noisy
            if truth is None:
                raise NoisyctlError(f"{path} has no known truth: train detectors on runs of synthesized noise")
            missing = [c for c in KINDS[kind]["channels"] if not run.has_channel(c)]
            if missing:
                raise NoisyctlError(f"{path} lacks the '{missing[0]}' dynamics a {kind} detector reads")
            inputs.append(features(run, kind))
            targets.append(truth.astype(np.int64))
            sources.append({"run": Path(path).name, "dataset": run.labels.dataset.get("name"),
                            "noise": (run.labels.noise or {}).get("name"), "samples": run.num_samples,
                            "epochs": run.num_epochs, "noisy": float(truth.mean())})
    x, y = np.concatenate(inputs).astype(np.float32), np.concatenate(targets)
    if y.min() == y.max():
        raise NoisyctlError("the runs need both clean and mislabeled samples to learn from")
    starts: list = [None] * members
    if fine_tune is not None:
        tuned, meta = load_weights(fine_tune)
        if meta["kind"] != kind:
            raise NoisyctlError(f"{fine_tune} holds a '{meta['kind']}' detector; fine-tune it as that kind")
        if meta["features"] != KINDS[kind]["features"]:
            raise NoisyctlError(f"{fine_tune} reads older features than this noisyctl computes; train a new detector")
        starts = [tuned[i % len(tuned)] for i in range(members)]
        hidden = meta.get("hidden", 64)
    trained, held_out = [], []
    for member, start in enumerate(starts):
        def report(epoch, total, held_map, member=member):
            if progress is not None:
                progress(epoch, total, held_map, member + 1, members)

        network, best = _fit(x, y, seed + member, holdout, epochs, batch_size, lr, hidden, crop, start, report)
        trained.append(network)
        held_out.append(best)
    summary = {"map": float(np.mean([b["map"] for b in held_out])),
               "auc": float(np.mean([b["auc"] for b in held_out])) if all(b["auc"] for b in held_out) else None,
               "epoch": [b["epoch"] for b in held_out]}
    if members == 1:
        summary["epoch"] = summary["epoch"][0]
    meta = {"kind": kind, "features": KINDS[kind]["features"], "steps": KINDS[kind]["steps"], "hidden": hidden,
            "layers": 2, "noisyctl_version": NOISYCTL_VERSION, "trained_on": sources,
            "crop": crop, "holdout": {"share": holdout, **summary}, "fine_tuned_from": str(fine_tune) if fine_tune else None}
    save_weights(Path(out), trained, meta)
    return {"out": str(out), "kind": kind, "samples": int(len(y)), "members": members, "runs": sources,
            "holdout": meta["holdout"]}


def _crop(batch, shortest: float):
    """Each sequence of a ``[B, steps, features]`` batch cut to its first share in [shortest, 1] and
    linearly resampled back to ``steps``. As the features are resampled epochs, running means
    included, this is close to the features the run would have had, had it stopped there."""
    import torch

    count, steps, _ = batch.shape
    share = shortest + (1 - shortest) * torch.rand(count, 1)
    position = torch.linspace(0, 1, steps)[None, :] * share * (steps - 1)
    low = position.floor().long()
    high = (low + 1).clamp(max=steps - 1)
    weight = (position - low)[..., None]
    rows = torch.arange(count)[:, None]
    return (1 - weight) * batch[rows, low] + weight * batch[rows, high]


def _fit(x: np.ndarray, y: np.ndarray, seed: int, holdout: float, epochs: int, batch_size: int, lr: float,
         hidden: int, crop: float, start, progress) -> tuple[Any, dict[str, Any]]:
    """One member network, at the epoch of its best mAP on a hold-out share of the samples."""
    import torch
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    cut = max(1, int(round(holdout * len(y))))
    held, fit = order[:cut], order[cut:]
    torch.manual_seed(seed)
    if start is not None:
        network = start.train()
    else:
        network = _network(x.shape[2], hidden)
    optimizer = torch.optim.AdamW(network.parameters(), lr=lr)
    x_fit, y_fit = torch.from_numpy(x[fit]), torch.from_numpy(y[fit])
    best: dict[str, Any] = {"map": -1.0}
    for epoch in range(epochs):
        network.train()
        shuffle = torch.randperm(len(fit))
        for first in range(0, len(fit), batch_size):
            batch = shuffle[first:first + batch_size]
            inputs = x_fit[batch] if crop >= 1 else _crop(x_fit[batch], crop)
            loss = torch.nn.functional.cross_entropy(network(inputs), y_fit[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        network.eval()
        scores = predict([network], x[held])
        held_map = float(average_precision_score(y[held], scores)) if 0 < y[held].sum() < len(held) else 0.0
        if held_map > best["map"]:
            best = {"map": held_map, "auc": float(roc_auc_score(y[held], scores)) if held_map else None,
                    "epoch": epoch + 1, "state": {k: v.clone() for k, v in network.state_dict().items()}}
        progress(epoch + 1, epochs, held_map)
    network.load_state_dict(best.pop("state"))
    return network.eval(), best
