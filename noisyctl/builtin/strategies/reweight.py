"""Learning to Reweight Examples (Ren et al. 2018).

Every step, each sample of the batch gets the weight that would most lower the loss of a batch of
trusted samples after one virtual SGD step: with eps = 0 per sample, take the gradient of
sum(eps * loss) with respect to the parameters (keeping its graph), step the parameters virtually,
compute the trusted loss with ``torch.func.functional_call`` under the stepped parameters, and
differentiate it with respect to eps. Weights are max(-grad, 0), normalised to sum 1. The batch's
own forward pass is reused for the virtual step, so a step costs one extra forward (trusted batch)
and a double backward: about 3x a plain step, as in the paper.

The weights are recorded per presentation (``dynamics/sample_weight``, scaled so a batch's weights
average 1); their mean over training is the ``reweight`` detector's score.
"""

from __future__ import annotations

import numpy as np

from noisyctl.api import Batch, NoisyctlError, TrainingStrategy, augment_batch


class Reweight(TrainingStrategy):
    """Learning to Reweight Examples: per-step meta weights from a trusted set (train --trusted)."""

    records = {"sample_weight": float("nan")}
    needs_trusted = True

    def __init__(self, trusted_batch_size: int = 100, seed: int = 0) -> None:
        if int(trusted_batch_size) < 1:
            raise NoisyctlError(f"reweight: trusted_batch_size must be at least 1, not {trusted_batch_size}")
        self.trusted_batch_size = int(trusted_batch_size)
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)

    def begin_epoch(self, epoch: int) -> None:
        # Seeded per epoch, so a resumed run draws the same trusted batches as an uninterrupted one.
        self.rng = np.random.default_rng([self.seed, epoch])

    def _trusted_batch(self):
        import torch

        inputs, labels = self.host.trusted()
        if len(labels) > self.trusted_batch_size:
            pick = torch.as_tensor(self.rng.choice(len(labels), self.trusted_batch_size, replace=False),
                                   device=labels.device)
            inputs, labels = inputs[pick], labels[pick]
        return augment_batch(inputs, self.host.augment), labels

    def objective(self, batch: Batch):
        import torch
        import torch.nn.functional as F
        from torch.func import functional_call

        model = self.host.model
        names, params = zip(*[(n, p) for n, p in model.named_parameters() if p.requires_grad])
        eps = torch.zeros_like(batch.losses, requires_grad=True)
        grads = torch.autograd.grad((eps * batch.losses).sum(), params, create_graph=True, allow_unused=True)
        lr = self.host.learning_rate()
        stepped = {n: p if g is None else p - lr * g for n, p, g in zip(names, params, grads)}
        # Clone the buffers: batch norm would otherwise update its running statistics in place.
        buffers = {n: b.clone() for n, b in model.named_buffers()}
        inputs, labels = self._trusted_batch()
        trusted_logits = functional_call(model, {**stepped, **buffers}, (inputs,)).float()
        trusted_loss = F.cross_entropy(trusted_logits, labels)
        (eps_grad,) = torch.autograd.grad(trusted_loss, eps)
        weights = torch.clamp(-eps_grad.detach(), min=0)
        total = weights.sum()
        weights = weights / total if total > 0 else weights
        return (weights * batch.losses).sum(), {"sample_weight": weights * len(weights)}
