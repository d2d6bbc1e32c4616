"""Training strategies on real digits runs: reweight (with a trusted set) and self-learning."""

import numpy as np
import pytest
import torch

from noisyctl.data import load_dataset
from noisyctl.detection import run_detector
from noisyctl.errors import NoisyctlError
from noisyctl.prototypes import class_prototypes, prototype_labels
from noisyctl.store import RunFile, read_labels
from noisyctl.synth import synthesize
from noisyctl.training import Trainer, TrainOptions, train
from conftest import interrupted_in_epoch

SPEC = {"name": "digits", "root": None, "options": {"test_fraction": 0.25}}


@pytest.fixture(scope="module")
def noisy():
    return synthesize(SPEC, "uniform", 0.5, seed=3, reviewed_per_class=10), load_dataset(SPEC)


@pytest.fixture(scope="module")
def trusted_file(noisy, tmp_path_factory):
    from noisyctl.store import write_labels_file

    path = tmp_path_factory.mktemp("trusted") / "labels.h5"
    write_labels_file(path, noisy[0])
    return path


def test_reviewed_samples_are_right_and_leave_the_rate_exact(noisy):
    labels, _ = noisy
    assert labels.is_noisy.sum() == round(0.5 * 1348)
    assert labels.reviewed.sum() == 100 and not labels.is_noisy[labels.reviewed].any()
    assert (np.bincount(labels.true_labels[labels.reviewed], minlength=10) == 10).all()


@pytest.mark.slow
def test_reweight_beats_standard_training_and_its_weights_detect_noise(noisy, trusted_file, tmp_path):
    labels, data = noisy
    # device auto: on a GPU machine these run on CUDA (its meta step, its autocast), elsewhere on CPU.
    plain = train(labels, data, TrainOptions(epochs=6), tmp_path / "plain.h5")
    options = TrainOptions(epochs=6, strategy="reweight", trusted=str(trusted_file))
    reweighted = train(labels, data, options, tmp_path / "rw.h5")
    assert reweighted["last_epoch"]["test_accuracy"] > plain["last_epoch"]["test_accuracy"] + 0.01
    with RunFile(tmp_path / "rw.h5") as run:
        weights = run.channel("sample_weight")
        assert weights.shape == (1348, 6) and np.isfinite(weights).all() and (weights >= 0).all()
        # Weights are normalised per batch: they average 1 over a batch, so about 1 over an epoch.
        assert np.allclose(weights.mean(axis=0), 1.0, atol=0.05)
        outcome = run_detector(run, "reweight")
        assert outcome.metrics["auc"] > 0.8
        assert run.training["strategy"] == "reweight"


def test_reweight_needs_a_trusted_set_of_known_samples(noisy, tmp_path):
    labels, data = noisy
    with pytest.raises(NoisyctlError, match="needs trusted samples: give --trusted FILE"):
        Trainer(labels, data, TrainOptions(epochs=1, strategy="reweight"))
    other = tmp_path / "other.h5"
    from noisyctl.store import write_labels_file

    write_labels_file(other, synthesize({"name": "shapes", "root": None, "options": {}}, "uniform", 0.1, seed=0))
    with pytest.raises(NoisyctlError, match="name other classes|is not in the dataset"):
        train(labels, data, TrainOptions(epochs=1, strategy="reweight", trusted=str(other)), tmp_path / "x.h5")


@pytest.mark.slow
def test_self_learning_corrects_labels_after_warm_up(noisy, tmp_path):
    labels, data = noisy
    # device auto, as above: on CUDA the prototypes are computed on the GPU.
    options = TrainOptions(epochs=10, strategy="self-learning", strategy_options={"start_epoch": 3})
    train(labels, data, options, tmp_path / "sl.h5")
    with RunFile(tmp_path / "sl.h5") as run:
        corrected = run.channel("corrected_label")
    assert (corrected[:, :3] == -1).all() and (corrected[:, 3:] >= 0).all()
    truth = labels.true_labels
    # The prototypes' labels are right far more often than the 50% noisy given labels.
    assert (corrected[:, -1] == truth).mean() > 0.9 > 0.5 == pytest.approx((labels.given_labels == truth).mean())


@pytest.mark.slow
def test_self_learning_does_not_confirm_systematic_flips(tmp_path):
    """Pair-flip noise: prototypes from the samples the training trusts set the flipped ones right;
    from all samples (the paper's), they confirm the flips the model learned."""
    labels = synthesize(SPEC, "pairflip", 0.3, seed=1)
    data = load_dataset(SPEC)
    right = {}
    for share in (1.0, 0.5):
        options = TrainOptions(epochs=10, device="cpu", strategy="self-learning",
                               strategy_options={"start_epoch": 3, "trusted_share": share})
        train(labels, data, options, tmp_path / f"sl{share}.h5")
        with RunFile(tmp_path / f"sl{share}.h5") as run:
            corrected = run.channel("corrected_label")[:, -1]
        flipped = labels.given_labels != labels.true_labels
        right[share] = (corrected[flipped] == labels.true_labels[flipped]).mean()
    assert right[0.5] > 0.8 and right[0.5] > right[1.0] + 0.1, right


def test_self_learning_skips_a_correction_that_would_change_most_labels(noisy, tmp_path):
    labels, data = noisy
    options = TrainOptions(epochs=3, device="cpu", strategy="self-learning",
                           strategy_options={"start_epoch": 1, "max_change": 0.05})
    train(labels, data, options, tmp_path / "guarded.h5")
    with RunFile(tmp_path / "guarded.h5") as run:  # 50% noise: every correction changes far more than 5%
        assert (run.channel("corrected_label") == -1).all()


def test_self_learning_with_soft_targets(noisy, tmp_path):
    labels, data = noisy
    options = TrainOptions(epochs=3, device="cpu", strategy="self-learning",
                           strategy_options={"start_epoch": 1, "soft": True, "alpha": 0.8})
    summary = train(labels, data, options, tmp_path / "soft.h5")
    with RunFile(tmp_path / "soft.h5") as run:
        corrected = run.channel("corrected_label")
        assert run.training["strategy_options"] == {"start_epoch": 1, "soft": True, "alpha": 0.8}
    assert (corrected[:, 0] == -1).all() and (corrected[:, 1] >= 0).all()
    # Each epoch either corrected every sample or (the guard) none.
    assert all((column >= 0).all() or (column == -1).all() for column in corrected.T)
    assert summary["last_epoch"]["test_accuracy"] > 0.5


def test_strategy_options_are_checked(cli, tmp_path):
    cli("synth", "-o", tmp_path / "l.h5")
    assert "strategy 'self-learning' takes no option 'nope'" in cli.error("train", "-l", tmp_path / "l.h5", "-o", tmp_path / "r.h5",
                                                         "--strategy", "self-learning", "-S", "nope=1")
    assert "alpha must lie in [0, 1]" in cli.error("train", "-l", tmp_path / "l.h5", "-o", tmp_path / "r.h5",
                                                   "--strategy", "self-learning", "-S", "alpha=2")
    assert "unknown strategy 'nope'" in cli.error("train", "-l", tmp_path / "l.h5", "-o", tmp_path / "r.h5",
                                                  "--strategy", "nope")
    assert "threshold samples" in cli.error("train", "-l", tmp_path / "l.h5", "-o", tmp_path / "r.h5",
                                            "--strategy", "self-learning", "--aum-threshold-set", "1")


@pytest.mark.slow
def test_true_labels_training_uses_the_truth(cli, tmp_path):
    cli("synth", "-n", "uniform", "-r", "0.3", "-o", tmp_path / "l.h5")
    cli("train", "-l", tmp_path / "l.h5", "-e", "1", "-q", "--true-labels", "-o", tmp_path / "t.h5")
    truth = read_labels(tmp_path / "l.h5").true_labels
    with RunFile(tmp_path / "t.h5") as run:
        assert np.array_equal(run.given_labels, truth) and run.labels.noise is None
        assert run.training["true_labels"] is True
    cli("train", "--dataset", "digits", "-o", tmp_path / "d.h5", "-e", "1", "-q", ok=True)
    assert "no known truth" in cli.error("train", "--dataset", "digits", "--true-labels", "-o", tmp_path / "x.h5")


def test_prototypes_follow_density_and_skip_near_copies():
    # One dense cluster around (1, 0) with near-duplicates, a sparse tail around (0, 1).
    rng = np.random.default_rng(0)
    dense = np.array([1.0, 0.0]) + 0.05 * rng.standard_normal((40, 2))
    tail = np.array([0.0, 1.0]) + 0.3 * rng.standard_normal((5, 2))
    features = torch.nn.functional.normalize(torch.tensor(np.vstack([dense, tail]), dtype=torch.float32), dim=1)
    chosen = class_prototypes(features, count=3, max_eta=0.95)
    # The densest sample comes first; later prototypes must be unlike any denser sample, so the tight
    # cluster gives one prototype and the rest come from elsewhere.
    assert 1 < len(chosen) <= 3 and int(chosen[0]) < 40 and sum(int(i) < 40 for i in chosen) == 1
    sims = features[chosen] @ features[chosen].T
    assert (sims[~torch.eye(len(chosen), dtype=torch.bool)] < 0.95).all()  # and are not near-copies

    # Two classes; a third of class 0's samples carry label 1: they get corrected back to 0.
    a = np.array([1.0, 0.0, 0.0]) + 0.1 * rng.standard_normal((60, 3))
    b = np.array([0.0, 1.0, 0.0]) + 0.1 * rng.standard_normal((60, 3))
    labels = np.r_[np.zeros(60, int), np.ones(60, int)]
    labels[:15] = 1
    result = prototype_labels(np.vstack([a, b]), labels, 2, per_class=50, count=4)
    assert (result.labels.numpy()[:15] == 0).all() and (result.labels.numpy()[60:] == 1).all()


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["reweight", "self-learning"])
def test_an_interrupted_strategy_run_resumes_to_the_same_dynamics(noisy, trusted_file, tmp_path, strategy):
    import h5py

    labels, data = noisy
    options = TrainOptions(epochs=3, device="cpu", strategy=strategy, trusted=str(trusted_file),
                           strategy_options={"start_epoch": 1} if strategy == "self-learning" else {})
    train(labels, data, options, tmp_path / "whole.h5")
    with interrupted_in_epoch(2), pytest.raises(KeyboardInterrupt):
        train(labels, data, options, tmp_path / "resumed.h5")
    train(labels, data, options, tmp_path / "resumed.h5", resume=True)
    with h5py.File(tmp_path / "whole.h5") as a, h5py.File(tmp_path / "resumed.h5") as b:
        assert set(a["dynamics"]) == set(b["dynamics"])
        for name in a["dynamics"]:
            assert np.array_equal(a["dynamics"][name][:], b["dynamics"][name][:], equal_nan=True), name
        assert np.array_equal(a["features/penultimate"][:], b["features/penultimate"][:])
