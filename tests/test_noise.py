import numpy as np
import pytest

from noisyctl.api import DatasetData, NoiseContext, TensorSampleSet
from noisyctl.builtin.noise.flips import pairflip, uniform
from noisyctl.builtin.noise.instance import instance
from noisyctl.builtin.noise.transition import transition
from noisyctl.errors import NoisyctlError
from noisyctl.synth import synthesize


def context(labels, classes=10, seed=0):
    return NoiseContext(labels=np.asarray(labels), class_names=[str(c) for c in range(classes)],
                        rng=np.random.default_rng(seed))


@pytest.mark.parametrize("n, rate", [(1797, 0.2), (1000, 0.45), (7, 0.5), (100, 0.0), (3, 0.99)])
def test_uniform_flips_exactly_round_rate_n_and_never_to_the_same_class(n, rate):
    labels = np.arange(n) % 10
    noisy = uniform(context(labels), rate)
    assert (noisy != labels).sum() == round(rate * n)
    assert noisy.min() >= 0 and noisy.max() < 10


def test_uniform_spreads_flips_over_every_other_class():
    labels = np.zeros(20000, dtype=np.int64)
    noisy = uniform(context(labels), 0.9)
    targets = np.bincount(noisy[noisy != 0], minlength=10)[1:]
    assert targets.min() > 0.8 * targets.mean()  # roughly uniform over the 9 others


def test_pairflip_maps_each_class_to_the_next():
    labels = np.arange(1000) % 10
    noisy = pairflip(context(labels), 0.2)
    flipped = noisy != labels
    assert flipped.sum() == 200
    assert np.all(noisy[flipped] == (labels[flipped] + 1) % 10)


def test_pairflip_with_named_pairs_flips_only_those_classes():
    labels = np.arange(1000) % 4
    ctx = NoiseContext(labels=labels, class_names=["cat", "dog", "car", "truck"], rng=np.random.default_rng(0))
    noisy = pairflip(ctx, 0.5, pairs="cat:dog,dog:cat")
    flipped = noisy != labels
    assert flipped.sum() == 250  # half of the 500 cats and dogs
    assert set(labels[flipped]) <= {0, 1} and np.all(noisy[flipped] == 1 - labels[flipped])
    with pytest.raises(NoisyctlError, match="unknown class 'bird'"):
        pairflip(ctx, 0.5, pairs={"bird": "cat"})


def test_synth_is_reproducible_by_seed_and_keeps_the_truth():
    spec = {"name": "digits", "root": None, "options": {}}
    a = synthesize(spec, "uniform", 0.2, seed=3)
    b = synthesize(spec, "uniform", 0.2, seed=3)
    c = synthesize(spec, "uniform", 0.2, seed=4)
    assert np.array_equal(a.given_labels, b.given_labels)
    assert not np.array_equal(a.given_labels, c.given_labels)
    assert a.is_noisy.sum() == round(0.2 * 1797) == a.noise["flipped"]


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5])
def test_rate_outside_zero_one_is_refused(cli, tmp_path, rate):
    line = cli.error("synth", "--rate", rate, "-o", tmp_path / "l.h5")
    assert "outside [0, 1)" in line
    assert not (tmp_path / "l.h5").exists()


def test_pairflip_within_groups_flips_to_the_next_class_of_the_superclass():
    labels = np.arange(500) % 5
    data = DatasetData(train=TensorSampleSet([str(i) for i in range(500)], labels, np.zeros((500, 1))),
                       class_names=list("abcde"), input_shape=(1,), class_groups=[[0, 1, 2], [3, 4]])
    ctx = NoiseContext(labels=labels, class_names=list("abcde"), rng=np.random.default_rng(0), dataset=data)
    noisy = pairflip(ctx, 0.4, within_groups=True)
    flipped = noisy != labels
    assert flipped.sum() == 200
    expected = {0: 1, 1: 2, 2: 0, 3: 4, 4: 3}
    assert all(expected[a] == b for a, b in zip(labels[flipped], noisy[flipped]))
    with pytest.raises(NoisyctlError, match="needs a dataset with class groups"):
        pairflip(context(labels, 5), 0.4, within_groups=True)


def test_transition_hits_each_row_exactly(tmp_path):
    labels = np.repeat(np.arange(3), 100)
    matrix = tmp_path / "t.yaml"
    matrix.write_text("- [0.8, 0.2, 0.0]\n- [0.0, 1.0, 0.0]\n- [0.25, 0.25, 0.5]\n")
    noisy = transition(context(labels, 3), None, matrix=str(matrix))
    counts = np.zeros((3, 3), dtype=int)
    np.add.at(counts, (labels, noisy), 1)
    assert counts.tolist() == [[80, 20, 0], [0, 100, 0], [25, 25, 50]]


def test_transition_mapping_by_name_keeps_the_rest_on_the_diagonal():
    labels = np.repeat(np.arange(3), 10)
    ctx = NoiseContext(labels=labels, class_names=["cat", "dog", "car"], rng=np.random.default_rng(1))
    noisy = transition(ctx, None, matrix={"cat": {"dog": 0.3}})
    assert (noisy[labels == 0] == 1).sum() == 3 and (noisy[labels == 0] == 0).sum() == 7
    assert np.array_equal(noisy[labels != 0], labels[labels != 0])


@pytest.mark.parametrize("matrix, message", [
    ([[0.9, 0.2], [0.0, 1.0]], "row '0' sums to 1.1, not 1"),
    ([[1.0, 0.0]], "is 1x2 but there are 2 classes"),
    ([[1.5, -0.5], [0.0, 1.0]], "negative"),
    ({"0": {"1": "lots"}}, "not a number"),
    ("missing.yaml", "does not exist"),
])
def test_transition_refuses_bad_matrices(matrix, message):
    with pytest.raises(NoisyctlError, match=message):
        transition(context(np.arange(10) % 2, 2), None, matrix=matrix)


def test_transition_takes_no_rate():
    with pytest.raises(NoisyctlError, match="drop --rate"):
        transition(context(np.arange(10) % 2, 2), 0.2, matrix=[[1, 0], [0, 1]])


def test_instance_noise_flips_hard_samples_to_their_confusable_class():
    rng = np.random.default_rng(0)
    labels = np.arange(2000) % 4
    probs = rng.dirichlet(np.ones(4), size=2000)
    noisy = instance(context(labels, 4), 0.25, probs=_save(probs))
    flipped = noisy != labels
    assert flipped.sum() == 500
    rows = np.arange(2000)
    others = probs.copy()
    others[rows, labels] = -1
    assert np.array_equal(noisy[flipped], others.argmax(1)[flipped])  # the most confusable other class
    hardness = 1 - probs[rows, labels]
    assert hardness[flipped].mean() > hardness[~flipped].mean() + 0.05  # harder samples flip more often


def test_instance_noise_on_digits_uses_a_reference_model():
    spec = {"name": "digits", "root": None, "options": {}}
    labels = synthesize(spec, "instance", 0.3, seed=0)
    assert labels.is_noisy.sum() == round(0.3 * 1797)
    pairs = np.bincount(labels.true_labels[labels.is_noisy] * 10 + labels.given_labels[labels.is_noisy])
    assert pairs.max() > 3 * pairs[pairs > 0].mean() / 2  # concentrated on confusable pairs, not uniform


def test_instance_noise_as_a_weak_annotator_confuses_whole_regions_of_the_inputs():
    """annotator=K: the reference model is fitted on K samples a class, as an annotator who learned
    the task from a few examples; its confusions concentrate on fewer class pairs than a reference
    fitted on everything (5-fold), and a model trained on the noise learns them as the task."""
    spec = {"name": "digits", "root": None, "options": {}}
    weak = synthesize(spec, "instance", 0.08, seed=0, options={"annotator": 3})
    assert weak.is_noisy.sum() == round(0.08 * 1797) and weak.noise["options"] == {"annotator": 3}
    assert np.array_equal(synthesize(spec, "instance", 0.08, seed=0, options={"annotator": 3}).given_labels,
                          weak.given_labels)

    def share_of_top_pairs(labels):
        noisy = labels.is_noisy
        pairs = np.sort(np.bincount(labels.true_labels[noisy] * 10 + labels.given_labels[noisy]))[::-1]
        return pairs[:5].sum() / pairs.sum()

    assert share_of_top_pairs(weak) > share_of_top_pairs(synthesize(spec, "instance", 0.08, seed=0)) + 0.05
    for bad in ({"annotator": 0}, {"annotator": 2, "probs": "p.npy"}):
        with pytest.raises(NoisyctlError, match="annotator is a number of samples a class"):
            synthesize(spec, "instance", 0.08, seed=0, options=bad)


def _save(array):
    import tempfile

    path = tempfile.NamedTemporaryFile(suffix=".npy", delete=False).name
    np.save(path, array)
    return path


def test_from_file_reads_human_labels_as_cifar_n_ships_them_and_checks_they_fit_the_data(tmp_path, cli):
    """CIFAR-10N's CIFAR-10_human.pt: torch.save of a dict of numpy arrays (clean_label, aggre_label,
    worse_label, ...), read with weights_only; the truth is the dataset's own labels. A file whose
    clean_label disagrees with the data (another order) is refused, as are a wrong length and a
    rate; a CSV gives labels by sample id, as names."""
    import torch

    from noisyctl.builtin.noise.from_file import from_file
    from noisyctl.store import read_labels

    digits = synthesize({"name": "digits", "root": None, "options": {}}, "uniform", 0.0, 0).true_labels
    aggre, worse = digits.copy(), digits.copy()
    aggre[:90] = (aggre[:90] + 1) % 10
    worse[::3] = (worse[::3] + 4) % 10
    torch.save({"clean_label": digits, "aggre_label": aggre, "worse_label": worse}, tmp_path / "human.pt")
    cli("synth", "-d", "digits", "-n", "from-file", "-N", f"path={tmp_path / 'human.pt'}", "-N", "key=aggre_label",
        "-o", tmp_path / "aggre.h5")
    labels = read_labels(tmp_path / "aggre.h5")
    assert (labels.given_labels == aggre).all() and (labels.true_labels == digits).all()
    assert labels.noise["flipped"] == 90
    assert "name the labels with -N key=NAME" in cli.error("synth", "-d", "digits", "-n", "from-file", "-N",
                                                          f"path={tmp_path / 'human.pt'}", "-o", tmp_path / "x.h5")
    assert "drop --rate" in cli.error("synth", "-d", "digits", "-n", "from-file", "-r", "0.1", "-N",
                                      f"path={tmp_path / 'human.pt'}", "-o", tmp_path / "x.h5")
    reordered = digits[::-1]
    torch.save({"clean_label": reordered, "noisy_label": reordered}, tmp_path / "other.pt")
    differ = int((reordered != digits).sum())
    with pytest.raises(NoisyctlError, match=f"clean_label differs from the dataset's labels in {differ:,} of 1,797"):
        from_file(NoiseContext(labels=digits, class_names=[str(c) for c in range(10)], rng=np.random.default_rng(0)),
                  None, path=str(tmp_path / "other.pt"), key="noisy_label")
    np.save(tmp_path / "short.npy", aggre[:100])
    with pytest.raises(NoisyctlError, match="holds 100 labels .* not one for each of the 1,797"):
        from_file(context(digits), None, path=str(tmp_path / "short.npy"))
    torch.save({"labels": torch.tensor(aggre)}, tmp_path / "tensor.pt")  # tensors load too
    assert (from_file(context(digits), None, path=str(tmp_path / "tensor.pt")) == aggre).all()

    class Evil:
        def __reduce__(self):
            return (print, ("ran",))

    torch.save({"labels": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(NoisyctlError, match="holds more than arrays of labels"):
        from_file(context(digits), None, path=str(tmp_path / "evil.pt"))
    data = synthesize({"name": "digits", "root": None, "options": {}}, "uniform", 0.0, 0)
    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    rows = "".join(f"{sample_id},{names[label]}\n" for sample_id, label in zip(data.ids[::-1], aggre[::-1]))
    (tmp_path / "votes.csv").write_text("id,label\n" + rows)
    by_name = NoiseContext(labels=digits, class_names=names, rng=np.random.default_rng(0),
                           dataset=DatasetData(train=TensorSampleSet(data.ids, digits, np.zeros((1797, 1))),
                                               class_names=names, input_shape=(1,)))
    assert (from_file(by_name, None, path=str(tmp_path / "votes.csv")) == aggre).all()
