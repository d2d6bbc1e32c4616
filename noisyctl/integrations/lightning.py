"""PyTorch Lightning: a ``Callback`` that records every sample's dynamics through a Recorder.

The contract with your LightningModule:

- ``training_step`` returns a dict with ``"loss"`` and ``"logits"`` (the batch's outputs);
- each batch carries the samples' dataset indices: the last element of a tuple/list batch, or the
  ``"index"`` key of a dict batch (or ``training_step`` returns them as ``"indices"``);
- for the eval pass (``record_eval=True``), ``module(inputs)`` returns logits, the inputs being the
  first element of a tuple batch or ``batch["inputs"]``.

Under Lightning's DDP strategies every process records its share and the Recorder merges them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

try:
    from lightning.pytorch.callbacks import Callback
except ImportError:  # the older package name
    try:
        from pytorch_lightning.callbacks import Callback
    except ImportError:
        raise ImportError("noisyctl.integrations.lightning needs PyTorch Lightning: "
                          "pip install 'noisyctl[lightning]'") from None

from noisyctl.errors import NoisyctlError
from noisyctl.training.recorder import Recorder


def _split(batch: Any) -> tuple[Any, Any]:
    """(inputs, indices) of a batch under the contract above."""
    if isinstance(batch, dict):
        if "index" not in batch:
            raise NoisyctlError("noisyctl's Lightning callback: a dict batch needs the samples' dataset indices "
                                "under 'index'")
        return batch.get("inputs"), batch["index"]
    if isinstance(batch, (tuple, list)) and len(batch) >= 2:
        return batch[0], batch[-1]
    raise NoisyctlError("noisyctl's Lightning callback: a batch must be (inputs, ..., indices) or a dict with "
                        "'index'")


def _planned_epochs(trainer) -> int | None:
    """The epochs a fit runs: ``max_epochs``, or fewer where ``max_steps`` ends it first (None: no
    bound known)."""
    planned = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else None
    if trainer.max_steps > 0 and 0 < trainer.num_training_batches < math.inf:  # inf: a loader of no length
        reached = math.ceil(trainer.max_steps * trainer.accumulate_grad_batches / trainer.num_training_batches)
        planned = reached if planned is None else min(planned, reached)
    return planned


class RecordDynamics(Callback):
    """Record training dynamics of a Lightning fit into a noisyctl run file.

    Parameters
    ----------
    path : str or Path
        The run file to write when the fit ends.
    labels : array_like of int, shape (N,)
        The given label of every training sample, by dataset index.
    record_eval : bool, default True
        After each training epoch, run the module in eval mode over ``eval_dataloader`` (default: the
        fit's training dataloader) and record the eval channels the ``learned`` detector reads.
    eval_dataloader : DataLoader, optional
        Batches ``(inputs, ..., indices)`` for the eval pass.
    out_of_fold : np.ndarray, shape (N, C), optional
        Class probabilities of every sample from models that never trained on it, for a held-out
        count beside the losses' (see :meth:`noisyctl.Recorder.close`); checked when the fit starts.
    **recorder_options
        Passed to :class:`noisyctl.Recorder` (``class_names``, ``ids``, ``true_labels``, ``texts``, ...).
        ``epochs`` defaults to the trainer's ``max_epochs``, or the epochs ``max_steps`` reaches first.

    Examples
    --------
    >>> trainer = lightning.Trainer(max_epochs=20, callbacks=[RecordDynamics("run.h5", labels)])  # doctest: +SKIP
    """

    def __init__(self, path: str | Path, labels: Any, *, record_eval: bool = True, eval_dataloader=None,
                 out_of_fold: Any = None, **recorder_options: Any) -> None:
        self.path, self.labels = Path(path), labels
        self.record_eval, self.eval_dataloader, self.out_of_fold = record_eval, eval_dataloader, out_of_fold
        self.recorder_options = recorder_options
        self.recorder: Recorder | None = None
        self._resumed_mid_epoch: int | None = None
        self._epoch_learning_rate: float | None = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        # Made here, in every process (after DDP has started its process group), never pickled.
        if stage == "fit" and (self.recorder is None or self.recorder.closed):  # closed: an earlier fit's
            self.recorder = Recorder(self.path, self.labels, **self.recorder_options)
            if self.out_of_fold is not None:  # a wrong array fails now, not after the fit
                self.out_of_fold = self.recorder.check_out_of_fold(self.out_of_fold)

    def on_train_start(self, trainer, pl_module) -> None:
        # The trainer has restored its checkpoint by now (``fit(ckpt_path=...)``), or starts afresh:
        # the recording continues where the trainer does, not where an interrupted recording stopped.
        # A mid-epoch checkpoint resumes that epoch after the batches it had trained.
        self.recorder.resume_from(trainer.current_epoch)
        if "epochs" not in self.recorder_options:  # the late epochs are the last of those the fit runs
            self.recorder.epochs = _planned_epochs(trainer)
        resumed_batches = trainer.fit_loop.epoch_loop.batch_progress.current.completed
        self._resumed_mid_epoch = trainer.current_epoch if resumed_batches > 0 else None

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        # Read as the epoch starts: an epoch-wise scheduler has stepped by the time it ends.
        self._epoch_learning_rate = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not isinstance(outputs, dict) or "logits" not in outputs:
            raise NoisyctlError("noisyctl's Lightning callback: training_step must return a dict with 'loss' and "
                                "'logits'")
        indices = outputs.get("indices")
        if indices is None:
            indices = _split(batch)[1]
        self.recorder.update(indices, outputs["logits"], outputs.get("targets"))

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self.record_eval:
            loader = self.eval_dataloader if self.eval_dataloader is not None else trainer.train_dataloader
            self.recorder.evaluate(pl_module, loader, device=pl_module.device, unpack=_split)
        # Not every sample was presented in an epoch resumed mid-way, one cut short (max_steps, a
        # stop request), or any epoch of a fit that leaves some out (drop_last, limit_train_batches):
        # the ones left out are NaN in it.
        cut_short = trainer.should_stop or 0 < trainer.max_steps <= trainer.global_step
        limit = trainer.limit_train_batches  # a share (1.0: all), or a count of batches (1: one)
        leaves_some_out = (bool(getattr(trainer.train_dataloader, "drop_last", False))
                           or not (isinstance(limit, float) and limit >= 1.0))
        self.recorder.end_epoch({"learning_rate": self._epoch_learning_rate}, partial=cut_short or leaves_some_out
                                or trainer.current_epoch == self._resumed_mid_epoch)

    def on_fit_end(self, trainer, pl_module) -> None:
        if self.recorder is not None and self.recorder.epochs_done:
            self.recorder.close(out_of_fold=self.out_of_fold)

    def on_exception(self, trainer, pl_module, exception) -> None:
        if self.recorder is not None:  # the sealed epochs stay in PATH.ckpt/
            self.recorder.abandon()
