"""noisyctl.Recorder: dynamics from a user's own training loop, equal to what `train` records."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import digits_for_a_users_loop
import noisyctl
from noisyctl.data import load_dataset
from noisyctl.errors import NoisyctlError
from noisyctl.synth import synthesize
from noisyctl.training import Checkpoints, Recorder, TrainOptions, build_model, train
from noisyctl.training.loop import _epoch_seed, training_batches

SPEC = {"name": "digits", "root": None, "options": {}}
ROOT = Path(__file__).resolve().parent.parent


def dynamics(path):
    with h5py.File(path) as h5:
        return {name: ds[:] for name, ds in h5["dynamics"].items()}


@pytest.mark.slow
def test_a_plain_loop_records_what_train_records(tmp_path, cli):
    """The same model, data order and seed in a hand-written loop: the same dynamics, bit for bit."""
    labels, data = synthesize(SPEC, "uniform", 0.3, seed=0), load_dataset(SPEC)
    options = TrainOptions(epochs=4, device="cpu", augment="none", schedule="constant")
    train(labels, data, options, tmp_path / "train.h5")

    torch.manual_seed(options.seed)
    model, _ = build_model(options, data)
    optimizer = torch.optim.SGD(model.parameters(), lr=options.lr, momentum=options.momentum,
                                weight_decay=options.weight_decay, nesterov=True)
    given = torch.as_tensor(labels.given_labels)
    n = len(labels.ids)
    with Recorder(tmp_path / "loop.h5", labels.given_labels, class_names=labels.class_names, ids=labels.ids,
                  epochs=options.epochs, true_labels=labels.true_labels) as recorder:
        for epoch in range(options.epochs):
            seed = _epoch_seed(options.seed, epoch)
            torch.manual_seed(seed)
            batches = training_batches(np.random.default_rng(seed).permutation(n), options.batch_size)
            model.train()
            for inputs, index in torch.utils.data.DataLoader(data.train, batch_sampler=batches):
                logits = model(inputs)
                recorder.update(index, logits, given[index])
                loss = F.cross_entropy(logits, given[index])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            last = epoch == options.epochs - 1
            recorder.evaluate(model, torch.utils.data.DataLoader(data.train, batch_size=512), features=last)
            recorder.end_epoch({"learning_rate": options.lr})

    ours, theirs = dynamics(tmp_path / "loop.h5"), dynamics(tmp_path / "train.h5")
    assert ours.keys() == theirs.keys() == {"train_loss", "train_margin", "train_step", "eval_loss", "eval_prob",
                                            "eval_margin", "eval_pred"}
    for name in ours:
        assert np.array_equal(ours[name], theirs[name]), name
    with h5py.File(tmp_path / "loop.h5") as a, h5py.File(tmp_path / "train.h5") as b:
        for name in ("probs/late_mean", "features/penultimate", "epochs/train_loss", "epochs/eval_true_accuracy"):
            assert np.array_equal(a[name][:], b[name][:]), name
    assert not Checkpoints(tmp_path / "loop.h5").folder.exists()

    result = cli.json("detect", tmp_path / "loop.h5", "-d", "loss")
    assert result["detectors"]["loss"]["metrics"]["map"] > 0.8


@pytest.mark.slow
def test_the_documented_loop_runs_resumes_after_sigkill_and_detects_noise(tmp_path, cli):
    """docs/own-training-loop.md's example, run as written: once whole, once killed with SIGKILL in
    the middle and run again; both files equal, and detect finds the flipped labels."""
    text = (ROOT / "docs" / "own-training-loop.md").read_text()
    script = tmp_path / "loop.py"
    script.write_text(re.search(r"```python\n(.*?)```", text, re.S).group(1))
    whole = subprocess.run([sys.executable, script, tmp_path / "whole.h5"], capture_output=True,
                           text=True, timeout=600)
    assert whole.returncode == 0, whole.stderr[-2000:]

    out = tmp_path / "killed.h5"
    checkpoints = Checkpoints(out)
    process = subprocess.Popen([sys.executable, script, out], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not checkpoints.shard(2).exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert checkpoints.exists() and not out.exists(), "the kill came too late to test a resume"
    resumed = subprocess.run([sys.executable, script, out], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = dynamics(tmp_path / "whole.h5"), dynamics(out)
    for name in a:
        assert np.array_equal(a[name], b[name]), name

    result = cli.json("detect", out)
    assert result["detectors"][result["primary"]]["metrics"]["map"] > 0.8
    assert 0.06 < result["estimate"]["rate"] < 0.14
    # The rest of the tool reads it; what only noisyctl's own training can do says so in one line.
    assert cli("report", out, "--html", tmp_path / "report.html").exit_code == 0
    line = cli.error("prune", out, "--auto", "-o", tmp_path / "p.h5", "--retrain", tmp_path / "pr.h5")
    assert "recorded by your own training loop" in line and not (tmp_path / "p.h5").exists()


@pytest.mark.slow
def test_a_users_ddp_loop_records_every_sample_once_per_epoch(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = tmp_path / "ddp.h5"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr",
               "127.0.0.1", "--master-port", str(port), ROOT / "tests" / "ddp_recorder_loop.py", out]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    with h5py.File(out) as h5:
        steps = h5["dynamics/train_step"][:]
        assert h5["samples/id"].shape == (1797,)
        assert np.isfinite(h5["dynamics/train_loss"][:]).all() and np.isfinite(h5["dynamics/eval_prob"][:]).all()
        assert '"processes": 2' in h5.attrs["training"].decode()
    per_rank = -(-1797 // 2)
    batches = -(-per_rank // 100)
    for e in range(steps.shape[1]):  # each step holds at most 2 ranks x 100 samples, and every sample is in one
        counts = np.bincount(steps[:, e] - e * batches, minlength=batches)
        assert len(counts) == batches and counts.max() <= 200 and counts.sum() == 1797


def small(tmp_path, n=6, classes=3, **options):
    labels = np.arange(n) % classes
    return Recorder(tmp_path / "r.h5", labels, **options), labels


def logits_for(labels, classes=3):
    return torch.nn.functional.one_hot(torch.as_tensor(labels), classes).float() * 2.0


@pytest.mark.parametrize("misuse, message", [
    (lambda r, y: r.update([0, 6], logits_for([0, 0])), "index 6 is out of range for 6 samples"),
    (lambda r, y: r.update([0, 1], torch.zeros(2, 4)), r"logits of shape \(2, 4\); expected \[batch, 3\]"),
    (lambda r, y: r.update([0, 1, 2], logits_for([0, 1]), None), "3 indices for 2 rows"),
    (lambda r, y: r.update([0.0, 1.0], logits_for([0, 1])), "indices must be integers"),
    (lambda r, y: r.update([0, 1], logits_for([0, 1]), sample_weight=torch.ones(2)),
     "'sample_weight' is not one of the channels"),
    (lambda r, y: r.end_epoch({"val_loss": 1.0}), "'val_loss' is not a per-epoch figure"),
])
def test_misuse_is_one_clear_error_at_once(tmp_path, misuse, message):
    recorder, labels = small(tmp_path)
    with pytest.raises(NoisyctlError, match=message), recorder:
        misuse(recorder, labels)
    assert not Checkpoints(tmp_path / "r.h5").folder.exists()


@pytest.mark.parametrize("epoch, message", [
    (lambda r, y: r.update(np.arange(5), logits_for(y[:5])), "1 of 6 samples were not presented .first: '5'."),
    (lambda r, y: [r.update([i], logits_for(y[[i]])) for i in [0, 1, 2, 3, 4, 5, 3]],
     "1 samples were presented more than once"),
    (lambda r, y: r.update(np.arange(6), logits_for(y), torch.as_tensor((y + 1) % 3)),
     "6 targets differ from the labels the Recorder was given"),
    (lambda r, y: r.update(np.arange(6), logits_for(y), torch.as_tensor([0, 1, 2, 0, 1, 7])),
     "1 targets were outside the classes 0..2"),
    (lambda r, y: r.update(np.arange(6), logits_for(y) * float("nan")), "the loss of 6 samples was NaN"),
    # a model ending in softmax; an eval loader of (inputs, labels), whose labels read as the indices
    (lambda r, y: r.update(np.arange(6), logits_for(y).softmax(1)), "every row of logits was a probability"),
    (lambda r, y: (r.update(np.arange(6), logits_for(y)), r.record_eval(torch.as_tensor(y), logits_for(y))),
     "3 of 6 samples were not presented to the eval pass .first: '3'.; .* ending with their dataset indices"),
])
def test_misuse_found_at_the_end_of_the_epoch_seals_nothing(tmp_path, epoch, message):
    recorder, labels = small(tmp_path)
    with pytest.raises(NoisyctlError, match=message):
        with recorder:
            epoch(recorder, labels)
            recorder.end_epoch()
    assert recorder.epochs_done == 0 and not (tmp_path / "r.h5").exists()
    assert not Checkpoints(tmp_path / "r.h5").folder.exists()


def test_bad_labels_are_refused_when_the_recorder_is_made(tmp_path):
    with pytest.raises(NoisyctlError, match="label 3 is outside the 3 classes"):
        Recorder(tmp_path / "r.h5", [0, 1, 3], class_names=["a", "b", "c"])
    with pytest.raises(NoisyctlError, match="1-D array of integer class indices"):
        Recorder(tmp_path / "r.h5", [0.5, 1.0])
    with pytest.raises(NoisyctlError, match=r"as names, np.unique\(labels, return_inverse=True\) gives the class_names"):
        Recorder(tmp_path / "r.h5", ["cat", "dog"])
    with pytest.raises(NoisyctlError, match="2 ids for 3 labels"):
        Recorder(tmp_path / "r.h5", [0, 1, 1], ids=["a", "b"])


def test_partial_epochs_record_nan_and_device_indices_are_checked_at_the_end(tmp_path):
    recorder, labels = small(tmp_path, allow_partial=True, epochs=2)
    with recorder:
        recorder.update(torch.arange(4), logits_for(labels[:4]))
        figures = recorder.end_epoch()
        recorder.update(torch.arange(6), logits_for(labels))
        recorder.end_epoch()
    assert figures["train_accuracy"] == 1.0
    loss = dynamics(tmp_path / "r.h5")["train_loss"]
    assert np.isnan(loss[4:, 0]).all() and np.isfinite(loss[:4, 0]).all() and np.isfinite(loss[:, 1]).all()
    with h5py.File(tmp_path / "r.h5") as h5:
        assert h5["dynamics/train_step"][4, 0] == -1 and "eval_prob" not in h5["dynamics"]
        # a user's own loop records the versions that trained it too
        assert f'"torch": "{torch.__version__}"' in h5.attrs["training"].decode()


def test_a_sampler_that_draws_with_replacement_records_the_mean_of_a_samples_repeats(tmp_path):
    """WeightedRandomSampler(replacement=True) presents some samples twice in an epoch and others
    not at all: refused by default (a missing end_epoch looks the same), averaged with allow_partial."""
    at_chance = torch.zeros(1, 3)
    recorder, labels = small(tmp_path)
    with pytest.raises(NoisyctlError, match="Recorder.allow_partial=True. to average the repeats"), recorder:
        recorder.update([0, 1, 1, 2, 3, 4, 5], torch.cat((logits_for(labels[:2]), at_chance, logits_for(labels[2:]))))
        recorder.end_epoch()
    recorder, labels = small(tmp_path, allow_partial=True, epochs=1)
    sure = logits_for(labels)
    with recorder:
        # sample 1 twice, once sure and once at chance (in one batch, then again in the next); 5 never
        recorder.update([0, 1, 1], torch.cat((sure[:2], at_chance)))
        recorder.update([1, 2, 3, 4], sure[[1, 2, 3, 4]])
        recorder.end_epoch()
    loss = dynamics(tmp_path / "r.h5")["train_loss"][:, 0]
    sure_loss = float(F.cross_entropy(sure[:1], torch.as_tensor(labels[:1])))
    assert loss[1] == pytest.approx((2 * sure_loss + np.log(3)) / 3, rel=1e-5)
    assert loss[0] == pytest.approx(sure_loss, rel=1e-5) and np.isnan(loss[5])


def test_a_dataset_root_given_relative_is_recorded_absolute(tmp_path, monkeypatch):
    (tmp_path / "data.csv").write_text("text,label\n")
    monkeypatch.chdir(tmp_path)
    recorder, labels = small(tmp_path, epochs=1, dataset={"name": "text", "root": "data.csv"})
    with recorder:
        recorder.update(torch.arange(6), logits_for(labels))
        recorder.end_epoch()
    with h5py.File(tmp_path / "r.h5") as h5:
        assert json.loads(h5.attrs["dataset"]) == {"name": "text", "root": str(tmp_path / "data.csv"), "options": {}}


def test_a_loop_whose_ids_are_files_under_its_dataset_root_gets_a_review_page_with_their_images(tmp_path, cli):
    """A loop of its own over image files: ids that are the files' paths under the dataset root the
    Recorder is given are enough for the review page to show each image."""
    from PIL import Image

    rng = np.random.default_rng(0)
    ids = [f"photos/{k:02d}.png" for k in range(30)]
    (tmp_path / "photos").mkdir()
    for sample_id in ids:
        Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).save(tmp_path / sample_id)
    labels = np.arange(30) % 3
    wrong = labels.copy()
    wrong[:3] = (labels[:3] + 1) % 3  # three labels the model never believes
    with Recorder(tmp_path / "r.h5", wrong, ids=ids, class_names=["a", "b", "c"], epochs=4,
                  dataset={"name": "my photos", "root": str(tmp_path)}) as recorder:
        for _ in range(4):
            recorder.update(torch.arange(30), logits_for(labels))
            recorder.record_eval(torch.arange(30), logits_for(labels))
            recorder.end_epoch()
    cli("detect", tmp_path / "r.h5", "-d", "loss")
    result = cli.json("correct", tmp_path / "r.h5", "--top", "3", "--export", tmp_path / "review.html")
    assert result["exported"]["rows"] == 3 and result["exported"]["notes"] == []
    text = (tmp_path / "review.html").read_text()
    data = json.loads(text[text.index(">", text.index('<script id="review-data"')) + 1:text.index("</script>")])
    assert sorted(s["id"] for s in data["samples"]) == ids[:3]
    assert all(s["picture"].startswith("data:image/png;base64,") for s in data["samples"])
    # files that moved away: no images, and the page says why, as the command does
    (tmp_path / "photos").rename(tmp_path / "elsewhere")
    moved = cli.json("correct", tmp_path / "r.h5", "--top", "3", "--export", tmp_path / "moved.html")
    notes = moved["exported"]["notes"]
    text = (tmp_path / "moved.html").read_text()
    data = json.loads(text[text.index(">", text.index('<script id="review-data"')) + 1:text.index("</script>")])
    assert len(notes) == 1 and notes[0].startswith("no images on the review page: the run was recorded by your own")
    assert data["notes"] == notes and all(s["picture"] is None for s in data["samples"])
    tasks = cli.json("correct", tmp_path / "r.h5", "--top", "3", "--export", tmp_path / "moved.json")["exported"]
    assert tasks["notes"] == [notes[0].replace("on the review page", "in the Label Studio tasks")]


def test_what_a_loop_left_unrecorded_is_named_with_the_recorder_call_that_records_it(tmp_path, cli):
    recorder, labels = small(tmp_path, epochs=2)
    with recorder:
        for _ in range(2):
            recorder.update(torch.arange(6), logits_for(labels))
            recorder.end_epoch()
    cli("detect", tmp_path / "r.h5", "-d", "loss")
    line = cli.error("correct", tmp_path / "r.h5")
    assert "lacks (a loop records them with recorder.record_eval(indices, logits)" in line and "--no-record" not in line
    assert "recorder.evaluate(model, loader, features=True)" in cli.error("correct", tmp_path / "r.h5", "-c", "knn")


def test_texts_a_loop_passes_are_kept_to_their_first_thousand_bytes(tmp_path):
    texts = ["é" * 700, "pl\x00ain", None, "x" * 999 + "€", float("nan"), "six"]  # 1,400 and 1,002 bytes
    with pytest.raises(NoisyctlError, match="5 texts for 6 labels"):
        small(tmp_path, texts=texts[:5])
    recorder, labels = small(tmp_path, epochs=1, texts=texts)
    with recorder:
        recorder.update(torch.arange(6), logits_for(labels))
        recorder.end_epoch()
    with noisyctl.store.RunFile(tmp_path / "r.h5") as run:
        kept = run.texts(["5", "0", "3", "1", "2", "4", "nobody"])
    assert kept == ["six", "é" * 500, "x" * 999, "plain", "", "", ""]  # cut at a character, never inside one


def test_a_recorder_resumes_and_refuses_other_labels(tmp_path):
    recorder, labels = small(tmp_path, epochs=3)
    recorder.update(np.arange(6), logits_for(labels))
    recorder.end_epoch(state={"weights": torch.ones(2)})
    recorder.__exit__(KeyboardInterrupt, None, None)  # the loop died after one epoch
    with pytest.raises(NoisyctlError, match=r"r.h5 does not exist yet: its recording is unfinished .*close\(\)"):
        noisyctl.detect(tmp_path / "r.h5")
    again = Recorder(tmp_path / "r.h5", labels, epochs=3)
    assert again.epochs_done == 1 and again.step == 1 and torch.equal(again.resumed_state["weights"], torch.ones(2))
    again.__exit__(KeyboardInterrupt, None, None)
    with pytest.raises(NoisyctlError, match="other options or labels"):
        Recorder(tmp_path / "r.h5", (labels + 1) % 3, epochs=3)
    with pytest.raises(NoisyctlError, match=r"holds an interrupted run \(1/3 epochs\)"):
        Recorder(tmp_path / "r.h5", labels, epochs=3, resume=False)
    fresh = Recorder(tmp_path / "r.h5", labels, epochs=3, restart=True)
    assert fresh.epochs_done == 0 and fresh.resumed_state is None
    fresh.__exit__(KeyboardInterrupt, None, None)
    with pytest.raises(NoisyctlError, match="nothing to resume"):
        Recorder(tmp_path / "r.h5", labels, resume=True)
    with Recorder(tmp_path / "r.h5", labels, epochs=1, restart=True) as finished:
        finished.update(np.arange(6), logits_for(labels))
        finished.end_epoch()
    with pytest.raises(NoisyctlError, match="r.h5 finished training and keeps no checkpoints; train without --resume"):
        Recorder(tmp_path / "r.h5", labels, resume=True)


def digits_epochs(recorder, model, optimizer, epochs, inputs, labels):
    """Train an MLP over digits for the given epochs, recording: each epoch's shuffle from its number."""
    for epoch in epochs:
        torch.manual_seed(epoch)
        for index in torch.randperm(len(labels)).split(128):
            logits = model(inputs[index])
            recorder.update(index, logits, labels[index])
            optimizer.zero_grad()
            F.cross_entropy(logits, labels[index]).backward()
            optimizer.step()
        recorder.end_epoch()


def test_a_loop_resumed_from_its_own_older_checkpoint_records_what_an_unbroken_loop_records(tmp_path):
    import copy

    from sklearn.datasets import load_digits

    digits = load_digits()
    inputs = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    labels = torch.as_tensor(digits.target.copy())
    labels[::10] = (labels[::10] + 3) % 10

    def fresh():
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
        return model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    model, optimizer = fresh()
    with Recorder(tmp_path / "unbroken.h5", labels, epochs=4) as recorder:
        digits_epochs(recorder, model, optimizer, range(4), inputs, labels)
    # The loop keeps its own checkpoint after epoch 2; the recording had sealed epoch 3 when it died.
    model, optimizer = fresh()
    recorder = Recorder(tmp_path / "broken.h5", labels, epochs=4)
    digits_epochs(recorder, model, optimizer, range(2), inputs, labels)
    saved = copy.deepcopy((model.state_dict(), optimizer.state_dict()))
    digits_epochs(recorder, model, optimizer, [2], inputs, labels)
    recorder.abandon()
    again = Recorder(tmp_path / "broken.h5", labels, epochs=4)
    assert again.epochs_done == 3
    with pytest.raises(NoisyctlError, match="resumes after epoch 4, but .* holds 3 sealed epochs"):
        again.resume_from(4)
    with pytest.warns(UserWarning, match="the 1 epochs recorded after it in .*broken.h5.ckpt are discarded"):
        again.resume_from(2)
    assert again.epochs_done == 2 and not Checkpoints(tmp_path / "broken.h5").shard(2).exists()
    model.load_state_dict(saved[0])
    optimizer.load_state_dict(saved[1])
    with again:
        digits_epochs(again, model, optimizer, [2, 3], inputs, labels)
    unbroken, resumed = dynamics(tmp_path / "unbroken.h5"), dynamics(tmp_path / "broken.h5")
    for name in ("train_loss", "train_margin", "train_step"):
        assert resumed[name].shape == (1797, 4) and np.array_equal(resumed[name], unbroken[name]), name


def test_an_epoch_sealed_as_partial_records_nan_for_what_it_left_out_and_no_other_does(tmp_path):
    recorder, labels = small(tmp_path, epochs=3)
    recorder.update(np.arange(6), logits_for(labels))
    recorder.end_epoch()
    recorder.abandon()
    again, _ = small(tmp_path, epochs=3)
    again.resume_from(1)  # the checkpoint came two samples into epoch 2
    again.update(np.arange(2, 6), logits_for(labels[2:]))
    again.end_epoch(partial=True)
    again.update(np.arange(4), logits_for(labels[:4]))
    with pytest.raises(NoisyctlError, match="2 of 6 samples were not presented"), again:
        again.end_epoch()
    with np.load(Checkpoints(tmp_path / "r.h5").shard(1)) as shard:
        assert np.isnan(shard["train_loss"][:2]).all() and np.isfinite(shard["train_loss"][2:]).all()
    with pytest.raises(NoisyctlError, match="before the resumed epoch's first batch"):
        with small(tmp_path, epochs=3)[0] as third:
            third.update(np.arange(6), logits_for(labels))
            third.resume_from(2)


def test_the_package_exports_the_recorder_without_importing_torch_first():
    done = subprocess.run([sys.executable, "-c", "import sys, noisyctl; assert 'torch' not in sys.modules; "
                                                 "print(noisyctl.Recorder.__name__)"],
                          capture_output=True, text=True)
    assert done.stdout.strip() == "Recorder", done.stderr
    assert noisyctl.Recorder is Recorder


def test_a_users_loop_hands_out_of_fold_probabilities_to_the_count(tmp_path, cli):
    """A small table (scikit-learn's iris, 5% of its labels flipped) trained in a plain loop, with
    held-out probabilities from scikit-learn's own cross-validation: the run holds them as `train
    --folds` does, and the estimate takes the smaller of their count and the losses'. A wrong array
    is one clear error that writes nothing, and the Recorder can still be closed with the right one."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    from noisyctl.estimate import estimate_noise_rate, held_out_noise_rate, read_run_evidence
    from noisyctl.store import RunFile

    iris = load_iris()
    x = ((iris.data - iris.data.mean(0)) / iris.data.std(0)).astype(np.float32)
    labels = iris.target.copy()
    flipped = np.random.default_rng(2).choice(len(labels), 8, replace=False)
    labels[flipped] = (labels[flipped] + 1) % 3
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    inputs, targets = torch.from_numpy(x), torch.from_numpy(labels)
    recorder = Recorder(tmp_path / "run.h5", labels, class_names=list(iris.target_names), true_labels=iris.target,
                        epochs=30)
    for epoch in range(30):
        for batch in torch.randperm(len(labels), generator=torch.Generator().manual_seed(epoch)).split(64):
            logits = model(inputs[batch])
            recorder.update(batch, logits, targets[batch])
            optimizer.zero_grad()
            F.cross_entropy(logits, targets[batch]).backward()
            optimizer.step()
        with torch.no_grad():
            recorder.record_eval(torch.arange(len(labels)), model(inputs))
        recorder.end_epoch()
    held_out = cross_val_predict(LogisticRegression(max_iter=1000), x, labels, method="predict_proba",
                                 cv=StratifiedKFold(3, shuffle=True, random_state=0))
    with pytest.raises(NoisyctlError, match=r"out_of_fold has shape \(150, 2\), not \[samples, classes\] \(150, 3\)"):
        recorder.close(out_of_fold=held_out[:, :2])
    with pytest.raises(NoisyctlError, match="must hold probabilities"):
        recorder.close(out_of_fold=np.log(held_out + 1e-9))
    assert not (tmp_path / "run.h5").exists()
    recorder.close(out_of_fold=held_out)
    with RunFile(tmp_path / "run.h5") as run:
        assert np.allclose(run.probabilities("out_of_fold"), held_out, atol=1e-3)
        evidence = read_run_evidence(run)
        losses = estimate_noise_rate(evidence.mean_loss, learned_steadily=evidence.learned_steadily,
                                     labels=run.given_labels).rate
    counted = held_out_noise_rate(labels, held_out.astype(np.float16).astype(np.float32)).rate
    estimate = cli.json("detect", tmp_path / "run.h5", "--no-save", "-d", "loss")["estimate"]
    assert estimate["rate"] == pytest.approx(min(losses, counted), abs=1e-6)
    assert counted < losses and estimate["method"].startswith("held-out")  # here the held-out count is the smaller


def test_only_training_batches_read_a_fine_tuned_models_first_sight(tmp_path, cli):
    """A model that already knows digits meets the user's samples: their first epoch's training
    batches are read before it trains on each, so a label it gives under 1% there is refused at first
    sight. The same run recorded through eval passes alone reads each sample after the model trained
    on it, and is not read so; such a run has no training channels (they held NaN alone, and detect
    failed on them) and is read from its eval-mode losses."""
    from sklearn.datasets import load_digits

    from noisyctl.estimate import read_run_evidence
    from noisyctl.estimate.evidence import _refused_loss
    from noisyctl.store import RunFile

    digits = load_digits()
    x = torch.from_numpy((digits.data / 16.0).astype(np.float32))
    known, own = np.arange(0, len(x), 2), np.arange(1, len(x), 2)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for _ in range(10):  # pretrained on the other half, clean
        for batch in torch.randperm(len(known), generator=torch.Generator().manual_seed(_)).split(64):
            rows = torch.from_numpy(known)[batch]
            F.cross_entropy(model(x[rows]), torch.from_numpy(digits.target[rows])).backward()
            optimizer.step()
            optimizer.zero_grad()
    labels = digits.target[own].copy()
    flipped = np.random.default_rng(3).choice(len(labels), 18, replace=False)
    labels[flipped] = (labels[flipped] + 1 + np.random.default_rng(4).integers(0, 9, 18)) % 10
    inputs, targets = x[torch.from_numpy(own)], torch.from_numpy(labels)
    trained = Recorder(tmp_path / "trained.h5", labels, true_labels=digits.target[own], epochs=3)
    # eval passes alone, as a run imported from another tool may hold them
    evaluated = Recorder(tmp_path / "evaluated.h5", labels, true_labels=digits.target[own], epochs=3,
                         allow_partial=True)
    first_losses = np.full(len(labels), np.nan)
    for epoch in range(3):
        for batch in torch.randperm(len(labels), generator=torch.Generator().manual_seed(epoch)).split(32):
            logits = model(inputs[batch])
            trained.update(batch, logits, targets[batch])
            loss = F.cross_entropy(logits, targets[batch], reduction="none")
            if epoch == 0:
                first_losses[batch.numpy()] = loss.detach().numpy()
            optimizer.zero_grad()
            loss.mean().backward()
            optimizer.step()
        with torch.no_grad():
            evaluated.record_eval(torch.arange(len(labels)), model(inputs))
        trained.end_epoch()
        evaluated.end_epoch()
    trained.close()
    evaluated.close()
    with RunFile(tmp_path / "trained.h5") as run:
        evidence = read_run_evidence(run)
        assert evidence.knew_at_start
        assert np.array_equal(evidence.refused_at_first_sight, first_losses > _refused_loss(10))
        assert evidence.refused_at_first_sight[flipped].mean() > 0.5
    with RunFile(tmp_path / "evaluated.h5") as run:
        assert not run.has_channel("train_loss") and run.has_channel("eval_loss")
        evidence = read_run_evidence(run)
        assert evidence.knew_at_start and evidence.refused_at_first_sight is None
        assert np.isfinite(evidence.mean_loss).all()
    assert cli.json("detect", tmp_path / "evaluated.h5", "--no-save")["estimate"]["detector"]


def test_a_loop_that_mixes_its_batches_is_read_from_its_eval_passes(tmp_path):
    """Mixup hands the Recorder logits of mixed inputs: a label the model fits sits under 50% in
    them whenever the partner's share was larger, and clean digits read 4.7-8.8% from such training
    losses. detect finds the mix (late presentations fitted in the eval pass, unfitted in the batch)
    and reads the eval-mode losses instead: clean as clean, 10% as 10%."""
    for rate in (0.0, 0.1):
        inputs, labels, true_labels, model, optimizer = digits_for_a_users_loop(rate)
        out = tmp_path / f"mixup-{rate}.h5"
        recorder = Recorder(out, labels, epochs=30, true_labels=true_labels)
        targets, mix = torch.as_tensor(labels), torch.distributions.Beta(0.2, 0.2)
        for epoch in range(30):
            torch.manual_seed(epoch)
            for index in torch.randperm(len(labels)).split(64):
                share, partner = float(mix.sample()), torch.randperm(len(index))
                logits = model(share * inputs[index] + (1 - share) * inputs[index][partner])
                recorder.update(index, logits, targets[index])  # the mixed logits, as a loop would hand them
                loss = share * F.cross_entropy(logits, targets[index]) + \
                    (1 - share) * F.cross_entropy(logits, targets[index][partner])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            recorder.evaluate(model, torch.utils.data.DataLoader(
                torch.utils.data.TensorDataset(inputs, torch.arange(len(labels))), batch_size=512))
            recorder.end_epoch()
        recorder.close()
        estimate = noisyctl.detect(out, save=False).estimate
        assert estimate["mixed_batches"] > 0.3 and "read from the eval passes" in estimate["words"]
        true_rate = (labels != true_labels).mean()
        if rate == 0:
            assert estimate["rate"] <= 0.01 and estimate["high"] < 0.03
        else:
            assert abs(estimate["rate"] - true_rate) <= 0.25 * true_rate
            assert estimate["low"] <= true_rate <= estimate["high"]
