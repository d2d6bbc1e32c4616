"""Built-in label noise. Every generator flips an exact number of samples, reproducibly by seed."""

from noisyctl.api import hookimpl
from . import flips, instance, transition


@hookimpl
def register_noise(register):
    register("uniform", flips.uniform)
    register("pairflip", flips.pairflip)
    register("transition", transition.transition)
    register("instance", instance.instance)
