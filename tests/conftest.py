import json
import os
from contextlib import contextmanager

import pytest
import torch
from typer.testing import CliRunner

# Tests see noisyctl's built-in plugins only, whatever else is installed, and so do the processes
# they start (they inherit this environment); a test that needs a third-party plugin installs it
# into a separate environment.
os.environ["NOISYCTL_DISABLE_PLUGIN_AUTOLOAD"] = "1"
# Every test trains on one thread, in-process and in the processes it starts, however it is run:
# a run's dynamics depend on the thread count (sums are added in another order), so a test reads
# the same run alone, under pytest-xdist's one worker a core (pyproject's addopts) or on a machine
# with more cores. One thread a worker also keeps two workers from fighting over two cores.
os.environ["OMP_NUM_THREADS"] = "1"
torch.set_num_threads(1)

from noisyctl import plugins  # noqa: E402
from noisyctl.cli import create_app  # noqa: E402


class Cli:
    """Runs the real CLI in-process; stdout and stderr stay apart."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args, ok: bool = True):
        plugins.reset()
        result = self.runner.invoke(create_app(), [str(a) for a in args])
        if ok:
            assert result.exit_code == 0, f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}"
        return result

    def json(self, *args):
        return json.loads(self(*args, "--json").stdout)

    def error(self, *args) -> str:
        """Run a command that must fail cleanly; return its one error line."""
        result = self(*args, ok=False)
        assert result.exit_code != 0, result.stdout
        assert "Traceback" not in result.stderr + result.stdout
        lines = result.stderr.rstrip().splitlines()  # nothing before it, not even a blank line
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("error: ")
        return lines[0]


def run_with_gaps(run, out, channels, missing):
    """A copy of run file ``run`` at ``out`` whose dynamics ``channels`` hold no record (NaN; -1 in
    integer channels) where the [samples, epochs] mask ``missing`` is set: what a loop records that
    left samples out of epochs, or skipped eval passes."""
    import shutil

    import h5py

    shutil.copy(run, out)
    with h5py.File(out, "r+") as h5:
        for name in channels:
            values = h5[f"dynamics/{name}"][:]
            values[missing] = -1 if values.dtype.kind == "i" else float("nan")
            h5[f"dynamics/{name}"][:] = values
    return out


TRAINING_CHANNELS = ("train_loss", "train_margin", "train_step")
EVAL_CHANNELS = ("eval_prob", "eval_margin", "eval_loss", "eval_pred")


def digits_for_a_users_loop(rate: float, seed: int = 0):
    """What a user's own loop starts from: scikit-learn's digits as images [N, 1, 8, 8] in [0, 1],
    labels with ``rate`` of them flipped by noisyctl's uniform noise, the true labels, and a small CNN
    with its SGD optimizer (all seeded by ``seed``)."""
    from sklearn.datasets import load_digits

    from noisyctl.synth import synthesize

    inputs = torch.tensor(load_digits().images / 16.0, dtype=torch.float32).unsqueeze(1)
    labels = synthesize({"name": "digits", "root": None, "options": {}}, "uniform", rate, seed=seed)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(16 * 64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    return inputs, labels.given_labels, labels.true_labels, model, optimizer


@contextmanager
def interrupted_in_epoch(epoch: int):
    """Inside the block, training raises KeyboardInterrupt as it reaches ``epoch`` (0-based), as a Ctrl-C would."""
    from noisyctl.training import Trainer

    real_epoch = Trainer.train_epoch

    def dies(self, at, recorder=None, on_batch=None):
        if at == epoch:
            raise KeyboardInterrupt
        return real_epoch(self, at, recorder, on_batch)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Trainer, "train_epoch", dies)
        yield


@pytest.fixture
def cli():
    return Cli()


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """A short real run shared by tests that only read it: digits, 30% uniform noise, 6 epochs, no
    held-out models (what the losses alone say)."""
    folder = tmp_path_factory.mktemp("digits_run")
    cli = Cli()
    cli("synth", "--noise", "uniform", "--rate", "0.3", "--seed", "1", "-o", folder / "labels.h5")
    cli("train", "--labels", folder / "labels.h5", "--epochs", "6", "--folds", "0", "--quiet", "-o", folder / "run.h5")
    return folder / "run.h5"
