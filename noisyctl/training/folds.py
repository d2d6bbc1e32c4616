"""Out-of-fold class probabilities (``train --folds K``): K models, each predicting the samples it
never trained on, for confident learning."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from noisyctl.api import DatasetData
from noisyctl.store import Labels
from noisyctl.training.checkpoints import Checkpoints
from noisyctl.training.loop import SubsetSampleSet, Trainer
from noisyctl.training.options import TrainOptions, for_predicting


def out_of_fold_probabilities(labels: Labels, data: DatasetData, options: TrainOptions, checkpoints: Checkpoints,
                              progress=None) -> np.ndarray:
    """Class probabilities of every sample from a model that never trained on it (K stratified folds).

    Each fold's result is checkpointed, so an interrupted run resumes after the last finished fold.
    """
    import torch
    from sklearn.model_selection import KFold, StratifiedKFold

    n, k = len(labels.ids), options.folds
    smallest = int(np.bincount(labels.given_labels).min()) if n else 0
    if smallest >= k:
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=options.seed)
    else:
        splitter = KFold(n_splits=k, shuffle=True, random_state=options.seed)
    probabilities = np.zeros((n, data.num_classes), dtype=np.float32)
    fold_options = for_predicting(options)
    for fold, (fit, held) in enumerate(splitter.split(np.zeros(n), labels.given_labels)):
        # named by what decides the split, so a checkpoint of other folds is never read as this one's
        name = f"fold_{fold:02d}_of_{k:02d}_seed_{options.seed}"
        saved = checkpoints.array_path(name)
        if saved.exists():
            done = np.load(saved)
            if done.shape == (len(held), data.num_classes):
                probabilities[held] = done
                continue
        if progress is not None:
            progress.note(f"fold {fold + 1}/{k}: training on {len(fit):,} samples, predicting {len(held):,}")
        fold_labels = Labels(ids=[labels.ids[i] for i in fit], given_labels=labels.given_labels[fit],
                             class_names=labels.class_names, dataset=labels.dataset)
        fold_data = replace(data, train=SubsetSampleSet(data.train, fit), test=None)
        trainer = Trainer(fold_labels, fold_data, replace(fold_options, seed=options.seed + 1 + fold))
        for epoch in range(options.epochs):
            trainer.train_epoch(epoch)
        held_probs = torch.softmax(trainer._predict(SubsetSampleSet(data.train, held)), 1).cpu().numpy()
        checkpoints.save_array(name, held_probs)
        probabilities[held] = held_probs
    return probabilities
