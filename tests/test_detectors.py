
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from noisyctl import plugins
from noisyctl.api import BlockDetector, hookimpl
from noisyctl.detection import run_detector, suggested_labels, top_suspects
from noisyctl.metrics import detection_metrics
from noisyctl.store import RunFile


def test_loss_ema_and_aum_follow_their_definitions(digits_run):
    with RunFile(digits_run) as run:
        loss, margin = run.channel("train_loss"), run.channel("train_margin")
        assert np.allclose(run_detector(run, "loss").result.scores, loss.mean(axis=1))
        assert np.allclose(run_detector(run, "aum").result.scores, -margin.mean(axis=1))
        ema = np.zeros(run.num_samples)
        for t in range(loss.shape[1]):  # Datumaro's recursion, seeded with 0, alpha per presentation
            ema = (1 - 0.001) * ema + 0.001 * loss[:, t]
        assert np.allclose(run_detector(run, "ema-loss").result.scores, ema)
        fast = run_detector(run, "ema-loss", {"alpha": 0.5}).result.scores
        assert not np.allclose(fast, ema)


def test_detectors_find_synthesized_noise_on_a_real_run(digits_run):
    with RunFile(digits_run) as run:
        for name in ("loss", "ema-loss", "aum"):
            metrics = run_detector(run, name).metrics
            assert metrics["auc"] > 0.85, (name, metrics)
            assert metrics["map"] > 0.7, (name, metrics)


def test_suggested_label_recovers_the_truth_for_top_suspects(digits_run):
    with RunFile(digits_run) as run:
        scores = run_detector(run, "loss").result.scores
        rows = top_suspects(run, scores, 50, suggested_labels(run))
        noisy_rows = [r for r in rows if r["is_noisy"]]
        assert len(noisy_rows) >= 40
        right = sum(r["suggested"] == r["true"] for r in noisy_rows)
        assert right / len(noisy_rows) > 0.7
        suggestions = suggested_labels(run)
        assert suggestions.shape == (run.num_samples,)


@settings(max_examples=60, deadline=None)
@given(truth=st.lists(st.booleans(), min_size=2, max_size=60), scores=st.lists(st.integers(0, 5), min_size=60,
                                                                                max_size=60))
def test_metrics_match_brute_force_definitions(truth, scores):
    """AUC, AP, precision/recall at k and at the flags against their definitions, ties included."""
    truth = np.array(truth)
    scores = np.array(scores[:len(truth)], dtype=np.float64)
    assume(truth.any() and not truth.all())
    flagged = scores > 2
    metrics = detection_metrics(truth, scores, flagged=flagged)
    positives, negatives = scores[truth], scores[~truth]
    assert metrics["auc"] == pytest.approx(np.mean([(p > q) + 0.5 * (p == q) for p in positives for q in negatives]))
    # Average precision: precision at each positive's threshold (ties: all samples at that score).
    assert metrics["map"] == pytest.approx(np.mean([(scores >= s)[truth].sum() / (scores >= s).sum()
                                                    for s in positives]))
    k = int(truth.sum())
    top = np.argsort(-scores, kind="stable")[:k]
    assert metrics["precision_at_k"] == pytest.approx(truth[top].mean())
    assert metrics["recall_at_k"] == pytest.approx(truth[top].sum() / k)
    assert metrics["flagged"] == flagged.sum()
    if flagged.any():
        assert metrics["precision_at_flagged"] == pytest.approx((truth & flagged).sum() / flagged.sum())
    assert metrics["recall_at_flagged"] == pytest.approx((truth & flagged).sum() / k)


def test_metrics_need_both_classes():
    metrics = detection_metrics(np.zeros(5, dtype=bool), np.arange(5.0))
    assert metrics["auc"] is None and metrics["map"] is None


class NeedsEvalPred(BlockDetector):
    """Test detector reading the eval-mode predictions."""

    reads = ("eval_pred",)

    def score_block(self, block):
        return (block["eval_pred"] != block["given_label"][:, None]).mean(axis=1)


class LocalPlugin:
    @staticmethod
    @hookimpl
    def register_detectors(register):
        register("needs-eval", NeedsEvalPred)


@pytest.fixture
def local_plugin():
    plugins.add_local_plugin(LocalPlugin)
    plugins.reset()
    yield
    plugins.remove_local_plugin(LocalPlugin)
    plugins.reset()


def test_a_detector_missing_its_channel_says_which_train_option_records_it(cli, local_plugin, tmp_path):
    cli("train", "--dataset", "digits", "--epochs", "1", "--no-record-eval", "-q", "-o", tmp_path / "run.h5")
    line = cli.error("detect", tmp_path / "run.h5", "-d", "needs-eval")
    assert "needs the 'eval_pred' dynamics" in line and "--no-record-eval" in line
    cli("detect", tmp_path / "run.h5", "-d", "loss")  # the channels it has still work


class ArrayDynamics:
    """Dynamics held in arrays, for checking detectors against hand-made series."""

    def __init__(self, given, **channels):
        self.given_labels = np.asarray(given)
        self.channels = channels
        self.num_samples, self.num_epochs = next(iter(channels.values())).shape
        self.num_classes = int(self.given_labels.max()) + 1

    def has_channel(self, name):
        return name in self.channels

    def channel(self, name):
        return self.channels[name]

    def iter_blocks(self, channels):
        for start in range(0, self.num_samples, 2):  # tiny blocks: streaming must not change results
            where = slice(start, start + 2)
            block = {name: self.channels[name][where] for name in channels}
            block["given_label"] = self.given_labels[where]
            yield where, block


def detector(name, **options):
    return plugins.get("detector", name).call(options=options)


def test_forgetting_counts_right_then_wrong_and_puts_never_learned_first():
    margin = np.array([
        [1, -1, 1, -1, 1],   # forgotten twice
        [-1, 1, 1, 1, 1],    # learned once, never forgotten
        [-1, -1, -1, -1, -1],  # never learned
        [1, 1, 1, 1, -1],    # forgotten once at the end
    ], dtype=np.float32)
    scores = detector("forgetting").score(ArrayDynamics([0, 0, 1, 1], train_margin=margin)).scores
    assert scores[2] > scores[0] > scores[3] > scores[1]
    assert np.floor(scores[[0, 1, 3]]).tolist() == [2, 0, 1]
    # Epochs that did not present a sample (NaN) are no presentation: each is compared with the one before.
    gappy = np.array([[1, np.nan, -1, np.nan, 1], [np.nan, 1, np.nan, np.nan, 1], [np.nan] * 5], dtype=np.float32)
    scores = detector("forgetting").score(ArrayDynamics([0, 0, 0], train_margin=gappy)).scores
    assert scores[0] == pytest.approx(1 + 1 / 3) and scores[1] == 0 and np.isnan(scores[2])


def test_datamap_scores_low_confidence_first():
    prob = np.array([[0.9, 0.95], [0.1, 0.2], [0.5, 0.5]])
    pred = np.array([[0, 0], [1, 1], [0, 1]])
    scores = detector("datamap").score(ArrayDynamics([0, 0, 0], eval_prob=prob, eval_pred=pred)).scores
    assert np.argsort(-scores).tolist() == [1, 2, 0]
    assert scores[1] == pytest.approx(1 - 0.15, abs=2e-3)


def test_gmm_loss_flags_the_high_loss_mode():
    rng = np.random.default_rng(0)
    loss = np.concatenate([rng.normal(0.2, 0.05, 800), rng.normal(2.0, 0.3, 200)]).clip(0)[:, None]
    result = detector("gmm-loss").score(ArrayDynamics(np.zeros(1000, dtype=int), train_loss=loss.astype(np.float32)))
    assert result.flagged[800:].mean() > 0.98 and result.flagged[:800].mean() < 0.02
    assert np.argsort(-result.scores)[:200].min() >= 800


def test_detect_estimates_noise_rate_and_confused_pairs(cli, digits_run):
    result = cli.json("detect", digits_run, "-d", "gmm-loss", "-d", "loss", "--no-save")
    estimate = result["estimate"]
    assert estimate["true_rate"] == pytest.approx(0.3, abs=0.001)
    assert abs(estimate["rate"] - 0.3) < 0.075 and estimate["low"] <= estimate["rate"] <= estimate["high"]
    # The estimate says how many; the first detector's ranking says which.
    assert estimate["by"] == f"gmm-loss's top {estimate['count']:,}" and estimate["method"].endswith("mean training loss")
    assert estimate["confused_pairs"] and estimate["confused_pairs"][0]["count"] > 0
    only_loss = cli.json("detect", digits_run, "-d", "loss", "--no-save")["estimate"]
    assert only_loss["rate"] == estimate["rate"] and only_loss["by"].startswith("loss's top")


def test_every_builtin_detector_beats_chance_on_a_real_run(digits_run):
    with RunFile(digits_run) as run:
        for name in plugins.registry().names("detector"):
            if name == "needs-eval" or name == "reweight":  # reweight reads a reweight run: test_strategies
                continue
            assert run_detector(run, name).metrics["auc"] > 0.75, name


def test_every_builtin_detector_reads_a_run_with_gaps(digits_run, tmp_path):
    """A tenth of the samples never trained on (a subset sampler) and a quarter of the others left out
    of each epoch (partial epochs) are NaN in the training channels: each detector that reads them
    leaves exactly the never-trained samples unjudged, and every one ranks about as well as on the
    whole run (aum, forgetting and gmm-loss judged no sample of such a run, or failed)."""
    from conftest import TRAINING_CHANNELS, run_with_gaps

    names = [name for name in plugins.registry().names("detector") if name not in ("needs-eval", "reweight")]
    rng = np.random.default_rng(0)
    with RunFile(digits_run) as run:
        never = rng.random(run.num_samples) < 0.1
        left_out = never[:, None] | (rng.random((run.num_samples, run.num_epochs)) < 0.25)
        whole = {name: run_detector(run, name).metrics for name in names}
    gappy = run_with_gaps(digits_run, tmp_path / "gappy.h5", TRAINING_CHANNELS, left_out)
    with RunFile(gappy) as run:
        for name in names:
            outcome = run_detector(run, name)
            unjudged = np.isnan(outcome.result.scores)
            reads_training = any(channel.startswith("train_") for channel in detector(name).reads)
            assert np.array_equal(unjudged, never) if reads_training else not unjudged.any(), name
            assert outcome.metrics["auc"] > whole[name]["auc"] - 0.03, (name, outcome.metrics, whole[name])


@pytest.mark.slow
def test_cleanlab_on_out_of_fold_probabilities_from_train_folds(cli, tmp_path):
    labels, run = tmp_path / "labels.h5", tmp_path / "run.h5"
    cli("synth", "-n", "uniform", "-r", "0.3", "-o", labels)
    cli("train", "--labels", labels, "--epochs", "3", "--folds", "3", "-q", "-o", run)
    with RunFile(run) as opened:
        oof = opened.probabilities("out_of_fold")
        assert oof.shape == (1797, 10) and np.allclose(oof.sum(axis=1), 1, atol=0.01)
        outcome = run_detector(opened, "cleanlab")
    assert outcome.result.info["probabilities"] == "out-of-fold" and "note" not in outcome.result.info
    assert outcome.metrics["auc"] > 0.9 and abs(outcome.metrics["flagged"] - 539) < 150


def test_cleanlab_without_folds_says_it_is_in_sample(cli, digits_run):
    result = cli("detect", digits_run, "-d", "cleanlab", "--no-save")
    assert "note: cleanlab used in-sample probabilities" in result.stdout
    assert "train --folds K" in result.stdout


def test_threshold_sets_are_disjoint_and_independent_of_the_seed():
    from noisyctl.training import threshold_samples

    one, two = threshold_samples(1797, 10, 1), threshold_samples(1797, 10, 2)
    assert one.sum() == two.sum() == 1797 // 11 and not (one & two).any()
    assert not threshold_samples(1797, 10, 0).any()


@pytest.mark.slow
def test_aum_threshold_samples_count_the_noise_and_a_pair_of_runs_covers_everyone(cli, tmp_path):
    labels = tmp_path / "labels.h5"
    cli("synth", "-n", "uniform", "-r", "0.2", "-o", labels)
    for number in (1, 2):
        cli("train", "--labels", labels, "--epochs", "8", "--aum-threshold-set", number, "-q",
            "-o", tmp_path / f"set{number}.h5")
    alone = cli.json("detect", tmp_path / "set1.h5", "-d", "aum", "-d", "loss", "-d", "learned", "--no-save")
    aum = alone["detectors"]["aum"]
    assert aum["info"]["not_judged"] == 1797 // 11 and aum["metrics"]["judged"] == 1797 - 1797 // 11
    assert alone["detectors"]["loss"]["metrics"]["judged"] == 1797 - 1797 // 11  # nobody judges them here
    learned = alone["detectors"]["learned"]  # adapted to the run without the threshold samples in its fit
    assert learned["info"]["adapted_to_run"] and learned["metrics"]["judged"] == 1797 - 1797 // 11
    assert learned["metrics"]["auc"] > 0.9, learned["metrics"]
    assert 0.6 * 0.2 * aum["metrics"]["judged"] < aum["flagged"] < 1.4 * 0.2 * aum["metrics"]["judged"]
    with RunFile(tmp_path / "set1.h5") as run:
        threshold_ids = {run.labels.ids[i] for i in np.flatnonzero(run.threshold_samples)}
    assert alone["top"] and not {row["id"] for row in alone["top"]} & threshold_ids  # unjudged: never suspects
    paired = cli.json("detect", tmp_path / "set1.h5", "-d", "aum", "--detector-option",
                      f"aum.pair={tmp_path / 'set2.h5'}", "--no-save")["detectors"]["aum"]
    assert "not_judged" not in paired["info"] and paired["metrics"]["judged"] == 1797
    assert paired["metrics"]["auc"] > 0.9 and 0.6 * 359 < paired["flagged"] < 1.4 * 359
    line = cli.error("detect", tmp_path / "set1.h5", "-d", "aum", "--detector-option",
                     f"aum.pair={tmp_path / 'set1.h5'}")
    assert "disjoint" in line
