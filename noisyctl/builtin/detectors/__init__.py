"""Built-in detectors. Every score follows one convention: higher means more likely mislabeled."""

from noisyctl.api import hookimpl
from noisyctl.builtin.detectors import dynamics


@hookimpl
def register_detectors(register):
    register("loss", dynamics.LossDetector)
    register("ema-loss", dynamics.EmaLossDetector)
    register("aum", dynamics.AumDetector)
    register("forgetting", dynamics.ForgettingDetector)
    register("datamap", dynamics.DataMapDetector)
    register("gmm-loss", dynamics.GmmLossDetector)
