"""noisyctl: find, measure and fix mislabeled samples from their training dynamics.

``noisyctl.Recorder`` records those dynamics from your own training loop (imported on first use,
so ``import noisyctl`` stays light).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("noisyctl")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["Recorder", "__version__"]


def __getattr__(name: str):
    if name == "Recorder":
        from noisyctl.training.recorder import Recorder

        return Recorder
    raise AttributeError(f"module 'noisyctl' has no attribute '{name}'")
