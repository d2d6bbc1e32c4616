"""Several annotators' own labels, kept beside the labels training uses: read from a file, carried
through the labels and run files, and counted by `detect` (Dawid-Skene)."""

import csv

import h5py
import numpy as np
import pytest

from noisyctl.agreement import NOT_LABELED, Annotations
from noisyctl.detection import ANNOTATORS_METHOD
from noisyctl.errors import NoisyctlError
from noisyctl.estimate import annotators_noise_rate, dawid_skene
from noisyctl.store import read_labels

ERRORS = {"ann": 0.08, "ben": 0.14, "cy": 0.2}


def _annotators_like_people(cli, folder) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Three annotators of digits who confuse the classes as weak models do (each fitted on ten
    samples a class: synth -n instance -N annotator=10), and the true labels."""
    votes = {}
    for seed, (name, rate) in enumerate(ERRORS.items()):
        cli("synth", "-n", "instance", "-N", "annotator=10", "-r", rate, "--seed", seed, "-o", folder / f"{name}.h5")
        labels = read_labels(folder / f"{name}.h5")
        votes[name] = labels.given_labels
    return votes, labels.true_labels


def test_annotators_labels_are_kept_and_detect_counts_the_noise_they_share(cli, tmp_path):
    votes, truth = _annotators_like_people(cli, tmp_path)
    np.savez(tmp_path / "crowd.npz", clean_label=truth, **votes)
    cli("synth", "-n", "from-file", "-N", f"path={tmp_path / 'crowd.npz'}", "-N", "annotators=ann,ben,cy",
        "-o", tmp_path / "labels.h5")
    labels = read_labels(tmp_path / "labels.h5")
    assert labels.annotations.names == ["ann", "ben", "cy"]
    np.testing.assert_array_equal(labels.annotations.labels, np.stack(list(votes.values()), axis=1))
    np.testing.assert_array_equal(labels.given_labels, labels.annotations.majority())
    wrong = float(labels.is_noisy.mean())
    assert wrong > 0.03  # the majority keeps the errors they share

    cli("train", "-l", tmp_path / "labels.h5", "--folds", "3", "-q", "-o", tmp_path / "run.h5")
    with h5py.File(tmp_path / "run.h5") as h5:
        assert h5["annotators/label"].shape == (len(truth), 3)
    estimate = cli.json("detect", tmp_path / "run.h5")["estimate"]
    counted = estimate["annotators"]
    # a model trained on their majority learns what they confuse alike; their own labels show more of
    # it, and as the labels are their majority, the estimate (and the gate) reads them
    assert counted["held_out_prior"] and counted["rate"] <= wrong
    assert estimate["method"] == ANNOTATORS_METHOD and estimate["rate"] == counted["rate"]
    assert estimate["low"] >= counted["low"] and estimate["high"] >= counted["high"]
    accuracy = {p["annotator"]: p["accuracy"] for p in counted["annotators"]}
    for name, rate in ERRORS.items():
        assert abs(accuracy[name] - (1 - rate)) < 0.04, accuracy
    assert "annotators' own labels" in estimate["words"]

    # correct's default here reads the annotators' model: among as many flagged samples as are wrong,
    # it sets most of the labels right that the model's own suggestion does, and breaks far fewer
    k = str(int(round(wrong * len(truth))))
    theirs = cli.json("correct", tmp_path / "run.h5", "-k", k)
    models = cli.json("correct", tmp_path / "run.h5", "-k", k, "-c", "suggested")
    assert theirs["corrector"] == "annotators" and theirs["info"]["prior"] == "held-out probabilities"
    assert theirs["fixed"] >= 0.7 * models["fixed"] and theirs["broken"] * 2 <= models["broken"]  # 75/8, 94/33

    # a person reviewing the suspects sees what each annotator said, and how often each is right,
    # unless the sample was drawn at random
    cli("correct", tmp_path / "run.h5", "--export", tmp_path / "review.csv")
    with open(tmp_path / "review.csv", newline="") as handle:
        first = next(csv.DictReader(handle))
    index = labels.ids.index(first["id"])
    assert first["annotators"] == "; ".join(f"{name} ({accuracy[name]:.0%}): {votes[name][index]}" for name in ERRORS)
    # a team lead's table of whom to brief, and on what: least often right first
    cli("export", tmp_path / "run.h5", "--annotators", tmp_path / "annotators.csv")
    with open(tmp_path / "annotators.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [row["annotator"] for row in table] == ["cy", "ben", "ann"]  # 20%, 14%, 8% wrong
    assert all(row["labeled"] == str(len(truth)) and " -> " in row["mistakes_most"] for row in table)
    assert all(float(row["accuracy_low"]) <= float(row["accuracy"]) <= float(row["accuracy_high"])
               < float(row["accuracy_low"]) + 0.1 for row in table)  # 1,797 labels each: a few points wide
    # the report shows the same table, on the terminal and on its page
    reported = cli.json("report", tmp_path / "run.h5", "--html", tmp_path / "report.html")["annotators"]
    assert [row["annotator"] for row in reported["rows"]] == ["cy", "ben", "ann"]
    assert reported["rows"][0]["accuracy"] == pytest.approx(float(table[0]["accuracy"]), abs=1e-4)
    worst = reported["rows"][0]
    shown = f"{worst['accuracy']:.0%} ({worst['accuracy_low']:.0%}-{worst['accuracy_high']:.0%})"
    assert "│ cy " in (terminal := cli("report", tmp_path / "run.h5").stdout) and shown in terminal
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<h2>Annotators</h2>" in page and page.index(">cy<") < page.index(">ann<")
    cli("correct", tmp_path / "run.h5", "--export", tmp_path / "audit.html", "--audit", "5")
    page = (tmp_path / "audit.html").read_text(encoding="utf-8")
    assert f'"annotators": "{first["annotators"]}"' in page and page.count('"annotators": null') == 5


def test_without_annotators_detect_says_nothing_of_them(cli, digits_run):
    estimate = cli.json("detect", digits_run, "-d", "loss", "--no-save")["estimate"]
    assert estimate["annotators"] is None and "annotators' own labels" not in estimate["words"]


def test_dawid_skene_recovers_each_annotators_accuracy_from_their_votes_alone():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 4, 3000)
    accuracy = np.array([0.95, 0.8, 0.65, 0.5])
    votes = np.stack([np.where(rng.random(3000) < a, truth, (truth + rng.integers(1, 4, 3000)) % 4)
                      for a in accuracy], axis=1)
    votes[rng.random(votes.shape) < 0.3] = NOT_LABELED  # not everyone labels everything
    posterior, errors = dawid_skene(votes, 4)
    np.testing.assert_allclose(np.diagonal(errors, axis1=1, axis2=2).mean(axis=1), accuracy, atol=0.04)
    # one who calls 2 a 3 besides: the mistake they make most, as detect and export name it
    confused = np.where((truth == 2) & (rng.random(3000) < 0.5), 3, votes[:, 0])
    _, people, _ = annotators_noise_rate(Annotations(list("abcde"), np.column_stack([votes, confused])), truth, 4,
                                      draws=2)
    assert people[4]["confuses"] == [2, 3]
    majority = Annotations(list("abcd"), votes).majority()
    answered = majority != NOT_LABELED
    # weighing each annotator by their accuracy beats counting votes
    assert (posterior.argmax(axis=1) == truth).mean() > (majority[answered] == truth[answered]).mean() + 0.03


def test_annotators_in_a_csv_may_leave_samples_unlabeled(cli, tmp_path):
    cli("synth", "-n", "uniform", "-r", "0", "-o", tmp_path / "clean.h5")
    clean = read_labels(tmp_path / "clean.h5")
    with open(tmp_path / "crowd.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "label", "ann", "ben"])
        for i, (sample_id, label) in enumerate(zip(clean.ids, clean.given_labels)):
            writer.writerow([sample_id, label, label, "" if i % 3 == 0 else (label + i % 2) % 10])
    cli("synth", "-n", "from-file", "-N", f"path={tmp_path / 'crowd.csv'}", "-N", "annotators=ann,ben",
        "-N", "key=label", "-o", tmp_path / "labels.h5")
    kept = read_labels(tmp_path / "labels.h5")
    np.testing.assert_array_equal(kept.given_labels, clean.given_labels)  # key's column, not the majority
    assert (kept.annotations.labels[::3, 1] == NOT_LABELED).all()
    assert (kept.annotations.labels[:, 0] == clean.given_labels).all()


@pytest.mark.parametrize("option, message", [
    ("annotators=ann", "names two annotators' labels or more"),
    ("aggregate=dawid-skene", "aggregate= needs annotators=..."),
    ("annotators=ann,ann", "names two annotators' labels or more"),
    ("annotators=ann,zed", "has no 'zed'"),
    ("annotators=ann,few", "'few' holds 5 labels, not one for each of the 1,797 training samples"),
])
def test_annotators_named_wrong_are_refused_in_one_line(cli, tmp_path, option, message):
    np.savez(tmp_path / "crowd.npz", ann=np.zeros(1797, dtype=int), ben=np.ones(1797, dtype=int),
             few=np.zeros(5, dtype=int))
    assert message in cli.error("synth", "-n", "from-file", "-N", f"path={tmp_path / 'crowd.npz'}", "-N", option,
                                "-o", tmp_path / "labels.h5")


def test_annotations_are_checked_and_follow_a_subset(tmp_path):
    votes = np.array([[0, 1], [2, NOT_LABELED], [1, 1]])
    kept = Annotations(["a", "b"], votes).checked(3, 3, "test")
    assert kept.labels.dtype == np.int32
    np.testing.assert_array_equal(kept.subset(np.array([2, 0])).labels, [[1, 1], [0, 1]])
    for annotations, samples, classes, message in [
            (Annotations(["a"], votes), 3, 3, "expected 3 samples x 1 annotators"),
            (Annotations(["a", "a"], votes), 3, 3, "distinct"),
            (Annotations(["a", "b"], votes), 3, 2, "the classes are 0 to 1"),
            (Annotations(["a", "b"], votes.astype(float)), 3, 3, "class indices")]:
        with pytest.raises(NoisyctlError, match=message):
            annotations.checked(samples, classes, "test")


def test_a_file_with_annotators_labels_but_not_their_names_is_refused(cli, tmp_path):
    np.savez(tmp_path / "crowd.npz", ann=np.zeros(1797, dtype=int), ben=np.ones(1797, dtype=int))
    cli("synth", "-n", "from-file", "-N", f"path={tmp_path / 'crowd.npz'}", "-N", "annotators=ann,ben",
        "-o", tmp_path / "labels.h5")
    with h5py.File(tmp_path / "labels.h5", "a") as h5:
        del h5["annotators/name"]
    assert "without the other" in cli.error("train", "-l", tmp_path / "labels.h5", "-e", "1", "-o", tmp_path / "r.h5")


@pytest.mark.parametrize("labels", ["majority", "expert"])
def test_a_recorder_in_a_users_loop_keeps_the_annotators_labels(cli, tmp_path, labels):
    """Three annotators of 400 digits, each 15% wrong the same way; the given labels their majority
    (6% wrong), or an expert's (the truth) beside them."""
    import torch
    import torch.nn.functional as F

    from noisyctl.data import load_dataset
    from noisyctl.training import Recorder

    data = load_dataset({"name": "digits", "root": None, "options": {}})
    inputs = torch.stack([data.train[i][0].flatten() for i in range(400)])
    truth = data.train.labels[:400]
    rng = np.random.default_rng(0)
    votes = np.stack([np.where(rng.random(400) < 0.15, (truth + 1) % 10, truth) for _ in range(3)], axis=1)
    given = Annotations(["a", "b", "c"], votes).majority() if labels == "majority" else truth
    model = torch.nn.Linear(inputs.shape[1], 10)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    with Recorder(tmp_path / "run.h5", given, class_names=data.class_names, epochs=10, true_labels=truth,
                  annotations=Annotations(["a", "b", "c"], votes)) as recorder:
        for _ in range(10):
            for batch in torch.arange(400).split(50):
                logits = model(inputs[batch])
                recorder.update(batch, logits, torch.as_tensor(given[batch]))
                loss = F.cross_entropy(logits, torch.as_tensor(given[batch]))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            recorder.end_epoch()
    estimate = cli.json("detect", tmp_path / "run.h5", "-d", "loss", "--no-save")["estimate"]
    counted = estimate["annotators"]
    assert [p["annotator"] for p in counted["annotators"]] == ["a", "b", "c"] and not counted["held_out_prior"]
    assert all(abs(p["accuracy"] - 0.85) < 0.06 for p in counted["annotators"]), counted["annotators"]
    if labels == "majority":  # their count reads the very labels trained on: the estimate is at least it
        assert estimate["rate"] >= counted["rate"] > 0.01  # here the losses read more (6.6%, 6.3% wrong)
    else:  # it counts the crowd's errors beside an expert's labels, so it is no floor for them
        assert counted["rate"] > 0.02 and estimate["rate"] < counted["rate"]
        assert estimate["method"] != ANNOTATORS_METHOD


def test_a_label_studio_export_with_overlap_keeps_each_annotators_labels(cli, tmp_path):
    """synth and train on Label Studio's export keep its annotators' answers beside the majority."""
    import json

    def annotation(who, choice):
        return {"completed_by": who, "was_cancelled": False, "ground_truth": False, "result": [
            {"type": "choices", "from_name": "sentiment", "to_name": "text", "value": {"choices": [choice]}}]}

    tasks = [{"id": i, "data": {"text": f"ticket {i}: " + ("great" if i % 2 else "awful")},
              "annotations": [annotation(1, "Positive" if i % 2 else "Negative"),
                              annotation(2, "Positive" if i % 2 or i % 5 == 0 else "Negative")]}
             for i in range(40)]
    (tmp_path / "export.json").write_text(json.dumps(tasks), encoding="utf-8")
    cli("synth", "-d", "text", "--data-root", tmp_path / "export.json", "-r", "0", "-o", tmp_path / "labels.h5")
    kept = read_labels(tmp_path / "labels.h5").annotations
    assert kept.names == ["1", "2"] and kept.labels.shape == (40, 2)
    assert (kept.labels[:, 0] != kept.labels[:, 1]).sum() == 4  # the tickets 0, 10, 20, 30 they disagreed on


def test_a_label_studio_export_trains_on_its_annotators_dawid_skene_aggregate(cli, tmp_path):
    """-D aggregate=dawid-skene: a careful annotator outweighs two careless ones who outvote them,
    so the training labels hold fewer wrong ones than the vote; a dataset without annotators'
    labels, or another aggregate, is refused in one line."""
    import json

    classes = ["billing", "bug", "feature", "other"]
    rng = np.random.default_rng(3)
    truth = rng.integers(0, len(classes), 400)
    accuracy = {"careful": 0.95, "hasty": 0.55, "new": 0.55}

    def answer(who, label):
        said = label if rng.random() < accuracy[who] else (label + rng.integers(1, len(classes))) % len(classes)
        return {"completed_by": who, "was_cancelled": False, "ground_truth": False, "result": [
            {"type": "choices", "from_name": "topic", "to_name": "text", "value": {"choices": [classes[said]]}}]}

    tasks = [{"id": i, "data": {"text": f"ticket {i}"}, "annotations": [answer(who, label) for who in accuracy]}
             for i, label in enumerate(truth)]
    (tmp_path / "export.json").write_text(json.dumps(tasks), encoding="utf-8")
    made = {}
    for how in ("majority", "dawid-skene"):
        result = cli.json("synth", "-d", "text", "--data-root", tmp_path / "export.json", "-D", f"aggregate={how}",
                          "-r", "0", "-o", tmp_path / f"{how}.h5")
        made[how] = read_labels(tmp_path / f"{how}.h5")
        assert made[how].ids == [str(i) for i in range(len(truth))]
        assert made[how].class_names == sorted(classes)
    order = np.array([classes.index(name) for name in sorted(classes)])  # our class order -> the tasks'
    wrong = {how: float((order[labels.given_labels] != truth).mean()) for how, labels in made.items()}
    np.testing.assert_array_equal(made["majority"].given_labels, made["majority"].annotations.majority())
    assert wrong["dawid-skene"] < 0.6 * wrong["majority"], wrong
    assert any("differs from their vote on" in note for note in result["notes"])
    offered = cli.json("synth", "-d", "text", "--data-root", tmp_path / "export.json", "-r", "0", "-o",
                       tmp_path / "vote.h5")["notes"]
    assert any(note.startswith("-D aggregate=dawid-skene trains on") for note in offered)
    (tmp_path / "plain.csv").write_text("text,label\n" + "".join(f"t{i},{i % 2}\n" for i in range(20)))
    line = cli.error("synth", "-d", "text", "--data-root", tmp_path / "plain.csv", "-D", "aggregate=dawid-skene",
                     "-r", "0", "-o", tmp_path / "x.h5")
    assert "needs several annotators' own labels" in line
    line = cli.error("synth", "-d", "text", "--data-root", tmp_path / "export.json", "-D", "aggregate=mean",
                     "-r", "0", "-o", tmp_path / "x.h5")
    assert "choose majority or dawid-skene" in line


def test_the_annotators_corrector_on_a_run_without_them_is_refused_in_one_line(cli, digits_run, tmp_path):
    import shutil

    run = shutil.copy(digits_run, tmp_path / "run.h5")
    cli("detect", run, "-d", "loss")
    line = cli.error("correct", run, "-c", "annotators")
    assert "needs several annotators' own labels" in line and "-N annotators=KEYS" in line
    assert "keeps no annotators' own labels" in cli.error("export", run, "--annotators", tmp_path / "a.csv")
    assert cli.json("correct", run)["corrector"] == "suggested"  # the default without them
    assert "suggested proposals for" in cli("correct", run).stdout


def test_each_samples_majority_is_what_majority_gives_its_answers():
    """The vectorised majority of an annotators' table agrees with majority() on each row (of a tie,
    the latest annotator's among the tied classes; nobody: NOT_LABELED)."""
    from noisyctl.agreement import majority

    rng = np.random.default_rng(0)
    for _ in range(200):
        votes = rng.integers(NOT_LABELED, 4, (30, rng.integers(1, 6)))
        expected = [majority([int(v) for v in row if v != NOT_LABELED]) if (row != NOT_LABELED).any()
                    else NOT_LABELED for row in votes]
        annotations = Annotations([str(a) for a in range(votes.shape[1])], votes)
        assert annotations.majority().tolist() == expected
        assert annotations.voted_most(np.maximum(annotations.majority(), 0)).all()  # nobody: any label
    tied = Annotations(["a", "b", "c"], np.array([[1, 2, NOT_LABELED], [1, 1, 2]]))
    assert tied.voted_most(np.array([1, 1])).tolist() == [True, True]  # however the tie was broken
    assert tied.voted_most(np.array([2, 2])).tolist() == [True, False]


def _crowd_table(path, ids, truth, columns, delimiter=",", workers=40, per_sample=3, seed=0):
    """A crowd's labels of ``ids`` as crowdsourcing tools export them, one row a label in the three
    ``columns`` (sample id, worker, label): ``workers`` of accuracies 0.5-0.95, ``per_sample`` of them
    a sample."""
    rng = np.random.default_rng(seed)
    accuracy = np.linspace(0.5, 0.95, workers)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(["task", *columns])
        for sample_id, label in zip(ids, truth):
            for who in rng.choice(workers, per_sample, replace=False):
                said = label if rng.random() < accuracy[who] else (label + rng.integers(1, 10)) % 10
                writer.writerow([f"t-{sample_id}", sample_id, f"w{who:02d}", said])


def test_a_crowds_table_of_one_row_a_label_is_kept_as_each_annotators_labels(cli, tmp_path):
    """Toloka's TSV columns; an annotator's second label of a sample replaces the first, rows of
    samples outside the dataset are skipped."""
    cli("synth", "-n", "uniform", "-r", "0", "-o", tmp_path / "clean.h5")
    clean = read_labels(tmp_path / "clean.h5")
    columns = ["INPUT:id", "ASSIGNMENT:worker_id", "OUTPUT:result"]
    _crowd_table(tmp_path / "crowd.tsv", clean.ids, clean.given_labels, columns, delimiter="\t")
    with open(tmp_path / "crowd.tsv", newline="") as handle:
        first = next(csv.DictReader(handle, delimiter="\t"))  # sample 0's first label
    changed = (int(first["OUTPUT:result"]) + 1) % 10
    with open(tmp_path / "crowd.tsv", "a", newline="") as handle:
        handle.write(f"t\t{clean.ids[0]}\t{first['ASSIGNMENT:worker_id']}\t{changed}\n")  # a mind changed
        handle.write("t\tnot-in-the-dataset\tw01\t3\n")
    options = ["-N", "id=INPUT:id", "-N", "annotators=ASSIGNMENT:worker_id", "-N", "key=OUTPUT:result"]
    made = cli.json("synth", "-n", "from-file", "-N", f"path={tmp_path / 'crowd.tsv'}", *options,
                    "-o", tmp_path / "labels.h5")
    assert made["annotators"] == {"count": 40, "labels_per_sample": 3.0}
    kept = read_labels(tmp_path / "labels.h5")
    votes = kept.annotations.labels
    assert sorted(kept.annotations.names) == [f"w{who:02d}" for who in range(40)] and votes.shape == (1797, 40)
    assert ((votes != NOT_LABELED).sum(axis=1) == 3).all()
    assert votes[0, kept.annotations.names.index(first["ASSIGNMENT:worker_id"])] == changed
    np.testing.assert_array_equal(kept.given_labels, kept.annotations.majority())
    np.testing.assert_array_equal(kept.true_labels, clean.given_labels)
    assert 0.05 < kept.is_noisy.mean() < 0.3


def test_a_crowds_dawid_skene_aggregate_holds_fewer_wrong_labels_than_its_vote(cli, tmp_path):
    """-N aggregate=dawid-skene: the labels are the classes the annotators' model makes most
    probable, which weighs a careful annotator above a careless one; the estimate may read them as
    it reads a vote."""
    from types import SimpleNamespace

    from noisyctl.estimate.annotators import _labels_are_theirs

    cli("synth", "-n", "uniform", "-r", "0", "-o", tmp_path / "clean.h5")
    clean = read_labels(tmp_path / "clean.h5")
    _crowd_table(tmp_path / "crowd.csv", clean.ids, clean.given_labels, ["id", "worker", "label"])
    made = {}
    for aggregate in ("majority", "dawid-skene"):
        cli("synth", "-n", "from-file", "-N", f"path={tmp_path / 'crowd.csv'}", "-N", "annotators=worker",
            "-N", f"aggregate={aggregate}", "-o", tmp_path / f"{aggregate}.h5")
        made[aggregate] = read_labels(tmp_path / f"{aggregate}.h5")
    vote, model = made["majority"], made["dawid-skene"]
    np.testing.assert_array_equal(model.annotations.labels, vote.annotations.labels)
    np.testing.assert_array_equal(model.given_labels, dawid_skene(model.annotations.labels, 10)[0].argmax(axis=1))
    assert model.is_noisy.mean() < 0.85 * vote.is_noisy.mean()
    assert not model.annotations.voted_most(model.given_labels).all()  # one careful annotator outvotes two
    everyone = np.ones(len(clean.ids), dtype=bool)
    for labels in (vote, model):  # both are the annotators' own: their count is a floor of the estimate
        assert _labels_are_theirs(SimpleNamespace(given_labels=labels.given_labels, num_classes=10),
                                  labels.annotations, everyone)
    expert = SimpleNamespace(given_labels=clean.given_labels, num_classes=10)
    assert not _labels_are_theirs(expert, vote.annotations, everyone)
    assert "choose majority or dawid-skene" in cli.error("synth", "-n", "from-file", "-N",
                                                          f"path={tmp_path / 'crowd.csv'}", "-N", "annotators=worker",
                                                          "-N", "aggregate=mean", "-o", tmp_path / "mean.h5")


def test_a_crowd_too_large_to_keep_as_one_table_is_refused_in_one_line(cli, tmp_path, monkeypatch):
    """More sample x annotator cells than MAX_ANNOTATION_CELLS are refused before the table is made
    (here the limit is lowered: 1,797 samples of 40 annotators hold 71,880 cells)."""
    from noisyctl.builtin.noise import from_file

    cli("synth", "-n", "uniform", "-r", "0", "-o", tmp_path / "clean.h5")
    clean = read_labels(tmp_path / "clean.h5")
    _crowd_table(tmp_path / "crowd.csv", clean.ids, clean.given_labels, ["id", "worker", "label"])
    monkeypatch.setattr(from_file, "MAX_ANNOTATION_CELLS", 50_000)
    line = cli.error("synth", "-n", "from-file", "-N", f"path={tmp_path / 'crowd.csv'}", "-N", "annotators=worker",
                     "-o", tmp_path / "labels.h5")
    assert "holds 40 annotators' labels of 1,797 samples, more than noisyctl keeps as one table" in line


def test_annotations_from_a_table_of_one_row_a_label_keep_each_annotators_last_label():
    kept = Annotations.from_rows(3, np.array([2, 0, 2, 0, 2]), ["bo", "al", "al", "bo", "bo"],
                                 np.array([1, 0, 2, 1, 0]))
    assert kept.names == ["bo", "al"]  # as they first appear
    np.testing.assert_array_equal(kept.labels, [[1, 0], [NOT_LABELED, NOT_LABELED], [0, 2]])


def _erring_at_random(rng, truth: np.ndarray, right, classes: int) -> np.ndarray:
    """An annotator's labels of samples of class ``truth`` (N,): right with probability ``right``
    (a number, or one a sample), else any other class alike."""
    return np.where(rng.random(len(truth)) < right, truth, (truth + rng.integers(1, classes, len(truth))) % classes)


def test_dawid_skene_reads_a_crowd_who_each_label_a_few_samples():
    """Hundreds of annotators, three a sample: each one's accuracy from the few samples they labeled,
    not pulled toward chance, and their weighed vote right more often than the majority (it differs
    where all three disagree, or one far surer annotator outweighs two others)."""
    rng = np.random.default_rng(1)
    samples, workers, classes = 6000, 200, 5
    truth = rng.integers(0, classes, samples)
    accuracy = rng.uniform(0.4, 0.95, workers)
    votes = np.full((samples, workers), NOT_LABELED)
    for _ in range(3):
        who = rng.integers(0, workers, samples)
        votes[np.arange(samples), who] = _erring_at_random(rng, truth, accuracy[who], classes)
    posterior, errors = dawid_skene(votes, classes)
    labeled = (votes != NOT_LABELED).sum(axis=0)
    realized = np.array([(votes[votes[:, a] != NOT_LABELED, a] == truth[votes[:, a] != NOT_LABELED]).mean()
                         for a in range(workers)])
    estimated = np.diagonal(errors, axis1=1, axis2=2).mean(axis=1)
    assert labeled.min() > 50 and np.abs(estimated - realized).mean() < 0.04  # 0.032
    assert abs((estimated - realized).mean()) < 0.01  # smoothed toward chance: 0.04 less
    assert np.corrcoef(estimated, realized)[0, 1] > 0.9  # who is careless and who is careful
    majority = Annotations([str(a) for a in range(workers)], votes).majority()
    assert (posterior.argmax(axis=1) == truth).mean() > (majority == truth).mean() + 0.02  # 0.839, 0.812


def test_detect_names_the_least_often_right_of_a_crowd():
    from noisyctl.detection import ANNOTATORS_NAMED, annotators_words

    people = [{"annotator": f"w{a}", "accuracy": 0.9 - a / 100, "accuracy_interval": [0.85 - a / 100, 0.95 - a / 100],
               "labeled": 100 + a} for a in range(12)]
    # a newcomer's three labels, one right: least accurate as read, but nobody can be sure of it
    people.append({"annotator": "new", "accuracy": 0.5, "accuracy_interval": [0.1, 0.95], "labeled": 3})
    counted = {"rate": 0.1, "low": 0.08, "high": 0.12, "held_out_prior": False, "annotators": people}
    words = annotators_words(counted)
    assert "the 13 annotators' own labels" in words and "least often right, by their intervals' upper ends: w11 79% (74%-84%) of 111" in words
    assert all(f"w{a} " not in words for a in range(12 - ANNOTATORS_NAMED)) and "new" not in words
    few = annotators_words({**counted, "annotators": people[:3]})
    assert "each right about w0 90%, w1 89%, w2 88% of the time" in few


def test_each_annotators_accuracy_comes_with_an_interval_as_wide_as_their_labels_allow():
    """Of a crowd of 60 (accuracies 0.55-0.95), three a sample, and one who labeled 8 samples:
    the 90% intervals hold most workers' realized accuracy, and the one of 8 labels is far wider."""
    rng = np.random.default_rng(4)
    samples, workers, classes = 1500, 60, 5
    truth = rng.integers(0, classes, samples)
    accuracy = rng.uniform(0.55, 0.95, workers)
    votes = np.full((samples, workers + 1), NOT_LABELED)
    for i in range(samples):
        for who in rng.choice(workers, 3, replace=False):
            right = rng.random() < accuracy[who]
            votes[i, who] = truth[i] if right else (truth[i] + rng.integers(1, classes)) % classes
    votes[:8, workers] = truth[:8]  # a newcomer, right on all eight
    annotations = Annotations([f"w{a}" for a in range(workers + 1)], votes)
    _, people, _ = annotators_noise_rate(annotations, annotations.majority(), classes)
    realized = [(votes[votes[:, a] != NOT_LABELED, a] == truth[votes[:, a] != NOT_LABELED]).mean()
                for a in range(workers)]
    held = [low <= real <= high for real, (low, high) in zip(realized, (p["accuracy_interval"] for p in people))]
    assert np.mean(held) >= 0.8  # 0.95
    widths = [p["accuracy_interval"][1] - p["accuracy_interval"][0] for p in people]
    assert widths[-1] > 2 * np.median(widths[:-1])  # 8 labels against about 75


@pytest.mark.parametrize("rows, message", [
    ([["id", "worker", "answer"]], "needs the columns 'id', 'worker', 'label'"),
    ([["id", "worker", "label"], ["digits/0000", "a", "1"], ["digits/0000", "b", "1"]],
     "no annotator labeled 1,796 (first: digits/0001)"),
    ([["id", "worker", "label"]] + [[f"digits/{i:04d}", "a", "1"] for i in range(1797)],
     "no sample has two annotators' labels"),
    ([["id", "worker", "label"]] + [[f"digits/{i:04d}", who, "1"] for i in range(1797) for who in ("a", "")],
     "1,797 labels name no annotator in column 'worker'"),
])
def test_a_crowds_table_that_cannot_be_read_is_refused_in_one_line(cli, tmp_path, rows, message):
    with open(tmp_path / "crowd.csv", "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    assert message in cli.error("synth", "-n", "from-file", "-N", f"path={tmp_path / 'crowd.csv'}",
                                "-N", "annotators=worker", "-o", tmp_path / "labels.h5")


def test_a_crowd_who_err_at_random_is_counted_as_wrong_as_it_is():
    """200 workers (55-95% right, errors at random), three a sample, about 90 labels each: each
    worker's error rows, ten labels a row, scatter by chance, and fitted as they fall they made the
    posterior surer than it is (10.1% (9.3-10.8%) for 11.4% wrong). The rows' pull is now the one
    under which they are likeliest, and the count holds the truth."""
    rng = np.random.default_rng(0)
    samples, classes, workers = 6000, 10, 200
    truth = rng.integers(0, classes, samples)
    accuracy = rng.uniform(0.55, 0.95, workers)
    sample = np.repeat(np.arange(samples), 3)
    who = rng.integers(0, workers, len(sample))
    label = _erring_at_random(rng, truth[sample], accuracy[who], classes)
    crowd = Annotations.from_rows(samples, sample, [f"w{w}" for w in who], label)
    given = crowd.majority()
    wrong = float((given != truth).mean())  # 11.4%
    estimate, people, _ = annotators_noise_rate(crowd, given, classes)
    assert estimate.low <= wrong <= estimate.high and abs(estimate.rate - wrong) < 0.005  # 11.7% (11.2-12.4%)
    read = np.array([person["accuracy"] for person in people])
    assert np.abs(read - accuracy[[int(person["annotator"][1:]) for person in people]]).mean() < 0.05


@pytest.mark.parametrize("seed, few, wrong_read", [(5, 100, "11.4%: 4.4% (0.8-18.2%)"),
                                                   (3, 30, "31.6%: 10.5% (2.7-38.0%)")])
def test_a_few_third_labels_leave_the_count_as_unsure_as_they_are(seed, few, wrong_read):
    """Two annotators a sample and a third on a few of 1,800 (all erring at random): the third's
    labels say who is right only roughly. With 100 the best fit reads one of two equally careful
    annotators (88% right each) as 95% right, and the bootstrap alone read 4.4% (0.7-5.3%) for
    11.4%: the fits along each accuracy about as likely (a profile likelihood) keep the truth inside
    the count's and the accuracies' intervals. With 30, ten labels' worth of pull on each error-matrix
    row lets the best fit read one annotator near chance (49% right for 63%), and the profile under
    it read 10.5% (2.7-21.9%) for 31.6%; the profile under the likeliest pull (errors at random: a
    strong one) reaches the truth."""
    rng = np.random.default_rng(seed)
    samples, classes = 1800, 10
    accuracies = rng.uniform(0.6, 0.95, 3)
    truth = rng.integers(0, classes, samples)
    votes = np.stack([_erring_at_random(rng, truth, right, classes) for right in accuracies], axis=1)
    third = np.full(samples, NOT_LABELED)
    chosen = rng.choice(samples, few, replace=False)
    third[chosen] = votes[chosen, 2]
    votes[:, 2] = third
    annotations = Annotations(["ann", "ben", "cy"], votes)
    given = annotations.majority()
    estimate, people, unsettled = annotators_noise_rate(annotations, given, classes)
    wrong = float((given != truth).mean())
    assert unsettled < 0.01 and estimate.low <= wrong <= estimate.high < 0.5, wrong_read
    for person, labeled in zip(people, (votes != NOT_LABELED).T):
        realized = float((votes[labeled, people.index(person)] == truth[labeled]).mean())
        assert person["accuracy_interval"][0] <= realized <= person["accuracy_interval"][1]


def test_two_annotators_a_sample_leave_who_is_right_open_unless_models_weigh_them():
    """Two annotators a sample (90% and 70% right): where they disagree nothing in their labels says
    which is right (Dawid-Skene reads both 79%), so the count and the accuracies are ranges that hold
    the truth, with no clear evidence to raise the estimate; held-out models' probabilities settle it."""
    from noisyctl.detection import annotators_words

    rng = np.random.default_rng(0)
    samples, classes = 1800, 10
    truth = rng.integers(0, classes, samples)
    votes = np.stack([_erring_at_random(rng, truth, right, classes) for right in (0.9, 0.7)], axis=1)
    pair = Annotations(["ann", "ben"], votes)
    given = pair.majority()
    wrong = float((given != truth).mean())  # 30%
    estimate, people, unsettled = annotators_noise_rate(pair, given, classes)
    assert unsettled > 0.2 and estimate.low < 0.05 < wrong < estimate.high  # 1.0%-36.1%
    realized = (votes == truth[:, None]).mean(axis=0)
    assert all(p["accuracy_interval"][0] <= real <= p["accuracy_interval"][1] for p, real in zip(people, realized))
    counted = {"rate": estimate.rate, "low": estimate.low, "high": estimate.high, "held_out_prior": False,
               "unsettled": unsettled, "annotators": people}
    assert "nothing in their labels says which is right" in annotators_words(counted)
    # nor is it a floor of the estimate, which a third annotator's labels make it again
    from types import SimpleNamespace

    from noisyctl.estimate import run_annotators_floor

    def run_of(annotations):  # what the floor reads of a run
        return type("Run", (), {"labels": SimpleNamespace(annotations=annotations), "num_classes": classes,
                                "given_labels": annotations.majority()})()

    assert run_annotators_floor(run_of(pair)) is None
    from noisyctl.estimate import aggregate_labels

    with pytest.raises(NoisyctlError, match="needs three annotators' labels of some samples"):
        aggregate_labels(pair, "dawid-skene", classes, "from-file")  # the vote, tie to the later: 30% wrong
    third = _erring_at_random(rng, truth, 0.8, classes)
    trio = run_annotators_floor(run_of(Annotations(["ann", "ben", "cy"], np.column_stack([votes, third]))))
    assert trio is not None and trio.low > 0.02
    # a model that never trained on the samples, right 85% of the time, weighs them
    predicted = _erring_at_random(rng, truth, 0.85, classes)
    prior = np.full((samples, classes), 0.4 / (classes - 1))
    prior[np.arange(samples), predicted] = 0.6
    estimate, people, unsettled = annotators_noise_rate(pair, given, classes, prior)
    assert unsettled < 0.01 and estimate.low <= wrong <= estimate.high < wrong + 0.05
    assert all(abs(p["accuracy"] - real) < 0.04 for p, real in zip(people, realized))  # 0.93 and 0.69
