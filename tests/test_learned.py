"""Learned detectors: training on runs of synthesized noise, the weights format, the shipped defaults."""

import os

import numpy as np
import pytest
import torch

from noisyctl.builtin.detectors.learned import RUNNING_MARGIN, WEIGHTS_DIR, adapt_to_run
from noisyctl.builtin.detectors.learned.adaptation import most_agreeing_step
from noisyctl.builtin.detectors.learned.features import FEATURE_SETS
from noisyctl.builtin.detectors.learned.network import load_weights, network, predict, save_weights


def features(run, kind):
    return FEATURE_SETS[kind].compute(run)
from noisyctl.detection import run_detector
from noisyctl.store import RunFile


@pytest.fixture(scope="module")
def pairflip_run(tmp_path_factory):
    """A second real run, of other noise and length than digits_run: something to transfer to."""
    from conftest import Cli

    folder = tmp_path_factory.mktemp("pairflip_run")
    cli = Cli()
    cli("synth", "-n", "pairflip", "-r", "0.25", "--seed", "2", "-o", folder / "labels.h5")
    cli("train", "--labels", folder / "labels.h5", "--epochs", "9", "--seed", "2", "-q", "-o", folder / "run.h5")
    return folder / "run.h5"


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["learned", "lstm"])
def test_a_detector_trained_on_one_run_transfers_to_another(cli, digits_run, pairflip_run, tmp_path, kind):
    weights = tmp_path / f"{kind}.safetensors"
    trained = cli.json("train-detector", digits_run, "--kind", kind, "--epochs", "3", "-o", weights)
    assert trained["holdout"]["map"] > 0.8 and trained["samples"] == 1797
    result = cli.json("detect", pairflip_run, "-d", kind, "--detector-option", f"{kind}.weights={weights}",
                      "--no-save")
    metrics = result["detectors"][kind]["metrics"]
    assert metrics["auc"] > 0.85, metrics
    if kind == "learned":  # its rank features keep p > 0.5 meaningful across runs; raw probabilities may not
        assert abs(result["detectors"][kind]["flagged"] - result["noisy"]) < 0.5 * result["noisy"]
    network, meta = load_weights(weights)
    assert meta["kind"] == kind and meta["trained_on"][0]["noise"] == "uniform"


def test_fine_tuning_starts_from_given_weights(cli, digits_run, pairflip_run, tmp_path):
    base = tmp_path / "base.safetensors"
    cli("train-detector", digits_run, "--epochs", "1", "-o", base)
    tuned = cli.json("train-detector", pairflip_run, "--fine-tune", base, "--epochs", "1", "-o", tmp_path / "t.safetensors")
    _, meta = load_weights(tmp_path / "t.safetensors")
    assert meta["fine_tuned_from"] == str(base) and tuned["runs"][0]["noise"] == "pairflip"


@pytest.mark.slow
def test_members_are_trained_with_their_own_seeds_and_averaged(cli, digits_run, tmp_path):
    weights = tmp_path / "two.safetensors"
    trained = cli.json("train-detector", digits_run, "--members", "2", "--hidden", "16", "--epochs", "2",
                       "--crop", "0.5", "-o", weights)
    umask = os.umask(0)
    os.umask(umask)
    assert weights.stat().st_mode & 0o777 == 0o666 & ~umask  # shareable like any file, not left private
    members, meta = load_weights(weights)
    assert len(members) == 2 == trained["members"] and meta["hidden"] == 16 and len(meta["holdout"]["epoch"]) == 2
    assert meta["crop"] == 0.5 and trained["holdout"]["map"] > 0.8  # cropped training still learns digits' noise
    first, second = (dict(m.named_parameters())["head.weight"] for m in members)
    assert not torch.equal(first, second)
    with RunFile(digits_run) as run:
        inputs = features(run, "learned")
        scores = run_detector(run, "learned", {"weights": str(weights), "adapt": False}).result.scores
    each = [predict([m], inputs) for m in members]
    assert np.allclose(scores, (each[0] + each[1]) / 2)


def test_cropping_cuts_each_sequence_to_an_early_share_of_its_run(cli, digits_run, tmp_path):
    from noisyctl.builtin.detectors.learned.training import _crop

    torch.manual_seed(0)
    position = torch.linspace(0, 1, 32)  # a feature that says how far into its run a step lies
    cropped = _crop(position.repeat(500, 1)[..., None], 0.3)[..., 0]
    share = cropped[:, -1]
    assert share.min() >= 0.3 - 1e-6 and share.max() <= 1 and share.std() > 0.1
    assert torch.allclose(cropped, share[:, None] * position, atol=1e-5)  # still evenly spaced from the start
    assert "shortest share of a run" in cli.error("train-detector", digits_run, "--crop", "0", "-o", tmp_path / "d")
    assert "is given twice" in cli.error("train-detector", digits_run, digits_run, "-o", tmp_path / "d.safetensors")


def test_features_are_comparable_across_runs_of_any_length(digits_run, pairflip_run):
    with RunFile(digits_run) as a, RunFile(pairflip_run) as b:
        fa, fb = features(a, "learned"), features(b, "learned")
        assert fa.shape[1:] == fb.shape[1:] == (32, 18)  # 6 and 9 epochs both resampled to 32 steps
        assert 0 <= fa.min() and fa.max() <= 1 and 0 <= fb.min() and fb.max() <= 1
        assert features(a, "lstm").shape == (1797, 32, 1)


def test_weights_that_read_other_features_are_refused_in_one_line(cli, digits_run, tmp_path):
    older = FEATURE_SETS["learned"].names[:11]  # the features before the stretched rank tails
    save_weights(tmp_path / "old.safetensors", [network(len(older), 8)], {"kind": "learned", "features": older,
                                                                         "hidden": 8, "layers": 2})
    line = cli.error("detect", digits_run, "-d", "learned", "--detector-option",
                     f"learned.weights={tmp_path / 'old.safetensors'}")
    assert "reads other features than this noisyctl computes for a learned detector" in line


def test_weights_that_are_not_a_detector_are_refused(cli, digits_run, tmp_path):
    pickle_file = tmp_path / "model.safetensors"
    torch.save({"x": torch.zeros(1)}, pickle_file)  # a pickle under a safetensors name
    line = cli.error("detect", digits_run, "-d", "learned", "--detector-option", f"learned.weights={pickle_file}")
    assert "is not a safetensors file of detector weights" in line
    lstm_weights = WEIGHTS_DIR / "lstm.safetensors"
    line = cli.error("detect", digits_run, "-d", "learned", "--detector-option", f"learned.weights={lstm_weights}")
    assert "holds a 'lstm' detector, not 'learned'" in line


def test_training_needs_runs_with_known_truth(cli, tmp_path):
    cli("train", "--dataset", "digits", "--epochs", "1", "-q", "-o", tmp_path / "clean.h5")
    line = cli.error("train-detector", tmp_path / "clean.h5", "-o", tmp_path / "d.safetensors")
    assert "has no known truth" in line


@pytest.mark.parametrize("kind", ["learned", "lstm"])
def test_the_shipped_default_detectors_were_trained_without_digits_and_find_its_noise(digits_run, kind):
    _, meta = load_weights(WEIGHTS_DIR / f"{kind}.safetensors")
    datasets = {source["dataset"] for source in meta["trained_on"]}
    assert "digits" not in datasets and {"shapes", "blobs"} <= datasets
    with RunFile(digits_run) as run:
        outcome = run_detector(run, kind)
        assert outcome.metrics["auc"] > 0.9, outcome.metrics
        loss = run_detector(run, "loss").metrics
    if kind == "learned":
        assert outcome.metrics["map"] >= loss["map"] - 0.01, (outcome.metrics, loss)


def test_a_partial_epoch_costs_the_learned_ranking_only_that_epoch(digits_run, tmp_path):
    """An epoch that left a third of the samples out (a partial epoch, or one resumed mid-way) records
    NaN for them; read as such, a NaN stays in the running means and ranks as the highest loss."""
    from conftest import TRAINING_CHANNELS, run_with_gaps

    with RunFile(digits_run) as run:
        missing = np.zeros((run.num_samples, run.num_epochs), dtype=bool)
        missing[:, 2] = np.random.default_rng(0).random(run.num_samples) < 1 / 3
        whole = run_detector(run, "learned").metrics
    with RunFile(run_with_gaps(digits_run, tmp_path / "partial.h5", TRAINING_CHANNELS, missing)) as run:
        read = run_detector(run, "learned").metrics
    assert read["map"] > whole["map"] - 0.002 and read["precision_at_k"] > whole["precision_at_k"] - 0.01


def test_a_run_evaluated_every_few_epochs_is_scored_and_one_never_evaluated_is_refused(digits_run, tmp_path, cli):
    """A loop may run its eval pass every few epochs: the epochs between hold no eval record (NaN,
    -1 for the prediction), and before the first one nothing does."""
    from conftest import EVAL_CHANNELS, run_with_gaps

    with RunFile(digits_run) as run:
        every_third = np.zeros((run.num_samples, run.num_epochs), dtype=bool)
        every_third[:, [0, 1, 3, 4]] = True  # eval passes after epochs 3 and 6
        whole = run_detector(run, "learned").metrics
    with RunFile(run_with_gaps(digits_run, tmp_path / "every-third.h5", EVAL_CHANNELS, every_third)) as run:
        read = run_detector(run, "learned").metrics
    assert read["judged"] == 1797 and read["map"] > whole["map"] - 0.01, (read, whole)
    never = run_with_gaps(digits_run, tmp_path / "never.h5", EVAL_CHANNELS, np.ones_like(every_third))
    assert ("detector 'learned' from plugin 'detectors' (noisyctl" in cli.error("detect", never, "--no-save")
            and "judged none of the 1,797 samples of this run; pick another with -d" in cli.error("detect", never))


def test_adapting_to_the_run_reorders_the_networks_own_probabilities(cli, pairflip_run):
    members, _ = load_weights(WEIGHTS_DIR / "learned.safetensors")
    with RunFile(pairflip_run) as run:
        inputs = features(run, "learned")
        raw = predict(members, inputs)
        adapted = run_detector(run, "learned")
        plain = run_detector(run, "learned", {"adapt": False})
    assert (plain.result.scores == raw).all() and not plain.result.info["adapted_to_run"]
    scores = adapted.result.scores
    # the same values and the same decisions' count, in another order that ranks at least as well
    assert (np.sort(scores) == np.sort(raw)).all() and adapted.result.flagged.sum() == plain.result.flagged.sum()
    assert (np.argsort(scores) != np.argsort(raw)).any()
    assert adapted.metrics["map"] >= plain.metrics["map"] - 0.005, (adapted.metrics, plain.metrics)
    # the early AUM votes: the detector passes its column, and it moves the order
    column = FEATURE_SETS["learned"].names.index(RUNNING_MARGIN)
    assert (scores == adapt_to_run(inputs, raw, running_margin=column)).all()
    assert (np.argsort(adapt_to_run(inputs, raw)) != np.argsort(scores)).any()
    # its step is the one whose ranking agrees best with the decisions, whatever the others hold
    decided = raw > 0.5
    doctored = np.random.default_rng(0).random((len(raw), 12))
    doctored[:, 7] = decided + 0.5 * doctored[:, 7]
    assert most_agreeing_step(doctored, decided) == 7
    # lstm reads no margins: asked to adapt, it does so with the regression alone
    with RunFile(pairflip_run) as run:
        asked, paper = run_detector(run, "lstm", {"adapt": True}), run_detector(run, "lstm")
    assert asked.result.info["adapted_to_run"] and not paper.result.info["adapted_to_run"]
    assert (np.sort(asked.result.scores) == np.sort(paper.result.scores)).all()
    assert (np.argsort(asked.result.scores) != np.argsort(paper.result.scores)).any()
    # with too few samples on one side of 0.5 there is nothing to learn from, and nothing changes
    few = np.where(np.arange(len(raw)) < 3, 0.9, 0.1)
    assert (adapt_to_run(inputs, few) == few).all()
    judged = (raw <= 0.5) | (np.cumsum(raw > 0.5) <= 3)  # AUM threshold samples stay out of the fit
    assert (adapt_to_run(inputs, raw, judged=judged) == raw).all()
    unread = np.where(np.arange(len(raw)) == 0, np.nan, raw)  # a NaN would turn every rank into NaN
    assert np.array_equal(adapt_to_run(inputs, unread), unread, equal_nan=True)
    line = cli.error("detect", pairflip_run, "-d", "learned", "--detector-option", "learned.adapt=maybe", "--no-save")
    assert "adapt is true or false" in line
