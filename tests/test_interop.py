"""OTX loss-dynamics import and the cleanlab / suspects exports, round-tripped on real runs."""

import csv
import json
import warnings

import numpy as np
import pytest

from noisyctl.detection import run_detector
from noisyctl.store import RunFile


def write_otx_export(folder, run_path, shuffle_presentations=True):
    """A Datumaro-format export as OTX writes it: label annotations whose attributes hold the
    iterations and losses of each presentation (here: a real noisyctl run's)."""
    with RunFile(run_path) as run:
        loss, steps = run.channel("train_loss"), run.channel("train_step")
        ids, given, names = run.labels.ids, run.given_labels, run.labels.class_names
    rng = np.random.default_rng(0)
    items = []
    for i, sample_id in enumerate(ids):
        order = rng.permutation(loss.shape[1]) if shuffle_presentations else np.arange(loss.shape[1])
        items.append({"id": sample_id, "image": {"path": f"{sample_id}.png", "size": [8, 8]},
                      "annotations": [{"id": 0, "type": "label", "group": 0, "label_id": int(given[i]),
                                       "attributes": {"iters": steps[i, order].tolist(),
                                                      "loss_dynamics": loss[i, order].tolist()}}]})
    document = {"dm_format_version": "1.0", "info": {}, "media_type": 2,
                "categories": {"label": {"labels": [{"name": n, "parent": "", "attributes": []} for n in names],
                                         "attributes": []}},
                "items": items}
    (folder / "annotations").mkdir(parents=True)
    (folder / "annotations" / "train.json").write_text(json.dumps(document))
    return loss, steps


def test_an_otx_export_imports_to_the_same_dynamics_and_scores(cli, digits_run, tmp_path):
    loss, steps = write_otx_export(tmp_path / "otx", digits_run)
    result = cli.json("import-otx", tmp_path / "otx", "-o", tmp_path / "imported.h5")
    assert result["samples"] == 1797 and result["epochs"] == loss.shape[1] and result["presentations_padded"] == 0
    with RunFile(tmp_path / "imported.h5") as imported, RunFile(digits_run) as original:
        assert np.array_equal(imported.channel("train_loss"), loss)  # presentations put back in order
        assert np.array_equal(imported.channel("train_step"), steps)
        assert imported.labels.ids == original.labels.ids and imported.labels.class_names == original.labels.class_names
        for name in ("loss", "ema-loss", "gmm-loss"):
            assert np.allclose(run_detector(imported, name).result.scores, run_detector(original, name).result.scores)
    detected = cli.json("detect", tmp_path / "imported.h5", "-d", "ema-loss", "-k", "3")
    assert detected["top"][0]["id"].startswith("digits/")
    assert "needs the 'train_margin' dynamics" in cli.error("detect", tmp_path / "imported.h5", "-d", "aum")
    assert cli("report", tmp_path / "imported.h5").exit_code == 0


def test_samples_presented_fewer_times_keep_every_presentation_as_datumaro_does(cli, digits_run, tmp_path):
    """Datumaro's LossDynamicsAnalyzer keeps each sample's own series; so does the import (NaN-padded),
    and the EMA loss is each sample's own recursion: one sample lacking presentations changes nothing else."""
    write_otx_export(tmp_path / "otx", digits_run, shuffle_presentations=False)
    document = json.loads((tmp_path / "otx" / "annotations" / "train.json").read_text())
    short = document["items"][5]["annotations"][0]["attributes"]
    short["iters"], short["loss_dynamics"] = short["iters"][:2], short["loss_dynamics"][:2]
    (tmp_path / "otx" / "annotations" / "train.json").write_text(json.dumps(document))
    result = cli.json("import-otx", tmp_path / "otx", "-o", tmp_path / "imported.h5")
    with RunFile(tmp_path / "imported.h5") as imported, RunFile(digits_run) as original:
        epochs = original.num_epochs
        assert result["epochs"] == epochs and result["presentations_padded"] == epochs - 2
        loss = imported.channel("train_loss")
        assert np.isnan(loss[5, 2:]).all() and np.isfinite(np.delete(loss, 5, axis=0)).all()
        ema = run_detector(imported, "ema-loss").result.scores
        mean = run_detector(imported, "loss").result.scores
        whole = run_detector(original, "ema-loss").result.scores
    # Datumaro's recursion, sample by sample: ema = (1 - a) ema + a loss, from 0, over its own losses
    own = [item["annotations"][0]["attributes"]["loss_dynamics"] for item in document["items"][:10]]
    expected = []
    for series in own:
        value = 0.0
        for x in series:
            value = (1 - 0.001) * value + 0.001 * x
        expected.append(value)
    assert np.allclose(ema[:10], expected, rtol=1e-5)
    assert np.allclose(np.delete(ema, 5), np.delete(whole, 5))  # the other samples are untouched
    assert mean[5] == pytest.approx(np.mean(own[5]), rel=1e-5)


def test_otx_import_refuses_what_is_not_an_export(cli, tmp_path):
    assert "does not exist" in cli.error("import-otx", tmp_path / "nowhere", "-o", tmp_path / "x.h5")
    assert "holds no Datumaro annotations" in cli.error("import-otx", tmp_path, "-o", tmp_path / "x.h5")
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "train.json").write_text("{not json")
    assert "not a readable Datumaro annotation file" in cli.error("import-otx", tmp_path, "-o", tmp_path / "x.h5")
    (tmp_path / "annotations" / "train.json").write_text(json.dumps(
        {"categories": {"label": {"labels": [{"name": "a"}]}},
         "items": [{"id": "x", "annotations": [{"type": "label", "label_id": 4,
                                                 "attributes": {"iters": [1], "loss_dynamics": [0.5]}}]}]}))
    assert "has label 4, not one of 0..0" in cli.error("import-otx", tmp_path, "-o", tmp_path / "x.h5")
    for item, message in [
        ({"id": ["x"], "annotations": []}, "an item's id is ['x'], not a string"),
        ({"id": "x", "annotations": [{"type": "label", "label_id": 0,
                                      "attributes": {"iters": [1], "loss_dynamics": ["high"]}}]},
         "loss_dynamics and iters should be lists of numbers"),
        ({"id": "x", "annotations": [{"type": "bbox", "label_id": 0, "bbox": [0, 0, 4, 4],
                                      "attributes": {"iters": [1], "loss_dynamics": [0.5]}}]},
         "is an OTX export of bbox annotations (detection or segmentation); noisyctl reads classification"),
    ]:
        (tmp_path / "annotations" / "train.json").write_text(json.dumps(
            {"categories": {"label": {"labels": [{"name": "a"}]}}, "items": [item]}))
        assert message in cli.error("import-otx", tmp_path, "-o", tmp_path / "x.h5")
    assert not (tmp_path / "x.h5").exists()


def test_cleanlab_arrays_round_trip_into_cleanlab_itself(cli, tmp_path):
    from cleanlab.filter import find_label_issues

    cli("synth", "-n", "uniform", "-r", "0.2", "-o", tmp_path / "l.h5")
    cli("train", "-l", tmp_path / "l.h5", "-e", "3", "--folds", "3", "-q", "-o", tmp_path / "r.h5")
    cli("detect", tmp_path / "r.h5", "-d", "cleanlab", "-k", "0")
    result = cli.json("export", tmp_path / "r.h5", "--cleanlab", tmp_path / "cl.npz")
    assert result["cleanlab"]["pred_probs"] == "out_of_fold" and not result["cleanlab"]["in_sample"]
    arrays = np.load(tmp_path / "cl.npz")
    with RunFile(tmp_path / "r.h5") as run:
        assert np.array_equal(arrays["labels"], run.given_labels) and list(arrays["ids"]) == run.labels.ids
        flags = run.flags()["cleanlab"]
    issues = find_label_issues(arrays["labels"], arrays["pred_probs"])
    # cleanlab on the exported arrays flags what noisyctl's cleanlab detector flagged from the run.
    assert issues.sum() > 100 and (issues == flags).mean() > 0.99


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_suspects_export_as_csv_and_json(cli, digits_run, tmp_path, suffix):
    import shutil

    run = tmp_path / "run.h5"
    shutil.copy(digits_run, run)
    cli("detect", run, "-d", "loss", "-k", "0")
    cli("export", run, "--suspects", tmp_path / f"s{suffix}", "-k", "20")
    if suffix == ".json":
        rows = json.loads((tmp_path / "s.json").read_text())
    else:
        with open(tmp_path / "s.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
    with RunFile(run) as opened:
        scores = opened.scores()["loss"]
    assert len(rows) == 20 and [int(r["rank"]) for r in rows] == list(range(1, 21))
    assert float(rows[0]["score"]) == pytest.approx(scores.max(), rel=1e-6)
    # Without -k: every sample detect flags (by loss's ranking, as many as the estimate counts), at
    # least 100, each marked as prune --auto decides it.
    every = cli.json("export", run, "--suspects", tmp_path / f"every{suffix}")["suspects"]
    removed = cli.json("prune", run, "-d", "loss", "-o", tmp_path / "pruned.h5")["removed"]
    assert every["flagged"] == removed > 100 and every["rows"] == removed
    if suffix == ".csv":
        with open(tmp_path / "every.csv", newline="") as handle:
            assert all(row["flagged"] == "True" for row in csv.DictReader(handle))
    assert all(row["flagged"] in (True, "True") for row in rows[:10])
    assert "give a .csv or .json file" in cli.error("export", run, "--suspects", tmp_path / "s.txt")
    assert "say what to export" in cli.error("export", run)


@pytest.fixture(scope="module")
def foreign(tmp_path_factory):
    """One real training on digits (20% of labels flipped), recorded at once by noisyctl's Recorder
    and the way three other tools record: the aum package's AUMCalculator (its own code writes
    full_aum_records.csv), the "Learning from Training Dynamics" layout (eval-mode probabilities
    after each epoch, [N, E, C] float16, column 0 the assigned label's, the other classes by mean
    probability, in training_dynamics.npz beside a metadata.pth of tensors), and plain arrays."""
    from collections import OrderedDict

    import torch
    import torch.nn.functional as F
    from aum import AUMCalculator
    from sklearn.datasets import load_digits
    from torch.utils.data import DataLoader, TensorDataset

    from noisyctl import Recorder

    folder = tmp_path_factory.mktemp("foreign")
    digits = load_digits()
    inputs = torch.tensor(digits.images / 16.0, dtype=torch.float32).flatten(1)
    truth = digits.target
    rng = np.random.default_rng(0)
    labels = truth.copy()
    flip = rng.random(len(labels)) < 0.2
    labels[flip] = (labels[flip] + rng.integers(1, 10, flip.sum())) % 10
    dataset = TensorDataset(inputs, torch.as_tensor(labels), torch.arange(len(labels)))
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    epochs, n = 10, len(labels)
    calculator = AUMCalculator(str(folder), compressed=False)
    losses = np.zeros((n, epochs), np.float32)
    logits_per_epoch = np.zeros((n, epochs, 10), np.float32)
    probabilities = np.zeros((n, epochs, 10), np.float32)
    with Recorder(folder / "recorder.h5", labels, epochs=epochs, true_labels=truth) as recorder:
        for epoch in range(epochs):
            model.train()
            for x, y, index in DataLoader(dataset, batch_size=64, shuffle=True):
                logits = model(x)
                recorder.update(index, logits, y)
                calculator.update(logits.detach(), y, index.tolist())
                loss = F.cross_entropy(logits, y, reduction="none")
                losses[index.numpy(), epoch] = loss.detach().numpy()
                logits_per_epoch[index.numpy(), epoch] = logits.detach().numpy()
                optimizer.zero_grad()
                loss.mean().backward()
                optimizer.step()
            model.eval()
            with torch.no_grad():
                logits = model(inputs)
            recorder.record_eval(torch.arange(n), logits)
            probabilities[:, epoch] = torch.softmax(logits, 1).numpy()
            recorder.end_epoch()
    with warnings.catch_warnings():  # the aum package's own pandas call is deprecated in pandas 3
        warnings.simplefilter("ignore")
        calculator.finalize()
    # The Learning-from-Training-Dynamics layout
    td16 = probabilities.astype(np.float16)
    others = np.argsort(-td16.mean(axis=1), axis=1)
    order = np.array([[labels[i], *[c for c in others[i] if c != labels[i]]] for i in range(n)], dtype=np.int16)
    td = np.take_along_axis(td16, np.broadcast_to(order[:, None, :].astype(np.int64), td16.shape), axis=2)
    np.savez_compressed(folder / "training_dynamics.npz", labels=order, td=td)
    torch.save(OrderedDict(train_indices=torch.arange(n), valid_indices=torch.tensor([], dtype=torch.long),
                           true_targets=torch.as_tensor(truth), assigned_targets=torch.as_tensor(labels),
                           label_flipped=torch.as_tensor(truth != labels)), folder / "metadata.pth")
    np.savez(folder / "losses.npz", losses=losses, labels=labels, true_labels=truth)
    np.save(folder / "logits.npy", logits_per_epoch)
    np.save(folder / "labels.npy", labels)
    return folder


def test_a_training_dynamics_npz_imports_and_ranks_as_lstm_does_on_the_run(cli, foreign, tmp_path):
    result = cli.json("import-dynamics", foreign / "training_dynamics.npz", "-o", tmp_path / "jia.h5")
    assert result["imported_from"] == "jia" and (result["samples"], result["epochs"]) == (1797, 10)
    with RunFile(tmp_path / "jia.h5") as imported, RunFile(foreign / "recorder.h5") as recorded:
        assert np.array_equal(imported.given_labels, recorded.given_labels)
        assert np.array_equal(imported.labels.true_labels, recorded.labels.true_labels)  # from metadata.pth
        assert np.allclose(imported.channel("eval_prob"), recorded.channel("eval_prob"), atol=1e-3)
        assert (imported.channel("eval_pred") == recorded.channel("eval_pred")).mean() > 0.999
        ours, theirs = (run_detector(r, "lstm").result.scores for r in (imported, recorded))
    from scipy.stats import spearmanr

    assert spearmanr(ours, theirs).statistic > 0.999
    detected = cli.json("detect", tmp_path / "jia.h5", "--no-save")
    assert detected["primary"] == "lstm" and detected["detectors"]["lstm"]["metrics"]["map"] > 0.9
    assert detected["not_run"]["loss"].startswith("needs the 'train_loss' dynamics")
    assert abs(detected["estimate"]["rate"] - detected["estimate"]["true_rate"]) < 0.05
    assert detected["estimate"]["method"].endswith("eval-mode loss")


def test_an_aum_records_csv_imports_to_the_margins_the_run_recorded(cli, foreign, tmp_path):
    result = cli.json("import-dynamics", foreign / "full_aum_records.csv", "-o", tmp_path / "aum.h5")
    assert result["channels"] == ["train_margin", "train_step"] and result["epochs"] == 10
    with RunFile(tmp_path / "aum.h5") as imported, RunFile(foreign / "recorder.h5") as recorded:
        assert imported.labels.ids == recorded.labels.ids and np.array_equal(imported.given_labels,
                                                                             recorded.given_labels)
        assert np.allclose(imported.channel("train_margin"), recorded.channel("train_margin"), atol=1e-5)
        assert np.allclose(run_detector(imported, "aum").result.scores, run_detector(recorded, "aum").result.scores,
                           atol=1e-5)
    detected = cli.json("detect", tmp_path / "aum.h5")
    assert detected["primary"] == "aum" and set(detected["not_run"]) == {"learned", "loss", "ema-loss"}
    # No loss, no noise-rate estimate to count with, and AUM flags nothing without threshold samples
    line = cli.error("prune", tmp_path / "aum.h5", "--auto", "-o", tmp_path / "kept.h5")
    assert "makes no decision of its own and the run recorded no loss" in line


def test_plain_arrays_import_as_training_or_eval_dynamics(cli, foreign, tmp_path):
    cli("import-dynamics", foreign / "losses.npz", "-o", tmp_path / "losses.h5")
    with RunFile(tmp_path / "losses.h5") as imported, RunFile(foreign / "recorder.h5") as recorded:
        assert np.allclose(imported.channel("train_loss"), recorded.channel("train_loss"), atol=1e-5)
        assert imported.labels.true_labels is not None
    detected = cli.json("detect", tmp_path / "losses.h5", "--no-save")
    assert detected["detectors"]["loss"]["metrics"]["map"] > 0.9

    cli("import-dynamics", foreign / "logits.npy", "--labels", foreign / "labels.npy", "--recorded-in", "train",
        *[f"--class-name=digit {d}" for d in range(10)], "-o", tmp_path / "logits.h5")
    with RunFile(tmp_path / "logits.h5") as imported, RunFile(foreign / "recorder.h5") as recorded:
        assert np.allclose(imported.channel("train_loss"), recorded.channel("train_loss"), atol=1e-4)
        assert np.allclose(imported.channel("train_margin"), recorded.channel("train_margin"), atol=1e-4)
        assert imported.labels.class_names[3] == "digit 3" and imported.probabilities("late_mean") is not None
    cli("import-dynamics", foreign / "logits.npy", "--labels", foreign / "labels.npy", "--recorded-in", "eval",
        "-o", tmp_path / "eval.h5")
    with RunFile(tmp_path / "eval.h5") as imported:
        assert imported.has_channel("eval_prob") and not imported.has_channel("train_loss")


def test_import_dynamics_refuses_what_it_cannot_read(cli, foreign, tmp_path):
    out = ["-o", tmp_path / "x.h5"]
    np.savez(tmp_path / "bad_td.npz", td=np.zeros((4, 3), np.float16), labels=np.zeros((4, 3), np.int16))
    assert "are not [N, E, C] and [N, C]" in cli.error("import-dynamics", tmp_path / "bad_td.npz", *out)
    np.savez(tmp_path / "bad_order.npz", td=np.full((2, 3, 3), 0.3, np.float16), labels=np.zeros((2, 3), np.int16))
    assert "must list every class once" in cli.error("import-dynamics", tmp_path / "bad_order.npz", *out)
    assert "holds no labels" in cli.error("import-dynamics", foreign / "logits.npy", *out)
    (tmp_path / "records.csv").write_text("sample_id,margin\n0,1.0\n")
    assert "no 'num_measurements' column" in cli.error("import-dynamics", tmp_path / "records.csv", *out)
    (tmp_path / "labels.npy").write_bytes(b"not numpy")
    assert "not a readable .npy/.npz file" in cli.error("import-dynamics", foreign / "logits.npy", "--labels",
                                                        tmp_path / "labels.npy", *out)
    np.save(tmp_path / "short.npy", np.zeros(5, np.int64))
    assert "expected 1797 integer labels" in cli.error("import-dynamics", foreign / "logits.npy", "--labels",
                                                       tmp_path / "short.npy", *out)
    assert not (tmp_path / "x.h5").exists()
