import h5py
import pytest
import torch

from noisyctl import plugins, store
from noisyctl.api import ModelSpec, hookimpl
from noisyctl.data import load_dataset
from noisyctl.errors import NoisyctlError
from noisyctl.training import TrainOptions, build_model


def digits():
    return load_dataset({"name": "digits", "root": None, "options": {}})


def build(name, **options):
    spec = ModelSpec(name=name, num_classes=10, input_shape=(1, 8, 8))
    return plugins.get("model", name).call(spec, options=options)


IMAGE_MODELS = ["small-cnn", "lenet", "mlp", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110",
                "timm:resnet10t", "torchvision:resnet18", "torchvision:mobilenet_v3_small"]


@pytest.mark.parametrize("name", IMAGE_MODELS)
@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32), (1, 28, 28)])
def test_every_image_model_adapts_to_channels_and_size(name, shape):
    spec = ModelSpec(name=name, num_classes=7, input_shape=shape)
    model = plugins.get("model", name).call(spec).eval()
    with torch.no_grad():
        assert model(torch.zeros(2, *shape)).shape == (2, 7)


def test_cifar_resnets_have_the_published_depth_and_size():
    spec = ModelSpec(name="resnet32", num_classes=10, input_shape=(3, 32, 32))
    model = plugins.get("model", "resnet32").call(spec)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) + 1 == 32  # 31 convolutions and the classifier
    assert 0.45e6 < sum(p.numel() for p in model.parameters()) < 0.48e6  # 0.46M in He et al. 2016


def test_mlp_takes_feature_vectors_and_image_only_models_refuse_them():
    spec = ModelSpec(name="mlp", num_classes=4, input_shape=(16,))
    assert plugins.get("model", "mlp").call(spec, options={"hidden": 8, "layers": 3})(torch.zeros(5, 16)).shape == (5, 4)
    for name in ("small-cnn", "resnet20", "lenet"):
        with pytest.raises(NoisyctlError, match="needs image inputs"):
            plugins.get("model", name).call(ModelSpec(name=name, num_classes=4, input_shape=(16,)))


@pytest.mark.slow
def test_a_timm_model_trains_and_records(cli, tmp_path):
    cli("train", "--dataset", "digits", "--model", "timm:resnet10t", "--epochs", "1", "-q", "-o", tmp_path / "r.h5")
    with h5py.File(tmp_path / "r.h5") as h5:
        assert h5["dynamics/train_loss"].shape == (1797, 1)
        assert "timm:resnet10t" in store.get_attr(h5.attrs, "training")


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_weights_load_from_a_local_file_without_unpickling(tmp_path, suffix):
    source = build("timm:resnet10t")
    path = tmp_path / f"w{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    else:
        torch.save(source.state_dict(), path)
    loaded, _ = build_model(TrainOptions(model="timm:resnet10t", weights=str(path)), digits())
    for (name, a), b in zip(source.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name


def test_a_pickled_object_is_not_loaded_as_weights(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": object()}, path)  # needs unpickling code: weights_only refuses it
    with pytest.raises(NoisyctlError, match="cannot read weights"):
        build_model(TrainOptions(weights=str(path)), digits())


def test_hub_weights_are_refused_with_the_reason():
    with pytest.raises(NoisyctlError, match="never downloads weights"):
        build("timm:resnet10t", pretrained=True)


def test_an_unknown_timm_model_suggests_similar_names():
    with pytest.raises(NoisyctlError, match="timm has no model 'resnet10x'; similar: .*resnet10t"):
        build("timm:resnet10x")


class ShortModel:
    """A plugin whose model gives one output too few."""

    @staticmethod
    @hookimpl
    def register_models(register):
        register("short", lambda spec: torch.nn.Sequential(torch.nn.Flatten(),
                                                           torch.nn.Linear(64, spec.num_classes - 1)))


def test_a_model_that_cannot_take_the_inputs_says_so_before_training():
    with pytest.raises(NoisyctlError, match=r"model 'timm:vit_tiny_patch16_224' cannot take this dataset's inputs "
                                            r"\(1 x 8 x 8\): AssertionError: .*-M img_size=N"):
        build_model(TrainOptions(model="timm:vit_tiny_patch16_224"), digits())
    model, _ = build_model(TrainOptions(model="timm:vit_tiny_patch16_224",
                                        model_options={"img_size": 8, "patch_size": 2}), digits())
    assert model.training  # the check leaves the model as it was built
    plugins.add_local_plugin(ShortModel)
    plugins.reset()
    try:
        with pytest.raises(NoisyctlError, match=r"model 'short' from .* gives \(2, 9\) for 2 samples; expected "
                                                r"logits of shape \(2, 10\)"):
            build_model(TrainOptions(model="short"), digits())
    finally:
        plugins.remove_local_plugin(ShortModel)
        plugins.reset()
