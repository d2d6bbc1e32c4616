"""Built-in label noise. Every generator flips an exact number of samples, reproducibly by seed;
``from-file`` reads the noisy labels people made (CIFAR-N's human annotations)."""

from noisyctl.api import hookimpl
from . import flips, from_file, instance, transition


@hookimpl
def register_noise(register):
    register("uniform", flips.uniform)
    register("pairflip", flips.pairflip)
    register("transition", transition.transition)
    register("instance", instance.instance)
    register("from-file", from_file.from_file)
