"""Label correction by class prototypes, as in Deep Self-Learning (Han et al. 2019).

Used by the ``prototypes`` corrector (on a run's recorded features) and by the ``self-learning``
training strategy (on the features of the model being trained), so it lives in the core.

For each class, m samples given that label are compared by cosine similarity S. A sample's density
rho counts how many of the others are closer to it than S_c, the value at the top 40% of S; its
eta is its highest similarity to any denser sample (the densest sample gets its lowest similarity
to any). Prototypes are the p densest samples with eta < 0.95: dense, and not near-copies of a
denser prototype. A sample's corrected label is the class whose prototypes it is most similar to
on average.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

SOFT_TEMPERATURE = 0.1  # cosine similarities differ by hundredths; this turns them into a usable distribution


@dataclass
class PrototypeLabels:
    labels: Any  # [N] corrected labels (torch.long)
    similarity: Any  # [N x C] mean cosine similarity to each class's prototypes
    prototypes: dict[int, Any]  # class -> indices (into the N samples) of its prototypes

    def soft(self, temperature: float = SOFT_TEMPERATURE):
        """A distribution over classes per sample: softmax of the similarities."""
        import torch

        return torch.softmax(self.similarity / temperature, dim=1)


def class_prototypes(features, *, per_class_top: float = 0.4, max_eta: float = 0.95, count: int = 8):
    """Indices (into ``features``, already L2-normalised) of one class's prototypes."""
    import torch

    similarity = features @ features.T
    m = len(features)
    if m <= 1:
        return torch.arange(m, device=features.device)
    off_diagonal = similarity[~torch.eye(m, dtype=torch.bool, device=features.device)]
    # torch.quantile is limited in input size; a sort works for any m.
    values = off_diagonal.sort().values
    threshold = values[min(len(values) - 1, int((1.0 - per_class_top) * len(values)))]
    rho = torch.sign(similarity - threshold).sum(dim=1)
    # Densest first; ties (common: rho is a count) broken by position, so exactly one sample is the densest
    # and a tight cluster yields one prototype, not all of its members.
    order = torch.argsort(rho, descending=True, stable=True)
    place = torch.empty_like(order)
    place[order] = torch.arange(m, device=features.device)
    denser = place[None, :] < place[:, None]  # denser[i, j]: j comes before i
    eta = torch.where(denser, similarity, torch.full_like(similarity, -2.0)).max(dim=1).values
    eta[order[0]] = similarity[order[0]].min()
    chosen = order[eta[order] < max_eta][:count]
    return chosen if len(chosen) else order[:1]


def prototype_labels(features, given_labels, num_classes: int, *, per_class: int = 1280, count: int = 8,
                     per_class_top: float = 0.4, max_eta: float = 0.95, seed: int = 0,
                     trusted=None) -> PrototypeLabels:
    """Corrected labels for every sample from per-class prototypes (see the module docstring).

    ``features`` [N x D] and ``given_labels`` [N] may be numpy arrays or torch tensors; the work runs
    where the features are (CPU or GPU). Classes no sample carries get no prototypes and are never
    proposed. ``trusted`` [N] (bool) limits the prototypes to those samples (a class none of whose
    samples is trusted takes them from all of its samples).
    """
    import torch

    features = torch.as_tensor(features).float()
    given = torch.as_tensor(given_labels, device=features.device).long()  # numpy, or a tensor on any device
    normalised = torch.nn.functional.normalize(features, dim=1)
    generator = np.random.default_rng(seed)
    similarity = torch.full((len(features), num_classes), -2.0, device=features.device)
    prototypes: dict[int, Any] = {}
    trusted = None if trusted is None else torch.as_tensor(trusted, device=features.device).bool()
    for c in range(num_classes):
        members = torch.nonzero(given == c).squeeze(1)
        if trusted is not None and trusted[members].any():
            members = members[trusted[members]]
        if len(members) == 0:
            continue
        if len(members) > per_class:
            members = members[torch.as_tensor(np.sort(generator.choice(len(members), per_class, replace=False)),
                                              device=features.device)]
        chosen = members[class_prototypes(normalised[members], per_class_top=per_class_top, max_eta=max_eta,
                                          count=count)]
        prototypes[c] = chosen
        similarity[:, c] = (normalised @ normalised[chosen].T).mean(dim=1)
    return PrototypeLabels(labels=similarity.argmax(dim=1), similarity=similarity, prototypes=prototypes)
