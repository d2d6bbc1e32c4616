"""Deep Self-Learning (Han et al. 2019): train on the given labels and on labels corrected by class
prototypes of the network's own features, with loss (1 - a) CE(y) + a CE(y_hat).

After ``start_epoch`` warm-up epochs on the given labels alone, every epoch begins with a label
correction phase: penultimate features of all training samples (one eval pass), prototypes per
class from ``per_class`` samples (see noisyctl.prototypes), and a corrected label per sample.
``soft: true`` uses the softmax of the prototype similarities as a soft target instead of the hard
corrected label. The corrected labels are recorded per epoch (``dynamics/corrected_label``). An
epoch whose correction would change more than ``max_change`` of the labels trains on the given
labels alone (recorded as -1): features that far from the labels come from an unsound model.

Prototypes come only from samples the training itself trusts: per class, the ``trusted_share`` of
its samples with the lowest mean training loss so far. A model trained on systematically flipped
labels (pair-flip, instance noise) learns to place the flipped samples among their given class;
prototypes drawn from them would confirm the flips the correction is meant to undo.
"""

from __future__ import annotations

from noisyctl.api import Batch, NoisyctlError, TrainingStrategy, prototype_labels


class SelfLearning(TrainingStrategy):
    """Deep Self-Learning: (1-a) CE(given) + a CE(prototype-corrected label) after warm-up epochs."""

    records = {"corrected_label": -1}

    def __init__(self, alpha: float = 0.5, start_epoch: int | None = None, per_class: int = 1280,
                 prototypes: int = 8, soft: bool = False, max_change: float = 0.7, trusted_share: float = 0.5,
                 seed: int = 0) -> None:
        if not 0.0 < float(trusted_share) <= 1.0:
            raise NoisyctlError(f"self-learning: trusted_share must lie in (0, 1], not {trusted_share}")
        self.trusted_share = float(trusted_share)
        self.loss_sum = self.loss_count = None
        if not 0.0 <= float(alpha) <= 1.0:
            raise NoisyctlError(f"self-learning: alpha must lie in [0, 1], not {alpha}")
        if int(per_class) < 2 or int(prototypes) < 1:
            raise NoisyctlError("self-learning: per_class must be at least 2 and prototypes at least 1")
        self.alpha, self.per_class, self.count = float(alpha), int(per_class), int(prototypes)
        self.start_epoch, self.soft, self.seed = start_epoch, bool(soft), int(seed)
        self.max_change = float(max_change)
        self.corrected = None
        self.soft_targets = None

    def setup(self, host) -> None:
        super().setup(host)
        # The paper corrects from the second epoch on; a public reproduction found that too early for
        # short runs, so by default a fifth of the epochs (at least one) train on the given labels alone.
        if self.start_epoch is None:
            self.start_epoch = max(1, host.epochs // 5)
        if int(self.start_epoch) < 1:
            raise NoisyctlError("self-learning: start_epoch must be at least 1 (features need a trained model)")

    def begin_epoch(self, epoch: int) -> None:
        if epoch < self.start_epoch:
            self.corrected = self.soft_targets = None
            return
        given = self.host.given_labels()
        result = prototype_labels(self.host.features(), given, self.host.num_classes,
                                  per_class=self.per_class, count=self.count, seed=self.seed + epoch,
                                  trusted=self._trusted(given))
        if (result.labels != given).float().mean().item() > self.max_change:
            # Features this far from the labels mean a model that is not yet (or no longer) sound,
            # e.g. after a loss spike; correcting from them feeds its errors back. Skip this epoch.
            self.corrected = self.soft_targets = None
            return
        self.corrected = result.labels
        self.soft_targets = result.soft() if self.soft else None

    def _trusted(self, given):
        """Per class, the trusted_share of its samples with the lowest mean training loss so far."""
        import torch

        if self.loss_sum is None:
            return None
        mean = self.loss_sum / self.loss_count.clamp(min=1)
        trusted = torch.zeros_like(given, dtype=torch.bool)
        for c in range(self.host.num_classes):
            members = torch.nonzero(given == c).squeeze(1)
            if len(members):
                keep = max(1, int(round(self.trusted_share * len(members))))
                trusted[members[mean[members].argsort()[:keep]]] = True
        return trusted

    def state_dict(self) -> dict:
        return {"loss_sum": self.loss_sum, "loss_count": self.loss_count}

    def load_state_dict(self, state: dict) -> None:
        self.loss_sum, self.loss_count = state.get("loss_sum"), state.get("loss_count")

    def objective(self, batch: Batch):
        import torch
        import torch.nn.functional as F

        with torch.no_grad():  # each sample's mean loss, for the trusted samples
            if self.loss_sum is None:
                self.loss_sum = torch.zeros(self.host.num_samples, device=batch.losses.device)
                self.loss_count = torch.zeros(self.host.num_samples, device=batch.losses.device)
            self.loss_sum.index_add_(0, batch.index, batch.losses.detach().float())
            self.loss_count.index_add_(0, batch.index, torch.ones_like(batch.losses, dtype=torch.float32))
        if self.corrected is None:
            return batch.losses.mean(), {}
        corrected = self.corrected[batch.index]
        if self.soft_targets is not None:
            corrected_loss = -(self.soft_targets[batch.index] * F.log_softmax(batch.logits, dim=1)).sum(1)
        else:
            corrected_loss = F.cross_entropy(batch.logits, corrected, reduction="none")
        loss = (1 - self.alpha) * batch.losses.mean() + self.alpha * corrected_loss.mean()
        return loss, {"corrected_label": corrected.to(torch.float32)}
