"""Built-in label correctors: each proposes a label and a confidence for every sample of a run."""

from __future__ import annotations

import numpy as np

from noisyctl.api import (Correction, Corrector, NoisyctlError, held_out_probabilities, hookimpl, prototype_labels,
                          run_annotators_posterior, suggestions)


def _confidence_bar(value, corrector: str) -> float:
    """A corrector's ``min_confidence`` option, refused outside [0, 1]."""
    if not 0.0 <= float(value) <= 1.0:
        raise NoisyctlError(f"{corrector}: min_confidence must lie in [0, 1], not {value}")
    return float(value)


class PrototypeCorrector(Corrector):
    """Deep Self-Learning's prototypes on penultimate features: the class whose prototypes a sample is most similar to."""

    reads = ("features",)

    def __init__(self, per_class: int = 1280, prototypes: int = 8, seed: int = 0) -> None:
        self.per_class, self.count, self.seed = int(per_class), int(prototypes), int(seed)
        if self.per_class < 2 or self.count < 1:
            raise NoisyctlError("prototypes: per_class must be at least 2 and prototypes at least 1")

    def propose(self, run) -> Correction:
        result = prototype_labels(run.features(), run.given_labels, run.num_classes, per_class=self.per_class,
                                  count=self.count, seed=self.seed)
        labels = result.labels.cpu().numpy()
        confidence = result.soft().gather(1, result.labels[:, None]).squeeze(1).cpu().numpy()
        return Correction(labels, confidence, info={"prototypes_per_class": self.count})


class ConsensusCorrector(Corrector):
    """The model's own late-epoch mean prediction (out-of-fold when recorded), when it is confident."""

    reads = ("probabilities",)

    def __init__(self, min_confidence: float = 0.5) -> None:
        self.min_confidence = _confidence_bar(min_confidence, "consensus")

    def propose(self, run) -> Correction:
        probs, source = run.best_probabilities()
        best = probs.argmax(axis=1)
        confident = probs[np.arange(len(best)), best] >= self.min_confidence
        labels = np.where(confident, best, run.given_labels)
        return Correction(labels, probs[np.arange(len(labels)), labels].astype(np.float64),
                          info={"probabilities": source})


class KnnCorrector(Corrector):
    """A similarity-weighted vote of the k nearest neighbours' given labels in feature space (cosine)."""

    reads = ("features",)

    def __init__(self, k: int = 10) -> None:
        self.k = int(k)
        if self.k < 1:
            raise NoisyctlError(f"knn: k must be at least 1, not {k}")

    def propose(self, run) -> Correction:
        from sklearn.neighbors import NearestNeighbors

        features = run.features()
        features = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
        k = min(self.k, len(features) - 1)
        if k < 1:
            raise NoisyctlError("knn needs at least two samples")
        # On unit vectors Euclidean order is cosine order; the first neighbour is the sample itself.
        distances, neighbours = NearestNeighbors(n_neighbors=k + 1).fit(features).kneighbors(features)
        similarity = np.clip(1.0 - distances[:, 1:] ** 2 / 2.0, 0.0, None)
        votes = np.zeros((len(features), run.num_classes))
        rows = np.repeat(np.arange(len(features)), k)
        np.add.at(votes, (rows, run.given_labels[neighbours[:, 1:]].ravel()), similarity.ravel() + 1e-9)
        labels = votes.argmax(axis=1)
        confidence = votes[np.arange(len(labels)), labels] / votes.sum(axis=1)
        return Correction(labels, confidence, info={"k": k})


class SuggestedCorrector(Corrector):
    """The class the model most often predicted instead of the given label (detect's "suggested"); sure when at least min_confidence of the eval passes predicted it."""

    reads = ("eval_pred",)
    def __init__(self, min_confidence: float = 0.5) -> None:
        self.min_confidence = _confidence_bar(min_confidence, "suggested")

    def propose(self, run) -> Correction:
        labels, share = suggestions(run)
        return Correction(labels, share, info={"confidence": "share of the eval passes that predicted the label"})


class AnnotatorsCorrector(Corrector):
    """The class Dawid-Skene's model of several annotators' own labels makes most probable; sure when its posterior reaches min_confidence.

    The held-out models' probabilities (train --folds) are each sample's prior where the run has
    them. The run keeps the annotators' labels from a Label Studio export with overlap, from-file's
    annotators= or a Recorder's annotations=."""

    reads = ("annotations",)
    def __init__(self, min_confidence: float = 0.5) -> None:
        self.min_confidence = _confidence_bar(min_confidence, "annotators")

    def propose(self, run) -> Correction:
        posterior, held_out = run_annotators_posterior(run)
        labels = posterior.argmax(axis=1)
        return Correction(labels, posterior[np.arange(len(labels)), labels],
                          info={"prior": "held-out probabilities" if held_out else "the classes' shares"})


class RetrainedCorrector(Corrector):
    """Labels from a model that never learned the suspect labels: trained as the run was, without the
    flagged samples, then asked about them. Its confidence is that model's probability; under
    ``min_confidence`` a proposal is left for review."""

    def __init__(self, min_confidence: float = 0.9) -> None:
        self.min_confidence = _confidence_bar(min_confidence, "retrained")

    def propose(self, run, flagged) -> Correction:
        labels = run.given_labels.copy()
        confidence = np.ones(len(labels))
        if flagged.any():
            probs = held_out_probabilities(run, flagged)
            labels[flagged] = probs.argmax(axis=1)
            confidence[flagged] = probs.max(axis=1)
        return Correction(labels, confidence, info={"retrained_without": int(flagged.sum())})


@hookimpl
def register_correctors(register):
    register("suggested", SuggestedCorrector)
    register("prototypes", PrototypeCorrector)
    register("consensus", ConsensusCorrector)
    register("knn", KnnCorrector)
    register("retrained", RetrainedCorrector)
    register("annotators", AnnotatorsCorrector)
