"""Training that records per-sample dynamics.

- :mod:`~noisyctl.training.options`: ``TrainOptions`` and every check on them;
- :mod:`~noisyctl.training.recorder`: the ``Recorder`` a training loop hands its logits to (also
  public as ``noisyctl.Recorder``, for users' own loops);
- :mod:`~noisyctl.training.checkpoints`: the ``OUT.ckpt/`` folder of sealed epochs and the run file
  assembled from it;
- :mod:`~noisyctl.training.loop`: the ``Trainer``, noisyctl's own step loop;
- :mod:`~noisyctl.training.folds`: out-of-fold probabilities (``--folds K``);
- :mod:`~noisyctl.training.run`: ``train`` and ``dry_run``, what the CLI calls.
"""

from noisyctl.training.checkpoints import Checkpoints, assemble_run
from noisyctl.training.folds import out_of_fold_probabilities
from noisyctl.training.loop import (SubsetSampleSet, Trainer, build_model, load_trusted,
                                    threshold_samples, training_labels)
from noisyctl.training.options import TrainOptions, options_from_run, projected_size
from noisyctl.training.recorder import Recorder, margins, penultimate_layer
from noisyctl.training.run import TrainingProgress, dry_run, held_out_reason, train

__all__ = ["Checkpoints", "assemble_run", "out_of_fold_probabilities", "SubsetSampleSet", "Trainer", "build_model",
           "load_trusted", "penultimate_layer", "threshold_samples", "training_labels", "TrainOptions",
           "options_from_run", "projected_size", "Recorder", "margins", "TrainingProgress", "dry_run",
           "held_out_reason", "train"]
