"""OTX loss-dynamics import and the cleanlab / suspects exports, round-tripped on real runs."""

import csv
import json

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
    assert result["samples"] == 1797 and result["epochs"] == loss.shape[1] and result["presentations_dropped"] == 0
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


def test_otx_import_refuses_what_is_not_an_export(cli, tmp_path):
    assert "holds no Datumaro annotations" in cli.error("import-otx", tmp_path, "-o", tmp_path / "x.h5")
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "train.json").write_text("{not json")
    assert "not a readable Datumaro annotation file" in cli.error("import-otx", tmp_path, "-o", tmp_path / "x.h5")
    (tmp_path / "annotations" / "train.json").write_text(json.dumps(
        {"categories": {"label": {"labels": [{"name": "a"}]}},
         "items": [{"id": "x", "annotations": [{"type": "label", "label_id": 4,
                                                 "attributes": {"iters": [1], "loss_dynamics": [0.5]}}]}]}))
    assert "has label 4, not one of 0..0" in cli.error("import-otx", tmp_path, "-o", tmp_path / "x.h5")
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
    assert "give a .csv or .json file" in cli.error("export", run, "--suspects", tmp_path / "s.txt")
    assert "say what to export" in cli.error("export", run)
