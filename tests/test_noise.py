import numpy as np
import pytest

from noisyctl.api import NoiseContext
from noisyctl.builtin.noise import pairflip, uniform
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
