"""Recording per-sample training dynamics from any training loop: the :class:`Recorder`.

``noisyctl train`` records through it too, so a run file written from a user's own loop and one
written by ``train`` are the same kind of file, read by the same detectors.
"""

from __future__ import annotations

import hashlib
import time
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from noisyctl import distributed
from noisyctl.agreement import Annotations
from noisyctl.errors import NoisyctlError
from noisyctl.store import CHANNELS, Labels, kept_text
from noisyctl.training.checkpoints import EPOCH_FIGURES, Checkpoints, assemble_run

PROBS_AUTO_MAX_CLASSES = 100  # above this, the [N x C] probabilities are recorded only when asked


class NonFiniteLoss(NoisyctlError):
    """An epoch's logits gave a NaN or infinite loss: training diverged; the epoch was not sealed."""


def software_versions() -> dict[str, str]:
    """The versions that decide a run's numbers beside its options: the same options and seed train
    other losses under another torch (the calibration benchmark's digits with 5% instance noise read
    3.3% under the torch of an earlier setup, 2.2% under 2.14.1)."""
    import platform

    import torch

    return {"torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version()}


def margins(logits, labels):
    """z_y - max_{k != y} z_k per row (AUM's margin), from the top two logits."""
    import torch

    if logits.shape[1] < 2:
        return torch.zeros(logits.shape[0], device=logits.device, dtype=logits.dtype)
    top = logits.topk(2, dim=1)
    assigned = logits.gather(1, labels[:, None]).squeeze(1)
    best_other = torch.where(top.indices[:, 0] == labels, top.values[:, 1], top.values[:, 0])
    return assigned - best_other


def penultimate_layer(model):
    """The model's last linear layer, whose input is the penultimate-layer feature vector (torchvision's
    fc, timm's head.fc, the built-ins' classifier), or None when it has none."""
    from torch import nn

    last = None
    for module in model.modules():
        if isinstance(module, nn.Linear):
            last = module
    return last



class Recorder:
    """Record each training sample's loss, margin and eval-mode predictions, epoch by epoch, from your
    own training loop, into a noisyctl run file that ``detect``, ``report``, ``prune``, ``correct``
    and ``export`` read.

    Call :meth:`update` once per training batch with the batch's dataset indices and logits,
    optionally :meth:`record_eval` (or :meth:`evaluate`) for an eval-mode pass, then
    :meth:`end_epoch`, which seals the epoch on disk; :meth:`close` writes the run file. Nothing is
    copied to the host per batch: the per-epoch records are ``[N]`` vectors on the logits' device,
    moved to the host once per epoch. Memory does not grow with the number of epochs.

    Sealed epochs live in ``PATH.ckpt/`` with the training state you hand to :meth:`end_epoch`; a
    Recorder created again on the same path after a crash resumes there (:attr:`epochs_done`,
    :attr:`resumed_state`); a loop, or a framework, that restores a checkpoint of its own says
    where with :meth:`resume_from`. Under ``torch.distributed`` each rank records the samples it saw and
    :meth:`end_epoch` merges them, so every rank must call it; only rank 0 writes files.

    Parameters
    ----------
    path : str or Path
        The run file to write.
    labels : array_like of int, shape (N,), or noisyctl.store.Labels
        The given (possibly wrong) label of every training sample, indexed as the dataset is: the
        indices passed to :meth:`update` index this array.
    class_names : list of str, optional
        Names of the C classes. Default: ``"0"`` .. ``"C-1"`` with C = max(labels) + 1.
    ids : list of str, optional, length N
        Stable sample ids (file paths, database keys). Default: the index as text.
    epochs : int, optional
        The number of epochs planned. With it, class probabilities are averaged over the last
        quarter of them (``probs/late_mean``); without it, over the last epoch with an eval pass.
    true_labels : array_like of int, shape (N,), optional
        The true labels, when known (synthesized noise): recorded so the report can score detectors.
    dataset : str or dict, optional
        What the run file names as its dataset (a name, or ``{"name", "root", "options"}`` of a
        noisyctl dataset plugin, which lets ``prune --retrain`` and the report load the samples; a
        root that is a local path is recorded absolute).
    resume : bool or None, default None
        None: continue an interrupted recording at ``path`` if there is one. True: there must be
        one. False: refuse to start over one (pass ``restart=True`` to discard it).
    restart : bool, default False
        Discard an interrupted recording at ``path`` and start from epoch 0.
    allow_partial : bool, default False
        Accept epochs that did not present every sample once, to training or to the eval pass: a
        sample left out is NaN, one presented more than once (a sampler that draws with replacement,
        such as ``WeightedRandomSampler``) is recorded as the mean of its presentations. By default
        either is an error, since it usually means the indices are not the dataset's, or a missing
        ``end_epoch``.
    record_probs : bool, optional
        Record ``[N x C]`` late-epoch class probabilities from the eval pass. Default: when C <= 100.
    trained_labels : array_like of int, shape (N,), optional
        The targets the model is trained on, when they differ from ``labels`` by design (AUM
        threshold samples train on an extra class C). Default: ``labels``.
    num_outputs : int, optional
        Columns of the logits. Default: C, or C + 1 when ``trained_labels`` uses class C.
    channels : dict of str to float, optional
        Extra per-presentation channels of the schema (``sample_weight``, ``corrected_label``) that
        :meth:`update` receives as keyword arguments, with the value of a sample given none.
    info : dict, optional
        Run-file attributes to record: ``training`` (options), ``recipe``, ``plugins``.
    fingerprint : str, optional
        What a resumed recording must match besides the labels (e.g. a hash of your options).
    texts : list of str, optional, length N
        Each sample's text, for text data: the run keeps its first 1,000 bytes, and ``detect``'s
        suspects, the review CSV of ``correct --export`` and the report show it.
    annotations : noisyctl.api.Annotations, optional
        Each annotator's own label of each sample, where several labeled them ((N, A) class
        indices, -1 where one gave none): the run keeps them, and ``detect`` counts from them too.

    Examples
    --------
    >>> recorder = Recorder("run.h5", labels=train_labels, epochs=10)      # doctest: +SKIP
    >>> for epoch in range(recorder.epochs_done, 10):                      # doctest: +SKIP
    ...     for inputs, targets, indices in loader:
    ...         logits = model(inputs)
    ...         recorder.update(indices, logits, targets)
    ...         ...  # loss, backward, step as usual
    ...     recorder.end_epoch(state={"model": model.state_dict()})
    >>> recorder.close()                                                     # doctest: +SKIP
    """

    def __init__(self, path: str | Path, labels: Any, *, class_names: list[str] | None = None,
                 ids: list[str] | None = None, epochs: int | None = None, true_labels: Any = None,
                 dataset: str | dict[str, Any] | None = None, resume: bool | None = None, restart: bool = False,
                 allow_partial: bool = False, record_probs: bool | None = None, trained_labels: Any = None,
                 num_outputs: int | None = None, channels: dict[str, float] | None = None,
                 info: dict[str, Any] | None = None, fingerprint: str = "", texts: Any = None,
                 annotations: Annotations | None = None) -> None:
        self.path = Path(path)
        self.labels = _as_labels(labels, class_names, ids, true_labels, dataset)
        self.num_samples = n = len(self.labels.ids)
        if annotations is not None:
            self.labels = replace(self.labels, annotations=annotations.checked(n, self.labels.num_classes, "Recorder"))
        self.texts = None if texts is None else [kept_text(t) for t in texts]
        if self.texts is not None and len(self.texts) != n:
            raise NoisyctlError(f"Recorder: {len(self.texts)} texts for {n} labels")
        self.num_classes = c = self.labels.num_classes
        if epochs is not None and (not isinstance(epochs, (int, np.integer)) or epochs < 1):
            raise NoisyctlError(f"Recorder: epochs must be a positive integer, not {epochs!r}")
        self.epochs = None if epochs is None else int(epochs)
        trained = self.labels.given_labels if trained_labels is None else _label_array(trained_labels, "trained_labels")
        if len(trained) != n:
            raise NoisyctlError(f"Recorder: trained_labels has {len(trained)} entries for {n} samples")
        self.num_outputs = int(num_outputs) if num_outputs is not None else max(c, int(trained.max(initial=-1)) + 1)
        if trained.min(initial=0) < 0 or trained.max(initial=0) >= self.num_outputs:
            raise NoisyctlError(f"Recorder: trained_labels must lie in 0..{self.num_outputs - 1}")
        self._trained = trained
        self.threshold = trained >= c  # AUM threshold samples, trained on class C
        unknown = sorted(set(channels or {}) - set(CHANNELS))
        if unknown:
            raise NoisyctlError(f"Recorder: '{unknown[0]}' is not a dynamics channel of the schema "
                                f"({', '.join(CHANNELS)})")
        self.channels = dict(channels or {})
        self.allow_partial = allow_partial
        self.record_probs = c <= PROBS_AUTO_MAX_CLASSES if record_probs is None else bool(record_probs)
        self.info = dict(info or {})
        self.dist = distributed.current()
        self.checkpoints = Checkpoints(self.path)
        self._fingerprint = _fingerprint(self._trained, self.num_outputs, fingerprint)
        self._exits = ExitStack()
        self._device = None
        self._closed = False
        self.epochs_done = 0
        self.step = 0
        self.resumed_state: Any = None
        self._shard_digests: list[str] = []
        self._late_sum = None
        self._late_count = 0
        self._clock = time.perf_counter()
        if self.dist.is_main:
            self._lock()
        try:
            self._start(resume, restart)
        except BaseException:
            self._release()
            raise

    # --- starting and resuming ----------------------------------------------------------------------

    def _lock(self) -> None:
        """The same lock as ``train``'s: a second process recording into this path is refused."""
        from noisyctl.fileio import exclusive

        self._exits.enter_context(exclusive(self.checkpoints.folder / "lock", f"training into {self.path}"))

    def _start(self, resume: bool | None, restart: bool) -> None:
        exists = self.checkpoints.exists()
        if exists and restart:
            self._discard_checkpoints()
            return
        if not exists:
            if resume:
                if Path(self.path).is_file():  # a finished run removes its checkpoints
                    raise NoisyctlError(f"nothing to resume: {self.path} finished training and keeps no "
                                        f"checkpoints; train without --resume to train it again")
                found = "holds no finished epoch" if self.checkpoints.folder.is_dir() else "does not exist"
                raise NoisyctlError(f"nothing to resume: {self.checkpoints.folder} {found}")
            return
        state = self.checkpoints.load_state()
        own = state.get("recorder") if isinstance(state, dict) else None
        done = own.get("epochs_done", "?") if isinstance(own, dict) else "?"
        if resume is False:
            total = f"/{self.epochs}" if self.epochs else ""
            raise NoisyctlError(f"{self.checkpoints.folder} holds an interrupted run ({done}{total} epochs): "
                                f"pass --resume to continue it or --restart to discard it")
        if not isinstance(own, dict):
            raise NoisyctlError(f"{self.checkpoints.folder} was written by another version of noisyctl; "
                                f"start again with --restart")
        if own.get("fingerprint") != self._fingerprint:
            raise NoisyctlError(f"{self.checkpoints.folder} belongs to a run with other options or labels; "
                                f"resume with the same ones, or pass --restart to discard it")
        self.epochs_done, self.step = int(own["epochs_done"]), int(own["step"])
        digests = own.get("shard_digests")
        self.checkpoints.verify(self.epochs_done, digests)
        self._shard_digests = list(digests) if digests else [None] * self.epochs_done
        self._late_sum, self._late_count = own.get("late_sum"), int(own.get("late_count", 0))
        self.resumed_state = state.get("training")

    def _discard_checkpoints(self) -> None:
        """Remove the interrupted recording's folder (rank 0, once every rank has read it) and take
        the lock again, which went with it."""
        self.dist.barrier()  # every rank has looked before rank 0 deletes
        if self.dist.is_main:
            self.checkpoints.discard()
            self._exits.close()
            self._lock()

    def resume_from(self, epochs_done: int) -> None:
        """Continue the recording where your training resumes from a checkpoint of its own.

        A framework (Lightning, the Hugging Face Trainer) or your loop may restore a checkpoint older
        than the recording's last sealed epoch, or start afresh over an interrupted recording; the
        recording must then follow the training, or it would splice the dynamics of two trainings.
        Call it before the resumed epoch's first batch, on every rank.

        Parameters
        ----------
        epochs_done : int
            The epochs your training has finished, as its checkpoint says (0: it starts afresh).
            Sealed epochs after it are discarded: they belong to training the checkpoint undoes.
            Where one of them was averaged into the late-epoch probabilities, the average starts
            again from the resumed epoch. A checkpoint written mid-epoch resumes that epoch without
            the samples it had presented: seal it with ``end_epoch(partial=True)``.

        Raises
        ------
        NoisyctlError
            If the recording holds fewer epochs than ``epochs_done``: the dynamics of the epochs
            between were never sealed, and the run file would skip them.
        """
        epochs_done = int(epochs_done)
        if self._device is not None and bool((self._train_count > 0).any() or (self._eval_count > 0).any()):
            raise NoisyctlError("Recorder.resume_from: call it before the resumed epoch's first batch")
        if epochs_done > self.epochs_done:
            raise NoisyctlError(f"training resumes after epoch {epochs_done}, but {self.checkpoints.folder} holds "
                                f"{self.epochs_done} sealed epochs: the dynamics between are lost; train from "
                                f"the start to record this run")
        if epochs_done < self.epochs_done:
            self._rewind(epochs_done)

    def _rewind(self, epochs_done: int) -> None:
        """Forget the sealed epochs from ``epochs_done`` on (see :meth:`resume_from`)."""
        import warnings

        if epochs_done:
            what = (f"training resumes after epoch {epochs_done}; the {self.epochs_done - epochs_done} epochs "
                    f"recorded after it in {self.checkpoints.folder} are discarded and recorded again")
        else:
            what = (f"training starts afresh; the {self.epochs_done} epochs of an interrupted recording in "
                    f"{self.checkpoints.folder} are discarded")
        if self.dist.is_main:  # once, not once per process
            warnings.warn(f"noisyctl: {what}", stacklevel=3)
        # The late sum holds the last sealed epochs, so a discarded one is in it; only sums are kept,
        # so the average starts again.
        self._late_sum, self._late_count = None, 0
        self.step = self._step_after(epochs_done)
        self.epochs_done, self._shard_digests = epochs_done, self._shard_digests[:epochs_done]
        self.resumed_state = None  # the state saved with a discarded epoch
        if self._device is not None:
            self._allocate(self._device)  # whether this epoch keeps probabilities depends on its number
        if epochs_done == 0:
            self._discard_checkpoints()
            return
        self.dist.barrier()  # every rank has resumed before rank 0 deletes
        if self.dist.is_main:
            self._save_state(epochs_done, None)  # first: a kill now leaves a state that names no lost shard
            self.checkpoints.discard_from(epochs_done)

    def _step_after(self, epochs_done: int) -> int:
        """The step count after ``epochs_done`` sealed epochs: one past the last step a shard records."""
        for epoch in reversed(range(epochs_done)):
            with np.load(self.checkpoints.shard(epoch), allow_pickle=False) as shard:
                if "train_step" in shard.files:
                    return int(shard["train_step"].max()) + 1
        return 0

    # --- per batch ----------------------------------------------------------------------------------

    def _allocate(self, device) -> None:
        """The epoch's records, on the device of the logits; one spare row (index N) takes the
        writes of out-of-range indices found on the device, so no batch has to sync to check them."""
        import torch

        n = self.num_samples + 1
        self._device = device
        self._trained_device = torch.as_tensor(np.append(self._trained, 0), dtype=torch.long, device=device)
        # sums and counts: a sampler that draws with replacement presents a sample more than once
        self._train = torch.zeros((n, 2), device=device)
        self._train_count = torch.zeros(n, device=device)
        self._steps = torch.full((n,), -1, dtype=torch.long, device=device)
        self._extra = {name: torch.zeros(n, device=device) for name in self.channels}
        self._eval = torch.zeros((n, 4), device=device)  # loss, prob, margin, pred: sums, as ranks merge them
        self._eval_count = torch.zeros(n, device=device)
        # [N x C] only in the epochs whose probabilities are averaged
        late = self.record_probs and self._late(self.epochs_done)
        self._epoch_probs = torch.zeros((n, self.num_classes), device=device) if late else None
        self._features = None
        # bad index, bad target, target != label, rows that read as probabilities
        self._problems = torch.zeros(4, dtype=torch.long, device=device)

    def _indices(self, indices, device, rows: int, what: str):
        """The batch's indices as a long tensor on ``device``; out-of-range ones checked now when they
        are on the host (no sync), else counted on the device and reported at end_epoch."""
        import torch

        index = torch.as_tensor(indices)
        if index.ndim != 1 or len(index) != rows:
            raise NoisyctlError(f"Recorder.{what}: {len(index) if index.ndim == 1 else tuple(index.shape)} "
                                f"indices for {rows} rows of logits")
        if index.dtype.is_floating_point or index.dtype == torch.bool:
            raise NoisyctlError(f"Recorder.{what}: indices must be integers, not {index.dtype}")
        index = index.long()
        if index.device.type == "cpu" and len(index):
            low, high = int(index.min()), int(index.max())
            if low < 0 or high >= self.num_samples:
                bad = low if low < 0 else high
                raise NoisyctlError(f"Recorder.{what}: index {bad} is out of range for {self.num_samples} samples")
            return index.to(device, non_blocking=True)
        index = index.to(device, non_blocking=True)
        valid = (index >= 0) & (index < self.num_samples)
        self._problems[0] += (~valid).sum()
        return torch.where(valid, index, self.num_samples)

    def _logits(self, logits, what: str):
        import torch

        if not isinstance(logits, torch.Tensor):
            logits = torch.as_tensor(np.asarray(logits))
        if logits.ndim != 2 or logits.shape[1] != self.num_outputs:
            raise NoisyctlError(f"Recorder.{what}: logits of shape {tuple(logits.shape)}; expected "
                                f"[batch, {self.num_outputs}] ({self.num_outputs} classes)")
        if self._device is None:
            self._allocate(logits.device)
        elif logits.device != self._device:
            raise NoisyctlError(f"Recorder.{what}: logits on {logits.device}, earlier ones on {self._device}")
        return logits.detach().float()

    def update(self, indices, logits, targets=None, **values) -> None:
        """Record one training batch: each sample's training-mode loss, margin and step.

        Parameters
        ----------
        indices : tensor or array of int, shape (B,)
            Dataset indices of the batch's samples (what indexes ``labels``).
        logits : tensor, shape (B, C)
            The model's outputs from the training forward pass (any device, any dtype).
        targets : tensor of int, shape (B,), optional
            The labels the batch trained on; checked against the Recorder's labels at
            :meth:`end_epoch` (a mismatch means the indices are not the dataset's).
        **values : tensor, shape (B,)
            Values of the extra ``channels`` the Recorder was created with.
        """
        import torch
        import torch.nn.functional as F

        logits = self._logits(logits, "update")
        index = self._indices(indices, self._device, logits.shape[0], "update")
        expected = self._trained_device[index]
        if targets is None:
            target = expected
        else:
            target = torch.as_tensor(targets, device=self._device)
            if target.shape != index.shape or target.dtype.is_floating_point:
                raise NoisyctlError(f"Recorder.update: targets must be {len(index)} integer class indices "
                                    f"(one per row), not {target.dtype} of shape {tuple(target.shape)}")
            target = target.long()
            valid = (target >= 0) & (target < self.num_outputs)
            self._problems[1] += (~valid).sum()
            self._problems[2] += (valid & (target != expected)).sum()
            target = torch.where(valid, target, expected)
        unknown = sorted(set(values) - set(self.channels))
        if unknown:
            raise NoisyctlError(f"Recorder.update: '{unknown[0]}' is not one of the channels the Recorder was "
                                f"created with ({', '.join(self.channels) or 'none'})")
        with torch.no_grad():
            # A model that ends in softmax hands probabilities: their losses all sit near log(C) and
            # say nothing, so an epoch of nothing but such rows is refused at end_epoch.
            self._problems[3] += ((logits >= 0).all(1) & ((logits.sum(1) - 1).abs() < 1e-2)).sum()
            losses = F.cross_entropy(logits, target, reduction="none")
            self._train.index_add_(0, index, torch.stack((losses, margins(logits, target)), dim=1))
            self._train_count.index_add_(0, index, torch.ones_like(losses))
            self._steps[index] = self.step
            for name, fill in self.channels.items():  # a presentation given no value counts as the fill
                value = values.get(name)
                value = (torch.full_like(losses, float(fill)) if value is None
                         else torch.as_tensor(value, device=self._device).detach().float())
                self._extra[name].index_add_(0, index, value)
        self.step += 1

    def record_eval(self, indices, logits, features=None) -> None:
        """Record an eval-mode pass over (part of) the training set, after the epoch's training steps.

        Parameters
        ----------
        indices : tensor or array of int, shape (B,)
            Dataset indices of the rows.
        logits : tensor, shape (B, C)
            Eval-mode outputs (``model.eval()``, no augmentation).
        features : tensor, shape (B, D), optional
            Penultimate-layer features (the input of the last linear layer); the last ones given are
            stored, for the prototype and k-NN correctors.
        """
        import torch
        import torch.nn.functional as F

        logits = self._logits(logits, "record_eval")
        index = self._indices(indices, self._device, logits.shape[0], "record_eval")
        target = self._trained_device[index]
        with torch.no_grad():
            pred = logits.argmax(1)
            values = torch.stack((F.cross_entropy(logits, target, reduction="none"),
                                  torch.softmax(logits, 1).gather(1, target[:, None]).squeeze(1),
                                  margins(logits, target), pred.float()), dim=1)
            self._eval.index_add_(0, index, values)
            self._eval_count.index_add_(0, index, torch.ones_like(values[:, 0]))
            if self._epoch_probs is not None:
                # real classes only, never the fake threshold class
                self._epoch_probs.index_add_(0, index, torch.softmax(logits[:, :self.num_classes], 1))
            if features is not None:
                features = torch.as_tensor(features, device=self._device).detach().flatten(1).float()
                if len(features) != len(index):
                    raise NoisyctlError(f"Recorder.record_eval: {len(features)} feature rows for {len(index)} logits")
                if self._features is None or self._features.shape[1] != features.shape[1]:
                    self._features = torch.zeros((self.num_samples + 1, features.shape[1]), device=self._device)
                self._features[index] = features

    def evaluate(self, model, loader: Iterable, *, device=None, features: bool = False, unpack=None) -> None:
        """Run ``model`` in eval mode over ``loader`` and :meth:`record_eval` the outputs.

        Each batch of ``loader`` is ``(inputs, ..., indices)``: the inputs first, the dataset indices
        last (``unpack(batch) -> (inputs, indices)`` for other layouts). With ``features``, the input
        of the model's last ``nn.Linear`` is recorded too.
        """
        import torch

        device = device if device is not None else next(model.parameters()).device
        was_training = model.training
        model.eval()
        caught: list = []
        hook = None
        if features:
            head = penultimate_layer(model)
            if head is None:
                raise NoisyctlError("Recorder.evaluate: the model has no nn.Linear layer to take features from")
            hook = head.register_forward_hook(lambda module, args, output: caught.append(args[0]))
        try:
            with torch.no_grad():
                for batch in loader:
                    inputs, indices = unpack(batch) if unpack is not None else (batch[0], batch[-1])
                    caught.clear()
                    logits = model(inputs.to(device, non_blocking=True))
                    self.record_eval(indices, logits, caught[-1] if caught else None)
        finally:
            if hook is not None:
                hook.remove()
            model.train(was_training)

    # --- per epoch ----------------------------------------------------------------------------------

    def _late(self, epoch: int) -> bool:
        return self.epochs is None or epoch >= self.epochs - max(1, self.epochs // 4)

    def end_epoch(self, figures: dict[str, float] | None = None, state: Any = None, *,
                  partial: bool = False) -> dict[str, float]:
        """Seal the epoch: check it, merge ranks, write its shard and ``state`` atomically.

        Parameters
        ----------
        figures : dict, optional
            Per-epoch figures of the schema to record: ``learning_rate``, ``test_accuracy`` (None:
            not known, recorded as NaN).
        state : any, optional
            What your loop needs to resume (``model.state_dict()``, the optimizer's, ...): tensors and
            plain values, loaded back with ``weights_only=True`` as :attr:`resumed_state`.
        partial : bool, default False
            The epoch did not present every sample, by design: training stopped in mid-epoch (a
            step budget), or resumed in mid-epoch from a checkpoint. The samples it left out are
            NaN in it, as with ``allow_partial`` for every epoch.

        Returns
        -------
        dict
            The epoch's figures: ``train_loss``, ``train_accuracy``, ``eval_accuracy`` (with an eval
            pass), ``eval_true_accuracy`` (with true labels), ``seconds``, and those given.
        """
        import torch

        if self._closed:
            raise NoisyctlError("Recorder.end_epoch after close()")
        figures = dict(figures or {})
        unknown = sorted(set(figures) - set(EPOCH_FIGURES) - {"train_loss", "train_accuracy", "seconds"})
        if unknown:
            raise NoisyctlError(f"Recorder.end_epoch: '{unknown[0]}' is not a per-epoch figure of the schema "
                                f"(learning_rate, test_accuracy)")
        given = {name: value for name, value in figures.items() if value is not None}  # None: not known
        if self._device is None:
            self._allocate(torch.device("cpu"))  # a rank (or loop) that saw no batch still takes part
        epoch = self.epochs_done
        problems = self._problems.clone()
        presented = self._train_count[:-1] > 0
        duplicates = (self._train_count[:-1] > 1).sum()
        nonfinite = (presented & ~torch.isfinite(self._train[:-1, 0])).sum()
        problems = torch.cat((problems, duplicates[None], nonfinite[None]))
        self.dist.sum_(problems)
        bad_index, bad_target, mismatch, probability_rows, twice, nonfinite = problems.tolist()
        if bad_index:
            raise NoisyctlError(f"epoch {epoch + 1}: {bad_index} indices were out of range for {self.num_samples} "
                                f"samples")
        if bad_target:
            raise NoisyctlError(f"epoch {epoch + 1}: {bad_target} targets were outside the classes "
                                f"0..{self.num_outputs - 1}")
        if mismatch:
            raise NoisyctlError(f"epoch {epoch + 1}: {mismatch} targets differ from the labels the Recorder was "
                                f"given for their indices; pass each batch's dataset indices, in the batch's order")
        if twice and not (self.allow_partial or partial):
            raise NoisyctlError(f"epoch {epoch + 1}: {twice} samples were presented more than once; call "
                                f"end_epoch after each pass over the data, or, for a sampler that draws with "
                                f"replacement, Recorder(allow_partial=True) to average the repeats and record NaN "
                                f"for the samples it left out")
        train, count = self._train[:-1].clone(), self._train_count[:-1].clone()
        steps = self._steps[:-1].clone()
        extra = {name: v[:-1].clone() for name, v in self._extra.items()}
        evals, eval_count = self._eval[:-1].clone(), self._eval_count[:-1].clone()
        # Ranks merge by sums and counts: each sample from the rank that saw it, and the few that
        # DistributedSampler repeats to even out the shares averaged.
        for tensor in (train, count, evals, eval_count, *extra.values()):
            self.dist.sum_(tensor)
        self.dist.max_(steps)
        rows = int(count.sum())
        if rows >= 4 and probability_rows == rows:
            raise NoisyctlError(f"epoch {epoch + 1}: every row of logits was a probability distribution; hand "
                                f"update the model's outputs before softmax (log-probabilities will do)")
        seen = count > 0
        self._refuse_left_out(epoch, seen, partial, "", "present every sample each epoch (a loader with "
                              "drop_last=True leaves the last batch out)")
        if nonfinite:
            raise NonFiniteLoss(f"epoch {epoch + 1}: the loss of {nonfinite} samples was NaN or infinite "
                                f"(training diverged)")
        per_sample = train / count.clamp(min=1)[:, None]
        per_sample[~seen] = float("nan")
        loss, margin = per_sample.cpu().numpy().T
        record: dict[str, np.ndarray] = {}
        trained = bool(seen.any())
        # An epoch without training batches (a loop that hands eval passes alone) has no training
        # channels, as the eval channels are left out of one without an eval pass: a channel of NaN
        # would read as a run with nothing in it.
        if trained:
            record.update(train_loss=np.ascontiguousarray(loss), train_margin=np.ascontiguousarray(margin),
                          train_step=steps.cpu().numpy().astype(np.int32))
            for name, values in extra.items():
                fill = self.channels[name]
                merged = torch.where(seen, values / count.clamp(min=1), torch.full_like(values, fill))
                dtype = np.int32 if name == "corrected_label" else np.float32
                record[name] = (merged.cpu().numpy().round().astype(dtype) if dtype == np.int32
                                else merged.cpu().numpy())
        out_figures = {"train_loss": float(np.nanmean(loss)) if trained else float("nan"),
                       "train_accuracy": float(np.mean(margin[np.isfinite(margin)] > 0)) if trained else 0.0}
        evaluated = eval_count > 0
        if bool(evaluated.any()):  # an epoch without an eval pass has none to check
            self._refuse_left_out(epoch, evaluated, partial, " to the eval pass", "evaluate's loader must cover "
                                  "every sample, its batches ending with their dataset indices (inputs, ..., indices)")
            means = (evals / eval_count.clamp(min=1)[:, None]).cpu().numpy()
            means[~evaluated.cpu().numpy()] = np.nan
            pred = np.where(np.isfinite(means[:, 3]), np.nan_to_num(means[:, 3], nan=-1).round(), -1).astype(np.int32)
            record.update(eval_loss=means[:, 0].astype(np.float32), eval_prob=means[:, 1].astype(np.float32),
                          eval_margin=means[:, 2].astype(np.float32), eval_pred=pred)
            shown = pred >= 0
            out_figures["eval_accuracy"] = float(np.mean(pred[shown] == self._trained[shown]))
            if self.labels.true_labels is not None:
                out_figures["eval_true_accuracy"] = float(np.mean(pred[shown] == self.labels.true_labels[shown]))
            self._merge_probabilities(epoch, eval_count)
        features = self._merged_features()
        out_figures.update(given)
        out_figures.setdefault("seconds", time.perf_counter() - self._clock)
        record.update({f"figure_{k}": np.float64(v) for k, v in out_figures.items()})
        if self.dist.is_main:
            self._shard_digests = self._shard_digests[:epoch] + [self.checkpoints.save_shard(epoch, record)]
            if features is not None:
                self.checkpoints.save_array("features", features)
            self._save_state(epoch + 1, state)
        self.epochs_done = epoch + 1
        self._allocate(self._device)
        self._clock = time.perf_counter()
        return out_figures

    def _refuse_left_out(self, epoch: int, presented, partial: bool, where: str, remedy: str) -> None:
        """Refuse an epoch that left samples out (``presented`` (N,) False), unless partial epochs
        are allowed: a sample left out usually means indices that are not the dataset's."""
        import torch

        missing = int((~presented).sum())
        if missing and not (self.allow_partial or partial):
            first = self.labels.ids[int(torch.nonzero(~presented)[0])]
            raise NoisyctlError(f"epoch {epoch + 1}: {missing} of {self.num_samples} samples were not presented{where} "
                                f"(first: '{first}'); {remedy}, or Recorder(allow_partial=True) to record NaN for them")

    def _save_state(self, epochs_done: int, training: Any) -> None:
        """What resuming needs: the recording's own counts and sums, and the loop's ``training`` state."""
        own = {"epochs_done": epochs_done, "step": self.step, "fingerprint": self._fingerprint,
               "late_sum": self._late_sum, "late_count": self._late_count, "shard_digests": self._shard_digests}
        self.checkpoints.save_state({"recorder": own, "training": training})

    def _merge_probabilities(self, epoch: int, eval_count) -> None:
        if self._epoch_probs is None:
            return
        probs = self._epoch_probs[:-1]
        if self.dist.active:
            probs = probs.clone()
            self.dist.sum_(probs)
        # float32 on the device, summed in float64 on the host across epochs
        mean = (probs / eval_count.clamp(min=1)[:, None]).double().cpu()
        if self.epochs is None or self._late_sum is None:
            self._late_sum, self._late_count = mean, 1
        else:
            self._late_sum += mean
            self._late_count += 1

    def _merged_features(self) -> np.ndarray | None:
        import torch

        present = torch.tensor([0 if self._features is None else self._features.shape[1]], device=self._device)
        self.dist.max_(present)
        width = int(present.item())
        if not width:
            return None
        features = self._features[:-1].clone() if self._features is not None else torch.zeros(
            (self.num_samples, width), device=self._device)
        self.dist.sum_(features)  # one rank holds each sample's features
        return features.half().cpu().numpy()

    # --- the end ------------------------------------------------------------------------------------

    def close(self, out_of_fold: np.ndarray | None = None, keep_checkpoints: bool = False) -> Path:
        """Write the run file from the sealed epochs (rank 0) and remove ``PATH.ckpt/``.

        Parameters
        ----------
        out_of_fold : np.ndarray, shape (N, C), optional
            Class probabilities of every sample from a model that never trained on it (K-fold
            cross-validation, any model), as ``train --folds K`` records them: the estimate then
            also counts noise with confident learning and takes the smaller of that and the losses'
            reading, the surer count on a small set. Rows are probabilities (0-1, summing to 1).
        keep_checkpoints : bool, default False
            Leave the checkpoint folder in place (a diverged run keeps what it finished and can
            still resume).
        """
        if self._closed:
            return self.path
        if out_of_fold is not None:  # before anything closes: a corrected array can be handed again
            out_of_fold = self.check_out_of_fold(out_of_fold)
        try:
            if self.epochs_done == 0:
                raise NoisyctlError(f"Recorder.close: no epoch was sealed (call end_epoch after each epoch); "
                                    f"{self.path} was not written")
            self.dist.barrier()  # the last checkpoint is written before any rank leaves
            if self.dist.is_main:
                extra = {} if out_of_fold is None else {"probs/out_of_fold": out_of_fold}
                if self.threshold.any():
                    extra["samples/threshold"] = self.threshold
                if self.texts is not None:
                    extra["samples/text"] = self.texts
                if self._late_sum is not None:
                    extra["probs/late_mean"] = (self._late_sum / self._late_count).numpy()
                if self.checkpoints.array_path("features").exists():
                    extra["features/penultimate"] = np.load(self.checkpoints.array_path("features"))
                assemble_run(self.path, self.labels, self.checkpoints, self.epochs_done, self._attrs(), extra)
                if not keep_checkpoints:
                    self.checkpoints.discard()
            # Every rank returns once the file exists; a rank that went on to tear down its process
            # group while rank 0 still wrote would abort gloo.
            self.dist.barrier()
        finally:
            self._closed = True
            self._release()
        return self.path

    def check_out_of_fold(self, values, what: str = "out_of_fold") -> np.ndarray:
        """``values`` as the [N x C] float32 probabilities :meth:`close` takes as ``out_of_fold``, or
        one clear error naming them ``what``: what a caller that hands them over later (a training
        callback) checks before training."""
        if hasattr(values, "detach"):
            values = values.detach().cpu().numpy()
        values = np.asarray(values, dtype=np.float32)
        expected = (self.num_samples, self.num_classes)
        if values.shape != expected:
            raise NoisyctlError(f"{what} has shape {values.shape}, not [samples, classes] {expected}; "
                                f"{self.path} was not written")
        rows = values.sum(axis=1)
        if not np.isfinite(values).all() or values.min() < 0 or values.max() > 1 or np.abs(rows - 1).max() > 1e-2:
            raise NoisyctlError(f"{what} must hold probabilities (0-1, each row summing to 1: softmax the logits); "
                                f"{self.path} was not written")
        return values

    def _attrs(self) -> dict[str, Any]:
        labels = self.labels
        training = self.info.get("training") or {"recorded_by": "your own training loop (noisyctl.Recorder)",
                                                  "epochs": self.epochs}
        training = {**training, "processes": self.dist.world, "software": software_versions()}
        return {"dataset": labels.dataset, "noise": labels.noise, "plugins": self.info.get("plugins", labels.plugins or {}),
                "recipe": self.info.get("recipe"), "pruning": labels.pruning, "correction": labels.correction,
                "training": training}

    def _release(self) -> None:
        self._exits.close()
        if self.dist.is_main:
            self.checkpoints.discard_if_empty()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` or :meth:`abandon` has ended the recording."""
        return self._closed

    def __enter__(self) -> "Recorder":
        return self

    def abandon(self) -> None:
        """Stop without writing the run file (the loop failed): the sealed epochs stay in PATH.ckpt/
        to resume, and the lock is released."""
        self._closed = True
        self._release()

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self.abandon()


def _label_array(values: Any, what: str) -> np.ndarray:
    try:
        array = np.asarray(values.cpu() if hasattr(values, "cpu") else values)
    except Exception:
        raise NoisyctlError(f"Recorder: {what} must be an array of class indices") from None
    if array.ndim != 1 or not (np.issubdtype(array.dtype, np.integer) or array.dtype == bool or array.size == 0):
        names = (f"; for {what} given as names, np.unique({what}, return_inverse=True) gives the class_names "
                 f"and each one's index" if array.dtype.kind in "USO" and array.ndim == 1 else "")
        raise NoisyctlError(f"Recorder: {what} must be a 1-D array of integer class indices, not "
                            f"{array.dtype} of shape {array.shape}{names}")
    return array.astype(np.int64)


def _as_labels(labels: Any, class_names, ids, true_labels, dataset) -> Labels:
    """The sample table a run file holds, from a Labels or from arrays."""
    if isinstance(labels, Labels):
        return labels
    given = _label_array(labels, "labels")
    if len(given) == 0:
        raise NoisyctlError("Recorder: labels is empty; give the label of every training sample")
    if class_names is None:
        class_names = [str(c) for c in range(int(given.max()) + 1)]
    class_names = [str(name) for name in class_names]
    if len(class_names) < 2:
        raise NoisyctlError("Recorder: there must be at least two classes")
    if given.min() < 0 or given.max() >= len(class_names):
        bad = int(given.min() if given.min() < 0 else given.max())
        raise NoisyctlError(f"Recorder: label {bad} is outside the {len(class_names)} classes")
    ids = [str(i) for i in range(len(given))] if ids is None else [str(i) for i in ids]
    if len(ids) != len(given):
        raise NoisyctlError(f"Recorder: {len(ids)} ids for {len(given)} labels")
    if len(set(ids)) != len(ids):
        raise NoisyctlError("Recorder: sample ids must be unique")
    truth = None
    if true_labels is not None:
        truth = _label_array(true_labels, "true_labels")
        if truth.shape != given.shape or truth.min() < 0 or truth.max() >= len(class_names):
            raise NoisyctlError("Recorder: true_labels must give one class index per sample")
    if dataset is None or isinstance(dataset, str):
        dataset = {"name": dataset or "custom", "root": None, "options": {}}
    if not isinstance(dataset, dict) or not isinstance(dataset.get("name"), str):
        raise NoisyctlError("Recorder: dataset is a name or a dict with a 'name'")
    from noisyctl.data import recorded_root

    dataset = {"root": None, "options": {}, **dataset}
    dataset["root"] = recorded_root(dataset["root"])
    return Labels(ids=ids, given_labels=given, class_names=class_names, dataset=dataset, true_labels=truth,
                  plugins={})


def _fingerprint(trained: np.ndarray, outputs: int, extra: str) -> str:
    digest = hashlib.sha256(np.ascontiguousarray(trained).tobytes())
    digest.update(f"outputs={outputs};{extra}".encode())
    return digest.hexdigest()
