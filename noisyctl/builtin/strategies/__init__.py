"""Built-in training strategies (``train --strategy``): how a batch becomes the loss to minimise."""

from noisyctl.api import hookimpl
from . import reweight, self_learning, standard


@hookimpl
def register_strategies(register):
    register("standard", standard.Standard)
    register("reweight", reweight.Reweight)
    register("self-learning", self_learning.SelfLearning)
