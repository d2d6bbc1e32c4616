"""Every registered plugin of every kind keeps its kind's contract, read from the registry (a new
built-in is tested the day it is registered): it works, or it says in one NoisyctlError line what
it needs."""

import numpy as np
import pytest
import torch

from noisyctl import plugins
from noisyctl.api import (Correction, Corrector, DatasetData, Detector, ModelSpec, NoiseContext, NoisyctlError,
                          TrainingStrategy)
from noisyctl.correction import run_corrector
from noisyctl.data import load_dataset
from noisyctl.detection import run_detector
from noisyctl.store import RunFile

REGISTRY = plugins.registry()

# A model family answers family:variant; the variant the contract builds. hf:<folder> loads a local
# folder: tests/test_integrations.py trains one; here it must say what it needs.
FAMILY_VARIANTS = {"timm": "timm:resnet10t", "torchvision": "torchvision:mobilenet_v3_small", "hf": None}
INPUTS = {"image": [(1, 8, 8), (3, 32, 32)], "features": [(16,)], "text": [(64,)]}


@pytest.mark.parametrize("name", REGISTRY.names("dataset"))
def test_every_dataset_loads_its_samples_or_names_the_root_it_needs(name):
    try:
        data = load_dataset({"name": name, "root": None, "options": {}})
    except NoisyctlError as exc:
        assert "--data-root" in str(exc) and "\n" not in str(exc), exc
        return
    assert isinstance(data, DatasetData) and data.num_classes >= 2
    train = data.train
    assert len(set(train.ids)) == len(train.ids) == len(train.labels)
    assert train.labels.min() >= 0 and train.labels.max() < data.num_classes
    sample, index = train[len(train) - 1]
    assert index == len(train) - 1 and tuple(sample.shape) == tuple(data.input_shape)
    assert data.kind in INPUTS


@pytest.mark.parametrize("name", REGISTRY.names("model"))
def test_every_model_maps_the_inputs_it_reads_to_logits_and_refuses_the_rest_in_one_line(name):
    built = FAMILY_VARIANTS.get(name, name)
    if built is None:
        with pytest.raises(NoisyctlError, match="local folder"):
            REGISTRY.get("model", name).call(ModelSpec(name=name, num_classes=3, input_shape=(64,), input_kind="text"))
        return
    reads = []
    for kind, shapes in INPUTS.items():
        for shape in shapes:
            spec = ModelSpec(name=built, num_classes=7, input_shape=shape, input_kind=kind)
            try:
                model = REGISTRY.get("model", name).call(spec).eval()
            except NoisyctlError as exc:
                assert "\n" not in str(exc)
                continue
            inputs = torch.randint(32, 127, (2, *shape), dtype=torch.uint8) if kind == "text" else torch.rand(2, *shape)
            with torch.no_grad():
                logits = model(inputs)
            assert logits.shape == (2, 7) and torch.isfinite(logits).all(), (kind, shape)
            reads.append(kind)
    assert reads, f"model '{name}' reads no kind of input"


@pytest.mark.parametrize("name", REGISTRY.names("noise"))
def test_every_noise_returns_labels_of_the_classes_or_names_the_option_it_needs(name):
    data = load_dataset({"name": "digits", "root": None, "options": {}})
    clean = data.train.labels.copy()
    context = NoiseContext(labels=clean.copy(), class_names=list(data.class_names), rng=np.random.default_rng(0),
                           dataset=data)
    noise = REGISTRY.get("noise", name)
    try:
        noisy = np.asarray(noise.call(context, 0.1))
    except NoisyctlError as exc:
        assert "\n" not in str(exc)
        with pytest.raises(NoisyctlError, match="option"):  # a noise that takes no rate needs an option instead
            noise.call(context, None)
        return
    assert noisy.shape == clean.shape and np.issubdtype(noisy.dtype, np.integer)
    assert noisy.min() >= 0 and noisy.max() < data.num_classes
    assert (noisy != clean).mean() == pytest.approx(0.1, abs=0.5 / len(clean))
    assert np.array_equal(context.labels, clean), "the context's clean labels were changed"


@pytest.mark.parametrize("name", REGISTRY.names("detector"))
def test_every_detector_scores_every_sample_or_says_what_the_run_lacks(name, digits_run):
    detector = REGISTRY.get("detector", name).call()
    assert isinstance(detector, Detector)
    with RunFile(digits_run) as run:
        lacking = run.lacking(detector.reads)
        if lacking:
            with pytest.raises(NoisyctlError, match="needs .*lacks"):
                run_detector(run, name)
            return
        outcome = run_detector(run, name)
    scores = outcome.result.scores
    assert scores.shape == (1797,) and np.isfinite(scores).all()
    assert outcome.metrics["auc"] > 0.75, "higher must mean more likely mislabeled"
    if outcome.result.flagged is not None:
        assert outcome.result.flagged.shape == (1797,) and outcome.result.flagged.dtype == bool


@pytest.mark.parametrize("name", REGISTRY.names("corrector"))
def test_every_corrector_proposes_a_label_and_a_confidence_for_every_sample(name, digits_run):
    corrector = REGISTRY.get("corrector", name).call()
    assert isinstance(corrector, Corrector)
    with RunFile(digits_run) as run:
        flagged = np.zeros(run.num_samples, dtype=bool)
        flagged[np.argsort(-run_detector(run, "loss").result.scores)[:50]] = True
        if run.lacking(corrector.reads):  # annotators' labels: tests/test_annotators.py runs it on a run with them
            with pytest.raises(NoisyctlError, match="needs .*lacks"):
                run_corrector(run, name, flagged=flagged)
            return
        outcome = run_corrector(run, name, flagged=flagged)
        truth, given = run.labels.true_labels, run.given_labels
    correction = outcome.correction
    assert isinstance(correction, Correction)
    assert correction.labels.shape == correction.confidence.shape == (1797,)
    assert ((correction.confidence >= 0) & (correction.confidence <= 1)).all()
    # On the flagged (mostly mislabeled) samples a proposal is right more often than the given label.
    assert (correction.labels[flagged] == truth[flagged]).mean() > (given[flagged] == truth[flagged]).mean()


@pytest.mark.parametrize("name", REGISTRY.names("strategy"))
def test_every_strategy_is_a_training_strategy_taking_no_required_option(name):
    strategy = REGISTRY.get("strategy", name).call()
    assert isinstance(strategy, TrainingStrategy)
    assert all(isinstance(channel, str) for channel in getattr(strategy, "records", ()))
