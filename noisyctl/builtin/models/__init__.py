"""Built-in models. Pretrained weights, for any of them, come from a local file (train --weights)."""

from noisyctl.api import hookimpl
from . import cifar_resnet, libraries, small, text


@hookimpl
def register_models(register):
    register("small-cnn", small.small_cnn)
    register("lenet", small.lenet)
    register("mlp", small.mlp)
    for depth in cifar_resnet.DEPTHS:
        register(f"resnet{depth}", cifar_resnet.factory(depth))
    register("timm", libraries.timm_model)
    register("torchvision", libraries.torchvision_model)
    register("text-bag", text.text_bag)
    register("hf", text.hf_model)
