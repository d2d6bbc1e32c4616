"""Locks against two writers, property tests (hypothesis) and a bounded fuzz of the readers."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from noisyctl.builtin.noise.flips import pairflip, uniform
from noisyctl.api import NoiseContext
from noisyctl.fileio import exclusive
from noisyctl.metrics import detection_metrics
from noisyctl.store import Labels, read_labels, write_labels_file
from noisyctl.training import Checkpoints


def test_a_second_process_training_into_the_same_file_is_refused(cli, tmp_path):
    cli("synth", "-o", tmp_path / "l.h5")
    out = tmp_path / "r.h5"
    with exclusive(Checkpoints(out).folder / "lock", "training (the first process)"):
        line = cli.error("train", "-l", tmp_path / "l.h5", "-e", "1", "-q", "-o", out)
    assert "another noisyctl process is training into" in line and not out.exists()
    cli("train", "-l", tmp_path / "l.h5", "-e", "1", "-q", "-o", out)  # free again once the first is done
    assert out.exists() and not Checkpoints(out).folder.exists()


def test_a_second_process_saving_scores_into_the_same_file_is_refused(cli, digits_run, tmp_path):
    import shutil

    run = tmp_path / "run.h5"
    shutil.copy(digits_run, run)
    with exclusive(run.with_name(f".{run.name}.lock"), "saving scores (the first process)"):
        assert "another noisyctl process is saving scores" in cli.error("detect", run, "-d", "loss")
    cli("detect", run, "-d", "loss")
    assert not run.with_name(f".{run.name}.lock").exists()


def noise_context(labels, classes, seed):
    return NoiseContext(labels=np.asarray(labels), class_names=[str(c) for c in range(classes)],
                        rng=np.random.default_rng(seed))


@settings(max_examples=60, deadline=None)
@given(classes=st.integers(2, 12), n=st.integers(1, 400), rate=st.floats(0, 0.99), seed=st.integers(0, 2**32 - 1),
       kind=st.sampled_from([uniform, pairflip]))
def test_noise_is_exact_never_the_same_class_and_reproducible(classes, n, rate, seed, kind):
    labels = np.random.default_rng(seed).integers(0, classes, n)
    noisy = kind(noise_context(labels, classes, seed), rate)
    assert (noisy != labels).sum() == round(rate * n)  # exact, and a flip never lands on its own class
    assert ((noisy >= 0) & (noisy < classes)).all()
    assert np.array_equal(noisy, kind(noise_context(labels, classes, seed), rate))


@settings(max_examples=60, deadline=None)
@given(truth=st.lists(st.booleans(), min_size=2, max_size=60),
       scores=st.lists(st.integers(0, 5), min_size=60, max_size=60))
def test_metrics_match_brute_force_definitions(truth, scores):
    truth = np.array(truth)
    scores = np.array(scores[:len(truth)], dtype=np.float64)
    if truth.all() or not truth.any():
        return
    m = detection_metrics(truth, scores)
    positives, negatives = scores[truth], scores[~truth]
    pairs = [(p > q) + 0.5 * (p == q) for p in positives for q in negatives]
    assert m["auc"] == pytest.approx(np.mean(pairs))
    # Average precision: precision at each positive's threshold (ties: all samples at that score).
    ap = np.mean([(scores >= s)[truth].sum() / (scores >= s).sum() for s in positives])
    assert m["map"] == pytest.approx(ap)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 50), classes=st.integers(1, 6), data=st.data())
def test_labels_files_round_trip(tmp_path, n, classes, data):
    ids = data.draw(st.lists(st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
                                     min_size=1, max_size=12), min_size=n, max_size=n, unique=True))
    given_labels = np.array(data.draw(st.lists(st.integers(0, classes - 1), min_size=n, max_size=n)))
    reviewed = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    labels = Labels(ids=ids, given_labels=given_labels, class_names=[f"c{i}" for i in range(classes)],
                    dataset={"name": "x", "root": None, "options": {"k": [1, "ü"]}}, true_labels=given_labels[::-1].copy(),
                    reviewed=reviewed)
    write_labels_file(tmp_path / "l.h5", labels)
    back = read_labels(tmp_path / "l.h5")
    assert back.ids == ids and np.array_equal(back.given_labels, given_labels) and back.dataset == labels.dataset
    assert np.array_equal(back.true_labels, labels.true_labels)
    assert (back.reviewed is None and not reviewed.any()) or np.array_equal(back.reviewed, reviewed)


def test_an_id_hdf5_cannot_store_is_refused_in_one_line(tmp_path):
    from noisyctl.errors import NoisyctlError

    labels = Labels(ids=["a\x00b"], given_labels=np.array([0]), class_names=["c"], dataset={})
    with pytest.raises(NoisyctlError, match="NUL character"):
        write_labels_file(tmp_path / "l.h5", labels)
    assert not list(tmp_path.iterdir())


def test_fuzzed_recipes_are_run_checked_or_refused_in_one_line(cli, tmp_path):
    valid = ("steps:\n  - synth: {dataset: digits, noise: pairflip, rate: 0.2, out: l.h5}\n"
             "  - train: {labels: l.h5, epochs: 2, out: r.h5}\n  - detect: {run: r.h5, detector: [loss]}\n")
    rng = np.random.default_rng(0)
    alphabet = list(":{}[]-,'\"\n #!&*|>%@`") + list("abcdefgh0123456789")
    for attempt in range(40):
        text = list(valid)
        for _ in range(rng.integers(1, 6)):
            position = int(rng.integers(0, len(text)))
            if rng.random() < 0.5:
                del text[position]
            else:
                text.insert(position, str(rng.choice(alphabet)))
        recipe = tmp_path / f"r{attempt}.yaml"
        recipe.write_text("".join(text))
        result = cli("run", recipe, "--check", ok=False)
        assert "Traceback" not in result.stdout + result.stderr, "".join(text)
        if result.exit_code:
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr


def test_fuzzed_run_files_are_read_or_refused_in_one_line(cli, digits_run, tmp_path):
    """Run files cut at random points, and run files whose JSON attributes hold random text or
    payloads that would execute code if anything unpickled or evaluated them."""
    import h5py

    data = digits_run.read_bytes()
    rng = np.random.default_rng(1)
    cases = []
    for attempt, cut in enumerate(rng.integers(0, len(data), size=12)):
        path = tmp_path / f"cut{attempt}.h5"
        path.write_bytes(data[:int(cut)])
        cases.append(path)
    payloads = ["{not json", "cos\nsystem\n(S'touch /tmp/pwned'\ntR.", "!!python/object/apply:os.system ['touch x']",
                '{"name": ["digits"]}', "null", '"__import__(\'os\').system(\'x\')"', "[]", "1e999"]
    for attempt, payload in enumerate(payloads):
        path = tmp_path / f"attr{attempt}.h5"
        path.write_bytes(data)
        with h5py.File(path, "r+") as h5:
            h5.attrs[["dataset", "training", "noise", "plugins"][attempt % 4]] = payload
        cases.append(path)
    for path in cases:
        for command in (["detect", path, "-d", "loss", "--no-save", "-k", "3"], ["report", path]):
            result = cli(*command, ok=False)
            assert "Traceback" not in result.stdout + result.stderr, (path.name, result.stderr)
            if result.exit_code:
                lines = result.stderr.strip().splitlines()
                assert len(lines) == 1 and lines[0].startswith("error: "), (path.name, result.stderr)
                assert "internal error" not in lines[0], (path.name, lines[0])
    assert not (tmp_path / "x").exists()
