"""Built-in detectors. Every score follows one convention: higher means more likely mislabeled."""

from noisyctl.api import hookimpl
from . import confident, dynamics, learned


@hookimpl
def register_detectors(register):
    register("loss", dynamics.LossDetector)
    register("ema-loss", dynamics.EmaLossDetector)
    register("aum", dynamics.AumDetector)
    register("forgetting", dynamics.ForgettingDetector)
    register("datamap", dynamics.DataMapDetector)
    register("gmm-loss", dynamics.GmmLossDetector)
    register("reweight", dynamics.ReweightDetector)
    register("cleanlab", confident.CleanlabDetector)
    register("lstm", learned.LstmDetector)
    register("learned", learned.LearnedDetector)

