"""noisyctl: find, measure and fix mislabeled samples from their training dynamics.

``noisyctl.Recorder`` records those dynamics from your own training loop, and ``noisyctl.detect``
reads them as ``noisyctl detect`` does (both imported on first use, so ``import noisyctl`` stays
light).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("noisyctl")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["Recorder", "detect", "__version__"]


def detect(run, detectors=None, detector_options=None, top: int = 10, save: bool = True):
    """Score every sample of a run file as ``noisyctl detect RUN`` does, and return the
    :class:`noisyctl.detection.Detection`: each detector's scores, the samples judged mislabeled,
    the noise-rate estimate (``.estimate["words"]`` is what the command prints) and the ``top``
    suspects; ``.to_frame()`` is a DataFrame of every sample, most suspect first.

    Parameters
    ----------
    run : str or Path
        A run file (``noisyctl train``, or a ``Recorder``).
    detectors : list of str, optional
        The detectors to run, the first ranking the suspects (default: those ``detect`` runs).
    detector_options : dict of str to dict, optional
        Options by detector: ``{"ema-loss": {"alpha": 0.01}}``.
    top : int
        How many suspects to list.
    save : bool
        Store the scores in the run, for ``correct``, ``prune`` and ``report``.
    """
    from noisyctl.detection import detect_run

    return detect_run(run, detectors, detector_options, top, save)


def __getattr__(name: str):
    if name == "Recorder":
        from noisyctl.training.recorder import Recorder

        return Recorder
    raise AttributeError(f"module 'noisyctl' has no attribute '{name}'")
