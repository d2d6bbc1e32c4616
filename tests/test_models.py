import h5py
import pytest
import torch

from noisyctl import plugins
from noisyctl.api import ModelSpec
from noisyctl.errors import NoisyctlError


def build(name, **options):
    spec = ModelSpec(name=name, num_classes=10, input_shape=(1, 8, 8), options=options)
    return plugins.get("model", name).obj(spec)


@pytest.mark.parametrize("name", ["small-cnn", "timm:resnet10t"])
def test_models_map_digits_to_logits(name):
    model = build(name).eval()
    assert model(torch.zeros(4, 1, 8, 8)).shape == (4, 10)


def test_small_cnn_adapts_to_channels_and_size():
    spec = ModelSpec(name="small-cnn", num_classes=3, input_shape=(3, 32, 32))
    model = plugins.get("model", "small-cnn").obj(spec).eval()
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 3)


def test_a_timm_model_trains_and_records(cli, tmp_path):
    cli("train", "--dataset", "digits", "--model", "timm:resnet10t", "--epochs", "1", "-q", "-o", tmp_path / "r.h5")
    with h5py.File(tmp_path / "r.h5") as h5:
        assert h5["dynamics/train_loss"].shape == (1797, 1)
        assert "timm:resnet10t" in h5.attrs["training"]


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_weights_load_from_a_local_file_without_unpickling(tmp_path, suffix):
    source = build("timm:resnet10t")
    path = tmp_path / f"w{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    else:
        torch.save(source.state_dict(), path)
    spec = ModelSpec(name="timm:resnet10t", num_classes=10, input_shape=(1, 8, 8), weights=path)
    loaded = plugins.get("model", "timm").obj(spec)
    for (name, a), b in zip(source.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name


def test_a_pickled_object_is_not_loaded_as_weights(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": object()}, path)  # needs unpickling code: weights_only refuses it
    spec = ModelSpec(name="small-cnn", num_classes=10, input_shape=(1, 8, 8), weights=path)
    with pytest.raises(NoisyctlError, match="cannot read weights"):
        plugins.get("model", "small-cnn").obj(spec)


def test_hub_weights_are_refused_with_the_reason():
    with pytest.raises(NoisyctlError, match="never downloads weights"):
        build("timm:resnet10t", pretrained=True)


def test_an_unknown_timm_model_suggests_similar_names():
    with pytest.raises(NoisyctlError, match="timm has no model 'resnet10x'; similar: .*resnet10t"):
        build("timm:resnet10x")
