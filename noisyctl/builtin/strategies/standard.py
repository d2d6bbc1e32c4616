"""Plain training: the mean cross-entropy of the given labels."""

from noisyctl.api import Batch, TrainingStrategy


class Standard(TrainingStrategy):
    """Mean cross-entropy of the given labels."""

    def objective(self, batch: Batch):
        return batch.losses.mean(), {}
