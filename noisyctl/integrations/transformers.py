"""Hugging Face ``transformers``: record every sample's dynamics from inside ``Trainer``.

Per-sample losses need the logits of each training batch, which a ``TrainerCallback`` does not see;
so :class:`RecordingTrainer` (a ``Trainer`` subclass; or mix :class:`RecordingMixin` into your own
subclass) hands them to a Recorder from ``compute_loss``, and its callback seals each epoch. The
dataset's items carry their index under ``"sample_index"`` (the key is an option); keep it in the
batch with ``TrainingArguments(remove_unused_columns=False)``: the Trainer drops columns its model
does not take, and the mixin takes the index out before the model sees the batch.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

try:
    from transformers import Trainer, TrainerCallback
except ImportError:
    raise ImportError("noisyctl.integrations.transformers needs transformers: "
                      "pip install 'noisyctl[transformers]'") from None

from noisyctl.errors import NoisyctlError
from noisyctl.training.recorder import Recorder

INDEX_KEY = "sample_index"


class _SealEpochs(TrainerCallback):
    """Runs the eval pass (if asked) and seals the Recorder's epoch at each epoch's end; writes the
    run file when training ends."""

    def __init__(self, owner: "RecordingMixin") -> None:
        self.owner = owner

    def on_train_begin(self, args, state, control, **kwargs):
        # The Trainer has loaded its checkpoint's state (``train(resume_from_checkpoint=...)``), or
        # starts at 0: the recording continues where the Trainer does. A checkpoint written mid-epoch
        # resumes that epoch after the batches it had trained, unless ignore_data_skip starts it over.
        # With max_steps the Trainer counts the epochs itself: num_train_epochs keeps its default.
        self.owner._recorder_options["epochs"] = self.owner._epochs_given or int(state.num_train_epochs) or None
        epoch = float(state.epoch or 0.0)
        done = math.floor(epoch + 1e-6)
        self.owner._resume_point = done
        self.owner._resumed_mid_epoch = done if epoch - done > 1e-6 and not args.ignore_data_skip else None
        return control

    def on_epoch_begin(self, args, state, control, optimizer=None, **kwargs):
        # The rate the epoch starts at: a per-step schedule has moved it by the epoch's end.
        self.owner._epoch_learning_rate = optimizer.param_groups[0]["lr"] if optimizer is not None else None
        return control

    def on_epoch_end(self, args, state, control, **kwargs):
        # An epoch cut short by max_steps, or any epoch that drops the last batch, presented only
        # some samples: the rest are NaN in it.
        self.owner._end_epoch(cut_short=control.should_training_stop or args.dataloader_drop_last)
        return control

    def on_train_end(self, args, state, control, **kwargs):
        recorder = self.owner.recorder
        if recorder is not None and recorder.epochs_done:
            recorder.close(out_of_fold=self.owner._record_out_of_fold)
        return control


class RecordingMixin:
    """Mix into a ``transformers.Trainer`` subclass to record dynamics into a noisyctl run file.

    Parameters (keywords, besides the Trainer's own)
    ----------
    record_to : str or Path
        The run file to write when training ends.
    record_labels : array_like of int, shape (N,)
        The given label of every training sample, by the index its items carry.
    record_eval : bool, default True
        After each epoch, run the model in eval mode over the training set and record the eval
        channels (the ``learned`` detector reads them).
    index_key : str, default "sample_index"
        The item key holding each sample's dataset index.
    record_out_of_fold : np.ndarray, shape (N, C), optional
        Class probabilities of every sample from models that never trained on it, for a held-out
        count beside the losses' (see :meth:`noisyctl.Recorder.close`); checked at the first batch.
    recorder_options : dict, optional
        Passed to :class:`noisyctl.Recorder` (``class_names``, ``true_labels``, ``texts``, ...); ``epochs``
        defaults to the epochs the Trainer plans (``num_train_epochs``, or as many as ``max_steps``
        takes).
    """

    def __init__(self, *args: Any, record_to: str | Path, record_labels: Any, record_eval: bool = True,
                 index_key: str = INDEX_KEY, record_out_of_fold: Any = None,
                 recorder_options: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if getattr(self.args, "remove_unused_columns", False):
            raise NoisyctlError(f"recording needs the '{index_key}' of each item in the batch: pass "
                                f"TrainingArguments(remove_unused_columns=False)")
        self.index_key, self.record_eval = index_key, record_eval
        options = dict(recorder_options or {})
        self._epochs_given = options.get("epochs")  # else the Trainer's count, known as training begins
        self._record_to, self._record_labels, self._recorder_options = Path(record_to), record_labels, options
        self._record_out_of_fold = record_out_of_fold
        self._resume_point = 0  # the epochs the Trainer has done as it starts, and the one it resumes
        self._resumed_mid_epoch: int | None = None  # in mid-epoch, if it does: see _SealEpochs
        self._epoch_learning_rate: float | None = None
        self.recorder: Recorder | None = None
        self.add_callback(_SealEpochs(self))

    def _recorder(self) -> Recorder:
        # Made at the first batch: under torch.distributed the process group exists by then.
        if self.recorder is None:
            self.recorder = Recorder(self._record_to, self._record_labels, **self._recorder_options)
            self.recorder.resume_from(self._resume_point)
            if self._record_out_of_fold is not None:  # a wrong array fails now, not after training
                self._record_out_of_fold = self.recorder.check_out_of_fold(self._record_out_of_fold,
                                                                           "record_out_of_fold")
        return self.recorder

    def train(self, *args: Any, **kwargs: Any):
        # A failed train() leaves the sealed epochs to resume from, and frees the recording for the
        # next call (``train(resume_from_checkpoint=...)`` in the same notebook or process).
        if self.recorder is not None and self.recorder.closed:
            self.recorder = None  # a finished recording: this call records anew
        try:
            return super().train(*args, **kwargs)
        except BaseException:
            if self.recorder is not None:
                self.recorder.abandon()
                self.recorder = None
            raise

    def compute_loss(self, model, inputs, return_outputs: bool = False, **kwargs):
        # The Trainer's own evaluation (eval_dataset) calls this too, on items that need no index.
        if model.training and self.index_key not in inputs:
            raise NoisyctlError(f"the batch has no '{self.index_key}': give each item its dataset index under "
                                f"that key, and keep it with TrainingArguments(remove_unused_columns=False)")
        inputs = dict(inputs)
        indices = inputs.pop(self.index_key, None)
        targets = inputs.get("labels")
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True, **kwargs)
        if model.training:
            logits = outputs["logits"] if isinstance(outputs, dict) else outputs[1]
            self._recorder().update(indices, logits, targets)
        return (loss, outputs) if return_outputs else loss

    def _end_epoch(self, cut_short: bool = False) -> None:
        recorder = self._recorder()
        if self.record_eval:
            import torch

            model = self.model
            was_training = model.training
            model.eval()
            with torch.no_grad():
                for batch in self.get_eval_dataloader(self.train_dataset):
                    batch = self._prepare_inputs(batch)
                    indices = batch.pop(self.index_key)
                    batch.pop("labels", None)
                    recorder.record_eval(indices, model(**batch).logits)
            model.train(was_training)
        recorder.end_epoch({"learning_rate": self._epoch_learning_rate},
                           partial=cut_short or recorder.epochs_done == self._resumed_mid_epoch)


class RecordingTrainer(RecordingMixin, Trainer):
    """``transformers.Trainer`` that records every training sample's dynamics (see RecordingMixin).

    Examples
    --------
    >>> trainer = RecordingTrainer(model=model, args=TrainingArguments(..., remove_unused_columns=False),
    ...                            train_dataset=train, record_to="run.h5", record_labels=labels)  # doctest: +SKIP
    >>> trainer.train()                                                                              # doctest: +SKIP
    """
