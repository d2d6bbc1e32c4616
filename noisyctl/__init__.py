"""noisyctl: find, measure and fix mislabeled samples from their training dynamics."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("noisyctl")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
