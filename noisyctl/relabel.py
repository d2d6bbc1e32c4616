"""Class probabilities from a model that never learned the suspect labels: trained as the run was,
on every sample but the held-out ones, then asked about those. What the ``retrained`` corrector
relabels from (``noisyctl.api.held_out_probabilities``)."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import replace

import numpy as np

from noisyctl.errors import NoisyctlError

# Who hears about the training's epochs when a plugin asks for held-out probabilities: the command
# that runs the plugin sets it (a progress bar), so a corrector that trains is never silent.
training_progress: ContextVar = ContextVar("training_progress", default=None)


def held_out_probabilities(run, held: np.ndarray, progress=None) -> np.ndarray:
    """Softmax probabilities [held.sum() x C] of the held-out samples from a model trained, with the
    run's own options and seed, on the others. ``progress(epoch, epochs)`` after each epoch
    (default: ``training_progress``'s).

    Parameters
    ----------
    run : RunFile
        A run noisyctl trained (its dataset and options are recorded in it).
    held : np.ndarray of bool, shape (N,)
        The samples to leave out of training and predict.
    """
    import torch

    from noisyctl.data import load_labels_dataset
    from noisyctl.training import Checkpoints, SubsetSampleSet, Trainer, options_from_run
    from noisyctl.training.options import for_predicting

    progress = progress or training_progress.get()
    held = np.asarray(held, dtype=bool)
    if held.shape != (run.num_samples,):
        raise NoisyctlError(f"held-out mask of shape {held.shape} for {run.num_samples} samples")
    if held.all():
        raise NoisyctlError("every sample is held out: nothing is left to train on")
    options = options_from_run(run)
    labels = run.labels
    if labels.pruning:
        raise NoisyctlError(f"{run.path} was trained on a pruned labels file; relabel the run trained on all samples")
    labels, data = load_labels_dataset(labels, str(run.path))
    kept = np.flatnonzero(~held)
    options = for_predicting(options)
    trainer = Trainer(labels.subset(kept), replace(data, train=SubsetSampleSet(data.train, kept), test=None), options)
    # Checkpointed beside the run after every epoch: an interrupted relabeling resumes (same held-out
    # samples and options only), and the folder goes once the probabilities are computed.
    checkpoints = Checkpoints(run.path.with_name(run.path.name + ".held-out"))
    fingerprint = _fingerprint(held, options)
    start = 0
    if checkpoints.exists():
        state = checkpoints.load_state()
        if state.get("fingerprint") == fingerprint:
            trainer.load(state["training"])
            start = int(state["epochs_done"])
    for epoch in range(start, options.epochs):
        trainer.train_epoch(epoch)
        checkpoints.save_state({"fingerprint": fingerprint, "epochs_done": epoch + 1, "training": trainer.state()})
        if progress is not None:
            progress(epoch + 1, options.epochs)
    logits = trainer._predict(SubsetSampleSet(data.train, np.flatnonzero(held)))[:, :run.num_classes]
    checkpoints.discard()
    return torch.softmax(logits.float(), 1).cpu().numpy()


def _fingerprint(held: np.ndarray, options) -> str:
    from noisyctl.training.options import options_digest

    digest = options_digest(options)
    digest.update(np.packbits(held).tobytes())
    return digest.hexdigest()
