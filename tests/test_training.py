import json

import h5py
import numpy as np
import pytest
import torch

from noisyctl.data import load_dataset
from noisyctl.errors import NoisyctlError
from noisyctl.store import RunFile, read_labels
from noisyctl.synth import synthesize
from noisyctl.training import Checkpoints, TrainOptions, out_of_fold_probabilities, train
from conftest import interrupted_in_epoch

SPEC = {"name": "digits", "root": None, "options": {}}


@pytest.fixture(scope="module")
def noisy():
    return synthesize(SPEC, "pairflip", 0.2, seed=0), load_dataset(SPEC)


def dynamics(path):
    with h5py.File(path) as h5:
        return {name: ds[:] for name, ds in h5["dynamics"].items()}


def test_same_seed_gives_identical_dynamics_on_cpu(noisy, tmp_path):
    labels, data = noisy
    options = TrainOptions(epochs=2, device="cpu")
    train(labels, data, options, tmp_path / "a.h5")
    train(labels, data, options, tmp_path / "b.h5")
    train(labels, data, TrainOptions(epochs=2, device="cpu", seed=1), tmp_path / "c.h5")
    a, b, c = (dynamics(tmp_path / f"{x}.h5") for x in "abc")
    assert a.keys() == {"train_loss", "train_margin", "train_step", "eval_loss", "eval_prob", "eval_margin",
                        "eval_pred"}
    for name in a:
        assert np.array_equal(a[name], b[name]), name
    assert not np.array_equal(a["train_loss"], c["train_loss"])


def test_every_sample_is_recorded_once_per_epoch(digits_run):
    with h5py.File(digits_run) as h5:
        steps = h5["dynamics/train_step"][:]
        n, epochs = steps.shape
        assert np.isfinite(h5["dynamics/train_loss"][:]).all()
        batches_per_epoch = -(-n // 64)
        for e in range(epochs):  # each epoch's steps are that epoch's batches, each holding <= 64 samples
            counts = np.bincount(steps[:, e] - e * batches_per_epoch, minlength=batches_per_epoch)
            assert counts.max() <= 64 and counts.sum() == n and len(counts) == batches_per_epoch
        prob = h5["dynamics/eval_prob"][:]
        assert ((prob >= 0) & (prob <= 1)).all()
        pred = h5["dynamics/eval_pred"][:]
        given = h5["samples/given_label"][:]
        eval_acc = (pred == given[:, None]).mean(axis=0)
        assert np.allclose(eval_acc, h5["epochs/eval_accuracy"][:], atol=1e-6)


def test_margin_is_assigned_logit_minus_best_other():
    import torch

    from noisyctl.training import margins

    logits = torch.tensor([[2.0, 1.0, 0.5], [0.0, 3.0, 1.0]])
    labels = torch.tensor([0, 0])
    assert torch.allclose(margins(logits, labels), torch.tensor([1.0, -3.0]))


def test_interrupted_run_resumes_to_the_same_dynamics(noisy, tmp_path):
    labels, data = noisy
    options = TrainOptions(epochs=4, device="cpu")
    train(labels, data, options, tmp_path / "whole.h5")

    out = tmp_path / "resumed.h5"
    with interrupted_in_epoch(2), pytest.raises(KeyboardInterrupt):
        train(labels, data, options, out)
    assert not out.exists() and Checkpoints(out).exists()
    with pytest.raises(NoisyctlError, match="holds an interrupted run .2/4 epochs.: pass --resume"):
        train(labels, data, options, out)
    with pytest.raises(NoisyctlError, match="other options or labels"):
        train(labels, data, TrainOptions(epochs=4, device="cpu", lr=0.01), out, resume=True)
    summary = train(labels, data, options, out, resume=True)
    assert summary["resumed_from_epoch"] == 2
    whole, resumed = dynamics(tmp_path / "whole.h5"), dynamics(out)
    for name in whole:
        assert np.array_equal(whole[name], resumed[name]), name
    assert not Checkpoints(out).folder.exists()


@pytest.mark.parametrize("damage, message", [
    (lambda shard: shard.write_bytes(shard.read_bytes()[:200]), r"is damaged \(it does not match the checksum"),
    (lambda shard: shard.unlink(), "is missing"),
    (lambda shard: np.savez(shard, train_loss=np.array([object()], dtype=object)), "is damaged"),
], ids=["truncated", "deleted", "holding Python objects"])
def test_a_damaged_checkpoint_is_found_before_training_resumes(noisy, tmp_path, damage, message):
    labels, data = noisy
    options = TrainOptions(epochs=4, device="cpu")
    out = tmp_path / "run.h5"
    with interrupted_in_epoch(2), pytest.raises(KeyboardInterrupt):
        train(labels, data, options, out)
    damage(Checkpoints(out).shard(1))
    class Steps:
        batches = 0

        def start(self, *args): pass

        def batch(self, samples): Steps.batches += 1

        def epoch_done(self, *args): pass

        def note(self, text): pass

    with pytest.raises(NoisyctlError, match=f"cannot resume: checkpoint shard .*epoch_00001.npz {message}.*--restart"):
        train(labels, data, options, out, resume=True, progress=Steps())
    assert Steps.batches == 0 and not out.exists()  # refused before a single step
    assert train(labels, data, options, out, restart=True)["epochs"] == 4


def test_train_refuses_labels_made_for_other_data(cli, tmp_path, monkeypatch):
    labels = tmp_path / "labels.h5"
    cli("synth", "-o", labels)
    # A labels file for a dataset with other ids: swap two ids in the file.
    with h5py.File(labels, "r+") as h5:
        ids = h5["samples/id"][:]
        ids[[0, 1]] = ids[[1, 0]]
        h5["samples/id"][...] = ids
    line = cli.error("train", "--labels", labels, "-o", tmp_path / "run.h5")
    assert "does not match dataset 'digits': sample 0" in line
    assert read_labels(labels).ids[0] == "digits/0001"


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_to_the_same_dynamics(tmp_path):
    """Real kill -9s at four moments of training (after 1, 3, 5 and 6 finished epochs, each at a seeded
    random point inside the next epoch), each followed by --resume; the end result must equal an
    uninterrupted run, and no run file may ever be visible half-written."""
    import signal
    import subprocess
    import sys
    import time

    from noisyctl.store import RunFile

    labels = tmp_path / "labels.h5"
    base = [sys.executable, "-m", "noisyctl"]
    subprocess.run([*base, "synth", "-n", "pairflip", "-o", labels], check=True, capture_output=True)
    # On a GPU machine this checks the CUDA path, where identical dynamics need --deterministic.
    device = "cuda" if torch.cuda.is_available() else "cpu"
    train_args = [*base, "train", "--labels", labels, "--epochs", "8", "--quiet", "--device", device, "--deterministic"]
    subprocess.run([*train_args, "-o", tmp_path / "whole.h5"], check=True, capture_output=True)

    out = tmp_path / "killed.h5"
    checkpoints = Checkpoints(out)
    killed_at = []
    delays = np.random.default_rng(7).uniform(0.0, 0.3, size=4)
    for attempt, wait_for_epochs in enumerate((1, 3, 5, 6)):
        command = [*train_args, "-o", out] + (["--resume"] if attempt else [])
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while time.time() < deadline and process.poll() is None:
            shards = list(checkpoints.folder.glob("epoch_*.npz")) if checkpoints.folder.exists() else []
            if len(shards) >= wait_for_epochs:
                time.sleep(delays[attempt])  # land somewhere inside the next epoch
                break
            time.sleep(0.01)
        assert process.poll() is None, "training finished before it could be killed"
        process.send_signal(signal.SIGKILL)
        process.wait()
        killed_at.append(len(list(checkpoints.folder.glob("epoch_*.npz"))))
        assert not out.exists()  # no half-visible run file
    done = subprocess.run([*train_args, "-o", out, "--resume", "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    # Each epoch writes its shard, then the state that seals it: a kill between the two leaves the
    # sixth shard on disk but five epochs sealed, and training resumes from the fifth.
    assert killed_at[3] - 1 <= json.loads(done.stdout)["resumed_from_epoch"] < 8
    whole, resumed = dynamics(tmp_path / "whole.h5"), dynamics(out)
    for name in whole:
        assert np.array_equal(whole[name], resumed[name]), name
    with RunFile(out) as run:
        assert run.num_epochs == 8
    assert killed_at[0] >= 1 and killed_at[1] >= 3 and killed_at[2] >= 5 and killed_at[3] >= 6


@pytest.mark.slow
def test_sigterm_stops_train_as_ctrl_c_does_and_the_run_resumes(tmp_path):
    """What CI runners and schedulers send: one line, exit 143, a checkpoint to resume from."""
    import signal
    import subprocess
    import sys
    import time

    base = [sys.executable, "-m", "noisyctl"]
    subprocess.run([*base, "synth", "-o", tmp_path / "l.h5"], check=True, capture_output=True)
    command = [*base, "train", "-l", tmp_path / "l.h5", "-e", "8", "-q", "-o", tmp_path / "r.h5"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    checkpoints = Checkpoints(tmp_path / "r.h5")
    deadline = time.time() + 120
    while not checkpoints.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert stderr.strip().splitlines() == [
        "error: terminated (SIGTERM); the epochs finished so far are kept: the same command with --resume continues"]
    assert checkpoints.exists() and not (tmp_path / "r.h5").exists()
    resumed = subprocess.run(command + ["--resume", "--json"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["resumed_from_epoch"] >= 1


def test_out_of_fold_checkpoints_are_read_only_by_the_same_folds(tmp_path):
    """Fold results are checkpointed by what decides the split (K and the seed): another K finds
    its own, never a shard of other sizes (which raised a shape error), nor of another split."""
    spec = {"name": "blobs", "root": None, "options": {"samples": 120, "features": 4, "classes": 3}}
    labels, data = synthesize(spec, "uniform", 0.1, seed=0), load_dataset(spec)
    checkpoints = Checkpoints(tmp_path / "run.h5")
    three = out_of_fold_probabilities(labels, data, TrainOptions(model="mlp", epochs=1, folds=3), checkpoints)
    two = out_of_fold_probabilities(labels, data, TrainOptions(model="mlp", epochs=1, folds=2), checkpoints)
    fresh = out_of_fold_probabilities(labels, data, TrainOptions(model="mlp", epochs=1, folds=2),
                                      Checkpoints(tmp_path / "fresh.h5"))
    assert three.shape == two.shape == (120, 3) and np.allclose(two.sum(axis=1), 1, atol=1e-4)
    assert np.allclose(two, fresh, atol=1e-5)  # computed for K=2, not read from K=3's shards
    again = out_of_fold_probabilities(labels, data, TrainOptions(model="mlp", epochs=1, folds=3), checkpoints)
    assert np.array_equal(again, three)  # K=3 resumed from its own shards


def test_the_default_model_is_the_one_that_reads_the_datasets_inputs(cli, tmp_path):
    """--model auto: small-cnn for images, mlp for feature vectors, text-bag for text; the run
    records the model it trained, so a retrain (prune, options_from_run) trains the same one, and
    the torch that trained it, as another torch trains other losses from the same options."""
    from noisyctl.data import load_dataset

    np.savez(tmp_path / "features.npz", x=np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32),
             y=np.arange(40) % 2)
    kinds = {}
    for name, root in (("digits", None), ("npz", tmp_path / "features.npz"), ("tickets", None)):
        kinds[name] = load_dataset({"name": name, "root": None if root is None else str(root), "options": {}}).kind
        assert TrainOptions().decided_model(kinds[name]).model == {"image": "small-cnn", "features": "mlp",
                                                                   "text": "text-bag"}[kinds[name]]
    assert kinds == {"digits": "image", "npz": "features", "tickets": "text"}
    assert TrainOptions(model="lenet").decided_model("features").model == "lenet"  # what is asked for stays
    trained = cli.json("train", "-d", "npz", "--data-root", tmp_path / "features.npz", "-e", "1",
                       "-o", tmp_path / "run.h5")
    assert trained["model"] == "mlp"
    with RunFile(tmp_path / "run.h5") as run:
        assert run.training["model"] == "mlp"
        assert run.training["software"]["torch"] == torch.__version__
